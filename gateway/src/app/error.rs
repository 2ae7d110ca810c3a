//! The application layer's one error: what went wrong, in a booking service's terms and with
//! no transport in it. HTTP turns it into a problem+json (`From<AppError> for ApiError`, the
//! one place that picks a status); the Telegram bot into a refusal or a "try later"
//! (`From<AppError> for BackendError`), without ever seeing a status code.

use engine::EngineError;
use engine::domain::error::{DomainError, FieldError};
use std::fmt;

/// What kind of failure this is; each face maps it to its own terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed (a cursor that is not one, a header out of shape).
    BadRequest,
    /// Who is asking is not known (no or a bad credential).
    Unauthenticated,
    /// The caller is known and may not do this.
    Forbidden,
    /// Nothing the caller may see by that id (existence stays private).
    NotFound,
    /// The resource's state refuses it now (sold out, not held any more).
    Conflict,
    /// It costs money: pay instead.
    PaymentRequired,
    /// The request can never succeed as sent; `errors` names the fields.
    Invalid,
    /// Too many requests from this caller; retry later.
    RateLimited,
    /// A dependency (the store, a resource's queue) cannot answer now; retry later.
    Unavailable,
    /// Our fault: logged in full, answered vaguely.
    Internal,
}

impl ErrorKind {
    /// Whether the caller should simply try again later (the bot says "try later").
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::RateLimited | ErrorKind::Unavailable | ErrorKind::Internal)
    }
}

#[derive(Debug, Clone)]
pub struct AppError {
    pub kind: ErrorKind,
    /// Stable machine code (`sold_out`, `validation_failed`, ...).
    pub code: &'static str,
    pub detail: String,
    /// The bad fields of an `Invalid`.
    pub errors: Vec<FieldError>,
    /// For `RateLimited` and `Unavailable`: when to retry.
    pub retry_after_secs: Option<u64>,
}

impl AppError {
    pub fn new(kind: ErrorKind, code: &'static str, detail: impl Into<String>) -> Self {
        AppError { kind, code, detail: detail.into(), errors: Vec::new(), retry_after_secs: None }
    }
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
        AppError { errors, ..AppError::new(ErrorKind::Invalid, "validation_failed", detail) }
    }
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::validation(vec![FieldError { field: field.into(), message: message.into() }])
    }
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        AppError::new(ErrorKind::BadRequest, code, detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        AppError::new(ErrorKind::Forbidden, "forbidden", detail)
    }
    pub fn not_found(what: &str) -> Self {
        AppError::new(ErrorKind::NotFound, "not_found", format!("{what} not found"))
    }
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        AppError::new(ErrorKind::Conflict, code, detail)
    }
    pub fn unavailable(detail: impl Into<String>) -> Self {
        AppError { retry_after_secs: Some(1), ..AppError::new(ErrorKind::Unavailable, "store_unavailable", detail) }
    }
    /// For failures that are ours, not the caller's: logged in full, answered vaguely.
    pub fn internal(e: impl fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        AppError::new(ErrorKind::Internal, "internal", "something went wrong on our side")
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for AppError {}

/// What kind of refusal a domain decision is: not found for what the caller may not see,
/// conflict with the resource's state, invalid for a request that can never succeed as sent.
fn domain_kind(e: &DomainError) -> ErrorKind {
    use DomainError::*;
    match e {
        BookingNotFound | WaitlistEntryNotFound => ErrorKind::NotFound,
        Validation(_)
        | WrongResourceKind { .. }
        | NotOnSlotGrid
        | OutsideWorkingHours
        | TooSoon
        | TooFarAhead
        | EventStarted
        | IdempotencyKeyReused => ErrorKind::Invalid,
        SoldOut
        | NoRoomAvailable
        | SlotUnavailable
        | HoldExpired
        | HoldExpiredCapacityGone
        | AlreadyCancelled
        | AlreadyConfirmed
        | InvalidTransition { .. }
        | NotRefundable
        | RefundTooLarge
        | AvailableNow
        | AlreadyOnWaitlist
        | WaitlistFull
        | NoActiveOffer
        | OfferExpired
        | TooManyActiveBookings
        | ConflictsWithBookings { .. } => ErrorKind::Conflict,
        PaymentRequired => ErrorKind::PaymentRequired,
        Forbidden { .. } => ErrorKind::Forbidden,
    }
}

impl From<DomainError> for AppError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Validation(v) => AppError::validation(v.errors),
            d => AppError::new(domain_kind(&d), d.code(), d.to_string()),
        }
    }
}

impl From<EngineError> for AppError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Domain(d) => d.into(),
            EngineError::ResourceNotFound => AppError::not_found("resource"),
            EngineError::Busy => AppError {
                retry_after_secs: Some(1),
                ..AppError::new(ErrorKind::Unavailable, "busy", "too many requests for this resource; retry")
            },
            EngineError::StoreUnavailable(d) => {
                tracing::warn!(detail = %d, "store unavailable");
                AppError::unavailable("the booking store is unavailable; retry shortly")
            }
            EngineError::ShuttingDown => AppError {
                retry_after_secs: Some(5),
                ..AppError::new(ErrorKind::Unavailable, "shutting_down", "the server is shutting down")
            },
        }
    }
}

/// An engine error for a command built from the request field `prefix` (e.g. `request`): the
/// domain's field names (`quantity`) become request paths (`request.quantity`).
pub fn in_request(e: EngineError, prefix: &str) -> AppError {
    const COMMAND_FIELDS: [&str; 6] = ["user_id", "booking_id", "entry_id", "idempotency_key", "by", "owner_id"];
    match e {
        EngineError::Domain(DomainError::Validation(mut v)) => {
            for f in &mut v.errors {
                if !COMMAND_FIELDS.contains(&f.field.as_str()) {
                    f.field = format!("{prefix}.{}", f.field);
                }
            }
            AppError::validation(v.errors)
        }
        other => other.into(),
    }
}
