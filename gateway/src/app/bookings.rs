//! Holding and acting on bookings, for both faces: the command is built here and decided by
//! the resource's actor; this layer only finds the resource and checks who may ask.

use crate::app::access::visible_booking;
use crate::app::{AppError, in_request};
use crate::auth::AuthUser;
use crate::state::AppState;
use engine::domain::booking::{Booking, BookingRequest};
use engine::domain::command::{Command, Outcome};
use engine::domain::ids::{BookingId, ResourceId, UserId};

/// A stable id for what one user creates under one idempotency key: a retry is then the very
/// same command, which the resource answers with its first outcome.
pub fn derived_id(user: UserId, key: &str) -> BookingId {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new().chain_update(user.0.as_bytes()).chain_update(key.as_bytes()).finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    BookingId(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}

fn booking_of(o: Outcome) -> Result<Booking, AppError> {
    match o {
        Outcome::Booking { booking } | Outcome::OfferAccepted { booking, .. } => Ok(booking),
        other => Err(AppError::internal(format!("unexpected outcome {other:?}"))),
    }
}

/// Holds (or books at once with `confirm_now`) for a customer. Field errors name the request's
/// fields under `request`.
pub async fn hold(
    state: &AppState,
    user: &AuthUser,
    resource: ResourceId,
    request: BookingRequest,
    confirm_now: bool,
    key: Option<String>,
) -> Result<Booking, AppError> {
    let booking_id = key.as_deref().map(|k| derived_id(user.id, k)).unwrap_or_else(BookingId::new_v7);
    let cmd = Command::Hold { booking_id, user_id: user.id, request, confirm: confirm_now, by: user.requester() };
    booking_of(state.engine.execute(resource, cmd, key).await.map_err(|e| in_request(e, "request"))?)
}

/// Runs a command on a booking the caller may see: clients act on their own bookings, owners
/// on bookings of their resources, admins on all.
pub async fn act_on(
    state: &AppState,
    user: &AuthUser,
    id: BookingId,
    key: Option<String>,
    make: impl FnOnce() -> Command,
) -> Result<Booking, AppError> {
    let (resource, _) = visible_booking(state, user, id).await?;
    booking_of(state.engine.execute(resource, make(), key).await.map_err(|e| in_request(e, "request"))?)
}

/// The booking's client (or an admin) moves a booking; its resource's owner may not (the
/// domain's `Requester::may_book`, asked here first so the refusal comes before the body).
pub fn may_reschedule(user: &AuthUser) -> Result<(), AppError> {
    if !user.requester().may_book() {
        return Err(AppError::forbidden("an owner cannot move a client's booking"));
    }
    Ok(())
}

/// Moves a booking to another request on the same resource (see [`may_reschedule`]).
pub async fn reschedule(
    state: &AppState,
    user: &AuthUser,
    booking_id: BookingId,
    request: BookingRequest,
    key: Option<String>,
) -> Result<Booking, AppError> {
    may_reschedule(user)?;
    let by = user.requester();
    act_on(state, user, booking_id, key, move || Command::Reschedule { booking_id, request, by }).await
}
