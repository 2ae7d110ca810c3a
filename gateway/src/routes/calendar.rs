//! iCal feeds: signed-in users create, list, rotate and revoke secret feed URLs (their own
//! bookings, or a resource's schedule for its owner); calendar apps fetch
//! `GET /api/v1/calendar/{token}.ics` without a token header (the URL is the secret). An
//! unknown, rotated or revoked token answers 404. PostgreSQL only (501 otherwise).

use crate::app::access::require_owner;
use crate::auth::AuthUser;
use crate::calendar::{self, Feed, MAX_FEEDS_PER_USER, Target};
use crate::error::responses::*;
use crate::error::{ApiError, Problem};
use crate::extract::JsonOrEmpty;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use deadpool_postgres::Pool;
use engine::domain::ids::ResourceId;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(create).service(list).service(rotate).service(revoke).service(serve);
}

/// What a feed shows: the caller's bookings, or (owners) one resource's.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedInput {
    /// One of the caller's resources; the caller's own bookings if absent.
    #[serde(default)]
    pub resource_id: Option<Uuid>,
}

/// A calendar feed. `url` and `token` are present only in the answer that created or rotated it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CalendarFeed {
    id: Uuid,
    /// `user` (the caller's bookings) or `resource` (one resource's bookings).
    scope: String,
    resource_id: Option<Uuid>,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    rotated_at: Option<Timestamp>,
    /// The secret feed URL to subscribe to: shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl From<Feed> for CalendarFeed {
    fn from(f: Feed) -> Self {
        CalendarFeed {
            id: f.id,
            scope: f.scope,
            resource_id: f.resource_id,
            created_at: f.created_at,
            rotated_at: f.rotated_at,
            url: None,
            token: None,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FeedList {
    items: Vec<CalendarFeed>,
}

fn pool(state: &AppState) -> Result<&Pool, ApiError> {
    state.pg_pool("calendar_disabled", "calendar feeds are served")
}

/// The feed with its URL (absolute, from the request's scheme and host) and token.
fn with_secret(req: &HttpRequest, feed: Feed, token: String) -> CalendarFeed {
    let info = req.connection_info();
    let url = format!("{}://{}/api/v1/calendar/{token}.ics", info.scheme(), info.host());
    CalendarFeed { url: Some(url), token: Some(token), ..CalendarFeed::from(feed) }
}

#[utoipa::path(
    tag = "calendar",
    operation_id = "create_calendar_feed",
    summary = "Create an iCal feed URL",
    description = "A secret URL serving an RFC 5545 calendar of the caller's bookings, or (owners, admins) \
                   of one resource's bookings. The URL is shown only in this answer; at most 20 active \
                   feeds per user.",
    request_body(content = Option<FeedInput>, example = json!({"resource_id": "0190c3f2-0000-7000-8000-000000000000"})),
    responses(
        (status = 201, description = "The feed with its URL", body = CalendarFeed),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such resource of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The caller already has the most feeds allowed (`too_many_feeds`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = Unprocessable),
        (status = 501, description = "Running without PostgreSQL: no feeds", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[post("/calendar/feeds")]
async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    body: JsonOrEmpty<FeedInput>,
) -> Result<HttpResponse, ApiError> {
    let resource = body.0.resource_id;
    let pool = pool(&state)?;
    if let Some(r) = resource {
        require_owner(&state, &user, ResourceId(r)).await?;
    }
    let Some((feed, token)) = calendar::create(pool, user.id.0, resource, state.engine.now()).await? else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_many_feeds",
            format!("at most {MAX_FEEDS_PER_USER} active calendar feeds per user; revoke one first"),
        ));
    };
    Ok(HttpResponse::Created().insert_header((header::CACHE_CONTROL, "no-store")).json(with_secret(&req, feed, token)))
}

#[utoipa::path(
    tag = "calendar",
    operation_id = "list_calendar_feeds",
    summary = "The caller's active iCal feeds",
    description = "Newest first, without their URLs.",
    responses(
        (status = 200, description = "The feeds", body = FeedList),
        (status = 401, response = Unauthorized),
        (status = 501, description = "Running without PostgreSQL: no feeds", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[get("/calendar/feeds")]
async fn list(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let feeds = calendar::list(pool(&state)?, user.id.0).await?;
    Ok(HttpResponse::Ok().json(FeedList { items: feeds.into_iter().map(CalendarFeed::from).collect() }))
}

#[utoipa::path(
    tag = "calendar",
    operation_id = "rotate_calendar_feed",
    summary = "Give an iCal feed a new URL",
    description = "The old URL stops working at once; the new one is shown only in this answer.",
    params(("id" = Uuid, Path, description = "The feed id")),
    responses(
        (status = 200, description = "The feed with its new URL", body = CalendarFeed),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such active feed of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "Running without PostgreSQL: no feeds", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[post("/calendar/feeds/{id}/rotate")]
async fn rotate(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (feed, token) = calendar::rotate(pool(&state)?, user.id.0, *id, state.engine.now())
        .await?
        .ok_or_else(|| ApiError::not_found("calendar feed"))?;
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(with_secret(&req, feed, token)))
}

#[utoipa::path(
    tag = "calendar",
    operation_id = "revoke_calendar_feed",
    summary = "Revoke an iCal feed",
    description = "Its URL answers 404 from now on.",
    params(("id" = Uuid, Path, description = "The feed id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such active feed of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "Running without PostgreSQL: no feeds", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[delete("/calendar/feeds/{id}")]
async fn revoke(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    if !calendar::revoke(pool(&state)?, user.id.0, *id, state.engine.now()).await? {
        return Err(ApiError::not_found("calendar feed"));
    }
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    tag = "calendar",
    operation_id = "get_calendar",
    summary = "An iCal feed (no token header: the URL is the secret)",
    description = "RFC 5545: one VEVENT per confirmed, completed or cancelled booking that ended at most 90 \
                   days ago (at most 1,000). UID is stable per booking; cancelled bookings have \
                   STATUS:CANCELLED; times are in UTC (a stay runs from 15:00 hotel time on the check-in \
                   date to the hotel's check-out time).",
    params(("token" = String, Path, description = "The feed's secret token")),
    responses(
        (status = 200, description = "The calendar", body = String, content_type = "text/calendar"),
        (status = 404, description = "Unknown, rotated or revoked feed", body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "Running without PostgreSQL: no feeds", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)
    )
)]
#[get("/calendar/{token}.ics")]
async fn serve(state: web::Data<AppState>, token: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let pool = pool(&state)?;
    let target: Target = calendar::by_token(pool, &token).await?.ok_or_else(|| ApiError::not_found("calendar feed"))?;
    let body = calendar::render(pool, &target, state.engine.now()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/calendar; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "private, max-age=300"))
        .insert_header(("x-robots-tag", "noindex"))
        .body(body))
}
