//! Every error leaves as RFC 9457 problem+json with a stable machine `code` and, for
//! validation, one entry per bad field. Bad input is a 4xx with a clear message, never a 500.

use crate::app::{AppError, ErrorKind};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use engine::EngineError;
use engine::domain::error::FieldError;
use serde::Serialize;
use std::fmt;

/// An RFC 9457 problem (`application/problem+json`); `errors` lists the bad fields of a 422.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "type": "/problems/validation_failed",
    "title": "Unprocessable Entity",
    "status": 422,
    "detail": "request.quantity: must be at least 1",
    "code": "validation_failed",
    "errors": [{"field": "request.quantity", "message": "must be at least 1"}]
}))]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

// Reusable OpenAPI responses (`#/components/responses/...`) for the answers every route can
// give in the same sense; a route documents its own 404 and 409, whose meaning differs.
pub mod responses {
    use super::Problem;

    /// Malformed JSON, query or header
    #[derive(utoipa::ToResponse)]
    #[response(content_type = "application/problem+json", example = json!({
        "type": "/problems/malformed_json", "title": "Bad Request", "status": 400,
        "detail": "the body is not valid JSON: expected `,` or `}` at line 1 column 17", "code": "malformed_json"
    }))]
    pub struct BadRequest(#[allow(dead_code)] Problem);

    /// Missing, invalid or expired access token
    #[derive(utoipa::ToResponse)]
    #[response(content_type = "application/problem+json", example = json!({
        "type": "/problems/unauthorized", "title": "Unauthorized", "status": 401,
        "detail": "the access token has expired", "code": "unauthorized"
    }))]
    pub struct Unauthorized(#[allow(dead_code)] Problem);

    /// The caller's role may not do this
    #[derive(utoipa::ToResponse)]
    #[response(content_type = "application/problem+json", example = json!({
        "type": "/problems/forbidden", "title": "Forbidden", "status": 403,
        "detail": "owners cannot create bookings", "code": "forbidden"
    }))]
    pub struct Forbidden(#[allow(dead_code)] Problem);

    /// Validation failed: one entry per bad field in `errors`
    #[derive(utoipa::ToResponse)]
    #[response(content_type = "application/problem+json", example = json!({
        "type": "/problems/validation_failed", "title": "Unprocessable Entity", "status": 422,
        "detail": "request.quantity: must be at least 1", "code": "validation_failed",
        "errors": [{"field": "request.quantity", "message": "must be at least 1"}]
    }))]
    pub struct Unprocessable(#[allow(dead_code)] Problem);

    /// The body is larger than `MAX_BODY_BYTES`
    #[derive(utoipa::ToResponse)]
    #[response(content_type = "application/problem+json", example = json!({
        "type": "/problems/payload_too_large", "title": "Payload Too Large", "status": 413,
        "detail": "the body is larger than 65536 bytes", "code": "payload_too_large"
    }))]
    pub struct PayloadTooLarge(#[allow(dead_code)] Problem);

    /// The body was sent without `Content-Type: application/json` (or with another type)
    #[derive(utoipa::ToResponse)]
    #[response(content_type = "application/problem+json", example = json!({
        "type": "/problems/unsupported_media_type", "title": "Unsupported Media Type", "status": 415,
        "detail": "send the body as application/json", "code": "unsupported_media_type"
    }))]
    pub struct UnsupportedMediaType(#[allow(dead_code)] Problem);

    /// The `Idempotency-Key` is held by a request still running (`idempotency_key_in_use`), or
    /// its first answer carried a secret and is not kept (`idempotent_answer_withheld`)
    #[derive(utoipa::ToResponse)]
    #[response(content_type = "application/problem+json", example = json!({
        "type": "/problems/idempotency_key_in_use", "title": "Conflict", "status": 409,
        "detail": "a request with this Idempotency-Key is still running; retry later", "code": "idempotency_key_in_use"
    }))]
    pub struct IdempotencyConflict(#[allow(dead_code)] Problem);

    /// Rate limited; see Retry-After
    #[derive(utoipa::ToResponse)]
    #[response(content_type = "application/problem+json", example = json!({
        "type": "/problems/rate_limited", "title": "Too Many Requests", "status": 429,
        "detail": "too many requests; retry after 1 s", "code": "rate_limited"
    }))]
    pub struct TooManyRequests(#[allow(dead_code)] Problem);

    /// Store unavailable (`store_unavailable`), the resource's queue full (`busy`) or shutting
    /// down (`shutting_down`); retry after Retry-After
    #[derive(utoipa::ToResponse)]
    #[response(content_type = "application/problem+json", example = json!({
        "type": "/problems/store_unavailable", "title": "Service Unavailable", "status": 503,
        "detail": "the database is unavailable; retry later", "code": "store_unavailable"
    }))]
    pub struct Unavailable(#[allow(dead_code)] Problem);
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError { status, code, detail: detail.into(), errors: Vec::new(), retry_after: None }
    }
    // The application's kinds of failure are built by `AppError` (one copy of each message and
    // code); these are the same, for what only HTTP meets (extractors, headers, middleware).
    pub fn validation(errors: Vec<FieldError>) -> Self {
        AppError::validation(errors).into()
    }
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::field(field, message).into()
    }
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        AppError::bad_request(code, detail).into()
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        AppError::new(ErrorKind::Unauthenticated, "unauthorized", detail).into()
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        AppError::forbidden(detail).into()
    }
    pub fn not_found(what: &str) -> Self {
        AppError::not_found(what).into()
    }
    pub fn unavailable(detail: impl Into<String>) -> Self {
        AppError::unavailable(detail).into()
    }
    /// For failures that are ours, not the client's: logged in full, answered vaguely.
    pub fn internal(e: impl fmt::Display) -> Self {
        AppError::internal(e).into()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let body = Problem {
            type_uri: format!("/problems/{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code,
            errors: self.errors.clone(),
        };
        let mut res = HttpResponse::build(self.status);
        res.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json")));
        if let Some(s) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, s.to_string()));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        res.body(serde_json::to_string(&body).unwrap_or_else(|_| "{}".into()))
    }
}

/// The HTTP status of an application error's kind: the one place where the application's
/// terms become status codes.
fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::PaymentRequired => StatusCode::PAYMENT_REQUIRED,
        ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError {
            status: status_of(e.kind),
            code: e.code,
            detail: e.detail,
            errors: e.errors,
            retry_after: e.retry_after_secs,
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        AppError::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use engine::domain::error::DomainError;

    #[test]
    fn every_domain_error_maps_to_a_4xx_with_its_code() {
        let samples = [
            DomainError::SoldOut,
            DomainError::NotOnSlotGrid,
            DomainError::BookingNotFound,
            DomainError::HoldExpiredCapacityGone,
            DomainError::IdempotencyKeyReused,
            DomainError::PaymentRequired,
            DomainError::conflicts("x"),
            DomainError::Forbidden { detail: "an owner cannot book".into() },
        ];
        for d in samples {
            let code = d.code();
            let a = ApiError::from(EngineError::Domain(d));
            assert!(a.status.is_client_error(), "{code} -> {}", a.status);
            assert_eq!(a.code, code);
        }
        let busy = ApiError::from(EngineError::Busy);
        assert_eq!((busy.status, busy.retry_after), (StatusCode::SERVICE_UNAVAILABLE, Some(1)));
    }
}
