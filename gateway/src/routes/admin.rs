//! Admin only: force-confirm a booking, record a refund, and an overview of the whole system.
//! Anyone else gets 403 before a body is read.

use crate::accounts::Role;
use crate::auth::AuthUser;
use crate::error::responses::*;
use crate::error::{ApiError, Problem};
use crate::extract::{Json, JsonOrEmpty};
use crate::routes::bookings::ConfirmBody;
use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, HttpResponse, get, post, web};
use engine::domain::booking::{Booking, BookingStatus};
use engine::domain::command::{Command, Outcome};
use engine::domain::ids::{BookingId, ResourceId};
use futures::future::{Ready, ready};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(force_confirm).service(refund).service(overview);
}

/// An admin; everyone else is refused (403) before the body is read.
pub struct Admin(pub AuthUser);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user = AuthUser::from_request(req, payload).into_inner();
        ready(
            user.and_then(|u| {
                u.require(&[Role::Admin], "use the admin API").map(|()| Admin(u)).map_err(ApiError::from)
            }),
        )
    }
}

/// The resource of any booking (admins see all), else 404.
async fn resource_of(state: &AppState, id: BookingId) -> Result<ResourceId, ApiError> {
    state
        .engine
        .store()
        .locate_booking(id)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .ok_or_else(|| ApiError::not_found("booking"))
}

fn booking_of(o: Outcome) -> Result<Booking, ApiError> {
    match o {
        Outcome::Booking { booking } | Outcome::OfferAccepted { booking, .. } => Ok(booking),
        other => Err(ApiError::internal(format!("unexpected outcome {other:?}"))),
    }
}

/// Confirms a held (or lapsed, if its capacity is still free) booking without a payment.
#[utoipa::path(
    tag = "admin",
    operation_id = "force_confirm_booking",
    summary = "Force-confirm a booking",
    description = "Confirms a held (or lapsed, if its capacity is still free) booking without a payment.",
    params(("id" = Uuid, Path, description = "The booking id")),
    request_body(content = Option<ConfirmBody>, example = json!({"payment_ref": "manual-2030-01"})),
    responses(
        (status = 200, description = "The confirmed booking", body = Booking),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such booking visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not confirmable", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[post("/admin/bookings/{id}/confirm")]
async fn force_confirm(
    state: web::Data<AppState>,
    caller: Admin,
    id: web::Path<Uuid>,
    body: JsonOrEmpty<ConfirmBody>,
) -> Result<HttpResponse, ApiError> {
    let Admin(user) = caller;
    let booking_id = BookingId(*id);
    let resource = resource_of(&state, booking_id).await?;
    let cmd = Command::Confirm { booking_id, payment_ref: body.0.payment_ref, by: user.requester() };
    Ok(HttpResponse::Ok().json(booking_of(state.engine.execute(resource, cmd, None).await?)?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"amount_minor": 4900}))]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    pub amount_minor: i64,
}

/// Records a refund of a cancelled, paid booking (the domain refuses any other with
/// `not_refundable`). Refunded in full, its payment (if it was ours) becomes `refunded`.
#[utoipa::path(
    tag = "admin",
    operation_id = "refund_booking",
    summary = "Record a refund",
    description = "Records a refund of a cancelled, paid booking; in full, its payment becomes refunded.",
    params(("id" = Uuid, Path, description = "The booking id")),
    request_body(content = RefundBody, example = json!({"amount_minor": 4900})),
    responses(
        (status = 200, description = "The booking with its refund", body = Booking),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such booking visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not refundable or more than paid", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[post("/admin/bookings/{id}/refund")]
async fn refund(
    state: web::Data<AppState>,
    caller: Admin,
    id: web::Path<Uuid>,
    body: Json<RefundBody>,
) -> Result<HttpResponse, ApiError> {
    let Admin(user) = caller;
    let booking_id = BookingId(*id);
    let resource = resource_of(&state, booking_id).await?;
    let cmd = Command::RecordRefund { booking_id, amount_minor: body.0.amount_minor, by: user.requester() };
    let booking = booking_of(state.engine.execute(resource, cmd, None).await?)?;
    let payment = booking.payment_ref.as_deref().and_then(|r| Uuid::parse_str(r).ok());
    if let Some(pid) = payment.filter(|_| booking.status == BookingStatus::Cancelled)
        && booking.refunded_minor >= booking.amount.amount_minor
    {
        // The booking's refund is recorded (and durable) already: a failure here only leaves
        // the payment row behind, so it is logged rather than failing the request.
        let why = "refunded in full by an admin after the booking was cancelled".to_owned();
        if let Err(e) = state.payments.refund(pid, why, state.engine.now()).await {
            tracing::warn!(payment_id = %pid, error = %e, "could not mark the payment refunded");
        }
    }
    Ok(HttpResponse::Ok().json(booking))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PerKind {
    hotel: u64,
    event: u64,
    provider: u64,
    total: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Totals {
    bookings: u64,
    units: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BookingTotals {
    held: Totals,
    confirmed: Totals,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WaitlistTotals {
    waiting: u64,
    offered: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Overview {
    resources: PerKind,
    /// Resources whose actor is in this process's memory now.
    active_resources: usize,
    /// Summed over every resource from the counters stored with each commit.
    bookings: BookingTotals,
    waitlist: WaitlistTotals,
}

#[utoipa::path(
    tag = "admin",
    operation_id = "admin_overview",
    summary = "System overview",
    description = "Resources per kind, active actors, held and confirmed bookings, waitlists.",
    responses(
        (status = 200, description = "The overview", body = Overview),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[get("/admin/overview")]
async fn overview(state: web::Data<AppState>, _caller: Admin) -> Result<HttpResponse, ApiError> {
    let o = state.engine.store().overview().await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(HttpResponse::Ok().json(Overview {
        resources: PerKind {
            hotel: o.hotels,
            event: o.events,
            provider: o.providers,
            total: o.hotels + o.events + o.providers,
        },
        active_resources: state.engine.active_resources(),
        bookings: BookingTotals {
            held: Totals { bookings: o.held_bookings, units: o.held_units },
            confirmed: Totals { bookings: o.confirmed_bookings, units: o.confirmed_units },
        },
        waitlist: WaitlistTotals { waiting: o.waitlist_waiting, offered: o.waitlist_offered },
    }))
}
