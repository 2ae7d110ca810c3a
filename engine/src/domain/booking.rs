//! The booking lifecycle shared by every resource kind.
//!
//! ```text
//!   held ──confirm──▶ confirmed ──(end passes)──▶ completed
//!    │ └─release──▶ released        └─cancel──▶ cancelled ──refund (recorded)
//!    └──(TTL passes)──▶ expired ──late confirm, if capacity still free──▶ confirmed
//! ```
//! Only `held` and `confirmed` bookings take capacity ("active").

use super::ids::{BookingId, CategoryId, ResourceId, RoomId, RoomTypeId, UserId, WaitlistEntryId};
use super::money::Money;
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    Held,
    Confirmed,
    Completed,
    Released,
    Expired,
    Cancelled,
}

impl BookingStatus {
    /// Active bookings hold capacity; every other status has given it back.
    pub fn is_active(self) -> bool {
        matches!(self, BookingStatus::Held | BookingStatus::Confirmed)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Held => "held",
            BookingStatus::Confirmed => "confirmed",
            BookingStatus::Completed => "completed",
            BookingStatus::Released => "released",
            BookingStatus::Expired => "expired",
            BookingStatus::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "held" => BookingStatus::Held,
            "confirmed" => BookingStatus::Confirmed,
            "completed" => BookingStatus::Completed,
            "released" => BookingStatus::Released,
            "expired" => BookingStatus::Expired,
            "cancelled" => BookingStatus::Cancelled,
            _ => return None,
        })
    }
}

/// What a booking occupies. Concrete: a stay names the room the hotel assigned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BookingItem {
    /// Nights `[check_in, check_out)` in one room.
    Stay {
        room_type_id: RoomTypeId,
        room_id: RoomId,
        check_in: Date,
        check_out: Date,
        guests: u16,
    },
    Tickets {
        category_id: Option<CategoryId>,
        quantity: u32,
    },
    /// `[starts_at, ends_at)`; buffers are the provider's business, not stored here.
    Appointment {
        starts_at: Timestamp,
        ends_at: Timestamp,
    },
}

/// What a client asks for; the resource turns it into a [`BookingItem`] or an error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BookingRequest {
    /// `room_id` asks for one particular room; otherwise the hotel assigns one of the type.
    Stay {
        room_type_id: RoomTypeId,
        room_id: Option<RoomId>,
        check_in: Date,
        check_out: Date,
        #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 50))]
        guests: u16,
    },
    Tickets {
        category_id: Option<CategoryId>,
        #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_000))]
        quantity: u32,
    },
    Appointment {
        starts_at: Timestamp,
    },
}

/// What a waitlisted client wants; when capacity frees, the first wish that fits gets an offer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Wish {
    Stay {
        room_type_id: RoomTypeId,
        check_in: Date,
        check_out: Date,
        #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 50))]
        guests: u16,
    },
    Tickets {
        category_id: Option<CategoryId>,
        #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_000))]
        quantity: u32,
    },
    /// Any free slot on this local date of the provider.
    Appointment { date: Date },
}

/// Who issued a command. History records it; clients may act only on their own bookings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "role", content = "user_id", rename_all = "snake_case")]
pub enum Requester {
    Client(UserId),
    Owner(UserId),
    Admin(UserId),
    /// The engine itself: expiries, completions, waitlist offers, payment webhooks.
    System,
}

impl Requester {
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Requester::Client(u) | Requester::Owner(u) | Requester::Admin(u) => Some(*u),
            Requester::System => None,
        }
    }
    /// A client sees and changes only their own bookings; everyone else here acts on the
    /// resource's behalf (resource ownership is checked by the gateway before routing).
    pub fn may_act_for(&self, user: UserId) -> bool {
        match self {
            Requester::Client(u) => *u == user,
            _ => true,
        }
    }
    /// Who books and changes bookings as a customer: a client (for themself), an admin acting
    /// for clients, the engine. An owner manages the resource and never books at it (a stay
    /// sold elsewhere arrives through the channel feed, `Command::Ingest`); owners still
    /// confirm a hold whose payment they took on site, and release or cancel bookings of
    /// their resources.
    pub fn may_book(&self) -> bool {
        !matches!(self, Requester::Owner(_))
    }
    pub fn as_label(&self) -> String {
        match self {
            Requester::Client(u) => format!("client:{u}"),
            Requester::Owner(u) => format!("owner:{u}"),
            Requester::Admin(u) => format!("admin:{u}"),
            Requester::System => "system".to_owned(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Booking {
    pub id: BookingId,
    pub resource_id: ResourceId,
    pub user_id: UserId,
    pub item: BookingItem,
    pub status: BookingStatus,
    /// Price quoted when the booking was first placed; a late re-take keeps it.
    pub amount: Money,
    /// Set while held: when the hold (or waitlist offer) lapses.
    pub hold_expires_at: Option<Timestamp>,
    /// Reference of the payment that confirmed it, if any (needed for refunds).
    pub payment_ref: Option<String>,
    pub refunded_minor: i64,
    /// Set when the booking is a waitlist offer.
    pub waitlist_entry_id: Option<WaitlistEntryId>,
    pub idempotency_key: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One transition, written to `booking_history`: who moved the booking from what to what, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub booking_id: BookingId,
    pub from: Option<BookingStatus>,
    pub to: BookingStatus,
    pub at: Timestamp,
    pub by: Requester,
    pub reason: String,
}
