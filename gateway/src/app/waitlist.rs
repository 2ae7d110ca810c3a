//! The waitlist for both faces: join when something is sold out, accept or decline an offer.

use crate::app::bookings::derived_id;
use crate::app::{AppError, in_request};
use crate::auth::AuthUser;
use crate::state::AppState;
use engine::domain::booking::Wish;
use engine::domain::command::{Command, Outcome};
use engine::domain::ids::{ResourceId, WaitlistEntryId};

/// Puts a customer's wish on a resource's waitlist (`POST /waitlist` and the bot).
pub async fn join_waitlist(
    state: &AppState,
    user: &AuthUser,
    resource: ResourceId,
    wish: Wish,
    key: Option<String>,
) -> Result<Outcome, AppError> {
    let entry_id = match key.as_deref() {
        Some(k) => WaitlistEntryId(derived_id(user.id, k).0),
        None => WaitlistEntryId::new_v7(),
    };
    let cmd = Command::JoinWaitlist { entry_id, user_id: user.id, wish, by: user.requester() };
    state.engine.execute(resource, cmd, key).await.map_err(|e| in_request(e, "wish"))
}

/// The resource a waitlist entry is queued on (not found if there is no such entry).
pub async fn resource_of(state: &AppState, id: WaitlistEntryId) -> Result<ResourceId, AppError> {
    state
        .engine
        .store()
        .locate_entry(id)
        .await
        .map_err(|e| AppError::unavailable(e.to_string()))?
        .ok_or_else(|| AppError::not_found("waitlist entry"))
}

/// Accepts a waitlist offer (`POST /waitlist/{id}/accept` and the bot's Accept button).
pub async fn accept_offer(
    state: &AppState,
    user: &AuthUser,
    entry_id: WaitlistEntryId,
    payment_ref: Option<String>,
    key: Option<String>,
) -> Result<Outcome, AppError> {
    let resource = resource_of(state, entry_id).await?;
    let cmd = Command::AcceptOffer { entry_id, payment_ref, by: user.requester() };
    Ok(state.engine.execute(resource, cmd, key).await?)
}

/// Declines a waitlist offer (`POST /waitlist/{id}/decline` and the bot's Decline button).
pub async fn decline_offer(
    state: &AppState,
    user: &AuthUser,
    entry_id: WaitlistEntryId,
    key: Option<String>,
) -> Result<Outcome, AppError> {
    let resource = resource_of(state, entry_id).await?;
    let cmd = Command::DeclineOffer { entry_id, by: user.requester() };
    Ok(state.engine.execute(resource, cmd, key).await?)
}
