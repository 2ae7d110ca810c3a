//! Admin only: notification deliveries (one per notification and channel), the dead letters
//! among them, and a retry for a dead one. Anyone else gets 403. Delivery runs on PostgreSQL
//! only; with the in-memory store these routes answer 501 `delivery_disabled`.

use crate::error::{ApiError, Problem};
use crate::pagination::{self, Page};
use crate::routes::admin::Admin;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use bots::delivery::store::{self, DeliveryRecord, RetryOutcome};
use deadpool_postgres::Pool;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list).service(one).service(retry);
}

/// One delivery of one notification on one channel.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Delivery {
    id: i64,
    /// `email` (Telegram, webhooks and WebSocket later).
    channel: String,
    /// The notification (`hold_created`, `confirmed`, `cancelled`, ...) or `reminder`.
    kind: String,
    /// `pending` (due at `next_attempt_at`), `delivered` or `dead` (gave up; retry it here).
    status: String,
    /// Attempts made so far.
    attempts: i32,
    user_id: Uuid,
    resource_id: Uuid,
    booking_id: Option<Uuid>,
    entry_id: Option<Uuid>,
    /// Why the last attempt failed.
    last_error: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    next_attempt_at: Timestamp,
    /// When the notification's cause happened.
    #[schema(value_type = String, format = DateTime)]
    notified_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    updated_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    delivered_at: Option<Timestamp>,
}

impl From<DeliveryRecord> for Delivery {
    fn from(r: DeliveryRecord) -> Self {
        Delivery {
            id: r.id,
            channel: r.channel,
            kind: r.kind,
            status: r.status,
            attempts: r.attempts,
            user_id: r.user_id,
            resource_id: r.resource_id,
            booking_id: r.booking_id,
            entry_id: r.entry_id,
            last_error: r.last_error,
            next_attempt_at: r.next_attempt_at,
            notified_at: r.notified_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            delivered_at: r.delivered_at,
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// `pending`, `delivered` or `dead`; any status if absent.
    #[param(pattern = "^(pending|delivered|dead)$")]
    pub status: Option<String>,
    pub cursor: Option<String>,
    /// 1..100, default 20.
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
}

fn pool(state: &AppState) -> Result<&Pool, ApiError> {
    state.pg_pool("delivery_disabled", "notifications are delivered")
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(e.to_string())
}

#[utoipa::path(
    tag = "admin",
    operation_id = "list_deliveries",
    summary = "List notification deliveries",
    description = "Deliveries newest first, e.g. the dead letters with `status=dead`.",
    params(DeliveryQuery),
    responses(
        (status = 200, description = "One page of deliveries", body = Page<Delivery>),
        (status = 400, description = "Malformed JSON, query or header", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller's role may not do this", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Validation failed: one entry per bad field in `errors`", body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "Running without PostgreSQL: no delivery", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable; retry after Retry-After", body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
#[get("/admin/deliveries")]
async fn list(
    state: web::Data<AppState>,
    _caller: Admin,
    q: web::Query<DeliveryQuery>,
) -> Result<HttpResponse, ApiError> {
    let status = match q.status.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s @ ("pending" | "delivered" | "dead")) => Some(s),
        Some(_) => return Err(ApiError::field("status", "one of pending, delivered, dead")),
    };
    let limit = pagination::limit(q.limit)?;
    let before = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::field("cursor", "not a cursor this API issued"))?,
        ),
    };
    let pool = pool(&state)?;
    let mut rows = store::list_deliveries(pool, status, before, limit + 1).await.map_err(unavailable)?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.id.to_string())
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(Page { items: rows.into_iter().map(Delivery::from).collect(), next_cursor }))
}

#[utoipa::path(
    tag = "admin",
    operation_id = "get_delivery",
    summary = "One delivery",
    params(("id" = i64, Path, description = "The delivery id")),
    responses(
        (status = 200, description = "The delivery", body = Delivery),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller's role may not do this", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such delivery", body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "Running without PostgreSQL: no delivery", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable; retry after Retry-After", body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
#[get("/admin/deliveries/{id}")]
async fn one(state: web::Data<AppState>, _caller: Admin, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let pool = pool(&state)?;
    let d =
        store::get_delivery(pool, *id).await.map_err(unavailable)?.ok_or_else(|| ApiError::not_found("delivery"))?;
    Ok(HttpResponse::Ok().json(Delivery::from(d)))
}

#[utoipa::path(
    tag = "admin",
    operation_id = "retry_delivery",
    summary = "Retry a dead delivery",
    description = "Puts a dead-lettered delivery back in the queue, due now, with a fresh attempt budget.",
    params(("id" = i64, Path, description = "The delivery id")),
    responses(
        (status = 200, description = "The delivery, pending again", body = Delivery),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller's role may not do this", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such delivery", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not dead (pending ones retry by themselves; delivered ones are done)", body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "Running without PostgreSQL: no delivery", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable; retry after Retry-After", body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
#[post("/admin/deliveries/{id}/retry")]
async fn retry(state: web::Data<AppState>, caller: Admin, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let pool = pool(&state)?;
    match store::retry_delivery(pool, *id, state.engine.now()).await.map_err(unavailable)? {
        RetryOutcome::Retried(d) => {
            tracing::info!(delivery_id = d.id, admin = %caller.0.id, "dead delivery queued again");
            Ok(HttpResponse::Ok().json(Delivery::from(d)))
        }
        RetryOutcome::NotFound => Err(ApiError::not_found("delivery")),
        RetryOutcome::NotDead(d) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "delivery_not_dead",
            format!("delivery {} is {}: only dead deliveries are retried by hand", d.id, d.status),
        )),
    }
}
