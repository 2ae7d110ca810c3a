//! Clients hold, book, confirm, release, cancel and reschedule; everyone reads what they may.

use crate::accounts::Role;
use crate::auth::{AuthUser, Customer};
use crate::error::{ApiError, in_body};
use crate::extract::{Json, JsonOrEmpty};
use crate::routes::resources::{BookingListQuery, booking_page, owner_of};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use engine::domain::booking::{Booking, BookingRequest};
use engine::domain::command::{Command, MAX_KEY_CHARS, Outcome};
use engine::domain::ids::{BookingId, ResourceId};
use engine::store::BookingFilter;
use serde::Deserialize;
use uuid::Uuid;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create)
        .service(list_mine)
        .service(get_one)
        .service(confirm)
        .service(release)
        .service(cancel)
        .service(reschedule);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBooking {
    pub resource_id: Uuid,
    pub request: BookingRequest,
    /// Confirm at once (no hold): for free tickets or payment taken beforehand.
    #[serde(default)]
    pub confirm: bool,
}

/// The `Idempotency-Key` header, if sent (1..=200 visible characters).
pub fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(v) = req.headers().get("idempotency-key") else { return Ok(None) };
    let s = v.to_str().map_err(|_| ApiError::bad_request("invalid_idempotency_key", "must be visible ASCII"))?;
    if s.is_empty() || s.len() > MAX_KEY_CHARS || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            format!("Idempotency-Key must be 1 to {MAX_KEY_CHARS} visible ASCII characters"),
        ));
    }
    Ok(Some(s.to_owned()))
}

/// A stable id for what one user creates under one idempotency key.
pub fn derived_id(user: engine::domain::ids::UserId, key: &str) -> BookingId {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new().chain_update(user.0.as_bytes()).chain_update(key.as_bytes()).finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    BookingId(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}

fn booking_of(o: Outcome) -> Result<Booking, ApiError> {
    match o {
        Outcome::Booking { booking } | Outcome::OfferAccepted { booking, .. } => Ok(booking),
        other => Err(ApiError::internal(format!("unexpected outcome {other:?}"))),
    }
}

#[post("/bookings")]
async fn create(
    state: web::Data<AppState>,
    Customer(user): Customer,
    req: HttpRequest,
    body: Json<CreateBooking>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let b = body.0;
    let resource = ResourceId(b.resource_id);
    // With a key the booking id is derived from (user, key): a retry is then the very same
    // command, which the resource answers with its first outcome.
    let booking_id = key.as_deref().map(|k| derived_id(user.id, k)).unwrap_or_else(BookingId::new_v7);
    let cmd =
        Command::Hold { booking_id, user_id: user.id, request: b.request, confirm: b.confirm, by: user.requester() };
    let booking = booking_of(state.engine.execute(resource, cmd, key).await.map_err(|e| in_body(e, "request"))?)?;
    Ok(HttpResponse::Created().insert_header(("Location", format!("/api/v1/bookings/{}", booking.id))).json(booking))
}

#[get("/bookings")]
async fn list_mine(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<BookingListQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = match user.role {
        Role::Client => BookingFilter { user_id: Some(user.id), ..BookingFilter::default() },
        Role::Owner => BookingFilter { owner_id: Some(user.id), ..BookingFilter::default() },
        Role::Admin => BookingFilter::default(),
    };
    Ok(HttpResponse::Ok().json(booking_page(&state, filter, &q).await?))
}

/// The resource of a booking the caller may see, else 404 (never 403: existence stays private).
pub(crate) async fn visible_booking(
    state: &AppState,
    user: &AuthUser,
    id: BookingId,
) -> Result<(ResourceId, Booking), ApiError> {
    let store = state.engine.store();
    let not_found = || ApiError::not_found("booking");
    let resource =
        store.locate_booking(id).await.map_err(|e| ApiError::unavailable(e.to_string()))?.ok_or_else(not_found)?;
    let booking = store
        .load_booking(resource, id)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .ok_or_else(not_found)?;
    let allowed = match user.role {
        Role::Admin => true,
        Role::Client => booking.user_id == user.id,
        Role::Owner => owner_of(state, resource).await? == user.id,
    };
    if allowed { Ok((resource, booking)) } else { Err(not_found()) }
}

#[get("/bookings/{id}")]
async fn get_one(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let (_, booking) = visible_booking(&state, &user, BookingId(*id)).await?;
    Ok(HttpResponse::Ok().json(booking))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    pub payment_ref: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    #[serde(default)]
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RescheduleBody {
    pub request: BookingRequest,
}

/// Runs a command on a booking the caller may see. Clients act on their own bookings, owners
/// on bookings of their resources, admins on all.
async fn act(
    state: &AppState,
    user: &AuthUser,
    req: &HttpRequest,
    id: BookingId,
    make: impl FnOnce() -> Command,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(req)?;
    let (resource, _) = visible_booking(state, user, id).await?;
    let booking = booking_of(state.engine.execute(resource, make(), key).await.map_err(|e| in_body(e, "request"))?)?;
    Ok(HttpResponse::Ok().json(booking))
}

/// Confirming is the client's (after paying) or an admin's: owners cannot confirm for clients.
#[post("/bookings/{id}/confirm")]
async fn confirm(
    state: web::Data<AppState>,
    Customer(user): Customer,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: JsonOrEmpty<ConfirmBody>,
) -> Result<HttpResponse, ApiError> {
    let payment_ref = body.0.payment_ref;
    let by = user.requester();
    let booking_id = BookingId(*id);
    act(&state, &user, &req, booking_id, move || Command::Confirm { booking_id, payment_ref, by }).await
}

#[post("/bookings/{id}/release")]
async fn release(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let by = user.requester();
    let booking_id = BookingId(*id);
    act(&state, &user, &req, booking_id, move || Command::Release { booking_id, by }).await
}

#[post("/bookings/{id}/cancel")]
async fn cancel(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: JsonOrEmpty<CancelBody>,
) -> Result<HttpResponse, ApiError> {
    let reason = body.0.reason;
    let by = user.requester();
    let booking_id = BookingId(*id);
    act(&state, &user, &req, booking_id, move || Command::Cancel { booking_id, reason, by }).await
}

#[post("/bookings/{id}/reschedule")]
async fn reschedule(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: Json<RescheduleBody>,
) -> Result<HttpResponse, ApiError> {
    if user.role == Role::Owner {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "an owner cannot move a client's booking"));
    }
    let request = body.0.request;
    let by = user.requester();
    let booking_id = BookingId(*id);
    act(&state, &user, &req, booking_id, move || Command::Reschedule { booking_id, request, by }).await
}
