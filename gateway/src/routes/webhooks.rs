//! Owners' outbound webhooks: register an endpoint (URL, event types, optionally one resource),
//! list, read and delete theirs, and read an endpoint's delivery log. The secret is generated
//! by the server and shown once, in the creation answer. Deliveries themselves go through the
//! notifier (`bots::webhook`). Owners and admins only (clients get 403); someone else's
//! endpoint answers 404. PostgreSQL only (501 `delivery_disabled` otherwise).

use crate::app::access::require_owner;
use crate::auth::Staff;
use crate::error::responses::*;
use crate::error::{ApiError, Problem};
use crate::extract::Json;
use crate::pagination::{self, Page};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, delete, get, post, web};
use bots::delivery::endpoints::{self, Endpoint, LogEntry, NewEndpoint};
use bots::webhook::{self, EVENT_TYPES};
use deadpool_postgres::Pool;
use engine::domain::error::FieldError;
use engine::domain::ids::ResourceId;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Endpoints one owner may have.
pub const MAX_ENDPOINTS_PER_OWNER: i64 = 20;
pub const MAX_DESCRIPTION_CHARS: usize = 200;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(create).service(list).service(one).service(remove).service(log);
}

/// A new endpoint.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"url": "https://hooks.example.com/reservations", "event_types": ["confirmed", "cancelled"], "description": "front desk"}))]
#[serde(deny_unknown_fields)]
pub struct EndpointInput {
    /// http or https, at most 2048 characters; not a loopback or private address.
    pub url: String,
    /// Notification kinds to receive: `hold_created`, `confirmed`, `released`, `cancelled`,
    /// `expired`, `refunded`, `rescheduled`, `offer_made`, `offer_expired`.
    #[schema(min_items = 1, value_type = Vec<engine::domain::command::NotificationKind>)]
    pub event_types: Vec<String>,
    /// Only this resource (the caller's); every resource of the caller if absent.
    #[serde(default)]
    pub resource_id: Option<Uuid>,
    /// At most 200 characters, no control characters.
    #[serde(default)]
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub description: Option<String>,
}

/// A registered endpoint. `secret` is present only in the answer that created it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookEndpoint {
    id: Uuid,
    url: String,
    event_types: Vec<String>,
    resource_id: Option<Uuid>,
    description: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    /// The signing key (`whsec_...`): shown once, store it now.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl From<Endpoint> for WebhookEndpoint {
    fn from(e: Endpoint) -> Self {
        WebhookEndpoint {
            id: e.id,
            url: e.url,
            event_types: e.event_types,
            resource_id: e.resource_id,
            description: e.description,
            created_at: e.created_at,
            secret: None,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EndpointList {
    items: Vec<WebhookEndpoint>,
}

/// One delivery of one notification to one endpoint.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookDelivery {
    id: i64,
    /// Sent as `Webhook-Id` and as `id` in the body: the same on every retry.
    event_id: String,
    /// The notification kind (`confirmed`, ...).
    #[serde(rename = "type")]
    kind: String,
    /// `pending` (due at `next_attempt_at`), `delivered` or `dead` (gave up).
    status: String,
    attempts: i32,
    /// HTTP status of the last answer; absent if there was none (timeout, refused connection).
    response_code: Option<i32>,
    last_error: Option<String>,
    resource_id: Uuid,
    booking_id: Option<Uuid>,
    #[schema(value_type = String, format = DateTime)]
    next_attempt_at: Timestamp,
    /// When the notification's cause happened.
    #[schema(value_type = String, format = DateTime)]
    occurred_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    updated_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    delivered_at: Option<Timestamp>,
}

impl From<LogEntry> for WebhookDelivery {
    fn from(e: LogEntry) -> Self {
        WebhookDelivery {
            id: e.id,
            event_id: e.event_id,
            kind: e.kind,
            status: e.status,
            attempts: e.attempts,
            response_code: e.response_code,
            last_error: e.last_error,
            resource_id: e.resource_id,
            booking_id: e.booking_id,
            next_attempt_at: e.next_attempt_at,
            occurred_at: e.notified_at,
            created_at: e.created_at,
            updated_at: e.updated_at,
            delivered_at: e.delivered_at,
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    pub cursor: Option<String>,
    /// 1..100, default 20.
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
}

fn pool(state: &AppState) -> Result<&Pool, ApiError> {
    state.pg_pool("delivery_disabled", "webhooks are delivered")
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(e.to_string())
}

/// Every bad field of a new endpoint at once; the event types deduplicated in order.
fn validate(input: &EndpointInput, allow_private: bool) -> Result<(String, Vec<String>, Option<String>), ApiError> {
    let mut errors = Vec::new();
    let url = input.url.trim();
    if let Err(e) = webhook::check_target(url, allow_private) {
        errors.push(FieldError { field: "url".into(), message: e });
    }
    let mut types: Vec<String> = Vec::new();
    if input.event_types.is_empty() {
        errors.push(FieldError { field: "event_types".into(), message: "name at least one event type".into() });
    }
    for (i, t) in input.event_types.iter().enumerate() {
        if !EVENT_TYPES.contains(&t.as_str()) {
            errors.push(FieldError {
                field: format!("event_types[{i}]"),
                message: format!("unknown event type; one of {}", EVENT_TYPES.join(", ")),
            });
        } else if !types.contains(t) {
            types.push(t.clone());
        }
    }
    let description = input.description.as_deref().map(str::trim).filter(|d| !d.is_empty()).map(str::to_owned);
    if description.as_ref().is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS) {
        errors.push(FieldError {
            field: "description".into(),
            message: format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        });
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok((url.to_owned(), types, description))
}

#[utoipa::path(
    tag = "webhooks",
    operation_id = "create_webhook",
    summary = "Register a webhook endpoint",
    description = "Notifications of the caller's resources (or of `resource_id` only) whose kind is in \
                   `event_types` are POSTed to `url` as JSON, signed with `Webhook-Signature: \
                   v1=<hex HMAC-SHA256(secret, \"<Webhook-Timestamp>.<body>\")>`. The answer carries the \
                   generated `secret`, shown only this once. At most 20 endpoints per owner.",
    request_body = EndpointInput,
    responses(
        (status = 201, description = "Registered; keep the secret", body = WebhookEndpoint),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such resource of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The caller already has the most endpoints allowed (`too_many_webhooks`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = Unprocessable),
        (status = 501, description = "Running without PostgreSQL: no delivery", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[post("/webhooks")]
async fn create(
    state: web::Data<AppState>,
    caller: Staff,
    body: Json<EndpointInput>,
) -> Result<HttpResponse, ApiError> {
    let Staff(user) = caller;
    let input = body.0;
    let (url, event_types, description) = validate(&input, state.settings.webhook_allow_private_targets)?;
    let pool = pool(&state)?;
    if let Some(r) = input.resource_id {
        require_owner(&state, &user, ResourceId(r)).await?;
    }
    let secret = webhook::new_secret();
    let new = NewEndpoint {
        id: Uuid::now_v7(),
        owner_id: user.id.0,
        url: &url,
        secret: &secret,
        event_types: &event_types,
        resource_id: input.resource_id,
        description: description.as_deref(),
        now: state.engine.now(),
    };
    let Some(created) = endpoints::create(pool, &new, MAX_ENDPOINTS_PER_OWNER).await.map_err(unavailable)? else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_many_webhooks",
            format!("at most {MAX_ENDPOINTS_PER_OWNER} webhook endpoints per owner; delete one first"),
        ));
    };
    tracing::info!(endpoint_id = %created.id, owner = %user.id, "webhook endpoint registered");
    let mut out = WebhookEndpoint::from(created);
    out.secret = Some(secret);
    // The one answer that carries the secret: no cache along the way may keep it.
    Ok(HttpResponse::Created().insert_header((actix_web::http::header::CACHE_CONTROL, "no-store")).json(out))
}

#[utoipa::path(
    tag = "webhooks",
    operation_id = "list_webhooks",
    summary = "The caller's webhook endpoints",
    description = "Newest first, without their secrets.",
    responses(
        (status = 200, description = "The endpoints", body = EndpointList),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 501, description = "Running without PostgreSQL: no delivery", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[get("/webhooks")]
async fn list(state: web::Data<AppState>, caller: Staff) -> Result<HttpResponse, ApiError> {
    let pool = pool(&state)?;
    let rows = endpoints::list(pool, caller.0.id.0, None, MAX_ENDPOINTS_PER_OWNER).await.map_err(unavailable)?;
    Ok(HttpResponse::Ok().json(EndpointList { items: rows.into_iter().map(WebhookEndpoint::from).collect() }))
}

async fn own_endpoint(state: &AppState, caller: &Staff, id: Uuid) -> Result<Endpoint, ApiError> {
    let pool = pool(state)?;
    endpoints::get(pool, caller.0.id.0, id).await.map_err(unavailable)?.ok_or_else(|| ApiError::not_found("webhook"))
}

#[utoipa::path(
    tag = "webhooks",
    operation_id = "get_webhook",
    summary = "One of the caller's webhook endpoints",
    params(("id" = Uuid, Path, description = "The endpoint id")),
    responses(
        (status = 200, description = "The endpoint (without its secret)", body = WebhookEndpoint),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such endpoint of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "Running without PostgreSQL: no delivery", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[get("/webhooks/{id}")]
async fn one(state: web::Data<AppState>, caller: Staff, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let e = own_endpoint(&state, &caller, *id).await?;
    Ok(HttpResponse::Ok().json(WebhookEndpoint::from(e)))
}

#[utoipa::path(
    tag = "webhooks",
    operation_id = "delete_webhook",
    summary = "Delete a webhook endpoint",
    description = "Nothing more is sent to it; deliveries still pending are dead-lettered when they come due.",
    params(("id" = Uuid, Path, description = "The endpoint id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such endpoint of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "Running without PostgreSQL: no delivery", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[delete("/webhooks/{id}")]
async fn remove(state: web::Data<AppState>, caller: Staff, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let pool = pool(&state)?;
    if !endpoints::delete(pool, caller.0.id.0, *id).await.map_err(unavailable)? {
        return Err(ApiError::not_found("webhook"));
    }
    tracing::info!(endpoint_id = %*id, owner = %caller.0.id, "webhook endpoint deleted");
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    tag = "webhooks",
    operation_id = "list_webhook_deliveries",
    summary = "An endpoint's delivery log",
    description = "Deliveries to one of the caller's endpoints, newest first: status, attempts, the last \
                   HTTP status and error.",
    params(("id" = Uuid, Path, description = "The endpoint id"), LogQuery),
    responses(
        (status = 200, description = "One page of deliveries", body = Page<WebhookDelivery>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such endpoint of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = Unprocessable),
        (status = 501, description = "Running without PostgreSQL: no delivery", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[get("/webhooks/{id}/deliveries")]
async fn log(
    state: web::Data<AppState>,
    caller: Staff,
    id: web::Path<Uuid>,
    q: web::Query<LogQuery>,
) -> Result<HttpResponse, ApiError> {
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
    let endpoint = own_endpoint(&state, &caller, *id).await?;
    let pool = pool(&state)?;
    let mut rows = endpoints::log(pool, endpoint.id, before, limit + 1).await.map_err(unavailable)?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.id.to_string())
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(Page { items: rows.into_iter().map(WebhookDelivery::from).collect(), next_cursor }))
}
