//! Waitlist entries. The FIFO queue and the offer logic live in `state.rs` (they need the
//! inventory and the booking lifecycle); this module holds the entry and its statuses.

use super::booking::Wish;
use super::ids::{BookingId, ResourceId, UserId, WaitlistEntryId};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// At most this many active entries per resource: beyond it `WaitlistFull`.
pub const MAX_ACTIVE_ENTRIES: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WaitlistStatus {
    /// In the queue, nothing offered yet.
    Waiting,
    /// Freed capacity is held for this entry until `offer_expires_at`.
    Offered,
    /// The offer was accepted: its booking is confirmed.
    Accepted,
    Declined,
    /// The offer lapsed; the capacity passed on to the next entry that fits.
    OfferExpired,
    /// The client left the queue.
    Left,
}

impl WaitlistStatus {
    pub fn is_active(self) -> bool {
        matches!(self, WaitlistStatus::Waiting | WaitlistStatus::Offered)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            WaitlistStatus::Waiting => "waiting",
            WaitlistStatus::Offered => "offered",
            WaitlistStatus::Accepted => "accepted",
            WaitlistStatus::Declined => "declined",
            WaitlistStatus::OfferExpired => "offer_expired",
            WaitlistStatus::Left => "left",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "waiting" => WaitlistStatus::Waiting,
            "offered" => WaitlistStatus::Offered,
            "accepted" => WaitlistStatus::Accepted,
            "declined" => WaitlistStatus::Declined,
            "offer_expired" => WaitlistStatus::OfferExpired,
            "left" => WaitlistStatus::Left,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WaitlistEntry {
    pub id: WaitlistEntryId,
    pub resource_id: ResourceId,
    pub user_id: UserId,
    pub wish: Wish,
    pub status: WaitlistStatus,
    /// FIFO order among the resource's entries (lower joined earlier).
    pub position: i64,
    /// The held booking that carries the offer (its id equals the entry id: an entry gets at
    /// most one offer, and this keeps the pure domain free of id minting).
    pub offer_booking_id: Option<BookingId>,
    pub offer_expires_at: Option<Timestamp>,
    pub joined_at: Timestamp,
    pub updated_at: Timestamp,
}
