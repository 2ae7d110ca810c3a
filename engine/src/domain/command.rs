//! What goes into the state machine (commands) and what comes out (outcomes and changes).

use super::booking::{Booking, BookingRequest, Requester, Transition, Wish};
use super::error::DomainError;
use super::ids::{BookingId, UserId, WaitlistEntryId};
use super::ingest::{IngestEvent, IngestResult};
use super::spec::ResourceSpec;
use super::stats::DayStats;
use super::waitlist::WaitlistEntry;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Longest client-chosen strings we store: idempotency keys, payment references, reasons.
pub const MAX_KEY_CHARS: usize = 200;
pub const MAX_REASON_CHARS: usize = 500;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Take capacity for `user_id`: a hold that expires unless confirmed, or with
    /// `confirm` a booking confirmed at once.
    Hold {
        booking_id: BookingId,
        user_id: UserId,
        request: BookingRequest,
        confirm: bool,
        by: Requester,
    },
    /// Confirm a hold (payment done). After the hold lapsed this re-takes the capacity if
    /// still free, else fails with `HoldExpiredCapacityGone`.
    Confirm {
        booking_id: BookingId,
        payment_ref: Option<String>,
        by: Requester,
    },
    Release {
        booking_id: BookingId,
        by: Requester,
    },
    Cancel {
        booking_id: BookingId,
        reason: String,
        by: Requester,
    },
    RecordRefund {
        booking_id: BookingId,
        amount_minor: i64,
        by: Requester,
    },
    /// Atomic move: the old place is given back only if the new one is taken.
    Reschedule {
        booking_id: BookingId,
        request: BookingRequest,
        by: Requester,
    },
    JoinWaitlist {
        entry_id: WaitlistEntryId,
        user_id: UserId,
        wish: Wish,
        by: Requester,
    },
    LeaveWaitlist {
        entry_id: WaitlistEntryId,
        by: Requester,
    },
    AcceptOffer {
        entry_id: WaitlistEntryId,
        payment_ref: Option<String>,
        by: Requester,
    },
    DeclineOffer {
        entry_id: WaitlistEntryId,
        by: Requester,
    },
    /// Replace the specification (name, TTLs, rooms, prices, capacity, schedule...).
    UpdateSpec {
        spec: ResourceSpec,
        by: Requester,
    },
    /// A channel manager's events for this hotel (at most `MAX_INGEST_EVENTS`), each decided
    /// on its own, in order: see `ingest.rs`.
    Ingest {
        events: Vec<IngestEvent>,
        by: Requester,
    },
    /// Expire lapsed holds and offers, complete finished bookings. Also done implicitly
    /// before every other command, so correctness never waits for a timer.
    Tick,
}

impl Command {
    /// The booking this command acts on, if any (the shell loads it if it is not in memory).
    pub fn booking_ref(&self) -> Option<BookingId> {
        match self {
            Command::Confirm { booking_id, .. }
            | Command::Release { booking_id, .. }
            | Command::Cancel { booking_id, .. }
            | Command::RecordRefund { booking_id, .. }
            | Command::Reschedule { booking_id, .. } => Some(*booking_id),
            // An offer is carried by a booking with the entry's id.
            Command::AcceptOffer { entry_id, .. } | Command::DeclineOffer { entry_id, .. } => {
                Some(BookingId(entry_id.0))
            }
            _ => None,
        }
    }
    /// A short name for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Hold { confirm: true, .. } => "book",
            Command::Hold { .. } => "hold",
            Command::Confirm { .. } => "confirm",
            Command::Release { .. } => "release",
            Command::Cancel { .. } => "cancel",
            Command::RecordRefund { .. } => "refund",
            Command::Reschedule { .. } => "reschedule",
            Command::JoinWaitlist { .. } => "join_waitlist",
            Command::LeaveWaitlist { .. } => "leave_waitlist",
            Command::AcceptOffer { .. } => "accept_offer",
            Command::DeclineOffer { .. } => "decline_offer",
            Command::UpdateSpec { .. } => "update_spec",
            Command::Ingest { .. } => "ingest",
            Command::Tick => "tick",
        }
    }

    pub fn requester(&self) -> Requester {
        match self {
            Command::Hold { by, .. }
            | Command::Confirm { by, .. }
            | Command::Release { by, .. }
            | Command::Cancel { by, .. }
            | Command::RecordRefund { by, .. }
            | Command::Reschedule { by, .. }
            | Command::JoinWaitlist { by, .. }
            | Command::LeaveWaitlist { by, .. }
            | Command::AcceptOffer { by, .. }
            | Command::DeclineOffer { by, .. }
            | Command::UpdateSpec { by, .. }
            | Command::Ingest { by, .. } => *by,
            Command::Tick => Requester::System,
        }
    }

    /// What a customer does with this command ("book", "join a waitlist"), or `None` for the
    /// commands of staff and of the engine. Only customers issue these (see
    /// [`Requester::may_book`]); the refusal names the act.
    pub fn customer_action(&self) -> Option<&'static str> {
        match self {
            Command::Hold { .. } => Some("book"),
            Command::Reschedule { .. } => Some("move a booking"),
            Command::JoinWaitlist { .. } => Some("join a waitlist"),
            Command::LeaveWaitlist { .. } => Some("leave a waitlist"),
            Command::AcceptOffer { .. } => Some("accept a waitlist offer"),
            Command::DeclineOffer { .. } => Some("decline a waitlist offer"),
            Command::Confirm { .. }
            | Command::Release { .. }
            | Command::Cancel { .. }
            | Command::RecordRefund { .. }
            | Command::UpdateSpec { .. }
            | Command::Ingest { .. }
            | Command::Tick => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Booking {
        booking: Booking,
    },
    WaitlistEntry {
        entry: WaitlistEntry,
    },
    /// An accepted offer: the entry and its now confirmed booking.
    OfferAccepted {
        entry: WaitlistEntry,
        booking: Booking,
    },
    SpecUpdated,
    /// One result per event of an `Ingest`, in order.
    Ingested {
        results: Vec<IngestResult>,
    },
    Ticked {
        expired: u32,
        completed: u32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    HoldCreated,
    Confirmed,
    Released,
    Cancelled,
    Expired,
    Refunded,
    Rescheduled,
    OfferMade,
    OfferExpired,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::HoldCreated => "hold_created",
            NotificationKind::Confirmed => "confirmed",
            NotificationKind::Released => "released",
            NotificationKind::Cancelled => "cancelled",
            NotificationKind::Expired => "expired",
            NotificationKind::Refunded => "refunded",
            NotificationKind::Rescheduled => "rescheduled",
            NotificationKind::OfferMade => "offer_made",
            NotificationKind::OfferExpired => "offer_expired",
        }
    }
}

/// One row for the outbox, written in the same transaction as the change that causes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub kind: NotificationKind,
    pub user_id: UserId,
    pub booking_id: Option<BookingId>,
    pub entry_id: Option<WaitlistEntryId>,
    pub at: Timestamp,
}

/// The first outcome of a command sent with an idempotency key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// Scoped by who sent it: "client:<uuid>", "system", ...
    pub scope: String,
    pub key: String,
    /// Fingerprint of the command: the same key with another command is refused.
    pub fingerprint: String,
    pub result: Result<Outcome, DomainError>,
    pub at: Timestamp,
}

/// What the store must persist, in order, in one transaction with the batch it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The resource was created or its specification replaced (boxed: it is rare and large,
    /// and every booking change would otherwise be as big).
    Spec(Box<ResourceSpec>),
    /// Upsert of the whole booking row.
    Booking(Booking),
    History(Transition),
    /// Upsert of the whole waitlist entry.
    Waitlist(WaitlistEntry),
    Notify(Notification),
    /// Boxed for the same reason as `Spec`: it carries a whole outcome.
    Idempotency(Box<IdempotencyRecord>),
    /// Add these counters to the resource's dashboard figures of that day (`stats.rs`).
    Tally(DayStats),
}
