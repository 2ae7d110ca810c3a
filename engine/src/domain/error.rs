//! Typed errors of the pure domain. Every command in a wrong state ends here, never in a panic.
//! Each error has a stable machine `code()` that the HTTP layer turns into problem+json.

use super::booking::BookingStatus;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One invalid field of a resource specification or request, e.g. `rooms[3].number`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// All the problems found in one specification or request (not just the first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecError {
    pub errors: Vec<FieldError>,
}

impl SpecError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError { errors: vec![FieldError { field: field.into(), message: message.into() }] }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
        f.write_str(&parts.join("; "))
    }
}

/// Collects field errors while a specification is checked, so a client sees every problem at once.
#[derive(Default, Debug)]
pub struct Problems(Vec<FieldError>);

impl Problems {
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), message: message.into() });
    }
    pub fn check(&mut self, ok: bool, field: impl Into<String>, message: impl Into<String>) {
        if !ok {
            self.push(field, message);
        }
    }
    pub fn extend(&mut self, prefix: &str, e: SpecError) {
        for fe in e.errors {
            let field = if prefix.is_empty() { fe.field } else { format!("{prefix}.{}", fe.field) };
            self.0.push(FieldError { field, message: fe.message });
        }
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn into_result<T>(self, ok: T) -> Result<T, SpecError> {
        if self.0.is_empty() { Ok(ok) } else { Err(SpecError { errors: self.0 }) }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum DomainError {
    #[error("invalid input: {0}")]
    #[serde(rename = "validation_failed")]
    Validation(SpecError),
    #[error("this command does not apply to a {kind}")]
    WrongResourceKind { kind: String },
    #[error("sold out: not enough capacity left")]
    SoldOut,
    #[error("no room of that type is free for every night of the stay")]
    NoRoomAvailable,
    #[error("that appointment slot is taken (or too close to another, buffers included)")]
    SlotUnavailable,
    #[error("the start time is not on the provider's slot grid")]
    NotOnSlotGrid,
    #[error("the appointment is outside the provider's working hours")]
    OutsideWorkingHours,
    #[error("the start is in the past or inside the minimum notice")]
    TooSoon,
    #[error("the date is beyond the booking horizon")]
    TooFarAhead,
    #[error("the event has already started")]
    EventStarted,
    #[error("booking not found")]
    BookingNotFound,
    #[error("the hold expired")]
    HoldExpired,
    #[error("the hold expired and its capacity was taken by someone else")]
    HoldExpiredCapacityGone,
    #[error("the booking is already cancelled")]
    AlreadyCancelled,
    #[error("the booking is already confirmed")]
    AlreadyConfirmed,
    #[error("a booking that is {status:?} cannot be {action}")]
    InvalidTransition { status: BookingStatus, action: String },
    #[error("only a cancelled, paid booking can be refunded")]
    NotRefundable,
    #[error("the refund exceeds what was paid and not yet refunded")]
    RefundTooLarge,
    #[error("waitlist entry not found")]
    WaitlistEntryNotFound,
    #[error("what you asked for is available now: book it instead of joining the waitlist")]
    AvailableNow,
    #[error("you are already on the waitlist for this")]
    AlreadyOnWaitlist,
    #[error("the waitlist is full")]
    WaitlistFull,
    #[error("this waitlist entry has no open offer")]
    NoActiveOffer,
    #[error("the offer expired")]
    OfferExpired,
    #[error("the resource has too many active bookings")]
    TooManyActiveBookings,
    #[error("the change conflicts with active bookings: {detail}")]
    ConflictsWithBookings { detail: String },
    #[error("the idempotency key was already used for a different command")]
    IdempotencyKeyReused,
    /// A client asked to confirm a priced booking without a payment: it is confirmed by a
    /// succeeded payment (`POST /payments`), by an admin, or by the owner recording a payment
    /// taken on site.
    #[error("this booking has a price: it is confirmed by paying for it, not by a confirm request")]
    PaymentRequired,
    /// A customer's act asked by someone who is not a customer (an owner holding at their own
    /// resource): see `Requester::may_book`.
    #[error("{detail}")]
    Forbidden { detail: String },
}

impl DomainError {
    /// Stable machine-readable code (snake_case); clients switch on it, so never rename one.
    pub fn code(&self) -> &'static str {
        use DomainError::*;
        match self {
            Validation(_) => "validation_failed",
            WrongResourceKind { .. } => "wrong_resource_kind",
            SoldOut => "sold_out",
            NoRoomAvailable => "no_room_available",
            SlotUnavailable => "slot_unavailable",
            NotOnSlotGrid => "not_on_slot_grid",
            OutsideWorkingHours => "outside_working_hours",
            TooSoon => "too_soon",
            TooFarAhead => "too_far_ahead",
            EventStarted => "event_started",
            BookingNotFound => "booking_not_found",
            HoldExpired => "hold_expired",
            HoldExpiredCapacityGone => "hold_expired_capacity_gone",
            AlreadyCancelled => "already_cancelled",
            AlreadyConfirmed => "already_confirmed",
            InvalidTransition { .. } => "invalid_transition",
            NotRefundable => "not_refundable",
            RefundTooLarge => "refund_too_large",
            WaitlistEntryNotFound => "waitlist_entry_not_found",
            AvailableNow => "available_now",
            AlreadyOnWaitlist => "already_on_waitlist",
            WaitlistFull => "waitlist_full",
            NoActiveOffer => "no_active_offer",
            OfferExpired => "offer_expired",
            TooManyActiveBookings => "too_many_active_bookings",
            ConflictsWithBookings { .. } => "conflicts_with_bookings",
            IdempotencyKeyReused => "idempotency_key_reused",
            PaymentRequired => "payment_required",
            Forbidden { .. } => "forbidden",
        }
    }

    pub fn conflicts(detail: impl Into<String>) -> Self {
        DomainError::ConflictsWithBookings { detail: detail.into() }
    }

    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        DomainError::Validation(SpecError::new(field, message))
    }
}

impl From<SpecError> for DomainError {
    fn from(e: SpecError) -> Self {
        DomainError::Validation(e)
    }
}
