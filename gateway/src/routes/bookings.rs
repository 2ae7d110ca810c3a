//! Clients hold, book, confirm, release, cancel and reschedule; everyone reads what they may.

use crate::accounts::Role;
use crate::app::listings::{BookingListQuery, booking_page};
use crate::app::{access, bookings};
use crate::auth::{AuthUser, Customer};
use crate::error::responses::*;
use crate::error::{ApiError, Problem};
use crate::extract::{Json, JsonOrEmpty};
use crate::pagination::Page;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use engine::domain::booking::{Booking, BookingRequest};
use engine::domain::command::Command;
use engine::domain::ids::{BookingId, ResourceId};
use engine::store::BookingFilter;
use serde::Deserialize;
use uuid::Uuid;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(create)
        .service(list_mine)
        .service(get_one)
        .service(confirm)
        .service(release)
        .service(cancel)
        .service(reschedule);
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"resource_id": "0190c3f2-1a2b-7c3d-8e4f-5a6b7c8d9e0f", "request": {"kind": "tickets", "quantity": 2}, "confirm": false}))]
#[serde(deny_unknown_fields)]
pub struct CreateBooking {
    pub resource_id: Uuid,
    pub request: BookingRequest,
    /// Confirm at once (no hold): a client may do so only for what is free (price 0), else 402
    /// `payment_required`; an admin may for anything.
    #[serde(default)]
    pub confirm: bool,
}

/// The `Idempotency-Key` header, if sent (1..=200 visible characters).
pub fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    crate::idempotency::parse_key(req.headers())
}

#[utoipa::path(
    tag = "bookings",
    operation_id = "create_booking",
    summary = "Hold or book",
    description = "Holds capacity for a client (or books at once with `confirm`, for free items); the hold expires unless paid for or confirmed.",
    request_body(content = CreateBooking, example = json!({"resource_id": "0190c3f2-1a2b-7c3d-8e4f-5a6b7c8d9e0f", "request": {"kind": "tickets", "quantity": 2}, "confirm": false})),
    responses(
        (status = 201, description = "Held (or confirmed) booking", body = Booking),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 402, description = "`confirm` asked by a client for a priced item: hold it and pay instead", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Sold out, slot taken or too many active bookings", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[post("/bookings")]
async fn create(
    state: web::Data<AppState>,
    caller: Customer,
    req: HttpRequest,
    body: Json<CreateBooking>,
) -> Result<HttpResponse, ApiError> {
    let Customer(user) = caller;
    let key = idempotency_key(&req)?;
    let b = body.0;
    let booking = bookings::hold(&state, &user, ResourceId(b.resource_id), b.request, b.confirm, key).await?;
    Ok(HttpResponse::Created().insert_header(("Location", format!("/api/v1/bookings/{}", booking.id))).json(booking))
}

#[utoipa::path(
    tag = "bookings",
    operation_id = "list_bookings",
    summary = "List bookings",
    description = "A client's own bookings, an owner's resources' bookings, or all (admin); newest first.",
    params(BookingListQuery),
    responses(
        (status = 200, description = "One page of bookings", body = Page<Booking>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
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

#[utoipa::path(
    tag = "bookings",
    operation_id = "get_booking",
    summary = "Get a booking",
    description = "One booking the caller may see.",
    params(("id" = Uuid, Path, description = "The booking id")),
    responses(
        (status = 200, description = "The booking", body = Booking),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such booking visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[get("/bookings/{id}")]
async fn get_one(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let (_, booking) = access::visible_booking(&state, &user, BookingId(*id)).await?;
    Ok(HttpResponse::Ok().json(booking))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[schema(example = json!({"payment_ref": "pay_12345"}))]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub payment_ref: Option<String>,
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[schema(example = json!({"reason": "plans changed"}))]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    #[serde(default)]
    #[schema(max_length = 500, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub reason: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"request": {"kind": "appointment", "starts_at": "2030-01-07T10:00:00Z"}}))]
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
    Ok(HttpResponse::Ok().json(bookings::act_on(state, user, id, key, make).await?))
}

/// Who may confirm is the domain's rule (`may_confirm`): a client only what is free (a price is
/// paid through `POST /payments`), the resource's owner when recording a payment taken on site,
/// an admin always.
#[utoipa::path(
    tag = "bookings",
    operation_id = "confirm_booking",
    summary = "Confirm a held booking",
    description = "A client confirms a free hold (price 0); a priced hold is confirmed by paying for it \
                   (`POST /payments`), so a client's confirm answers 402 `payment_required`. The resource's \
                   owner confirms to record a payment taken on site (`payment_ref` defaults to `on_site`); \
                   an admin may force-confirm.",
    params(("id" = Uuid, Path, description = "The booking id")),
    request_body(content = Option<ConfirmBody>, example = json!({"payment_ref": "desk-receipt-0042"})),
    responses(
        (status = 200, description = "The booking after the change", body = Booking),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 402, description = "The booking has a price: pay for it instead", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such booking visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not held any more, or the hold expired and its capacity is gone", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[post("/bookings/{id}/confirm")]
async fn confirm(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: JsonOrEmpty<ConfirmBody>,
) -> Result<HttpResponse, ApiError> {
    let payment_ref = body.0.payment_ref;
    let by = user.requester();
    let booking_id = BookingId(*id);
    act(&state, &user, &req, booking_id, move || Command::Confirm { booking_id, payment_ref, by }).await
}

#[utoipa::path(
    tag = "bookings",
    operation_id = "release_booking",
    summary = "Release a hold",
    description = "Frees the capacity of a held booking.",
    params(("id" = Uuid, Path, description = "The booking id")),
    responses(
        (status = 200, description = "The booking after the change", body = Booking),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such booking visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The booking is not held", body = Problem, content_type = "application/problem+json"),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
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

#[utoipa::path(
    tag = "bookings",
    operation_id = "cancel_booking",
    summary = "Cancel a booking",
    description = "Cancels a held or confirmed booking; refunds are recorded by an admin.",
    params(("id" = Uuid, Path, description = "The booking id")),
    request_body(content = Option<CancelBody>, example = json!({"reason": "plans changed"})),
    responses(
        (status = 200, description = "The booking after the change", body = Booking),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such booking visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already cancelled or finished", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
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

#[utoipa::path(
    tag = "bookings",
    operation_id = "reschedule_booking",
    summary = "Reschedule a booking",
    description = "Moves a booking to another request on the same resource (clients and admins).",
    params(("id" = Uuid, Path, description = "The booking id")),
    request_body(content = RescheduleBody, example = json!({"request": {"kind": "appointment", "starts_at": "2030-01-07T10:00:00Z"}})),
    responses(
        (status = 200, description = "The booking after the change", body = Booking),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such booking visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The new time, rooms or tickets are not available", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[post("/bookings/{id}/reschedule")]
async fn reschedule(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: Json<RescheduleBody>,
) -> Result<HttpResponse, ApiError> {
    // Who may move it is answered before the key is read, as for every route.
    bookings::may_reschedule(&user)?;
    let key = idempotency_key(&req)?;
    let booking = bookings::reschedule(&state, &user, BookingId(*id), body.0.request, key).await?;
    Ok(HttpResponse::Ok().json(booking))
}
