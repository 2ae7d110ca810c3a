//! The contract every resource kind (hotel, event, provider) fulfils. The shared lifecycle in
//! `state.rs` owns bookings, holds and the waitlist; an inventory only answers "where does this
//! request go and what does it cost" and keeps its capacity index in step with `take`/`free`.

use super::booking::{BookingItem, BookingRequest, Wish};
use super::error::DomainError;
use super::ids::BookingId;
use super::money::Money;
use super::stats::TallyDay;
use jiff::Timestamp;

/// A request that fits: the concrete thing to occupy and its price.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub item: BookingItem,
    pub amount: Money,
}

pub trait Inventory {
    /// Checks `req` against the specification and the free capacity at `now`, without taking
    /// anything. Errors say precisely why not (`SoldOut`, `NotOnSlotGrid`, ...).
    fn place(&self, req: &BookingRequest, now: Timestamp) -> Result<Placement, DomainError>;

    /// Like `place` for a waitlist wish (for a provider: the earliest free slot on the date).
    fn place_wish(&self, wish: &Wish, now: Timestamp) -> Result<Placement, DomainError>;

    /// Checks that a wish is well-formed for this resource (known room type, quantity in
    /// range, date inside the horizon...), whether or not it is available now.
    fn check_wish(&self, wish: &Wish, now: Timestamp) -> Result<(), DomainError>;

    /// Records `item` as occupied by booking `id`. Callers only pass items that `place`,
    /// `retake` or the store (whose constraints forbid overlap) produced.
    fn take(&mut self, id: BookingId, item: &BookingItem);

    /// Gives back what `take` recorded for `id`.
    fn free(&mut self, id: BookingId, item: &BookingItem);

    /// For a late confirmation after the hold lapsed: the same item if it is still free (or,
    /// for a hotel, another room of the same type for the same nights); `None` if it is gone.
    /// Ignores notice and start-time rules: the client was already promised this.
    fn retake(&self, item: &BookingItem) -> Option<BookingItem>;

    /// When a confirmed booking of `item` is over and becomes `completed`.
    fn ends_at(&self, item: &BookingItem) -> Timestamp;

    /// Capacity units `item` takes: tickets count, nights of a stay, 1 per appointment.
    fn units(&self, item: &BookingItem) -> u64;

    /// The days a booked `item` counts on in the dashboard, with its units and minutes there
    /// (see `stats.rs`). `created_at` is when the booking was first placed.
    fn tally_days(&self, item: &BookingItem, created_at: Timestamp) -> Vec<TallyDay>;

    /// Self-check for tests and simulation: the index agrees with the active bookings given
    /// and no capacity rule is broken. Returns a description of the first violation.
    fn check_invariants(&self, active: &[(BookingId, &BookingItem)]) -> Result<(), String>;
}
