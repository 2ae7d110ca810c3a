//! Appointment providers (seed 004): a weekly schedule in an IANA time zone, a slot grid,
//! buffers between appointments, date overrides and a minimum notice.

use super::booking::{BookingItem, BookingRequest, Wish};
use super::error::{DomainError, Problems, SpecError};
use super::ids::BookingId;
use super::inventory::{Inventory, Placement};
use super::money::{Currency, MAX_UNIT_PRICE_MINOR, Money};
use super::stats::TallyDay;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use uuid::Uuid;

pub const MAX_INTERVALS_PER_DAY: usize = 12;
pub const MAX_OVERRIDES: usize = 1_000;
pub const MAX_SLOT_MINUTES: u16 = 24 * 60;
pub const MAX_BUFFER_MINUTES: u16 = 24 * 60;
pub const MAX_NOTICE_MINUTES: u32 = 60 * 24 * 365;
pub const MAX_HORIZON_DAYS: u16 = 1_100;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// IANA zone in which the schedule is written, e.g. "Europe/Berlin".
    pub time_zone: String,
    pub currency: Currency,
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 10_000_000_000.0))]
    pub price_minor: i64,
    /// Length of one appointment; slots start every `slot_minutes` from each interval's start.
    #[cfg_attr(feature = "openapi", schema(minimum = 5, maximum = 1_440))]
    pub slot_minutes: u16,
    /// Free time required between two appointments (before and after each).
    #[cfg_attr(feature = "openapi", schema(maximum = 1_440))]
    pub buffer_minutes: u16,
    /// An appointment must start at least this long after "now".
    #[cfg_attr(feature = "openapi", schema(maximum = 525_600))]
    pub min_notice_minutes: u32,
    /// How far ahead (days from the provider's local today) an appointment may be.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_100))]
    pub booking_horizon_days: u16,
    #[cfg_attr(feature = "openapi", schema(max_items = 7))]
    pub weekly: Vec<DayHours>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 1_000))]
    pub overrides: Vec<DateOverride>,
}

/// Working hours for one weekday, ISO numbering: 1 = Monday ... 7 = Sunday.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DayHours {
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 7))]
    pub weekday: u8,
    pub intervals: Vec<LocalInterval>,
}

/// Replaces the weekly hours on one local date; no intervals means closed that day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DateOverride {
    pub date: Date,
    pub intervals: Vec<LocalInterval>,
}

/// Local wall-clock interval in minutes after midnight, `start_minute < end_minute <= 1440`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LocalInterval {
    pub start_minute: u16,
    pub end_minute: u16,
}

const MINUTES_PER_DAY: u16 = 24 * 60;
const NANOS_PER_MINUTE: i128 = 60_000_000_000;

impl ProviderSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        self.validated_zone().map(|_| ())
    }

    /// Validates every field and returns the parsed zone, so the inventory parses it only once.
    fn validated_zone(&self) -> Result<TimeZone, SpecError> {
        let mut p = Problems::default();
        let tz = TimeZone::get(&self.time_zone).ok();
        p.check(tz.is_some(), "time_zone", "must be a known IANA time zone name, e.g. Europe/Berlin");
        p.check(
            (0..=MAX_UNIT_PRICE_MINOR).contains(&self.price_minor),
            "price_minor",
            format!("must be between 0 and {MAX_UNIT_PRICE_MINOR}"),
        );
        p.check(
            (5..=MAX_SLOT_MINUTES).contains(&self.slot_minutes),
            "slot_minutes",
            format!("must be between 5 and {MAX_SLOT_MINUTES}"),
        );
        p.check(
            self.buffer_minutes <= MAX_BUFFER_MINUTES,
            "buffer_minutes",
            format!("must be between 0 and {MAX_BUFFER_MINUTES}"),
        );
        p.check(
            self.min_notice_minutes <= MAX_NOTICE_MINUTES,
            "min_notice_minutes",
            format!("must be between 0 and {MAX_NOTICE_MINUTES}"),
        );
        p.check(
            (1..=MAX_HORIZON_DAYS).contains(&self.booking_horizon_days),
            "booking_horizon_days",
            format!("must be between 1 and {MAX_HORIZON_DAYS}"),
        );
        p.check(self.weekly.len() <= 7, "weekly", "at most one entry per weekday (7)");
        let mut weekdays = HashSet::new();
        for (i, d) in self.weekly.iter().enumerate() {
            if !(1..=7).contains(&d.weekday) {
                p.push(format!("weekly[{i}].weekday"), "must be between 1 (Monday) and 7 (Sunday)");
            } else if !weekdays.insert(d.weekday) {
                p.push(format!("weekly[{i}].weekday"), "weekday repeated");
            }
            check_intervals(&mut p, &format!("weekly[{i}].intervals"), &d.intervals);
        }
        p.check(self.overrides.len() <= MAX_OVERRIDES, "overrides", format!("at most {MAX_OVERRIDES}"));
        let mut dates = HashSet::new();
        for (i, o) in self.overrides.iter().enumerate() {
            p.check(dates.insert(o.date), format!("overrides[{i}].date"), "date repeated");
            check_intervals(&mut p, &format!("overrides[{i}].intervals"), &o.intervals);
        }
        p.into_result(())?;
        tz.ok_or_else(|| SpecError::new("time_zone", "must be a known IANA time zone name"))
    }
}

/// Interval rules shared by weekly hours and overrides; `prefix` is e.g. `weekly[2].intervals`.
fn check_intervals(p: &mut Problems, prefix: &str, intervals: &[LocalInterval]) {
    p.check(
        intervals.len() <= MAX_INTERVALS_PER_DAY,
        prefix,
        format!("at most {MAX_INTERVALS_PER_DAY} intervals per day"),
    );
    let mut valid: Vec<(usize, LocalInterval)> = Vec::new();
    for (j, iv) in intervals.iter().enumerate() {
        let mut ok = true;
        if iv.start_minute >= MINUTES_PER_DAY {
            p.push(format!("{prefix}[{j}].start_minute"), "must be less than 1440");
            ok = false;
        }
        if iv.end_minute > MINUTES_PER_DAY {
            p.push(format!("{prefix}[{j}].end_minute"), "must be at most 1440 (the next midnight)");
            ok = false;
        } else if iv.end_minute <= iv.start_minute {
            p.push(format!("{prefix}[{j}].end_minute"), "must be after start_minute");
            ok = false;
        }
        if ok {
            valid.push((j, *iv));
        }
    }
    // Sorted sweep against the furthest end so far catches every overlap, not just neighbours.
    valid.sort_by_key(|(_, iv)| iv.start_minute);
    let mut furthest: Option<(usize, u16)> = None;
    for (j, iv) in valid {
        match furthest {
            Some((k, end)) if iv.start_minute < end => {
                p.push(format!("{prefix}[{j}]"), format!("overlaps {prefix}[{k}]"));
            }
            _ => {}
        }
        if furthest.is_none_or(|(_, end)| iv.end_minute > end) {
            furthest = Some((j, iv.end_minute));
        }
    }
}

/// One bookable appointment slot `[starts_at, ends_at)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Slot {
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
}

/// The schedule resolved for lookups plus the index of active appointments.
#[derive(Clone, Debug)]
pub struct ProviderInventory {
    spec: ProviderSpec,
    tz: TimeZone,
    /// Index 0 = Monday.
    weekly: [Vec<LocalInterval>; 7],
    overrides: HashMap<Date, Vec<LocalInterval>>,
    /// Active appointments: (start, booking) → end. The id in the key keeps two entries with
    /// the same start (only bad data could make them) from overwriting each other.
    active: BTreeMap<(Timestamp, BookingId), Timestamp>,
    /// Longest stored appointment (ns) since the index was last empty: how far a conflict
    /// search must look back. Never shrinks meanwhile, which is merely conservative.
    max_len_ns: i128,
}

type Schedule = ([Vec<LocalInterval>; 7], HashMap<Date, Vec<LocalInterval>>);

fn schedule(spec: &ProviderSpec) -> Schedule {
    let mut weekly: [Vec<LocalInterval>; 7] = Default::default();
    for d in &spec.weekly {
        if let Some(day) = usize::from(d.weekday).checked_sub(1).and_then(|i| weekly.get_mut(i)) {
            day.clone_from(&d.intervals);
        }
    }
    let overrides = spec.overrides.iter().map(|o| (o.date, o.intervals.clone())).collect();
    (weekly, overrides)
}

/// `[s, e)` and `[s2, e2)` are too close once both are widened by `buffer` on each side.
fn overlaps(s: i128, e: i128, s2: i128, e2: i128, buffer: i128) -> bool {
    s < e2 + buffer && s2 < e + buffer
}

/// First conflicting pair among appointments sorted by start. Sweeping against the furthest
/// end so far is enough when every length is positive.
fn first_conflict(
    sorted: impl Iterator<Item = (i128, i128, BookingId)>,
    buffer: i128,
) -> Option<(BookingId, BookingId)> {
    let mut furthest: Option<(i128, i128, BookingId)> = None;
    for (s, e, id) in sorted {
        if let Some((s2, e2, id2)) = furthest
            && overlaps(s, e, s2, e2, buffer)
        {
            return Some((id2, id));
        }
        if furthest.is_none_or(|(_, e2, _)| e > e2) {
            furthest = Some((s, e, id));
        }
    }
    None
}

fn wrong_kind() -> DomainError {
    DomainError::WrongResourceKind { kind: "provider".into() }
}

impl ProviderInventory {
    pub fn new(spec: ProviderSpec) -> Result<Self, SpecError> {
        let tz = spec.validated_zone()?;
        let (weekly, overrides) = schedule(&spec);
        Ok(ProviderInventory { spec, tz, weekly, overrides, active: BTreeMap::new(), max_len_ns: 0 })
    }

    pub fn spec(&self) -> &ProviderSpec {
        &self.spec
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// Replaces the specification. Active appointments stay even where the new hours no longer
    /// cover them (they were promised); refused if the slot length changes while any is
    /// active (their stored ends would disagree) or a larger buffer makes two of them clash.
    pub fn respec(&mut self, spec: ProviderSpec) -> Result<(), DomainError> {
        let tz = spec.validated_zone()?;
        if !self.active.is_empty() && spec.slot_minutes != self.spec.slot_minutes {
            return Err(DomainError::conflicts(format!(
                "{} active appointments are {} minutes long: the slot length cannot change while any is active",
                self.active.len(),
                self.spec.slot_minutes
            )));
        }
        let buffer = i128::from(spec.buffer_minutes) * NANOS_PER_MINUTE;
        let clash = if spec.buffer_minutes > self.spec.buffer_minutes {
            first_conflict(self.sorted_active(), buffer)
        } else {
            None
        };
        if let Some((a, b)) = clash {
            return Err(DomainError::conflicts(format!(
                "bookings {a} and {b} would be closer than the new buffer of {} minutes",
                spec.buffer_minutes
            )));
        }
        let (weekly, overrides) = schedule(&spec);
        self.spec = spec;
        self.tz = tz;
        self.weekly = weekly;
        self.overrides = overrides;
        Ok(())
    }

    /// The provider's local calendar date at instant `t`.
    pub fn local_date(&self, t: Timestamp) -> Date {
        self.tz.to_datetime(t).date()
    }

    /// Grid slots of local `date` that `place` would accept at `now`, earliest first.
    pub fn free_slots(&self, date: Date, now: Timestamp) -> Vec<Slot> {
        self.free_iter(date, now).collect()
    }

    pub fn first_free_slot(&self, date: Date, now: Timestamp) -> Option<Slot> {
        self.free_iter(date, now).next()
    }

    fn free_iter(&self, date: Date, now: Timestamp) -> impl Iterator<Item = Slot> + '_ {
        let ranges = if self.check_horizon(date, now).is_ok() { self.day_ranges(date) } else { Vec::new() };
        let len = self.slot_ns();
        let mut starts: Vec<i128> = Vec::new();
        for &(a, b) in &ranges {
            let mut t = a;
            while t + len <= b {
                starts.push(t);
                t += len;
            }
        }
        // Intervals can overlap in absolute time around a spring-forward gap.
        starts.sort_unstable();
        starts.dedup();
        starts.into_iter().filter_map(move |s| {
            let t = Timestamp::from_nanosecond(s).ok()?;
            // Same checks, in the same order, as `place`, so every slot listed is bookable.
            if self.local_date(t) != date {
                return None;
            }
            self.check_notice(t, now).ok()?;
            self.check_in_day(&ranges, t).ok()
        })
    }

    fn slot_ns(&self) -> i128 {
        i128::from(self.spec.slot_minutes) * NANOS_PER_MINUTE
    }

    fn buffer_ns(&self) -> i128 {
        i128::from(self.spec.buffer_minutes) * NANOS_PER_MINUTE
    }

    fn price(&self) -> Money {
        Money::new(self.spec.price_minor, self.spec.currency)
    }

    /// Minutes of working hours on local `date` (weekly hours or that date's override), for
    /// the utilisation figures of the dashboard.
    pub fn scheduled_minutes(&self, date: Date) -> i64 {
        self.intervals_on(date).iter().map(|iv| i64::from(iv.end_minute) - i64::from(iv.start_minute)).sum()
    }

    fn intervals_on(&self, date: Date) -> &[LocalInterval] {
        if let Some(ivs) = self.overrides.get(&date) {
            return ivs;
        }
        usize::try_from(date.weekday().to_monday_zero_offset())
            .ok()
            .and_then(|i| self.weekly.get(i))
            .map_or(&[], Vec::as_slice)
    }

    /// `date` at `minute` after midnight (1440 = next midnight) as an instant, with jiff's
    /// compatible disambiguation (gap → later, fold → earlier).
    fn local_instant(&self, date: Date, minute: u16) -> Option<Timestamp> {
        let (date, minute) =
            if minute >= MINUTES_PER_DAY { (date.tomorrow().ok()?, minute - MINUTES_PER_DAY) } else { (date, minute) };
        let time = Time::new(i8::try_from(minute / 60).ok()?, i8::try_from(minute % 60).ok()?, 0, 0).ok()?;
        self.tz.to_timestamp(date.to_datetime(time)).ok()
    }

    /// The date's working intervals as absolute `[start, end)` in nanoseconds.
    fn day_ranges(&self, date: Date) -> Vec<(i128, i128)> {
        self.intervals_on(date)
            .iter()
            .filter_map(|iv| {
                let a = self.local_instant(date, iv.start_minute)?;
                let b = self.local_instant(date, iv.end_minute)?;
                Some((a.as_nanosecond(), b.as_nanosecond()))
            })
            .collect()
    }

    fn check_notice(&self, start: Timestamp, now: Timestamp) -> Result<(), DomainError> {
        let notice = i128::from(self.spec.min_notice_minutes) * NANOS_PER_MINUTE;
        if start.as_nanosecond() < now.as_nanosecond() + notice { Err(DomainError::TooSoon) } else { Ok(()) }
    }

    fn check_horizon(&self, date: Date, now: Timestamp) -> Result<(), DomainError> {
        let today = self.local_date(now);
        let last = Span::new().try_days(i64::from(self.spec.booking_horizon_days)).and_then(|sp| today.checked_add(sp));
        match last {
            Ok(last) if date > last => Err(DomainError::TooFarAhead),
            // Overflow means the horizon runs past the calendar's end: nothing is beyond it.
            _ => Ok(()),
        }
    }

    /// A wish's date: not before the provider's today, not beyond the horizon.
    fn check_date(&self, date: Date, now: Timestamp) -> Result<(), DomainError> {
        if date < self.local_date(now) {
            return Err(DomainError::TooSoon);
        }
        self.check_horizon(date, now)
    }

    /// Working hours, grid and conflicts of `start` against its date's `ranges`.
    fn check_in_day(&self, ranges: &[(i128, i128)], start: Timestamp) -> Result<Slot, DomainError> {
        let s = start.as_nanosecond();
        let len = self.slot_ns();
        let mut inside = false;
        let mut on_grid = false;
        for &(a, b) in ranges {
            if s >= a && s + len <= b {
                inside = true;
                on_grid |= (s - a) % len == 0;
            }
        }
        if !inside {
            return Err(DomainError::OutsideWorkingHours);
        }
        if !on_grid {
            return Err(DomainError::NotOnSlotGrid);
        }
        // Inside an interval whose end is a valid instant, so this cannot fail.
        let ends_at = Timestamp::from_nanosecond(s + len).map_err(|_| DomainError::OutsideWorkingHours)?;
        if self.conflicts(s, s + len) {
            return Err(DomainError::SlotUnavailable);
        }
        Ok(Slot { starts_at: start, ends_at })
    }

    fn check_start(&self, start: Timestamp, now: Timestamp) -> Result<Slot, DomainError> {
        self.check_notice(start, now)?;
        let date = self.local_date(start);
        self.check_horizon(date, now)?;
        self.check_in_day(&self.day_ranges(date), start)
    }

    /// Whether `[s, e)` clashes with an active appointment, buffers included. Only starts in
    /// `[s - buffer - longest, e + buffer)` can clash, so this is a range query.
    fn conflicts(&self, s: i128, e: i128) -> bool {
        let buffer = self.buffer_ns();
        let lower = s - buffer - self.max_len_ns;
        let upper = e + buffer;
        if lower >= upper {
            return false;
        }
        let nil = BookingId(Uuid::nil());
        let lo = Bound::Included((Timestamp::from_nanosecond(lower).unwrap_or(Timestamp::MIN), nil));
        let hi = match Timestamp::from_nanosecond(upper) {
            Ok(t) => Bound::Excluded((t, nil)),
            Err(_) => Bound::Unbounded,
        };
        self.active.range((lo, hi)).any(|((s2, _), e2)| overlaps(s, e, s2.as_nanosecond(), e2.as_nanosecond(), buffer))
    }

    fn sorted_active(&self) -> impl Iterator<Item = (i128, i128, BookingId)> + '_ {
        self.active.iter().map(|((s, id), e)| (s.as_nanosecond(), e.as_nanosecond(), *id))
    }
}

impl Inventory for ProviderInventory {
    fn place(&self, req: &BookingRequest, now: Timestamp) -> Result<Placement, DomainError> {
        match req {
            BookingRequest::Appointment { starts_at } => {
                let slot = self.check_start(*starts_at, now)?;
                Ok(Placement {
                    item: BookingItem::Appointment { starts_at: slot.starts_at, ends_at: slot.ends_at },
                    amount: self.price(),
                })
            }
            _ => Err(wrong_kind()),
        }
    }

    fn place_wish(&self, wish: &Wish, now: Timestamp) -> Result<Placement, DomainError> {
        match wish {
            Wish::Appointment { date } => {
                self.check_date(*date, now)?;
                let slot = self.first_free_slot(*date, now).ok_or(DomainError::SlotUnavailable)?;
                Ok(Placement {
                    item: BookingItem::Appointment { starts_at: slot.starts_at, ends_at: slot.ends_at },
                    amount: self.price(),
                })
            }
            _ => Err(wrong_kind()),
        }
    }

    fn check_wish(&self, wish: &Wish, now: Timestamp) -> Result<(), DomainError> {
        match wish {
            Wish::Appointment { date } => self.check_date(*date, now),
            _ => Err(wrong_kind()),
        }
    }

    fn take(&mut self, id: BookingId, item: &BookingItem) {
        if let BookingItem::Appointment { starts_at, ends_at } = item {
            self.active.insert((*starts_at, id), *ends_at);
            let len = ends_at.as_nanosecond() - starts_at.as_nanosecond();
            self.max_len_ns = self.max_len_ns.max(len);
        }
    }

    fn free(&mut self, id: BookingId, item: &BookingItem) {
        if let BookingItem::Appointment { starts_at, .. } = item
            && self.active.remove(&(*starts_at, id)).is_none()
        {
            // Not where the item says: drop whatever this booking holds.
            self.active.retain(|(_, b), _| *b != id);
        }
        if self.active.is_empty() {
            self.max_len_ns = 0;
        }
    }

    fn retake(&self, item: &BookingItem) -> Option<BookingItem> {
        match item {
            BookingItem::Appointment { starts_at, ends_at } if ends_at > starts_at => {
                (!self.conflicts(starts_at.as_nanosecond(), ends_at.as_nanosecond())).then(|| item.clone())
            }
            _ => None,
        }
    }

    fn ends_at(&self, item: &BookingItem) -> Timestamp {
        match item {
            BookingItem::Appointment { ends_at, .. } => *ends_at,
            // Not an appointment: never "over" here rather than completed at once.
            _ => Timestamp::MAX,
        }
    }

    fn units(&self, item: &BookingItem) -> u64 {
        match item {
            BookingItem::Appointment { .. } => 1,
            _ => 0,
        }
    }

    fn tally_days(&self, item: &BookingItem, _created_at: Timestamp) -> Vec<TallyDay> {
        let BookingItem::Appointment { starts_at, ends_at } = item else { return Vec::new() };
        let minutes = starts_at.duration_until(*ends_at).as_mins().max(0);
        vec![TallyDay { day: self.local_date(*starts_at), units: 1, minutes }]
    }

    fn check_invariants(&self, active: &[(BookingId, &BookingItem)]) -> Result<(), String> {
        let mut given: BTreeMap<(Timestamp, BookingId), Timestamp> = BTreeMap::new();
        let mut ids = HashSet::new();
        for (id, item) in active {
            let BookingItem::Appointment { starts_at, ends_at } = item else {
                return Err(format!("non-appointment item on a provider: {item:?}"));
            };
            if ends_at <= starts_at {
                return Err(format!("booking {id} ends at {ends_at}, not after its start {starts_at}"));
            }
            if !ids.insert(*id) {
                return Err(format!("booking {id} is listed twice"));
            }
            given.insert((*starts_at, *id), *ends_at);
        }
        if given != self.active {
            let missing = given.keys().find(|k| !self.active.contains_key(k));
            let extra = self.active.keys().find(|k| !given.contains_key(k));
            return Err(format!(
                "index out of step: {} indexed, {} active; first active not indexed {missing:?}, first indexed not active {extra:?}",
                self.active.len(),
                given.len()
            ));
        }
        if let Some(len) = self.sorted_active().map(|(s, e, _)| e - s).max()
            && len > self.max_len_ns
        {
            return Err(format!("longest appointment {len}ns exceeds the look-back {}ns", self.max_len_ns));
        }
        match first_conflict(self.sorted_active(), self.buffer_ns()) {
            Some((a, b)) => {
                Err(format!("bookings {a} and {b} overlap (buffer {} minutes included)", self.spec.buffer_minutes))
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;
    use jiff::civil::date;
    use proptest::prelude::*;

    const BERLIN: &str = "Europe/Berlin";

    fn iv(start: (u16, u16), end: (u16, u16)) -> LocalInterval {
        LocalInterval { start_minute: start.0 * 60 + start.1, end_minute: end.0 * 60 + end.1 }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// Mon–Fri 09:00–12:00 and 13:00–17:00 in Berlin, 30-minute slots, one hour notice.
    fn office_spec() -> ProviderSpec {
        ProviderSpec {
            time_zone: BERLIN.into(),
            currency: Currency::parse("EUR").unwrap(),
            price_minor: 5_000,
            slot_minutes: 30,
            buffer_minutes: 0,
            min_notice_minutes: 60,
            booking_horizon_days: 30,
            weekly: (1..=5)
                .map(|weekday| DayHours { weekday, intervals: vec![iv((9, 0), (12, 0)), iv((13, 0), (17, 0))] })
                .collect(),
            overrides: vec![],
        }
    }

    fn office() -> ProviderInventory {
        ProviderInventory::new(office_spec()).unwrap()
    }

    /// Monday 2025-06-02, 08:00 in Berlin.
    fn monday_8am() -> Timestamp {
        ts("2025-06-02T06:00:00Z")
    }

    fn at(inv: &ProviderInventory, d: Date, h: i8, m: i8) -> Timestamp {
        inv.time_zone().to_timestamp(d.at(h, m, 0, 0)).unwrap()
    }

    fn local_hm(inv: &ProviderInventory, t: Timestamp) -> String {
        inv.time_zone().to_datetime(t).time().strftime("%H:%M").to_string()
    }

    fn req(t: Timestamp) -> BookingRequest {
        BookingRequest::Appointment { starts_at: t }
    }

    fn bid(n: u128) -> BookingId {
        BookingId(Uuid::from_u128(n))
    }

    fn item(s: Timestamp, mins: i64) -> BookingItem {
        BookingItem::Appointment { starts_at: s, ends_at: s.checked_add(SignedDuration::from_mins(mins)).unwrap() }
    }

    fn place_err(inv: &ProviderInventory, t: Timestamp, now: Timestamp) -> DomainError {
        inv.place(&req(t), now).unwrap_err()
    }

    /// Takes the appointment at `t` through `place`, as the lifecycle would.
    fn book(inv: &mut ProviderInventory, id: u128, (d, h, m): (Date, i8, i8), now: Timestamp) -> BookingItem {
        let p = inv.place(&req(at(inv, d, h, m)), now).unwrap();
        inv.take(bid(id), &p.item);
        p.item
    }

    fn sunday_spec(tz: &str, interval: LocalInterval, slot: u16) -> ProviderSpec {
        ProviderSpec {
            time_zone: tz.into(),
            slot_minutes: slot,
            min_notice_minutes: 0,
            booking_horizon_days: 400,
            weekly: vec![DayHours { weekday: 7, intervals: vec![interval] }],
            ..office_spec()
        }
    }

    fn fields(e: SpecError) -> Vec<String> {
        e.errors.into_iter().map(|f| f.field).collect()
    }

    #[test]
    fn validate_accepts_a_good_spec() {
        assert_eq!(office_spec().validate(), Ok(()));
        let mut s = office_spec();
        s.weekly.push(DayHours { weekday: 7, intervals: vec![iv((0, 0), (24, 0))] });
        // Out of order and touching is not overlapping.
        s.weekly.push(DayHours {
            weekday: 6,
            intervals: vec![iv((13, 0), (17, 0)), iv((9, 0), (12, 0)), iv((12, 0), (13, 0))],
        });
        s.overrides.push(DateOverride { date: date(2025, 12, 25), intervals: vec![] });
        s.buffer_minutes = MAX_BUFFER_MINUTES;
        s.slot_minutes = 5;
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn validate_reports_every_bad_field_at_once() {
        let mut s = office_spec();
        s.time_zone = "Mars/Olympus_Mons".into();
        s.price_minor = -1;
        s.slot_minutes = 4;
        s.buffer_minutes = MAX_BUFFER_MINUTES + 1;
        s.min_notice_minutes = MAX_NOTICE_MINUTES + 1;
        s.booking_horizon_days = 0;
        s.weekly = vec![
            DayHours { weekday: 0, intervals: vec![] },
            DayHours { weekday: 2, intervals: vec![iv((9, 0), (12, 0)), iv((10, 0), (11, 0))] },
            DayHours { weekday: 2, intervals: vec![iv((9, 0), (9, 0))] },
            DayHours { weekday: 3, intervals: vec![LocalInterval { start_minute: 1440, end_minute: 1441 }] },
            DayHours { weekday: 4, intervals: (0..13).map(|i| iv((i, 0), (i, 30))).collect() },
            DayHours { weekday: 5, intervals: vec![iv((8, 0), (18, 0)), iv((9, 0), (10, 0)), iv((12, 0), (13, 0))] },
        ];
        s.overrides = vec![
            DateOverride { date: date(2025, 6, 4), intervals: vec![] },
            DateOverride { date: date(2025, 6, 4), intervals: vec![iv((12, 0), (11, 0))] },
        ];
        let got = fields(s.validate().unwrap_err());
        let want = [
            "time_zone",
            "price_minor",
            "slot_minutes",
            "buffer_minutes",
            "min_notice_minutes",
            "booking_horizon_days",
            "weekly[0].weekday",
            "weekly[1].intervals[1]",
            "weekly[2].weekday",
            "weekly[2].intervals[0].end_minute",
            "weekly[3].intervals[0].start_minute",
            "weekly[3].intervals[0].end_minute",
            "weekly[4].intervals",
            // Not a neighbour of [0] after sorting: the sweep must still catch it.
            "weekly[5].intervals[1]",
            "weekly[5].intervals[2]",
            "overrides[1].date",
            "overrides[1].intervals[0].end_minute",
        ];
        let mut got_sorted = got.clone();
        got_sorted.sort();
        let mut want_sorted: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want_sorted.sort();
        assert_eq!(got_sorted, want_sorted, "got {got:?}");
    }

    #[test]
    fn validate_limits_overrides_and_weekly_length() {
        let mut s = office_spec();
        s.overrides = (0..=MAX_OVERRIDES as i64)
            .map(|i| DateOverride {
                date: date(2025, 1, 1).checked_add(Span::new().days(i)).unwrap(),
                intervals: vec![],
            })
            .collect();
        s.weekly.extend((1..=3).map(|weekday| DayHours { weekday, intervals: vec![] }));
        let got = fields(s.validate().unwrap_err());
        assert!(got.contains(&"overrides".to_string()), "{got:?}");
        assert!(got.contains(&"weekly".to_string()), "{got:?}");
        assert!(got.contains(&"weekly[5].weekday".to_string()), "{got:?}");
    }

    #[test]
    fn new_rejects_an_invalid_spec_and_parses_the_zone() {
        let mut s = office_spec();
        s.time_zone = "Nowhere/Special".into();
        assert_eq!(fields(ProviderInventory::new(s).unwrap_err()), vec!["time_zone"]);
        assert_eq!(office().time_zone().iana_name(), Some(BERLIN));
    }

    #[test]
    fn slot_grid_with_two_intervals() {
        let inv = office();
        let tue = date(2025, 6, 3);
        let slots = inv.free_slots(tue, monday_8am());
        let got: Vec<String> = slots.iter().map(|s| local_hm(&inv, s.starts_at)).collect();
        let want = [
            "09:00", "09:30", "10:00", "10:30", "11:00", "11:30", "13:00", "13:30", "14:00", "14:30", "15:00", "15:30",
            "16:00", "16:30",
        ];
        assert_eq!(got, want);
        for s in &slots {
            assert_eq!(s.ends_at.duration_since(s.starts_at), SignedDuration::from_mins(30));
            assert_eq!(inv.local_date(s.starts_at), tue);
        }
        // Grid times in UTC: Berlin is +02:00 in June.
        assert_eq!(slots[0].starts_at, ts("2025-06-03T07:00:00Z"));
        assert_eq!(inv.first_free_slot(tue, monday_8am()), Some(slots[0].clone()));
    }

    #[test]
    fn place_prices_and_describes_the_appointment() {
        let inv = office();
        let t = at(&inv, date(2025, 6, 3), 10, 0);
        let p = inv.place(&req(t), monday_8am()).unwrap();
        assert_eq!(p.item, item(t, 30));
        assert_eq!(p.amount, Money::new(5_000, Currency::parse("EUR").unwrap()));
        assert_eq!(inv.ends_at(&p.item), ts("2025-06-03T08:30:00Z"));
        assert_eq!(inv.units(&p.item), 1);
    }

    #[test]
    fn wrong_resource_kind() {
        let inv = office();
        let want = DomainError::WrongResourceKind { kind: "provider".into() };
        let tickets = BookingRequest::Tickets { category_id: None, quantity: 1 };
        assert_eq!(inv.place(&tickets, monday_8am()), Err(want.clone()));
        let wish = Wish::Tickets { category_id: None, quantity: 1 };
        assert_eq!(inv.place_wish(&wish, monday_8am()), Err(want.clone()));
        assert_eq!(inv.check_wish(&wish, monday_8am()), Err(want));
    }

    #[test]
    fn too_soon_covers_the_past_and_the_notice() {
        let inv = office();
        let now = monday_8am();
        let mon = date(2025, 6, 2);
        assert_eq!(place_err(&inv, at(&inv, date(2025, 5, 30), 10, 0), now), DomainError::TooSoon);
        // Exactly at the notice is fine; a minute later "now" it is not.
        assert!(inv.place(&req(at(&inv, mon, 9, 0)), now).is_ok());
        let later = now.checked_add(SignedDuration::from_mins(1)).unwrap();
        assert_eq!(place_err(&inv, at(&inv, mon, 9, 0), later), DomainError::TooSoon);
        assert_eq!(local_hm(&inv, inv.first_free_slot(mon, later).unwrap().starts_at), "09:30");
        // TooSoon comes before every other rule (this one is also off-grid and outside hours).
        assert_eq!(place_err(&inv, at(&inv, mon, 8, 7), now), DomainError::TooSoon);
        // Late in the day nothing is left today.
        assert!(inv.free_slots(mon, at(&inv, mon, 16, 1)).is_empty());
    }

    #[test]
    fn too_far_ahead_past_the_horizon() {
        let inv = office();
        let now = monday_8am();
        // Today 2025-06-02 + 30 days = Wednesday 2025-07-02 is the last bookable date.
        assert!(inv.place(&req(at(&inv, date(2025, 7, 2), 16, 30)), now).is_ok());
        assert_eq!(place_err(&inv, at(&inv, date(2025, 7, 3), 9, 0), now), DomainError::TooFarAhead);
        assert!(inv.free_slots(date(2025, 7, 3), now).is_empty());
        assert_eq!(inv.free_slots(date(2025, 7, 2), now).len(), 14);
        // Checked before the hours: a Saturday beyond the horizon is TooFarAhead.
        assert_eq!(place_err(&inv, at(&inv, date(2025, 7, 5), 9, 7), now), DomainError::TooFarAhead);
        // The horizon counts from the provider's local today: 23:30 UTC on June 2 is
        // already June 3 in Berlin, so July 3 becomes bookable.
        let late = ts("2025-06-02T23:30:00Z");
        assert!(inv.place(&req(at(&inv, date(2025, 7, 3), 9, 0)), late).is_ok());
    }

    #[test]
    fn outside_working_hours() {
        let inv = office();
        let now = monday_8am();
        let tue = date(2025, 6, 3);
        for (h, m) in [(8, 30), (12, 0), (12, 30), (17, 0), (16, 45), (23, 30), (0, 0)] {
            assert_eq!(place_err(&inv, at(&inv, tue, h, m), now), DomainError::OutsideWorkingHours, "{h}:{m}");
        }
        // Saturday has no weekly hours at all.
        assert_eq!(place_err(&inv, at(&inv, date(2025, 6, 7), 10, 0), now), DomainError::OutsideWorkingHours);
        assert!(inv.free_slots(date(2025, 6, 7), now).is_empty());
    }

    #[test]
    fn not_on_slot_grid() {
        let inv = office();
        let now = monday_8am();
        let tue = date(2025, 6, 3);
        for (h, m) in [(9, 15), (13, 10), (16, 25)] {
            assert_eq!(place_err(&inv, at(&inv, tue, h, m), now), DomainError::NotOnSlotGrid, "{h}:{m}");
        }
        let one_sec_off = at(&inv, tue, 10, 0).checked_add(SignedDuration::from_secs(1)).unwrap();
        assert_eq!(place_err(&inv, one_sec_off, now), DomainError::NotOnSlotGrid);
        // The grid starts at each interval's start: in 09:10–10:10, 09:30 fits but is off-grid.
        let mut s = office_spec();
        s.weekly[1].intervals = vec![iv((9, 10), (10, 10))];
        let inv = ProviderInventory::new(s).unwrap();
        assert!(inv.place(&req(at(&inv, tue, 9, 40)), now).is_ok());
        assert_eq!(place_err(&inv, at(&inv, tue, 9, 30), now), DomainError::NotOnSlotGrid);
        assert_eq!(place_err(&inv, at(&inv, tue, 9, 0), now), DomainError::OutsideWorkingHours);
    }

    #[test]
    fn slot_unavailable_when_taken() {
        let mut inv = office();
        let now = monday_8am();
        let t = at(&inv, date(2025, 6, 3), 10, 0);
        book(&mut inv, 1, (date(2025, 6, 3), 10, 0), now);
        assert_eq!(place_err(&inv, t, now), DomainError::SlotUnavailable);
        // Without a buffer the neighbours stay free.
        assert!(inv.place(&req(at(&inv, date(2025, 6, 3), 9, 30)), now).is_ok());
        assert!(inv.place(&req(at(&inv, date(2025, 6, 3), 10, 30)), now).is_ok());
    }

    #[test]
    fn buffers_block_neighbouring_slots() {
        let mut s = office_spec();
        s.buffer_minutes = 10;
        let mut inv = ProviderInventory::new(s).unwrap();
        let now = monday_8am();
        let tue = date(2025, 6, 3);
        book(&mut inv, 1, (tue, 9, 0), now);
        assert_eq!(place_err(&inv, at(&inv, tue, 9, 30), now), DomainError::SlotUnavailable);
        assert!(inv.place(&req(at(&inv, tue, 10, 0)), now).is_ok());
        // The buffer applies before an appointment too.
        book(&mut inv, 2, (tue, 14, 0), now);
        assert_eq!(place_err(&inv, at(&inv, tue, 13, 30), now), DomainError::SlotUnavailable);
        assert!(inv.place(&req(at(&inv, tue, 13, 0)), now).is_ok());
        let free: Vec<String> = inv.free_slots(tue, now).iter().map(|s| local_hm(&inv, s.starts_at)).collect();
        assert_eq!(free, ["10:00", "10:30", "11:00", "11:30", "13:00", "15:00", "15:30", "16:00", "16:30"]);
        assert_eq!(
            inv.check_invariants(&[
                (bid(1), &item(at(&inv, tue, 9, 0), 30)),
                (bid(2), &item(at(&inv, tue, 14, 0), 30))
            ]),
            Ok(())
        );
    }

    #[test]
    fn buffer_of_exactly_the_gap_is_allowed() {
        let mut s = office_spec();
        s.slot_minutes = 20;
        s.buffer_minutes = 20;
        let mut inv = ProviderInventory::new(s).unwrap();
        let now = monday_8am();
        let tue = date(2025, 6, 3);
        book(&mut inv, 1, (tue, 9, 0), now);
        assert_eq!(place_err(&inv, at(&inv, tue, 9, 20), now), DomainError::SlotUnavailable);
        // [9:40, 10:00) starts exactly 20 minutes after 9:20: not closer than the buffer.
        assert!(inv.place(&req(at(&inv, tue, 9, 40)), now).is_ok());
    }

    #[test]
    fn overrides_close_a_day_or_set_special_hours() {
        let mut s = office_spec();
        s.overrides = vec![
            DateOverride { date: date(2025, 6, 4), intervals: vec![] },
            DateOverride { date: date(2025, 6, 5), intervals: vec![iv((14, 0), (15, 0))] },
            DateOverride { date: date(2025, 6, 7), intervals: vec![iv((10, 0), (11, 0))] },
        ];
        let inv = ProviderInventory::new(s).unwrap();
        let now = monday_8am();
        // Wednesday closed.
        assert!(inv.free_slots(date(2025, 6, 4), now).is_empty());
        assert_eq!(place_err(&inv, at(&inv, date(2025, 6, 4), 10, 0), now), DomainError::OutsideWorkingHours);
        // Thursday's special hours replace the weekly ones.
        let thu = date(2025, 6, 5);
        let hm: Vec<String> = inv.free_slots(thu, now).iter().map(|s| local_hm(&inv, s.starts_at)).collect();
        assert_eq!(hm, ["14:00", "14:30"]);
        assert_eq!(place_err(&inv, at(&inv, thu, 9, 0), now), DomainError::OutsideWorkingHours);
        // Saturday open by override only.
        let sat = date(2025, 6, 7);
        assert_eq!(inv.free_slots(sat, now).len(), 2);
        assert!(inv.place(&req(at(&inv, sat, 10, 30)), now).is_ok());
        // Other days keep the weekly hours.
        assert_eq!(inv.free_slots(date(2025, 6, 6), now).len(), 14);
    }

    #[test]
    fn berlin_spring_forward_has_six_half_hour_slots() {
        let inv = ProviderInventory::new(sunday_spec(BERLIN, iv((1, 0), (5, 0)), 30)).unwrap();
        let now = ts("2025-03-01T00:00:00Z");
        let day = date(2025, 3, 30);
        let slots = inv.free_slots(day, now);
        let hm: Vec<String> = slots.iter().map(|s| local_hm(&inv, s.starts_at)).collect();
        assert_eq!(hm, ["01:00", "01:30", "03:00", "03:30", "04:00", "04:30"]);
        assert_eq!(slots[0].starts_at, ts("2025-03-30T00:00:00Z"));
        assert_eq!(slots[5].ends_at, ts("2025-03-30T03:00:00Z"));
        for s in &slots {
            assert!(inv.place(&req(s.starts_at), now).is_ok());
        }
        // 05:00 local is the interval's end, so nothing starts at 04:30 + 30.
        assert_eq!(place_err(&inv, ts("2025-03-30T03:00:00Z"), now), DomainError::OutsideWorkingHours);
    }

    #[test]
    fn berlin_fall_back_has_ten_slots_with_repeated_local_times() {
        let inv = ProviderInventory::new(sunday_spec(BERLIN, iv((1, 0), (5, 0)), 30)).unwrap();
        let now = ts("2025-03-01T00:00:00Z");
        let day = date(2025, 10, 26);
        let slots = inv.free_slots(day, now);
        let hm: Vec<String> = slots.iter().map(|s| local_hm(&inv, s.starts_at)).collect();
        assert_eq!(hm, ["01:00", "01:30", "02:00", "02:30", "02:00", "02:30", "03:00", "03:30", "04:00", "04:30"]);
        assert_eq!(slots[0].starts_at, ts("2025-10-25T23:00:00Z"));
        assert_eq!(slots[9].ends_at, ts("2025-10-26T04:00:00Z"));
        // The two 02:00s are different instants, an hour apart, both bookable.
        assert_eq!(slots[2].starts_at, ts("2025-10-26T00:00:00Z"));
        assert_eq!(slots[4].starts_at, ts("2025-10-26T01:00:00Z"));
        for w in slots.windows(2) {
            assert_eq!(w[1].starts_at.duration_since(w[0].starts_at), SignedDuration::from_mins(30));
        }
        for s in &slots {
            assert_eq!(inv.local_date(s.starts_at), day);
            assert!(inv.place(&req(s.starts_at), now).is_ok());
        }
    }

    #[test]
    fn fall_back_interval_starting_in_the_fold_takes_the_earlier_instant() {
        let inv = ProviderInventory::new(sunday_spec(BERLIN, iv((2, 0), (3, 0)), 30)).unwrap();
        let now = ts("2025-03-01T00:00:00Z");
        let slots = inv.free_slots(date(2025, 10, 26), now);
        // 02:00 (+02:00) to 03:00 (+01:00) is two real hours.
        let starts: Vec<Timestamp> = slots.iter().map(|s| s.starts_at).collect();
        assert_eq!(
            starts,
            ["2025-10-26T00:00:00Z", "2025-10-26T00:30:00Z", "2025-10-26T01:00:00Z", "2025-10-26T01:30:00Z"].map(ts)
        );
    }

    #[test]
    fn new_york_dst_days() {
        let now = ts("2025-03-01T00:00:00Z");
        // 2025-03-09: 02:00 → 03:00. 01:00–04:00 is two real hours: two one-hour slots.
        let inv = ProviderInventory::new(sunday_spec("America/New_York", iv((1, 0), (4, 0)), 60)).unwrap();
        let slots = inv.free_slots(date(2025, 3, 9), now);
        let hm: Vec<String> = slots.iter().map(|s| local_hm(&inv, s.starts_at)).collect();
        assert_eq!(hm, ["01:00", "03:00"]);
        assert_eq!(slots[0].starts_at, ts("2025-03-09T06:00:00Z"));
        assert_eq!(slots[1].starts_at, ts("2025-03-09T07:00:00Z"));
        // 2025-11-02: 02:00 → 01:00. 01:00–03:00 is three real hours, 01:00 twice.
        let inv = ProviderInventory::new(sunday_spec("America/New_York", iv((1, 0), (3, 0)), 60)).unwrap();
        let slots = inv.free_slots(date(2025, 11, 2), now);
        let hm: Vec<String> = slots.iter().map(|s| local_hm(&inv, s.starts_at)).collect();
        assert_eq!(hm, ["01:00", "01:00", "02:00"]);
        assert_eq!(slots[0].starts_at, ts("2025-11-02T05:00:00Z"));
        assert_eq!(slots[1].starts_at, ts("2025-11-02T06:00:00Z"));
    }

    #[test]
    fn slots_are_listed_in_time_order_without_duplicates() {
        let now = ts("2025-03-01T00:00:00Z");
        // Intervals listed out of order still give a chronological list.
        let mut s = office_spec();
        s.weekly[1].intervals.reverse();
        let inv = ProviderInventory::new(s).unwrap();
        let slots = inv.free_slots(date(2025, 6, 3), ts("2025-06-02T06:00:00Z"));
        assert_eq!(local_hm(&inv, slots[0].starts_at), "09:00");
        assert!(slots.windows(2).all(|w| w[0].starts_at < w[1].starts_at));
        // On 2025-03-30 Berlin, 02:30 (in the gap) means 03:30 CEST, so 01:00–02:30 and
        // 03:00–04:00 overlap in real time and share the 03:00 CEST start.
        let mut s = sunday_spec(BERLIN, iv((1, 0), (2, 30)), 30);
        s.weekly[0].intervals.push(iv((3, 0), (4, 0)));
        let inv = ProviderInventory::new(s).unwrap();
        let starts: Vec<Timestamp> = inv.free_slots(date(2025, 3, 30), now).iter().map(|s| s.starts_at).collect();
        assert_eq!(
            starts,
            ["2025-03-30T00:00:00Z", "2025-03-30T00:30:00Z", "2025-03-30T01:00:00Z", "2025-03-30T01:30:00Z"].map(ts)
        );
    }

    #[test]
    fn interval_ending_at_midnight() {
        let inv = ProviderInventory::new(sunday_spec(BERLIN, iv((23, 0), (24, 0)), 30)).unwrap();
        let now = ts("2025-03-01T00:00:00Z");
        let hm: Vec<String> =
            inv.free_slots(date(2025, 6, 1), now).iter().map(|s| local_hm(&inv, s.starts_at)).collect();
        assert_eq!(hm, ["23:00", "23:30"]);
    }

    #[test]
    fn free_slots_shrink_after_take_and_grow_back_after_free() {
        let mut inv = office();
        let now = monday_8am();
        let tue = date(2025, 6, 3);
        let before = inv.free_slots(tue, now);
        assert_eq!(before.len(), 14);
        let t = at(&inv, tue, 10, 0);
        let it = book(&mut inv, 7, (tue, 10, 0), now);
        let during = inv.free_slots(tue, now);
        assert_eq!(during.len(), 13);
        assert!(during.iter().all(|s| s.starts_at != t));
        // Other dates are untouched.
        assert_eq!(inv.free_slots(date(2025, 6, 4), now).len(), 14);
        inv.free(bid(7), &it);
        assert_eq!(inv.free_slots(tue, now), before);
        assert_eq!(inv.check_invariants(&[]), Ok(()));
    }

    #[test]
    fn wishes_take_the_first_free_slot_of_the_date() {
        let mut inv = office();
        let now = monday_8am();
        let tue = date(2025, 6, 3);
        let wish = Wish::Appointment { date: tue };
        assert_eq!(inv.check_wish(&wish, now), Ok(()));
        let p = inv.place_wish(&wish, now).unwrap();
        assert_eq!(p.item, item(at(&inv, tue, 9, 0), 30));
        assert_eq!(p.amount.amount_minor, 5_000);
        inv.take(bid(1), &p.item);
        assert_eq!(inv.place_wish(&wish, now).unwrap().item, item(at(&inv, tue, 9, 30), 30));
        // A closed day is well-formed but has nothing to offer.
        let sat = Wish::Appointment { date: date(2025, 6, 7) };
        assert_eq!(inv.check_wish(&sat, now), Ok(()));
        assert_eq!(inv.place_wish(&sat, now), Err(DomainError::SlotUnavailable));
        // Past dates and dates beyond the horizon are refused.
        let past = Wish::Appointment { date: date(2025, 6, 1) };
        assert_eq!(inv.check_wish(&past, now), Err(DomainError::TooSoon));
        assert_eq!(inv.place_wish(&past, now), Err(DomainError::TooSoon));
        let far = Wish::Appointment { date: date(2025, 7, 3) };
        assert_eq!(inv.check_wish(&far, now), Err(DomainError::TooFarAhead));
        assert_eq!(inv.place_wish(&far, now), Err(DomainError::TooFarAhead));
        assert_eq!(inv.check_wish(&Wish::Appointment { date: date(2025, 7, 2) }, now), Ok(()));
        // Today is a valid wish date; its slots honour the notice.
        let today = Wish::Appointment { date: date(2025, 6, 2) };
        assert_eq!(inv.check_wish(&today, now), Ok(()));
        assert_eq!(
            inv.place_wish(&today, at(&inv, date(2025, 6, 2), 8, 30)).unwrap().item,
            item(at(&inv, date(2025, 6, 2), 9, 30), 30)
        );
        assert_eq!(inv.place_wish(&today, at(&inv, date(2025, 6, 2), 16, 30)), Err(DomainError::SlotUnavailable));
    }

    #[test]
    fn retake_keeps_the_slot_only_if_nothing_clashes() {
        let mut s = office_spec();
        s.buffer_minutes = 10;
        let mut inv = ProviderInventory::new(s).unwrap();
        let now = monday_8am();
        let tue = date(2025, 6, 3);
        let lapsed = item(at(&inv, tue, 10, 0), 30);
        assert_eq!(inv.retake(&lapsed), Some(lapsed.clone()));
        book(&mut inv, 1, (tue, 10, 30), now);
        // Within the buffer of the new booking: gone.
        assert_eq!(inv.retake(&lapsed), None);
        assert_eq!(inv.retake(&item(at(&inv, tue, 10, 30), 30)), None);
        // Notice, past and hours are ignored: the client was promised this.
        let past_and_off_hours = item(at(&inv, date(2025, 5, 31), 7, 5), 30);
        assert_eq!(inv.retake(&past_and_off_hours), Some(past_and_off_hours.clone()));
        // Malformed or foreign items are never retaken.
        let backwards = BookingItem::Appointment { starts_at: at(&inv, tue, 12, 0), ends_at: at(&inv, tue, 9, 0) };
        assert_eq!(inv.retake(&backwards), None);
        assert_eq!(inv.retake(&BookingItem::Tickets { category_id: None, quantity: 1 }), None);
    }

    #[test]
    fn respec_rules() {
        let mut inv = office();
        let now = monday_8am();
        let tue = date(2025, 6, 3);
        let a = book(&mut inv, 1, (tue, 9, 0), now);
        let b = book(&mut inv, 2, (tue, 9, 30), now);
        let active = [(bid(1), &a), (bid(2), &b)];

        // Invalid specs are refused with every problem listed.
        let mut bad = office_spec();
        bad.slot_minutes = 0;
        bad.time_zone = String::new();
        match inv.respec(bad) {
            Err(DomainError::Validation(e)) => assert_eq!(fields(e).len(), 2),
            other => panic!("unexpected {other:?}"),
        }
        // The slot length cannot change under active appointments.
        let mut longer = office_spec();
        longer.slot_minutes = 45;
        assert!(matches!(inv.respec(longer.clone()), Err(DomainError::ConflictsWithBookings { .. })));
        // A buffer that would make the two adjacent appointments clash is refused.
        let mut buffered = office_spec();
        buffered.buffer_minutes = 5;
        assert!(matches!(inv.respec(buffered), Err(DomainError::ConflictsWithBookings { .. })));
        assert_eq!(inv.spec(), &office_spec());

        // New hours that no longer cover the appointments are accepted; the appointments stay.
        let mut afternoons = office_spec();
        afternoons.weekly = vec![DayHours { weekday: 2, intervals: vec![iv((13, 0), (17, 0))] }];
        inv.respec(afternoons.clone()).unwrap();
        assert_eq!(inv.spec(), &afternoons);
        assert_eq!(inv.check_invariants(&active), Ok(()));
        assert_eq!(place_err(&inv, at(&inv, tue, 10, 0), now), DomainError::OutsideWorkingHours);
        assert_eq!(inv.free_slots(tue, now).len(), 8);
        assert_eq!(inv.free_slots(date(2025, 6, 4), now).len(), 0);
        // They still block their own time if hours come back.
        inv.respec(office_spec()).unwrap();
        assert_eq!(place_err(&inv, at(&inv, tue, 9, 0), now), DomainError::SlotUnavailable);

        // A time zone change moves the grid, not the stored instants.
        let mut london = office_spec();
        london.time_zone = "Europe/London".into();
        inv.respec(london).unwrap();
        assert_eq!(inv.check_invariants(&active), Ok(()));
        assert_eq!(inv.free_slots(tue, now)[0].starts_at, ts("2025-06-03T08:00:00Z"));

        // Once nothing is active, the slot length may change.
        inv.free(bid(1), &a);
        inv.free(bid(2), &b);
        inv.respec(longer).unwrap();
        assert_eq!(inv.free_slots(tue, now).len(), 4 + 5);
    }

    #[test]
    fn check_invariants_catches_drift_and_clashes() {
        let mut inv = office();
        let now = monday_8am();
        let tue = date(2025, 6, 3);
        let a = book(&mut inv, 1, (tue, 9, 0), now);
        assert_eq!(inv.check_invariants(&[(bid(1), &a)]), Ok(()));
        assert!(inv.check_invariants(&[]).is_err(), "indexed but not active");
        let b = item(at(&inv, tue, 11, 0), 30);
        assert!(inv.check_invariants(&[(bid(1), &a), (bid(2), &b)]).is_err(), "active but not indexed");
        assert!(inv.check_invariants(&[(bid(1), &a), (bid(1), &a)]).is_err(), "listed twice");
        let tickets = BookingItem::Tickets { category_id: None, quantity: 1 };
        assert!(inv.check_invariants(&[(bid(1), &a), (bid(3), &tickets)]).is_err());
        // Bypassing `place`: an overlapping appointment must be reported.
        let clash = item(at(&inv, tue, 9, 15), 30);
        inv.take(bid(4), &clash);
        assert!(inv.check_invariants(&[(bid(1), &a), (bid(4), &clash)]).is_err());
        inv.free(bid(4), &clash);
        // A clash that is not with the earliest-starting appointment: 10:00–12:00 vs 11:00.
        let long = item(at(&inv, tue, 10, 0), 120);
        let inside = item(at(&inv, tue, 11, 0), 30);
        inv.take(bid(6), &long);
        inv.take(bid(7), &inside);
        assert!(inv.check_invariants(&[(bid(1), &a), (bid(6), &long), (bid(7), &inside)]).is_err());
        inv.free(bid(6), &long);
        inv.free(bid(7), &inside);
        assert_eq!(inv.check_invariants(&[(bid(1), &a)]), Ok(()));
        // Free by id even if the item given back is not the one recorded.
        inv.take(bid(5), &b);
        inv.free(bid(5), &item(at(&inv, tue, 16, 0), 30));
        assert_eq!(inv.check_invariants(&[(bid(1), &a)]), Ok(()));
    }

    #[test]
    fn longer_stored_appointments_are_found_by_the_range_query() {
        // An appointment from stored data longer than the slot length still blocks later slots.
        let mut inv = office();
        let now = monday_8am();
        let tue = date(2025, 6, 3);
        inv.take(bid(1), &item(at(&inv, tue, 9, 0), 150));
        for (h, m) in [(9, 0), (10, 0), (11, 0)] {
            assert_eq!(place_err(&inv, at(&inv, tue, h, m), now), DomainError::SlotUnavailable, "{h}:{m}");
        }
        assert!(inv.place(&req(at(&inv, tue, 11, 30)), now).is_ok());
    }

    // --- property test -------------------------------------------------------------------

    #[derive(Clone, Debug)]
    enum Op {
        /// Place and take the `n`-th grid slot (mod grid size) of day `d`.
        TakeGrid(usize, usize),
        /// Place and take any 5-minute step of day `d` (mostly off the grid).
        TakeAt(usize, u16),
        /// Free the `n`-th active appointment (mod count).
        Free(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..2usize, 0..64usize).prop_map(|(d, n)| Op::TakeGrid(d, n)),
            1 => (0..2usize, 0..288u16).prop_map(|(d, n)| Op::TakeAt(d, n)),
            2 => any::<usize>().prop_map(Op::Free),
        ]
    }

    /// Saturday: two intervals; Sunday 2025-03-30: the Berlin spring-forward night.
    fn small_provider(buffer: u16) -> ProviderInventory {
        ProviderInventory::new(ProviderSpec {
            time_zone: BERLIN.into(),
            slot_minutes: 30,
            buffer_minutes: buffer,
            min_notice_minutes: 0,
            booking_horizon_days: 30,
            weekly: vec![
                DayHours { weekday: 6, intervals: vec![iv((9, 0), (12, 0)), iv((13, 0), (17, 0))] },
                DayHours { weekday: 7, intervals: vec![iv((1, 0), (5, 0)), iv((13, 0), (14, 0))] },
            ],
            ..office_spec()
        })
        .unwrap()
    }

    /// Independent of the inventory: do two appointments come closer than the buffer?
    fn too_close(a: &BookingItem, b: &BookingItem, buffer: u16) -> bool {
        let (
            BookingItem::Appointment { starts_at: s1, ends_at: e1 },
            BookingItem::Appointment { starts_at: s2, ends_at: e2 },
        ) = (a, b)
        else {
            return true;
        };
        let buf = SignedDuration::from_mins(i64::from(buffer));
        *s1 < e2.checked_add(buf).unwrap() && *s2 < e1.checked_add(buf).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn random_takes_and_frees_keep_the_index_sound(buffer in 0u16..=15, ops in prop::collection::vec(op(), 1..40)) {
            let mut inv = small_provider(buffer);
            let now = ts("2025-03-28T12:00:00Z");
            let days = [date(2025, 3, 29), date(2025, 3, 30)];
            // With nothing booked every grid slot is free: that is the grid.
            let grids: Vec<Vec<Slot>> = days.iter().map(|d| inv.free_slots(*d, now)).collect();
            prop_assert_eq!(grids[0].len(), 14);
            prop_assert_eq!(grids[1].len(), 6 + 2);
            let midnights: Vec<Timestamp> = days.iter().map(|d| at(&inv, *d, 0, 0)).collect();
            let mut active: Vec<(BookingId, BookingItem)> = Vec::new();
            let mut next_id = 1u128;

            for op in ops {
                let start = match op {
                    Op::TakeGrid(d, n) => Some(grids[d][n % grids[d].len()].starts_at),
                    Op::TakeAt(d, n) => Some(midnights[d].checked_add(SignedDuration::from_mins(5 * i64::from(n))).unwrap()),
                    Op::Free(n) => {
                        if !active.is_empty() {
                            let (id, it) = active.remove(n % active.len());
                            inv.free(id, &it);
                        }
                        None
                    }
                };
                if let Some(t) = start {
                    match inv.place(&req(t), now) {
                        Ok(p) => {
                            let id = bid(next_id);
                            next_id += 1;
                            inv.take(id, &p.item);
                            active.push((id, p.item));
                        }
                        Err(DomainError::SlotUnavailable) => {
                            let want = item(t, 30);
                            prop_assert!(active.iter().any(|(_, a)| too_close(a, &want, buffer)), "refused {} without a clash", t);
                        }
                        Err(e) => {
                            prop_assert!(matches!(op, Op::TakeAt(..)), "grid slot {} refused: {:?}", t, e);
                            prop_assert!(matches!(e, DomainError::OutsideWorkingHours | DomainError::NotOnSlotGrid), "{:?}", e);
                        }
                    }
                }

                let refs: Vec<(BookingId, &BookingItem)> = active.iter().map(|(id, it)| (*id, it)).collect();
                prop_assert_eq!(inv.check_invariants(&refs), Ok(()));
                for (i, (_, a)) in active.iter().enumerate() {
                    for (_, b) in &active[i + 1..] {
                        prop_assert!(!too_close(a, b, buffer), "{:?} and {:?} too close", a, b);
                    }
                }
                // free_slots is exactly the grid slots with no clash, and place accepts each.
                for (d, day) in days.iter().enumerate() {
                    let free = inv.free_slots(*day, now);
                    let expected: Vec<Slot> = grids[d]
                        .iter()
                        .filter(|g| !active.iter().any(|(_, a)| too_close(a, &item(g.starts_at, 30), buffer)))
                        .cloned()
                        .collect();
                    prop_assert_eq!(&free, &expected);
                    for s in &free {
                        let p = inv.place(&req(s.starts_at), now);
                        prop_assert_eq!(p.map(|p| p.item), Ok(BookingItem::Appointment { starts_at: s.starts_at, ends_at: s.ends_at }));
                    }
                }
            }
        }
    }
}
