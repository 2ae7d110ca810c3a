//! Dashboard counters: per resource and local day, what was booked and what was cancelled.
//!
//! The state machine emits one `Change::Tally` per day a booking touches whenever the booking
//! enters or leaves "booked", and the store adds them up in the same transaction as the booking
//! rows (table `daily_stats`). A dashboard then reads at most 366 rows for a year, however many
//! bookings the resource has.
//!
//! "Booked" means **confirmed or completed**: a hold is an unpaid cart that lapses by itself
//! within minutes (counting it would make the figures drop without any cancellation), and a
//! released or expired hold was never a booking. A confirmed booking that is cancelled leaves
//! the booked figures and enters the cancelled ones, on the same days.
//!
//! Which day a booking counts on, per kind (see each inventory's `tally_days`):
//! * hotel: every night `check_in..check_out` (the date the night starts, in the hotel's local
//!   calendar, which is how stays are stored), one room-night each;
//! * event: the day of sale (`created_at`, UTC: events have no time zone), its tickets;
//! * provider: the local date of the appointment's start, one appointment and its minutes.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

/// One day's counters (or, in a `Change::Tally`, one day's change of them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayStats {
    pub day: Date,
    /// Room-nights, tickets or appointments booked (confirmed or completed).
    pub booked_units: i64,
    /// Minutes of the booked appointments (providers only, else 0).
    pub booked_minutes: i64,
    /// Value of what is booked, in minor units of the resource's currency.
    pub booked_minor: i64,
    /// Units of bookings that were booked and then cancelled.
    pub cancelled_units: i64,
    pub cancelled_minor: i64,
}

impl DayStats {
    pub fn zero(day: Date) -> DayStats {
        DayStats { day, ..DayStats::default() }
    }
    /// Adds `other`'s counters (the day of `self` is kept).
    pub fn add(&mut self, other: &DayStats) {
        self.booked_units += other.booked_units;
        self.booked_minutes += other.booked_minutes;
        self.booked_minor += other.booked_minor;
        self.cancelled_units += other.cancelled_units;
        self.cancelled_minor += other.cancelled_minor;
    }
    pub fn is_zero(&self) -> bool {
        *self == DayStats::zero(self.day)
    }
}

/// One day a booking touches: its date, units and minutes there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TallyDay {
    pub day: Date,
    pub units: i64,
    pub minutes: i64,
}

/// Spreads `amount` over `n` parts that add up to it exactly: the first `amount % n` parts get
/// one more minor unit. `part(amount, n, i)` for `i` in `0..n`.
pub fn share(amount: i64, n: usize, i: usize) -> i64 {
    let (Ok(n), Ok(i)) = (i64::try_from(n), i64::try_from(i)) else { return 0 };
    if n <= 0 {
        return 0;
    }
    amount / n + i64::from(i < amount % n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn shares_add_up_to_the_amount(amount in 0i64..10_000_000_000, n in 1usize..400) {
            let total: i64 = (0..n).map(|i| share(amount, n, i)).sum();
            prop_assert_eq!(total, amount);
            let (lo, hi) = (share(amount, n, n - 1), share(amount, n, 0));
            prop_assert!(hi - lo <= 1);
        }
    }
}
