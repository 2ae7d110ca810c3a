//! Waitlists: join when something is sold out, leave, accept or decline an offer.

use crate::app::waitlist::{accept_offer, decline_offer, join_waitlist, resource_of};
use crate::auth::{AuthUser, Customer};
use crate::error::responses::*;
use crate::error::{ApiError, Problem};
use crate::extract::{Json, JsonOrEmpty};
use crate::routes::bookings::{ConfirmBody, idempotency_key};
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use engine::domain::booking::Wish;
use engine::domain::command::{Command, Outcome};
use engine::domain::ids::{ResourceId, WaitlistEntryId};
use engine::domain::waitlist::WaitlistEntry;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(join).service(mine).service(leave).service(accept).service(decline);
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"resource_id": "0190c3f2-1a2b-7c3d-8e4f-5a6b7c8d9e0f", "wish": {"kind": "tickets", "quantity": 2}}))]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    pub resource_id: Uuid,
    pub wish: Wish,
}

/// The caller's waitlist entries.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WaitlistEntries {
    pub items: Vec<WaitlistEntry>,
}

fn outcome_json(o: Outcome) -> HttpResponse {
    HttpResponse::Ok().json(o)
}

#[utoipa::path(
    tag = "waitlist",
    operation_id = "join_waitlist",
    summary = "Join a waitlist",
    description = "Queues a wish on a sold-out resource; an offer comes when capacity frees up.",
    request_body(content = JoinBody, example = json!({"resource_id": "0190c3f2-1a2b-7c3d-8e4f-5a6b7c8d9e0f", "wish": {"kind": "tickets", "quantity": 2}})),
    responses(
        (status = 201, description = "The waitlist entry", body = WaitlistEntry),
        (status = 200, description = "What happened", body = Outcome),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such resource visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Available now, already on the waitlist, or the waitlist is full", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[post("/waitlist")]
async fn join(
    state: web::Data<AppState>,
    caller: Customer,
    req: HttpRequest,
    body: Json<JoinBody>,
) -> Result<HttpResponse, ApiError> {
    // Customer: an owner gets 403 before the body is read.
    let Customer(user) = caller;
    let key = idempotency_key(&req)?;
    let b = body.0;
    match join_waitlist(&state, &user, ResourceId(b.resource_id), b.wish, key).await? {
        Outcome::WaitlistEntry { entry } => Ok(HttpResponse::Created().json(entry)),
        other => Ok(outcome_json(other)),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MineQuery {
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
}

#[utoipa::path(
    tag = "waitlist",
    operation_id = "list_my_waitlist",
    summary = "My waitlist entries",
    description = "The caller's waitlist entries.",
    params(MineQuery),
    responses(
        (status = 200, description = "The entries", body = WaitlistEntries),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[get("/waitlist")]
async fn mine(state: web::Data<AppState>, user: AuthUser, q: web::Query<MineQuery>) -> Result<HttpResponse, ApiError> {
    let limit = crate::pagination::limit(q.limit)?;
    let entries = state
        .engine
        .store()
        .list_waitlist_entries(user.id, limit)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(HttpResponse::Ok().json(WaitlistEntries { items: entries }))
}

/// The resource of a waitlist entry (404 if unknown). The engine itself refuses to act on
/// another client's entry (also as "not found").
#[utoipa::path(
    tag = "waitlist",
    operation_id = "leave_waitlist",
    summary = "Leave a waitlist",
    description = "Removes the caller's entry.",
    params(("id" = Uuid, Path, description = "The waitlist entry id")),
    responses(
        (status = 200, description = "What happened", body = Outcome),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such waitlist entry visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The entry is no longer waiting", body = Problem, content_type = "application/problem+json"),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[delete("/waitlist/{id}")]
async fn leave(
    state: web::Data<AppState>,
    caller: Customer,
    req: HttpRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    // Customer: an owner gets 403 before the body is read.
    let Customer(user) = caller;
    let entry_id = WaitlistEntryId(*id);
    let resource = resource_of(&state, entry_id).await?;
    let out = state
        .engine
        .execute(resource, Command::LeaveWaitlist { entry_id, by: user.requester() }, idempotency_key(&req)?)
        .await?;
    Ok(outcome_json(out))
}

#[utoipa::path(
    tag = "waitlist",
    operation_id = "accept_offer",
    summary = "Accept an offer",
    description = "Turns a free offer into a confirmed booking. An offer with a price is a held booking with the \
                   entry's id: pay for it (`POST /payments`) instead; accepting it answers 402 `payment_required`.",
    params(("id" = Uuid, Path, description = "The waitlist entry id")),
    request_body(content = Option<ConfirmBody>, example = json!({"payment_ref": "pay_12345"})),
    responses(
        (status = 200, description = "What happened", body = Outcome),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 402, description = "The offer has a price: pay for its booking instead", body = Problem, content_type = "application/problem+json"),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such waitlist entry visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No active offer, or it expired", body = Problem, content_type = "application/problem+json"),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[post("/waitlist/{id}/accept")]
async fn accept(
    state: web::Data<AppState>,
    caller: Customer,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: JsonOrEmpty<ConfirmBody>,
) -> Result<HttpResponse, ApiError> {
    // Customer: an owner gets 403 before the body is read.
    let Customer(user) = caller;
    let key = idempotency_key(&req)?;
    Ok(outcome_json(accept_offer(&state, &user, WaitlistEntryId(*id), body.0.payment_ref, key).await?))
}

#[utoipa::path(
    tag = "waitlist",
    operation_id = "decline_offer",
    summary = "Decline an offer",
    description = "Gives the offer to the next in line.",
    params(("id" = Uuid, Path, description = "The waitlist entry id")),
    responses(
        (status = 200, description = "What happened", body = Outcome),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such waitlist entry visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No active offer", body = Problem, content_type = "application/problem+json"),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[post("/waitlist/{id}/decline")]
async fn decline(
    state: web::Data<AppState>,
    caller: Customer,
    req: HttpRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    // Customer: an owner gets 403 before the body is read.
    let Customer(user) = caller;
    let key = idempotency_key(&req)?;
    Ok(outcome_json(decline_offer(&state, &user, WaitlistEntryId(*id), key).await?))
}
