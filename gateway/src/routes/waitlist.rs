//! Waitlists: join when something is sold out, leave, accept or decline an offer.

use crate::accounts::Role;
use crate::auth::AuthUser;
use crate::error::{ApiError, in_body};
use crate::extract::{Json, JsonOrEmpty};
use crate::routes::bookings::{ConfirmBody, idempotency_key};
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use engine::domain::booking::Wish;
use engine::domain::command::{Command, Outcome};
use engine::domain::ids::{ResourceId, WaitlistEntryId};
use serde::Deserialize;
use uuid::Uuid;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(join).service(mine).service(leave).service(accept).service(decline);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    pub resource_id: Uuid,
    pub wish: Wish,
}

fn outcome_json(o: Outcome) -> HttpResponse {
    HttpResponse::Ok().json(o)
}

#[post("/waitlist")]
async fn join(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    body: Json<JoinBody>,
) -> Result<HttpResponse, ApiError> {
    user.require(&[Role::Client, Role::Admin], "join waitlists")?;
    let key = idempotency_key(&req)?;
    let b = body.0;
    let entry_id = match key.as_deref() {
        Some(k) => WaitlistEntryId(crate::routes::bookings::derived_id(user.id, k).0),
        None => WaitlistEntryId::new_v7(),
    };
    let cmd = Command::JoinWaitlist { entry_id, user_id: user.id, wish: b.wish, by: user.requester() };
    match state.engine.execute(ResourceId(b.resource_id), cmd, key).await.map_err(|e| in_body(e, "wish"))? {
        Outcome::WaitlistEntry { entry } => Ok(HttpResponse::Created().json(entry)),
        other => Ok(outcome_json(other)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MineQuery {
    pub limit: Option<i64>,
}

#[get("/waitlist")]
async fn mine(state: web::Data<AppState>, user: AuthUser, q: web::Query<MineQuery>) -> Result<HttpResponse, ApiError> {
    let limit = crate::pagination::limit(q.limit)?;
    let entries = state
        .engine
        .store()
        .list_waitlist_entries(user.id, limit)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": entries })))
}

/// The resource of a waitlist entry (404 if unknown). The engine itself refuses to act on
/// another client's entry (also as "not found").
async fn resource_of(state: &AppState, id: WaitlistEntryId) -> Result<ResourceId, ApiError> {
    state
        .engine
        .store()
        .locate_entry(id)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .ok_or_else(|| ApiError::not_found("waitlist entry"))
}

#[delete("/waitlist/{id}")]
async fn leave(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    user.require(&[Role::Client, Role::Admin], "leave waitlists")?;
    let entry_id = WaitlistEntryId(*id);
    let resource = resource_of(&state, entry_id).await?;
    let out = state
        .engine
        .execute(resource, Command::LeaveWaitlist { entry_id, by: user.requester() }, idempotency_key(&req)?)
        .await?;
    Ok(outcome_json(out))
}

#[post("/waitlist/{id}/accept")]
async fn accept(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: JsonOrEmpty<ConfirmBody>,
) -> Result<HttpResponse, ApiError> {
    user.require(&[Role::Client, Role::Admin], "accept offers")?;
    let entry_id = WaitlistEntryId(*id);
    let resource = resource_of(&state, entry_id).await?;
    let cmd = Command::AcceptOffer { entry_id, payment_ref: body.0.payment_ref, by: user.requester() };
    Ok(outcome_json(state.engine.execute(resource, cmd, idempotency_key(&req)?).await?))
}

#[post("/waitlist/{id}/decline")]
async fn decline(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    user.require(&[Role::Client, Role::Admin], "decline offers")?;
    let entry_id = WaitlistEntryId(*id);
    let resource = resource_of(&state, entry_id).await?;
    let cmd = Command::DeclineOffer { entry_id, by: user.requester() };
    Ok(outcome_json(state.engine.execute(resource, cmd, idempotency_key(&req)?).await?))
}
