//! Paying for a held booking through the simulated provider, and the provider's signed webhook
//! that confirms (or releases) the booking. The webhook is authenticated by its HMAC signature,
//! not by a token.

use crate::accounts::Role;
use crate::app::AppError;
use crate::app::access::owner_of;
use crate::app::payments::start_payment;
use crate::auth::{AuthUser, Customer};
use crate::error::responses::*;
use crate::error::{ApiError, Problem};
use crate::extract::{BodyLimit, DEFAULT_BODY_LIMIT, Json, decode};
use crate::payments::provider::{ReportedStatus, SIGNATURE_HEADER, SignatureError, WebhookBody};
use crate::payments::{ChosenOutcome, MAX_EVENT_ID_CHARS, Payment, PaymentError, PaymentStatus, WebhookEvent};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use engine::EngineError;
use engine::domain::booking::Requester;
use engine::domain::command::Command;
use engine::domain::error::DomainError;
use engine::domain::ids::BookingId;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(start).service(webhook).service(get_one).service(choose_outcome);
}

/// Why a late payment is given back; clients and tests read it.
pub const CAPACITY_GONE_REASON: &str = "capacity gone after the hold expired";

impl From<PaymentError> for ApiError {
    fn from(e: PaymentError) -> Self {
        AppError::from(e).into()
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"booking_id": "0190c3f2-1a2b-7c3d-8e4f-5a6b7c8d9e0f"}))]
#[serde(deny_unknown_fields)]
pub struct StartPayment {
    pub booking_id: Uuid,
}

/// Starts paying for a held booking (its client, or an admin for them): a pending payment of
/// the booking's price; the simulated provider reports the result to the webhook shortly.
#[utoipa::path(
    tag = "payments",
    operation_id = "start_payment",
    summary = "Pay for a held booking",
    description = "Starts a pending payment of the booking's price; the simulated provider reports to the webhook.",
    request_body(content = StartPayment, example = json!({"booking_id": "0190c3f2-1a2b-7c3d-8e4f-5a6b7c8d9e0f"})),
    responses(
        (status = 201, description = "Pending payment", body = Payment),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such booking visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not held, hold expired, or a payment is already pending", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[post("/payments")]
async fn start(
    state: web::Data<AppState>,
    caller: Customer,
    body: Json<StartPayment>,
) -> Result<HttpResponse, ApiError> {
    let Customer(user) = caller;
    let payment = start_payment(&state, &user, BookingId(body.0.booking_id)).await?;
    Ok(HttpResponse::Created().insert_header(("Location", format!("/api/v1/payments/{}", payment.id))).json(payment))
}

/// A payment the caller may see: its client, the resource's owner, admins; else 404.
async fn visible_payment(state: &AppState, user: &AuthUser, id: Uuid) -> Result<Payment, ApiError> {
    let p = state.payments.get(id).await?.ok_or_else(|| ApiError::not_found("payment"))?;
    let allowed = match user.role {
        Role::Admin => true,
        Role::Client => p.user_id == user.id,
        Role::Owner => owner_of(state, p.resource_id).await? == user.id,
    };
    if allowed { Ok(p) } else { Err(ApiError::not_found("payment")) }
}

#[utoipa::path(
    tag = "payments",
    operation_id = "get_payment",
    summary = "Get a payment",
    description = "A payment its client, the resource owner or an admin may see.",
    params(("id" = Uuid, Path, description = "The payment id")),
    responses(
        (status = 200, description = "The payment", body = Payment),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such payment visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[get("/payments/{id}")]
async fn get_one(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(visible_payment(&state, &user, *id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"outcome": "succeed"}))]
#[serde(deny_unknown_fields)]
pub struct ChooseOutcome {
    pub outcome: ChosenOutcome,
}

/// Chooses what the simulated provider will report (tests and demos), while it is pending.
#[utoipa::path(
    tag = "payments",
    summary = "Choose the simulated outcome",
    description = "Tells the simulated provider what to report, while the payment is pending (tests and demos).",
    params(("id" = Uuid, Path, description = "The payment id")),
    request_body(content = ChooseOutcome, example = json!({"outcome": "succeed"})),
    responses(
        (status = 200, description = "The payment", body = Payment),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such payment visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The payment is not pending", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[post("/payments/{id}/outcome")]
async fn choose_outcome(
    state: web::Data<AppState>,
    caller: Customer,
    id: web::Path<Uuid>,
    body: Json<ChooseOutcome>,
) -> Result<HttpResponse, ApiError> {
    let Customer(user) = caller;
    let p = visible_payment(&state, &user, *id).await?;
    let p = state
        .payments
        .choose_outcome(p.id, body.0.outcome, state.engine.now())
        .await?
        .ok_or_else(|| ApiError::not_found("payment"))?;
    Ok(HttpResponse::Ok().json(p))
}

/// The raw body, bounded by the configured limit (the signature covers the exact bytes).
async fn raw_body(req: &HttpRequest, mut payload: web::Payload) -> Result<web::Bytes, ApiError> {
    let limit = req.app_data::<BodyLimit>().map(|l| l.0).unwrap_or(DEFAULT_BODY_LIMIT);
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {limit} bytes"),
        )
    };
    let declared =
        req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request("bad_body", format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn signature_error(e: SignatureError) -> ApiError {
    match e {
        SignatureError::Invalid => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            format!("missing or invalid {SIGNATURE_HEADER} header (t=<unix seconds>,v1=<hex HMAC-SHA256>)"),
        ),
        SignatureError::Stale => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "stale_signature",
            "the signature's timestamp is more than 300 seconds away from now",
        ),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookAnswer {
    event_id: String,
    payment_id: Uuid,
    /// The payment's status after the event.
    result: PaymentStatus,
    /// True when this event id had been processed before (nothing was done again).
    replayed: bool,
}

/// The provider's callback. Every processed event answers 200 (the provider stops retrying);
/// only a store or engine outage answers 503, so that it retries.
#[utoipa::path(
    tag = "payments",
    operation_id = "payment_webhook",
    summary = "The provider's webhook",
    description = "Signed with HMAC-SHA256 in the signature header (t=<unix seconds>,v1=<hex>), not a token; confirms or releases the booking.",
    params(("x-payment-signature" = String, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256 of t.body>")),
    request_body(content = WebhookBody, example = json!({"event_id": "evt_0001", "payment_id": "0190c3f2-1a2b-7c3d-8e4f-5a6b7c8d9e0f", "status": "succeeded"})),
    responses(
        (status = 200, description = "Processed (or replayed)", body = WebhookAnswer),
        (status = 400, response = BadRequest),
        (status = 401, description = "Missing, invalid or stale signature", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The event id was used for another payment", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable)
    )
)]
#[post("/payments/webhook")]
async fn webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = raw_body(&req, payload).await?;
    let header = req.headers().get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    state.payment_provider.key().verify(header, &body, state.engine.now().as_second()).map_err(signature_error)?;
    let ev: WebhookBody = decode(&body)?;
    if ev.event_id.is_empty()
        || ev.event_id.len() > MAX_EVENT_ID_CHARS
        || !ev.event_id.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::field("event_id", format!("1 to {MAX_EVENT_ID_CHARS} visible ASCII characters")));
    }
    if let Some(done) = state.payments.webhook_event(&ev.event_id).await? {
        return replay(done, &ev);
    }
    let payment = state.payments.get(ev.payment_id).await?.ok_or_else(|| ApiError::not_found("payment"))?;
    let result = if payment.status == PaymentStatus::Pending {
        settle(&state, &payment, ev.status).await?
    } else {
        // Settled by an earlier event: this one changes nothing.
        payment.status
    };
    let now = state.engine.now();
    let rec = WebhookEvent { event_id: ev.event_id.clone(), payment_id: payment.id, received_at: now, result };
    if let Some(first) = state.payments.record_event(rec).await? {
        // A concurrent delivery of the same event was recorded first.
        return replay(first, &ev);
    }
    tracing::info!(event_id = %ev.event_id, payment_id = %payment.id, result = result.as_str(), "payment webhook processed");
    Ok(HttpResponse::Ok().json(WebhookAnswer {
        event_id: ev.event_id,
        payment_id: payment.id,
        result,
        replayed: false,
    }))
}

fn replay(done: WebhookEvent, ev: &WebhookBody) -> Result<HttpResponse, ApiError> {
    if done.payment_id != ev.payment_id {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "event_id_reused",
            "this event id was already used for another payment",
        ));
    }
    Ok(HttpResponse::Ok().json(WebhookAnswer {
        event_id: done.event_id,
        payment_id: done.payment_id,
        result: done.result,
        replayed: true,
    }))
}

/// Applies the provider's verdict to the booking, then settles the payment. Safe to repeat
/// after a failure in between (a retried delivery finds the booking already confirmed by this
/// payment, or already released).
async fn settle(state: &AppState, p: &Payment, reported: ReportedStatus) -> Result<PaymentStatus, ApiError> {
    let (to, reason) = match reported {
        ReportedStatus::Succeeded => confirm(state, p).await?,
        ReportedStatus::Failed => {
            let cmd = Command::Release { booking_id: p.booking_id, by: Requester::System };
            match state.engine.execute(p.resource_id, cmd, None).await {
                // Not held any more (expired, confirmed by an admin, released): nothing to free.
                Ok(_) | Err(EngineError::Domain(_)) | Err(EngineError::ResourceNotFound) => {}
                Err(e) => return Err(e.into()),
            }
            (PaymentStatus::Failed, Some("the payment provider declined the payment".to_owned()))
        }
    };
    match state.payments.settle(p.id, to, reason, state.engine.now()).await {
        Ok(Some(settled)) => Ok(settled.status),
        Ok(None) => Err(ApiError::internal(format!("payment {} vanished while settling", p.id))),
        // A concurrent delivery settled it first: its result stands.
        Err(PaymentError::NotPending(s)) => Ok(s),
        Err(e) => Err(e.into()),
    }
}

/// Confirms the booking with this payment. The money goes back (`refunded`) when the booking
/// cannot take it: the hold expired and its capacity is gone, or it is no longer payable.
async fn confirm(state: &AppState, p: &Payment) -> Result<(PaymentStatus, Option<String>), ApiError> {
    let cmd = Command::Confirm { booking_id: p.booking_id, payment_ref: Some(p.id.to_string()), by: Requester::System };
    let refunded = |why: String| Ok((PaymentStatus::Refunded, Some(why)));
    match state.engine.execute(p.resource_id, cmd, None).await {
        // Also after the hold lapsed, if its capacity was still free (late confirmation).
        Ok(_) => Ok((PaymentStatus::Succeeded, None)),
        Err(EngineError::Domain(DomainError::HoldExpiredCapacityGone)) => refunded(CAPACITY_GONE_REASON.to_owned()),
        Err(EngineError::Domain(DomainError::AlreadyConfirmed)) => {
            let booking = state
                .engine
                .store()
                .load_booking(p.resource_id, p.booking_id)
                .await
                .map_err(|e| ApiError::unavailable(e.to_string()))?;
            if booking.and_then(|b| b.payment_ref).is_some_and(|r| r == p.id.to_string()) {
                // Confirmed by this very payment on an earlier, interrupted delivery.
                Ok((PaymentStatus::Succeeded, None))
            } else {
                refunded("the booking was already confirmed without this payment".to_owned())
            }
        }
        Err(EngineError::Domain(d)) => refunded(format!("the booking could not be confirmed: {d}")),
        Err(EngineError::ResourceNotFound) => refunded("the booking's resource no longer exists".to_owned()),
        Err(e) => Err(e.into()),
    }
}
