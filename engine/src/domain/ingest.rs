//! A channel manager's feed (seed 000): "room R was booked for night N" and "... cancelled".
//!
//! Each event becomes an ordinary one-night stay in the named room, confirmed at once, decided
//! by the hotel's state machine like any booking (so a room-night already taken is refused),
//! or cancels such a stay. The shell derives, from the event itself, a key and the booking id,
//! so replaying an event finds what the first delivery did instead of doing it twice:
//! * a booking event whose booking exists (in memory or, fetched by the actor, in the store)
//!   answers `booked` with that booking again, whatever happened to it since;
//! * a refused event and a cancellation are remembered as idempotency records (scope
//!   `ingest`, kept like every idempotency record: 24 hours) and answer the same again.

use super::booking::Booking;
use super::error::DomainError;
use super::ids::BookingId;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

/// Most events in one command (and one HTTP request).
pub const MAX_INGEST_EVENTS: usize = 1_000;
/// Idempotency scope of feed events: per resource, whoever sends them.
pub const INGEST_SCOPE: &str = "ingest";
/// Bookings made from the feed carry `idempotency_key = "ingest:<event key>"`.
pub const INGEST_KEY_PREFIX: &str = "ingest:";

/// Made by the feed: its idempotency key says so.
pub fn is_feed_booking(b: &Booking) -> bool {
    b.idempotency_key.as_deref().is_some_and(|k| k.starts_with(INGEST_KEY_PREFIX))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestAction {
    /// rpg_status 1.
    Book,
    /// rpg_status 2.
    Cancel,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestEvent {
    /// Derived by the shell from the whole event (at most 100 visible characters).
    pub key: String,
    /// Derived from the event too: the id of the booking a `Book` creates.
    pub booking_id: BookingId,
    /// The room as the feed names it: its number in this hotel (e.g. "101") or its id.
    pub room: String,
    pub night: Date,
    pub action: IngestAction,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum IngestStatus {
    Booked,
    Cancelled,
    Rejected,
}

/// What became of one event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IngestResult {
    pub status: IngestStatus,
    /// The booking made or cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<BookingId>,
    /// Why it was rejected: `room_night_taken`, `booking_not_found`, `room_not_found`,
    /// `too_soon`, `too_far_ahead`, ... (stable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl IngestResult {
    pub fn booked(id: BookingId) -> Self {
        IngestResult { status: IngestStatus::Booked, booking_id: Some(id), code: None, detail: None }
    }
    pub fn cancelled(id: BookingId) -> Self {
        IngestResult { status: IngestStatus::Cancelled, booking_id: Some(id), code: None, detail: None }
    }
    pub fn rejected(e: &DomainError) -> Self {
        let (code, detail) = match e {
            DomainError::NoRoomAvailable => ("room_night_taken", "the room is already taken for that night".to_owned()),
            DomainError::BookingNotFound => {
                ("booking_not_found", "no booking from the feed holds that room for that night".to_owned())
            }
            DomainError::Validation(v) if v.errors.iter().any(|f| f.field == "room_id") => {
                ("room_not_found", "no room with that number or id in this hotel".to_owned())
            }
            other => (other.code(), other.to_string()),
        };
        IngestResult {
            status: IngestStatus::Rejected,
            booking_id: None,
            code: Some(code.to_owned()),
            detail: Some(detail),
        }
    }
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
