//! Hotels: room types with nightly prices, rooms of those types, stays over nights
//! `[check_in, check_out)`. The hotel assigns a concrete room free for every night.

use super::booking::{BookingItem, BookingRequest, Wish};
use super::error::{DomainError, Problems, SpecError};
use super::ids::{BookingId, RoomId, RoomTypeId};
use super::inventory::{Inventory, Placement};
use super::money::{Currency, MAX_UNIT_PRICE_MINOR, Money};
use super::spec::check_name;
use super::stats::TallyDay;
use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

pub const MAX_ROOM_TYPES: usize = 100;
pub const MAX_ROOMS: usize = 10_000;
pub const MAX_PRICE_OVERRIDES: usize = 1_000;
pub const MAX_GUESTS: u16 = 50;
pub const MAX_STAY_NIGHTS: i32 = 365;
pub const MAX_HORIZON_DAYS: u16 = 1_100;
pub const MAX_ROOM_NUMBER_CHARS: usize = 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HotelSpec {
    pub city: String,
    /// IANA zone of the hotel: decides what "today" is for check-in.
    pub time_zone: String,
    pub currency: Currency,
    /// Local time on the check-out date at which a confirmed stay becomes completed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "11:00:00"))]
    pub check_out_time: Time,
    /// How far ahead (days from the hotel's today) a check-in may be.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_100))]
    pub booking_horizon_days: u16,
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 100))]
    pub room_types: Vec<RoomTypeSpec>,
    #[cfg_attr(feature = "openapi", schema(max_items = 10_000))]
    pub rooms: Vec<RoomSpec>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RoomTypeSpec {
    pub id: RoomTypeId,
    pub name: String,
    /// Most guests one room of this type sleeps.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 50))]
    pub capacity_guests: u16,
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 10_000_000_000.0))]
    pub base_price_minor: i64,
    /// Nightly price for particular dates (the night starting on that date).
    #[serde(default)]
    pub price_overrides: BTreeMap<Date, i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RoomSpec {
    pub id: RoomId,
    /// Room number as shown to guests, e.g. "101" or "A-12".
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 20))]
    pub number: String,
    pub room_type_id: RoomTypeId,
}

/// Per room type, for one stay request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomTypeAvailability {
    pub room_type_id: RoomTypeId,
    pub name: String,
    pub capacity_guests: u16,
    pub total_rooms: u32,
    /// Rooms free for every night of the range.
    pub free_rooms: u32,
    /// Price of the whole stay in one room of this type.
    pub total_price: Money,
}

impl HotelSpec {
    /// Checks every field and reports all problems at once, each with its path.
    pub fn validate(&self) -> Result<(), SpecError> {
        let mut p = Problems::default();
        if let Err(e) = check_name(&self.city) {
            p.push("city", e);
        }
        p.check(TimeZone::get(&self.time_zone).is_ok(), "time_zone", "must be a known IANA time zone name");
        p.check(
            (1..=MAX_HORIZON_DAYS).contains(&self.booking_horizon_days),
            "booking_horizon_days",
            format!("must be between 1 and {MAX_HORIZON_DAYS}"),
        );

        p.check(
            (1..=MAX_ROOM_TYPES).contains(&self.room_types.len()),
            "room_types",
            format!("must have between 1 and {MAX_ROOM_TYPES} room types"),
        );
        let price_range = 0..=MAX_UNIT_PRICE_MINOR;
        let mut type_ids = HashSet::new();
        for (i, t) in self.room_types.iter().enumerate() {
            p.check(type_ids.insert(t.id), format!("room_types[{i}].id"), "duplicate room type id");
            if let Err(e) = check_name(&t.name) {
                p.push(format!("room_types[{i}].name"), e);
            }
            p.check(
                (1..=MAX_GUESTS).contains(&t.capacity_guests),
                format!("room_types[{i}].capacity_guests"),
                format!("must be between 1 and {MAX_GUESTS}"),
            );
            p.check(
                price_range.contains(&t.base_price_minor),
                format!("room_types[{i}].base_price_minor"),
                format!("must be between 0 and {MAX_UNIT_PRICE_MINOR}"),
            );
            p.check(
                t.price_overrides.len() <= MAX_PRICE_OVERRIDES,
                format!("room_types[{i}].price_overrides"),
                format!("at most {MAX_PRICE_OVERRIDES} price overrides per room type"),
            );
            for (date, price) in &t.price_overrides {
                p.check(
                    price_range.contains(price),
                    format!("room_types[{i}].price_overrides[{date}]"),
                    format!("must be between 0 and {MAX_UNIT_PRICE_MINOR}"),
                );
            }
        }

        p.check(self.rooms.len() <= MAX_ROOMS, "rooms", format!("at most {MAX_ROOMS} rooms"));
        let mut room_ids = HashSet::new();
        let mut numbers = HashSet::new();
        for (i, r) in self.rooms.iter().enumerate() {
            p.check(room_ids.insert(r.id), format!("rooms[{i}].id"), "duplicate room id");
            match check_room_number(&r.number) {
                // Trimmed, so "101" and "101 " (which guests cannot tell apart) collide.
                Ok(()) => {
                    p.check(numbers.insert(r.number.trim()), format!("rooms[{i}].number"), "duplicate room number")
                }
                Err(e) => p.push(format!("rooms[{i}].number"), e),
            }
            p.check(
                type_ids.contains(&r.room_type_id),
                format!("rooms[{i}].room_type_id"),
                "no room type with this id",
            );
        }
        p.into_result(())
    }
}

fn check_room_number(number: &str) -> Result<(), String> {
    let n = number.chars().count();
    if number.trim().is_empty() {
        Err("must not be blank".into())
    } else if n > MAX_ROOM_NUMBER_CHARS {
        Err(format!("must be at most {MAX_ROOM_NUMBER_CHARS} characters"))
    } else if number.chars().any(char::is_control) {
        Err("must not contain control characters".into())
    } else {
        Ok(())
    }
}

/// Whole days from `a` to `b` (negative if `b` is earlier). Civil days are exactly 24 hours.
fn days_between(a: Date, b: Date) -> i64 {
    a.duration_until(b).as_hours() / 24
}

/// Nights `[first, end)` as day numbers, computed once per query rather than once per room.
#[derive(Clone, Copy, Debug)]
struct NightRange {
    first: i64,
    end: i64,
}

impl NightRange {
    fn of(check_in: Date, check_out: Date) -> NightRange {
        const EPOCH: Date = Date::constant(2000, 1, 1);
        NightRange { first: days_between(EPOCH, check_in), end: days_between(EPOCH, check_out) }
    }
}

/// Occupied nights of one room, one bit per night, so "free for every night" reads a few
/// contiguous words (a 365-night check is 6 words) and stays cache-friendly across thousands
/// of rooms. Kept trimmed (no zero word at either end), so equal sets compare equal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Nights {
    first_word: i64,
    words: Vec<u64>,
}

impl Nights {
    /// Bits of word `w` that fall in `r`.
    fn mask(w: i64, r: NightRange) -> u64 {
        let lo = (r.first - w * 64).clamp(0, 64);
        let hi = (r.end - w * 64).clamp(0, 64);
        if hi <= lo {
            0
        } else if hi - lo == 64 {
            u64::MAX
        } else {
            ((1u64 << (hi - lo)) - 1) << lo
        }
    }

    fn word_span(&self, r: NightRange) -> std::ops::RangeInclusive<i64> {
        let last = self.first_word + self.words.len() as i64 - 1;
        r.first.div_euclid(64).max(self.first_word)..=(r.end - 1).div_euclid(64).min(last)
    }

    fn is_free(&self, r: NightRange) -> bool {
        r.first >= r.end
            || self.word_span(r).all(|w| {
                let word = usize::try_from(w - self.first_word).ok().and_then(|i| self.words.get(i));
                word.is_none_or(|x| x & Nights::mask(w, r) == 0)
            })
    }

    fn insert(&mut self, r: NightRange) {
        if r.first >= r.end {
            return;
        }
        let (wa, wb) = (r.first.div_euclid(64), (r.end - 1).div_euclid(64));
        if self.words.is_empty() {
            self.first_word = wa;
        } else if wa < self.first_word {
            let grow = usize::try_from(self.first_word - wa).unwrap_or(0);
            self.words.splice(0..0, std::iter::repeat_n(0, grow));
            self.first_word = wa;
        }
        let need = usize::try_from(wb - self.first_word + 1).unwrap_or(0);
        if need > self.words.len() {
            self.words.resize(need, 0);
        }
        self.apply(r, |x, m| x | m);
    }

    fn remove(&mut self, r: NightRange) {
        if r.first >= r.end || self.words.is_empty() {
            return;
        }
        self.apply(r, |x, m| x & !m);
        while self.words.last() == Some(&0) {
            self.words.pop();
        }
        let lead = self.words.iter().take_while(|&&x| x == 0).count();
        if lead > 0 {
            self.words.drain(..lead);
            self.first_word += lead as i64;
        }
        if self.words.is_empty() {
            self.first_word = 0;
        }
    }

    fn apply(&mut self, r: NightRange, f: impl Fn(u64, u64) -> u64) {
        for w in self.word_span(r) {
            let first = self.first_word;
            if let Some(x) = usize::try_from(w - first).ok().and_then(|i| self.words.get_mut(i)) {
                *x = f(*x, Nights::mask(w, r));
            }
        }
    }
}

/// One room's active stays: `(check_in, booking) -> check_out` for bookkeeping and the
/// invariant check (keyed with the booking id so a misused `take` never silently overwrites
/// another stay), plus the same nights as bits for fast free checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct RoomStays {
    stays: BTreeMap<(Date, BookingId), Date>,
    nights: Nights,
}

impl RoomStays {
    fn is_empty(&self) -> bool {
        self.stays.is_empty()
    }
    fn is_free(&self, r: NightRange) -> bool {
        self.nights.is_free(r)
    }
    fn insert(&mut self, id: BookingId, check_in: Date, check_out: Date) {
        self.stays.insert((check_in, id), check_out);
        self.nights.insert(NightRange::of(check_in, check_out));
    }
    fn remove(&mut self, id: BookingId, check_in: Date) {
        if let Some(check_out) = self.stays.remove(&(check_in, id)) {
            self.nights.remove(NightRange::of(check_in, check_out));
            return;
        }
        // Not where the item says: drop whatever this booking holds on the room.
        let gone: Vec<(Date, Date)> =
            self.stays.iter().filter(|((_, b), _)| *b == id).map(|((ci, _), co)| (*ci, *co)).collect();
        for (ci, co) in gone {
            self.stays.remove(&(ci, id));
            self.nights.remove(NightRange::of(ci, co));
        }
    }
}

/// Positions into the spec, rebuilt whenever the spec changes.
#[derive(Clone, Debug)]
struct Layout {
    type_index: HashMap<RoomTypeId, usize>,
    room_index: HashMap<RoomId, usize>,
    /// Rooms by number (unique in a hotel): the feed names a room per event.
    room_by_number: HashMap<String, usize>,
    /// Per room type (spec order): positions of its rooms, in spec order.
    rooms_of_type: Vec<Vec<usize>>,
}

impl Layout {
    fn of(spec: &HotelSpec) -> Layout {
        let type_index: HashMap<RoomTypeId, usize> =
            spec.room_types.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
        let mut rooms_of_type = vec![Vec::new(); spec.room_types.len()];
        let mut room_index = HashMap::with_capacity(spec.rooms.len());
        let mut room_by_number = HashMap::with_capacity(spec.rooms.len());
        for (i, r) in spec.rooms.iter().enumerate() {
            room_index.insert(r.id, i);
            room_by_number.insert(r.number.clone(), i);
            if let Some(rooms) = type_index.get(&r.room_type_id).and_then(|&t| rooms_of_type.get_mut(t)) {
                rooms.push(i);
            }
        }
        Layout { type_index, room_index, room_by_number, rooms_of_type }
    }
}

/// A validated hotel plus its occupancy index: per room, the active stays sorted by check-in
/// and their nights as bits. Whether a room is free for `[check_in, check_out)` costs a few
/// word reads, whatever the number of stays or the length of the range.
#[derive(Clone, Debug)]
pub struct HotelInventory {
    spec: HotelSpec,
    tz: TimeZone,
    layout: Layout,
    /// Parallel to `spec.rooms`.
    stays: Vec<RoomStays>,
}

/// A checked stay request: positions of the room type and of the asked-for room, and nights.
struct CheckedStay {
    type_pos: usize,
    room_pos: Option<usize>,
    nights: i64,
}

fn wrong_kind() -> DomainError {
    DomainError::WrongResourceKind { kind: "hotel".into() }
}

impl HotelInventory {
    pub fn new(spec: HotelSpec) -> Result<Self, SpecError> {
        spec.validate()?;
        let tz = parse_zone(&spec.time_zone)?;
        let layout = Layout::of(&spec);
        let stays = vec![RoomStays::default(); spec.rooms.len()];
        Ok(HotelInventory { spec, tz, layout, stays })
    }

    pub fn spec(&self) -> &HotelSpec {
        &self.spec
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// Replaces the specification, keeping the occupancy index. Refused if a room with an
    /// active stay would disappear or change room type.
    pub fn respec(&mut self, spec: HotelSpec) -> Result<(), DomainError> {
        spec.validate()?;
        let tz = parse_zone(&spec.time_zone)?;
        let layout = Layout::of(&spec);
        for (old_pos, stays) in self.stays.iter().enumerate() {
            if stays.is_empty() {
                continue;
            }
            let Some(old) = self.spec.rooms.get(old_pos) else { continue };
            match layout.room_index.get(&old.id).and_then(|&p| spec.rooms.get(p)) {
                None => {
                    return Err(DomainError::conflicts(format!(
                        "room {} ({}) has active stays and cannot be removed",
                        old.number, old.id
                    )));
                }
                Some(new) if new.room_type_id != old.room_type_id => {
                    return Err(DomainError::conflicts(format!(
                        "room {} ({}) has active stays and cannot change room type",
                        old.number, old.id
                    )));
                }
                Some(_) => {}
            }
        }
        let mut stays = vec![RoomStays::default(); spec.rooms.len()];
        for (old_pos, old_stays) in std::mem::take(&mut self.stays).into_iter().enumerate() {
            let new_pos = self.spec.rooms.get(old_pos).and_then(|r| layout.room_index.get(&r.id));
            if let Some(&p) = new_pos {
                stays[p] = old_stays;
            }
        }
        self.spec = spec;
        self.tz = tz;
        self.layout = layout;
        self.stays = stays;
        Ok(())
    }

    /// Per room type (spec order) for the stay `[check_in, check_out)`: rooms, rooms free for
    /// every night and the price of the stay. Types too small for `guests` are left out.
    pub fn availability(
        &self,
        check_in: Date,
        check_out: Date,
        guests: Option<u16>,
        now: Timestamp,
    ) -> Result<Vec<RoomTypeAvailability>, DomainError> {
        let nights = check_stay_query(check_in, check_out, guests)?;
        self.check_window(check_in, now)?;
        let nights_range = NightRange::of(check_in, check_out);
        let mut out = Vec::with_capacity(self.spec.room_types.len());
        for (t, rt) in self.spec.room_types.iter().enumerate() {
            if guests.is_some_and(|g| rt.capacity_guests < g) {
                continue;
            }
            let rooms = self.layout.rooms_of_type.get(t).map(Vec::as_slice).unwrap_or(&[]);
            let free = rooms.iter().filter(|&&r| self.room_free(r, nights_range)).count();
            out.push(RoomTypeAvailability {
                room_type_id: rt.id,
                name: rt.name.clone(),
                capacity_guests: rt.capacity_guests,
                total_rooms: u32::try_from(rooms.len()).unwrap_or(u32::MAX),
                free_rooms: u32::try_from(free).unwrap_or(u32::MAX),
                total_price: self.stay_price(rt, check_in, check_out, nights)?,
            });
        }
        Ok(out)
    }

    /// The room a channel feed names: by its number in this hotel, else by its id.
    pub fn resolve_room(&self, name: &str) -> Option<&RoomSpec> {
        let name = name.trim();
        if let Some(r) = self.layout.room_by_number.get(name).and_then(|&p| self.spec.rooms.get(p)) {
            return Some(r);
        }
        let id = uuid::Uuid::parse_str(name).ok()?;
        self.layout.room_index.get(&RoomId(id)).and_then(|&p| self.spec.rooms.get(p))
    }

    /// The active stay on `room` that covers `night`, if any.
    pub fn stay_on(&self, room: RoomId, night: Date) -> Option<BookingId> {
        let stays = self.layout.room_index.get(&room).and_then(|&r| self.stays.get(r))?;
        // Stays on one room never overlap: only the last one starting on or before the night
        // can cover it.
        let ((_, id), check_out) = stays.stays.range(..=(night, BookingId(uuid::Uuid::max()))).next_back()?;
        (*check_out > night).then_some(*id)
    }

    /// The hotel's local date at `now`.
    fn today(&self, now: Timestamp) -> Date {
        self.tz.to_datetime(now).date()
    }

    fn check_window(&self, check_in: Date, now: Timestamp) -> Result<(), DomainError> {
        let ahead = days_between(self.today(now), check_in);
        if ahead < 0 {
            Err(DomainError::TooSoon)
        } else if ahead > i64::from(self.spec.booking_horizon_days) {
            Err(DomainError::TooFarAhead)
        } else {
            Ok(())
        }
    }

    /// Validates a stay request (every bad field at once), then the today/horizon window.
    fn check_stay(
        &self,
        room_type_id: RoomTypeId,
        room_id: Option<RoomId>,
        check_in: Date,
        check_out: Date,
        guests: u16,
        now: Timestamp,
    ) -> Result<CheckedStay, DomainError> {
        let mut p = Problems::default();
        let type_pos = self.layout.type_index.get(&room_type_id).copied();
        let mut room_pos = None;
        match type_pos.and_then(|t| self.spec.room_types.get(t).map(|rt| (t, rt))) {
            None => p.push("room_type_id", "no such room type in this hotel"),
            Some((_, rt)) => {
                if let Some(id) = room_id {
                    match self.layout.room_index.get(&id).map(|&r| (r, self.spec.rooms.get(r))) {
                        Some((r, Some(room))) if room.room_type_id == room_type_id => room_pos = Some(r),
                        Some((_, Some(_))) => p.push("room_id", "this room is not of the requested room type"),
                        _ => p.push("room_id", "no such room in this hotel"),
                    }
                }
                p.check(
                    (1..=rt.capacity_guests).contains(&guests),
                    "guests",
                    format!("must be between 1 and {} for this room type", rt.capacity_guests),
                );
            }
        }
        if type_pos.is_none() && guests == 0 {
            p.push("guests", "must be at least 1");
        }
        let nights = check_dates(check_in, check_out, &mut p);
        p.into_result(())?;
        self.check_window(check_in, now)?;
        // The match above only leaves no problems when the type was found.
        let type_pos =
            type_pos.ok_or_else(|| DomainError::validation("room_type_id", "no such room type in this hotel"))?;
        Ok(CheckedStay { type_pos, room_pos, nights })
    }

    /// True if room `r` has no active stay on any of the nights.
    fn room_free(&self, r: usize, nights: NightRange) -> bool {
        self.stays.get(r).is_some_and(|s| s.is_free(nights))
    }

    fn first_free_room(&self, type_pos: usize, nights: NightRange) -> Option<usize> {
        self.layout.rooms_of_type.get(type_pos)?.iter().copied().find(|&r| self.room_free(r, nights))
    }

    /// Sum over the nights of (override for that date, else base), as base × nights plus the
    /// overrides' differences, so a long stay costs one range query and not one per night.
    fn stay_price(
        &self,
        rt: &RoomTypeSpec,
        check_in: Date,
        check_out: Date,
        nights: i64,
    ) -> Result<Money, DomainError> {
        let out_of_range = || DomainError::validation("check_out", "the total price of the stay is out of range");
        if check_out <= check_in {
            return Err(out_of_range());
        }
        let mut total = rt.base_price_minor.checked_mul(nights).ok_or_else(out_of_range)?;
        for (_, &price) in rt.price_overrides.range(check_in..check_out) {
            let diff = price.checked_sub(rt.base_price_minor).ok_or_else(out_of_range)?;
            total = total.checked_add(diff).ok_or_else(out_of_range)?;
        }
        Ok(Money::new(total, self.spec.currency))
    }

    fn place_stay(
        &self,
        room_type_id: RoomTypeId,
        room_id: Option<RoomId>,
        check_in: Date,
        check_out: Date,
        guests: u16,
        now: Timestamp,
    ) -> Result<Placement, DomainError> {
        let c = self.check_stay(room_type_id, room_id, check_in, check_out, guests, now)?;
        let nights = NightRange::of(check_in, check_out);
        let room = match c.room_pos {
            Some(r) if self.room_free(r, nights) => r,
            Some(_) => return Err(DomainError::NoRoomAvailable),
            None => self.first_free_room(c.type_pos, nights).ok_or(DomainError::NoRoomAvailable)?,
        };
        let rt = self.spec.room_types.get(c.type_pos).ok_or(DomainError::NoRoomAvailable)?;
        let room_id = self.spec.rooms.get(room).map(|r| r.id).ok_or(DomainError::NoRoomAvailable)?;
        let amount = self.stay_price(rt, check_in, check_out, c.nights)?;
        Ok(Placement { item: BookingItem::Stay { room_type_id, room_id, check_in, check_out, guests }, amount })
    }
}

fn parse_zone(name: &str) -> Result<TimeZone, SpecError> {
    TimeZone::get(name).map_err(|_| SpecError::new("time_zone", "must be a known IANA time zone name"))
}

/// The one check of a stay as asked for (a search, or availability before any room type is
/// named): the dates in order, the stay's length, and the guests between 1 and [`MAX_GUESTS`].
/// Each hotel then applies its own today and horizon, and a booking its room type's capacity.
/// Returns the nights.
pub fn check_stay_query(check_in: Date, check_out: Date, guests: Option<u16>) -> Result<i64, DomainError> {
    let mut p = Problems::default();
    // The dates first, then the guests: the order fields are reported in.
    let nights = check_dates(check_in, check_out, &mut p);
    if let Some(g) = guests {
        p.check((1..=MAX_GUESTS).contains(&g), "guests", format!("must be between 1 and {MAX_GUESTS}"));
    }
    p.into_result(nights).map_err(DomainError::Validation)
}

/// Checks `check_out > check_in` and the stay length; returns the nights (0 if invalid).
fn check_dates(check_in: Date, check_out: Date, p: &mut Problems) -> i64 {
    let nights = days_between(check_in, check_out);
    if nights < 1 {
        p.push("check_out", "must be after check_in");
    } else if nights > i64::from(MAX_STAY_NIGHTS) {
        p.push("check_out", format!("a stay may be at most {MAX_STAY_NIGHTS} nights"));
    }
    nights
}

impl Inventory for HotelInventory {
    fn place(&self, req: &BookingRequest, now: Timestamp) -> Result<Placement, DomainError> {
        match req {
            BookingRequest::Stay { room_type_id, room_id, check_in, check_out, guests } => {
                self.place_stay(*room_type_id, *room_id, *check_in, *check_out, *guests, now)
            }
            _ => Err(wrong_kind()),
        }
    }

    fn place_wish(&self, wish: &Wish, now: Timestamp) -> Result<Placement, DomainError> {
        match wish {
            Wish::Stay { room_type_id, check_in, check_out, guests } => {
                self.place_stay(*room_type_id, None, *check_in, *check_out, *guests, now)
            }
            _ => Err(wrong_kind()),
        }
    }

    fn check_wish(&self, wish: &Wish, now: Timestamp) -> Result<(), DomainError> {
        match wish {
            Wish::Stay { room_type_id, check_in, check_out, guests } => {
                self.check_stay(*room_type_id, None, *check_in, *check_out, *guests, now).map(|_| ())
            }
            _ => Err(wrong_kind()),
        }
    }

    fn take(&mut self, id: BookingId, item: &BookingItem) {
        if let BookingItem::Stay { room_id, check_in, check_out, .. } = item
            && let Some(stays) = self.layout.room_index.get(room_id).and_then(|&r| self.stays.get_mut(r))
        {
            stays.insert(id, *check_in, *check_out);
        }
    }

    fn free(&mut self, id: BookingId, item: &BookingItem) {
        if let BookingItem::Stay { room_id, check_in, .. } = item
            && let Some(stays) = self.layout.room_index.get(room_id).and_then(|&r| self.stays.get_mut(r))
        {
            stays.remove(id, *check_in);
        }
    }

    fn retake(&self, item: &BookingItem) -> Option<BookingItem> {
        let BookingItem::Stay { room_type_id, room_id, check_in, check_out, guests } = item else {
            return None;
        };
        if check_out <= check_in {
            return None;
        }
        let same = self
            .layout
            .room_index
            .get(room_id)
            .copied()
            .filter(|&r| self.spec.rooms.get(r).is_some_and(|room| room.room_type_id == *room_type_id));
        let nights = NightRange::of(*check_in, *check_out);
        if same.is_some_and(|r| self.room_free(r, nights)) {
            return Some(item.clone());
        }
        let t = *self.layout.type_index.get(room_type_id)?;
        let r = self.first_free_room(t, nights)?;
        let new_room = self.spec.rooms.get(r)?.id;
        Some(BookingItem::Stay {
            room_type_id: *room_type_id,
            room_id: new_room,
            check_in: *check_in,
            check_out: *check_out,
            guests: *guests,
        })
    }

    /// Check-out time on the check-out date in the hotel's zone. Non-stay items never end
    /// here (`Timestamp::MAX`).
    fn ends_at(&self, item: &BookingItem) -> Timestamp {
        let BookingItem::Stay { check_out, .. } = item else {
            return Timestamp::MAX;
        };
        stay_ends_at(&self.tz, *check_out, self.spec.check_out_time)
    }

    fn units(&self, item: &BookingItem) -> u64 {
        match item {
            BookingItem::Stay { check_in, check_out, .. } => {
                u64::try_from(days_between(*check_in, *check_out)).unwrap_or(0)
            }
            _ => 0,
        }
    }

    fn tally_days(&self, item: &BookingItem, _created_at: Timestamp) -> Vec<TallyDay> {
        let BookingItem::Stay { check_in, check_out, .. } = item else { return Vec::new() };
        let mut out = Vec::new();
        let mut night = *check_in;
        // A stay is at most MAX_STAY_NIGHTS long; the bound also guards against bad data.
        while night < *check_out && out.len() <= MAX_STAY_NIGHTS as usize {
            out.push(TallyDay { day: night, units: 1, minutes: 0 });
            let Ok(next) = night.tomorrow() else { break };
            night = next;
        }
        out
    }

    fn check_invariants(&self, active: &[(BookingId, &BookingItem)]) -> Result<(), String> {
        let mut expected = vec![RoomStays::default(); self.spec.rooms.len()];
        for (id, item) in active {
            let BookingItem::Stay { room_type_id, room_id, check_in, check_out, .. } = item else {
                return Err(format!("non-stay item on a hotel: {item:?}"));
            };
            if check_out <= check_in {
                return Err(format!("stay {id} has check_out {check_out} not after check_in {check_in}"));
            }
            let Some(&r) = self.layout.room_index.get(room_id) else {
                return Err(format!("stay {id} is on unknown room {room_id}"));
            };
            if self.spec.rooms.get(r).is_none_or(|room| room.room_type_id != *room_type_id) {
                return Err(format!("stay {id} names room type {room_type_id} but room {room_id} is of another type"));
            }
            if let Some(stays) = expected.get_mut(r) {
                if stays.stays.contains_key(&(*check_in, *id)) {
                    return Err(format!("stay {id} is listed twice"));
                }
                stays.insert(*id, *check_in, *check_out);
            }
        }
        for (r, stays) in expected.iter().enumerate() {
            let room = self.spec.rooms.get(r).map(|x| x.number.as_str()).unwrap_or("?");
            // Sorted by check-in, any overlap shows up between neighbours.
            let sorted: Vec<(&(Date, BookingId), &Date)> = stays.stays.iter().collect();
            for pair in sorted.windows(2) {
                if let [((_, a), a_out), ((b_in, b), _)] = pair
                    && *a_out > b_in
                {
                    return Err(format!("stays {a} and {b} overlap on room {room}"));
                }
            }
            if self.stays.get(r).map(|s| &s.stays) != Some(&stays.stays) {
                return Err(format!(
                    "index of room {room} disagrees with the active stays: index {:?}, active {:?}",
                    self.stays.get(r).map(|s| &s.stays),
                    stays.stays
                ));
            }
            if self.stays.get(r).map(|s| &s.nights) != Some(&stays.nights) {
                return Err(format!("night bits of room {room} disagree with its stays"));
            }
        }
        if self.stays.len() != expected.len() {
            return Err("index has a different number of rooms than the spec".into());
        }
        Ok(())
    }
}

/// A stay is over at check-out time on its check-out date in the hotel's zone (a time in a
/// DST gap moves forward, jiff's compatible rule).
pub(crate) fn stay_ends_at(tz: &TimeZone, check_out: Date, check_out_time: Time) -> Timestamp {
    tz.to_timestamp(check_out.to_datetime(check_out_time))
        .or_else(|_| TimeZone::UTC.to_timestamp(check_out.to_datetime(Time::midnight())))
        .unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use uuid::Uuid;

    fn tid(n: u128) -> RoomTypeId {
        RoomTypeId(Uuid::from_u128(n))
    }
    fn rid(n: u128) -> RoomId {
        RoomId(Uuid::from_u128(0x100 + n))
    }
    fn bid(n: u128) -> BookingId {
        BookingId(Uuid::from_u128(0x1000 + n))
    }
    fn d(s: &str) -> Date {
        s.parse().expect("test date")
    }
    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }
    /// Lisbon is on UTC in early March, so the hotel's today is 2025-03-10.
    fn now() -> Timestamp {
        ts("2025-03-10T12:00:00Z")
    }
    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::parse("EUR").expect("EUR"))
    }

    const STD: u128 = 1;
    const SUITE: u128 = 2;

    fn spec() -> HotelSpec {
        HotelSpec {
            city: "Lisbon".into(),
            time_zone: "Europe/Lisbon".into(),
            currency: Currency::parse("EUR").expect("EUR"),
            check_out_time: Time::constant(11, 0, 0, 0),
            booking_horizon_days: 365,
            room_types: vec![
                RoomTypeSpec {
                    id: tid(STD),
                    name: "Standard".into(),
                    capacity_guests: 2,
                    base_price_minor: 10_000,
                    price_overrides: [(d("2025-03-14"), 15_000), (d("2025-03-15"), 16_000)].into_iter().collect(),
                },
                RoomTypeSpec {
                    id: tid(SUITE),
                    name: "Suite".into(),
                    capacity_guests: 4,
                    base_price_minor: 25_000,
                    price_overrides: BTreeMap::new(),
                },
            ],
            rooms: vec![
                RoomSpec { id: rid(1), number: "101".into(), room_type_id: tid(STD) },
                RoomSpec { id: rid(2), number: "102".into(), room_type_id: tid(STD) },
                RoomSpec { id: rid(3), number: "201".into(), room_type_id: tid(SUITE) },
            ],
        }
    }

    fn hotel() -> HotelInventory {
        HotelInventory::new(spec()).expect("valid spec")
    }

    fn req(t: u128, room: Option<u128>, ci: &str, co: &str, guests: u16) -> BookingRequest {
        BookingRequest::Stay { room_type_id: tid(t), room_id: room.map(rid), check_in: d(ci), check_out: d(co), guests }
    }

    fn room_of(p: &Placement) -> RoomId {
        match &p.item {
            BookingItem::Stay { room_id, .. } => *room_id,
            other => panic!("not a stay: {other:?}"),
        }
    }

    fn fields(e: &DomainError) -> Vec<String> {
        match e {
            DomainError::Validation(s) => s.errors.iter().map(|f| f.field.clone()).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    fn spec_fields(e: &SpecError) -> Vec<&str> {
        e.errors.iter().map(|f| f.field.as_str()).collect()
    }

    /// Places and takes; returns the placement.
    fn book(h: &mut HotelInventory, id: u128, r: &BookingRequest) -> Placement {
        let p = h.place(r, now()).expect("placeable");
        h.take(bid(id), &p.item);
        p
    }

    // --- specification ---

    #[test]
    fn valid_spec_is_accepted() {
        assert_eq!(spec().validate(), Ok(()));
        assert_eq!(hotel().time_zone().iana_name(), Some("Europe/Lisbon"));
    }

    #[test]
    fn validation_reports_every_bad_field_at_once() {
        let mut s = spec();
        s.city = "  ".into();
        s.time_zone = "Mars/Olympus_Mons".into();
        s.booking_horizon_days = 0;
        s.room_types[0].name = "bad\nname".into();
        s.room_types[0].capacity_guests = 0;
        s.room_types[0].price_overrides.insert(d("2025-04-01"), -1);
        s.room_types[1].id = tid(STD);
        s.room_types[1].capacity_guests = MAX_GUESTS + 1;
        s.room_types[1].base_price_minor = MAX_UNIT_PRICE_MINOR + 1;
        s.rooms[1].id = rid(1);
        s.rooms[1].number = "101 ".into();
        s.rooms[2].number = "x".repeat(21);
        s.rooms.push(RoomSpec { id: rid(9), number: "\t".into(), room_type_id: tid(77) });
        let e = s.validate().expect_err("invalid");
        assert_eq!(
            spec_fields(&e),
            vec![
                "city",
                "time_zone",
                "booking_horizon_days",
                "room_types[0].name",
                "room_types[0].capacity_guests",
                "room_types[0].price_overrides[2025-04-01]",
                "room_types[1].id",
                "room_types[1].capacity_guests",
                "room_types[1].base_price_minor",
                "rooms[1].id",
                "rooms[1].number",
                "rooms[2].number",
                // The suite's id was overwritten above, so room 201 now dangles too.
                "rooms[2].room_type_id",
                "rooms[3].number",
                "rooms[3].room_type_id",
            ],
            "{e}"
        );
        assert!(HotelInventory::new(s).is_err());
    }

    #[test]
    fn validation_checks_counts_and_limits() {
        let mut s = spec();
        s.room_types.clear();
        s.rooms.clear();
        assert_eq!(spec_fields(&s.validate().expect_err("no types")), vec!["room_types"]);

        let mut s = spec();
        s.rooms.clear(); // a hotel with no rooms yet is allowed
        assert_eq!(s.validate(), Ok(()));
        s.booking_horizon_days = MAX_HORIZON_DAYS + 1;
        s.room_types[1].price_overrides = (0..=MAX_PRICE_OVERRIDES as i64)
            .map(|i| (d("2025-01-01").checked_add(jiff::Span::new().days(i)).expect("date"), 1))
            .collect();
        assert_eq!(
            spec_fields(&s.validate().expect_err("limits")),
            vec!["booking_horizon_days", "room_types[1].price_overrides"]
        );

        let mut s = spec();
        s.room_types[0].base_price_minor = MAX_UNIT_PRICE_MINOR;
        s.room_types[0].price_overrides.insert(d("2025-05-01"), 0);
        s.rooms[0].number = "x".repeat(20);
        assert_eq!(s.validate(), Ok(()), "boundaries are inclusive");
    }

    // --- place: errors ---

    #[test]
    fn place_refuses_other_kinds() {
        let h = hotel();
        let e = h.place(&BookingRequest::Tickets { category_id: None, quantity: 1 }, now()).expect_err("kind");
        assert_eq!(e, DomainError::WrongResourceKind { kind: "hotel".into() });
        let e = h.place_wish(&Wish::Appointment { date: d("2025-03-12") }, now()).expect_err("kind");
        assert_eq!(e.code(), "wrong_resource_kind");
        assert!(h.check_wish(&Wish::Tickets { category_id: None, quantity: 1 }, now()).is_err());
    }

    #[test]
    fn place_reports_bad_fields() {
        let h = hotel();
        let f = |r: BookingRequest| fields(&h.place(&r, now()).expect_err("invalid"));
        assert_eq!(f(req(99, None, "2025-03-12", "2025-03-13", 1)), vec!["room_type_id"]);
        assert_eq!(f(req(STD, Some(99), "2025-03-12", "2025-03-13", 1)), vec!["room_id"]);
        // Room 201 exists but is a suite.
        assert_eq!(f(req(STD, Some(3), "2025-03-12", "2025-03-13", 1)), vec!["room_id"]);
        assert_eq!(f(req(STD, None, "2025-03-12", "2025-03-13", 0)), vec!["guests"]);
        assert_eq!(f(req(STD, None, "2025-03-12", "2025-03-13", 3)), vec!["guests"]);
        assert_eq!(f(req(STD, None, "2025-03-12", "2025-03-12", 1)), vec!["check_out"]);
        assert_eq!(f(req(STD, None, "2025-03-12", "2025-03-11", 1)), vec!["check_out"]);
        // 366 nights.
        assert_eq!(f(req(STD, None, "2025-03-12", "2026-03-13", 1)), vec!["check_out"]);
        // Several at once.
        assert_eq!(f(req(STD, Some(99), "2025-03-12", "2025-03-12", 9)), vec!["room_id", "guests", "check_out"]);
        // Capacity is per type: 3 guests fit a suite.
        assert!(h.place(&req(SUITE, None, "2025-03-12", "2025-03-13", 3), now()).is_ok());
        // Exactly the longest stay is fine.
        assert!(h.place(&req(STD, None, "2025-03-12", "2026-03-12", 1), now()).is_ok());
    }

    #[test]
    fn too_soon_uses_the_hotels_local_today() {
        let h = hotel();
        assert_eq!(h.place(&req(STD, None, "2025-03-09", "2025-03-11", 1), now()), Err(DomainError::TooSoon));
        assert!(h.place(&req(STD, None, "2025-03-10", "2025-03-11", 1), now()).is_ok(), "today is bookable");

        // At 12:00 UTC it is already 01:00 on the 11th in Auckland: the 10th is in the past there.
        let mut s = spec();
        s.time_zone = "Pacific/Auckland".into();
        let h = HotelInventory::new(s).expect("valid");
        assert_eq!(h.place(&req(STD, None, "2025-03-10", "2025-03-12", 1), now()), Err(DomainError::TooSoon));
        assert!(h.place(&req(STD, None, "2025-03-11", "2025-03-12", 1), now()).is_ok());
    }

    #[test]
    fn too_far_ahead_past_the_horizon() {
        let h = hotel();
        // Today 2025-03-10 + 365 days = 2026-03-10.
        assert!(h.place(&req(STD, None, "2026-03-10", "2026-03-11", 1), now()).is_ok());
        assert_eq!(h.place(&req(STD, None, "2026-03-11", "2026-03-12", 1), now()), Err(DomainError::TooFarAhead));
        let wish =
            Wish::Stay { room_type_id: tid(STD), check_in: d("2026-03-11"), check_out: d("2026-03-12"), guests: 1 };
        assert_eq!(h.check_wish(&wish, now()), Err(DomainError::TooFarAhead));
    }

    #[test]
    fn field_errors_come_before_date_window_errors() {
        let h = hotel();
        let e = h.place(&req(99, None, "2020-01-01", "2020-01-02", 1), now()).expect_err("bad");
        assert_eq!(fields(&e), vec!["room_type_id"]);
    }

    // --- place: assignment and price ---

    #[test]
    fn assigns_the_first_free_room_in_spec_order() {
        let mut h = hotel();
        let r = req(STD, None, "2025-03-12", "2025-03-14", 2);
        assert_eq!(room_of(&book(&mut h, 1, &r)), rid(1));
        assert_eq!(room_of(&book(&mut h, 2, &r)), rid(2));
        assert_eq!(h.place(&r, now()), Err(DomainError::NoRoomAvailable));
        // The suite is a different type and stays free.
        assert_eq!(room_of(&book(&mut h, 3, &req(SUITE, None, "2025-03-12", "2025-03-14", 2))), rid(3));
        // Freeing 101 makes it the choice again.
        h.free(
            bid(1),
            &BookingItem::Stay {
                room_type_id: tid(STD),
                room_id: rid(1),
                check_in: d("2025-03-12"),
                check_out: d("2025-03-14"),
                guests: 2,
            },
        );
        assert_eq!(room_of(&h.place(&r, now()).expect("free again")), rid(1));
    }

    #[test]
    fn a_room_free_only_for_some_nights_is_not_assigned() {
        let mut h = hotel();
        book(&mut h, 1, &req(STD, Some(1), "2025-03-13", "2025-03-14", 1));
        // 101 is taken on the night of the 13th, so a stay 12..15 goes to 102.
        let p = h.place(&req(STD, None, "2025-03-12", "2025-03-15", 1), now()).expect("102 free");
        assert_eq!(room_of(&p), rid(2));
        book(&mut h, 2, &req(STD, Some(2), "2025-03-14", "2025-03-20", 1));
        assert_eq!(h.place(&req(STD, None, "2025-03-12", "2025-03-15", 1), now()), Err(DomainError::NoRoomAvailable));
        // A stay that avoids both taken nights fits in 101 (it is free again from the 14th).
        assert_eq!(room_of(&h.place(&req(STD, None, "2025-03-14", "2025-03-16", 1), now()).expect("fits")), rid(1));
    }

    #[test]
    fn price_sums_overridden_and_normal_nights() {
        let h = hotel();
        // Nights 13 (base 100.00), 14 (150.00), 15 (160.00), 16 (base 100.00).
        let p = h.place(&req(STD, None, "2025-03-13", "2025-03-17", 1), now()).expect("ok");
        assert_eq!(p.amount, eur(10_000 + 15_000 + 16_000 + 10_000));
        // check_out on an overridden date does not count that night.
        let p = h.place(&req(STD, None, "2025-03-13", "2025-03-14", 1), now()).expect("ok");
        assert_eq!(p.amount, eur(10_000));
        let p = h.place(&req(STD, None, "2025-03-15", "2025-03-16", 1), now()).expect("ok");
        assert_eq!(p.amount, eur(16_000));
        let p = h.place(&req(SUITE, None, "2025-03-13", "2025-03-17", 1), now()).expect("ok");
        assert_eq!(p.amount, eur(4 * 25_000));
    }

    #[test]
    fn zero_price_override_counts_as_free_night() {
        let mut s = spec();
        s.room_types[0].price_overrides.insert(d("2025-03-20"), 0);
        let h = HotelInventory::new(s).expect("valid");
        let p = h.place(&req(STD, None, "2025-03-19", "2025-03-21", 1), now()).expect("ok");
        assert_eq!(p.amount, eur(10_000));
    }

    #[test]
    fn back_to_back_stays_share_a_room() {
        let mut h = hotel();
        book(&mut h, 1, &req(STD, Some(1), "2025-03-12", "2025-03-14", 1));
        let after = book(&mut h, 2, &req(STD, Some(1), "2025-03-14", "2025-03-16", 1));
        assert_eq!(room_of(&after), rid(1));
        let before = book(&mut h, 3, &req(STD, Some(1), "2025-03-11", "2025-03-12", 1));
        assert_eq!(room_of(&before), rid(1));
        let items: Vec<(BookingId, BookingItem)> =
            [(1, "2025-03-12", "2025-03-14"), (2, "2025-03-14", "2025-03-16"), (3, "2025-03-11", "2025-03-12")]
                .iter()
                .map(|&(n, ci, co)| {
                    (
                        bid(n),
                        BookingItem::Stay {
                            room_type_id: tid(STD),
                            room_id: rid(1),
                            check_in: d(ci),
                            check_out: d(co),
                            guests: 1,
                        },
                    )
                })
                .collect();
        let active: Vec<(BookingId, &BookingItem)> = items.iter().map(|(b, i)| (*b, i)).collect();
        assert_eq!(h.check_invariants(&active), Ok(()));
    }

    #[test]
    fn overlapping_stays_are_refused() {
        let mut h = hotel();
        book(&mut h, 1, &req(STD, Some(1), "2025-03-12", "2025-03-15", 1));
        for (ci, co) in [
            ("2025-03-12", "2025-03-15"), // same
            ("2025-03-11", "2025-03-13"), // overlaps the start
            ("2025-03-14", "2025-03-16"), // overlaps the end
            ("2025-03-13", "2025-03-14"), // inside
            ("2025-03-10", "2025-03-20"), // around
        ] {
            assert_eq!(h.place(&req(STD, Some(1), ci, co, 1), now()), Err(DomainError::NoRoomAvailable), "{ci}..{co}");
        }
        // A later stay on the room must not hide an earlier overlapping one.
        book(&mut h, 2, &req(STD, Some(1), "2025-03-20", "2025-03-22", 1));
        assert_eq!(
            h.place(&req(STD, Some(1), "2025-03-14", "2025-03-17", 1), now()),
            Err(DomainError::NoRoomAvailable)
        );
        assert!(h.place(&req(STD, Some(1), "2025-03-15", "2025-03-20", 1), now()).is_ok(), "the gap fits exactly");
    }

    #[test]
    fn specific_room_is_honoured_or_refused() {
        let mut h = hotel();
        let p = book(&mut h, 1, &req(STD, Some(2), "2025-03-12", "2025-03-14", 1));
        assert_eq!(room_of(&p), rid(2), "asked-for room, not the first free one");
        // 101 is free, but 102 was asked for and is taken: no silent substitution.
        assert_eq!(
            h.place(&req(STD, Some(2), "2025-03-13", "2025-03-15", 1), now()),
            Err(DomainError::NoRoomAvailable)
        );
        assert_eq!(room_of(&h.place(&req(STD, None, "2025-03-13", "2025-03-15", 1), now()).expect("101")), rid(1));
    }

    #[test]
    fn wishes_place_without_a_room_and_check_without_capacity() {
        let mut h = hotel();
        book(&mut h, 1, &req(SUITE, None, "2025-03-12", "2025-03-14", 1));
        let wish =
            Wish::Stay { room_type_id: tid(SUITE), check_in: d("2025-03-13"), check_out: d("2025-03-15"), guests: 4 };
        assert_eq!(h.place_wish(&wish, now()), Err(DomainError::NoRoomAvailable));
        assert_eq!(h.check_wish(&wish, now()), Ok(()), "well-formed even though sold out");
        let wish_std =
            Wish::Stay { room_type_id: tid(STD), check_in: d("2025-03-13"), check_out: d("2025-03-15"), guests: 2 };
        let p = h.place_wish(&wish_std, now()).expect("free");
        assert_eq!(room_of(&p), rid(1));
        assert_eq!(p.amount, eur(10_000 + 15_000));
        let bad =
            Wish::Stay { room_type_id: tid(SUITE), check_in: d("2025-03-13"), check_out: d("2025-03-13"), guests: 5 };
        assert_eq!(fields(&h.check_wish(&bad, now()).expect_err("bad")), vec!["guests", "check_out"]);
        let past =
            Wish::Stay { room_type_id: tid(SUITE), check_in: d("2025-03-01"), check_out: d("2025-03-02"), guests: 1 };
        assert_eq!(h.check_wish(&past, now()), Err(DomainError::TooSoon));
    }

    // --- availability ---

    #[test]
    fn availability_counts_free_rooms_and_prices() {
        let mut h = hotel();
        let a = h.availability(d("2025-03-13"), d("2025-03-16"), None, now()).expect("ok");
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].room_type_id, a[0].total_rooms, a[0].free_rooms), (tid(STD), 2, 2));
        assert_eq!(a[0].total_price, eur(10_000 + 15_000 + 16_000));
        assert_eq!(a[0].name, "Standard");
        assert_eq!((a[1].room_type_id, a[1].total_rooms, a[1].free_rooms), (tid(SUITE), 1, 1));
        assert_eq!(a[1].total_price, eur(3 * 25_000));

        book(&mut h, 1, &req(STD, Some(2), "2025-03-15", "2025-03-17", 1));
        let a = h.availability(d("2025-03-13"), d("2025-03-16"), None, now()).expect("ok");
        assert_eq!(a[0].free_rooms, 1);
        // Ends the day the stay begins: both free.
        let a = h.availability(d("2025-03-13"), d("2025-03-15"), None, now()).expect("ok");
        assert_eq!(a[0].free_rooms, 2);

        // 3 guests: only the suite.
        let a = h.availability(d("2025-03-13"), d("2025-03-16"), Some(3), now()).expect("ok");
        assert_eq!(a.iter().map(|x| x.room_type_id).collect::<Vec<_>>(), vec![tid(SUITE)]);
        assert!(h.availability(d("2025-03-13"), d("2025-03-16"), Some(5), now()).expect("ok").is_empty());
    }

    #[test]
    fn availability_validates_the_range() {
        let h = hotel();
        let e = h.availability(d("2025-03-13"), d("2025-03-13"), None, now()).expect_err("empty");
        assert_eq!(fields(&e), vec!["check_out"]);
        let e = h.availability(d("2025-03-13"), d("2026-03-14"), None, now()).expect_err("long");
        assert_eq!(fields(&e), vec!["check_out"]);
        let e = h.availability(d("2025-03-13"), d("2025-03-14"), Some(0), now()).expect_err("no guests");
        assert_eq!(fields(&e), vec!["guests"]);
        assert_eq!(h.availability(d("2025-03-09"), d("2025-03-14"), None, now()), Err(DomainError::TooSoon));
        assert_eq!(h.availability(d("2026-03-11"), d("2026-03-14"), None, now()), Err(DomainError::TooFarAhead));
        // More guests than any room of any hotel takes: refused before the hotel is asked.
        let e = h.availability(d("2025-03-13"), d("2025-03-14"), Some(MAX_GUESTS + 1), now()).expect_err("crowd");
        assert_eq!(fields(&e), vec!["guests"]);
    }

    /// The search asks this very check before any hotel (no second copy in the gateway): every
    /// bad field at once, the nights when good.
    #[test]
    fn a_stay_query_is_checked_in_one_place_with_every_bad_field() {
        assert_eq!(check_stay_query(d("2025-03-13"), d("2025-03-16"), Some(2)), Ok(3));
        assert_eq!(check_stay_query(d("2025-03-13"), d("2025-03-14"), None), Ok(1));
        for (ci, co, guests, want) in [
            ("2025-03-13", "2025-03-13", None, vec!["check_out"]),
            ("2025-03-14", "2025-03-13", Some(1), vec!["check_out"]),
            ("2025-03-13", "2026-03-14", None, vec!["check_out"]),
            ("2025-03-13", "2025-03-14", Some(0), vec!["guests"]),
            ("2025-03-13", "2025-03-13", Some(MAX_GUESTS + 1), vec!["check_out", "guests"]),
        ] {
            let e = check_stay_query(d(ci), d(co), guests).expect_err("refused");
            assert_eq!(fields(&e), want, "{ci}..{co} with {guests:?}");
        }
        let longest = d("2025-03-13").checked_add(jiff::Span::new().days(MAX_STAY_NIGHTS)).expect("date");
        assert_eq!(check_stay_query(d("2025-03-13"), longest, None), Ok(i64::from(MAX_STAY_NIGHTS)));
    }

    // --- retake ---

    #[test]
    fn retake_keeps_the_room_moves_or_gives_up() {
        let mut h = hotel();
        let item = h.place(&req(STD, None, "2025-03-12", "2025-03-14", 2), now()).expect("ok").item;
        assert_eq!(h.retake(&item), Some(item.clone()), "still free: same room");

        // Someone else took 101 for an overlapping night: move to 102, same dates and guests.
        book(&mut h, 1, &req(STD, Some(1), "2025-03-13", "2025-03-15", 1));
        let moved = h.retake(&item).expect("102 is free");
        assert_eq!(
            moved,
            BookingItem::Stay {
                room_type_id: tid(STD),
                room_id: rid(2),
                check_in: d("2025-03-12"),
                check_out: d("2025-03-14"),
                guests: 2
            }
        );

        book(&mut h, 2, &req(STD, Some(2), "2025-03-11", "2025-03-13", 1));
        assert_eq!(h.retake(&item), None, "no room of the type left");

        // Today/horizon rules do not apply to a retake.
        let old = BookingItem::Stay {
            room_type_id: tid(SUITE),
            room_id: rid(3),
            check_in: d("2025-03-01"),
            check_out: d("2025-03-03"),
            guests: 4,
        };
        assert_eq!(h.retake(&old), Some(old.clone()));
        assert_eq!(h.retake(&BookingItem::Tickets { category_id: None, quantity: 1 }), None);
    }

    // --- respec ---

    #[test]
    fn respec_refuses_to_drop_or_retype_an_occupied_room() {
        let mut h = hotel();
        book(&mut h, 1, &req(STD, Some(1), "2025-03-12", "2025-03-14", 1));

        let mut s = spec();
        s.rooms.remove(0);
        assert!(matches!(h.respec(s), Err(DomainError::ConflictsWithBookings { .. })));

        let mut s = spec();
        s.rooms[0].room_type_id = tid(SUITE);
        assert!(matches!(h.respec(s), Err(DomainError::ConflictsWithBookings { .. })));
        assert_eq!(h.spec(), &spec(), "a refused respec changes nothing");

        let mut s = spec();
        s.time_zone = "Nowhere/Nothing".into();
        assert_eq!(fields(&h.respec(s).expect_err("invalid")), vec!["time_zone"]);
    }

    #[test]
    fn respec_keeps_the_index_across_reordering() {
        let mut h = hotel();
        let p = book(&mut h, 1, &req(STD, Some(1), "2025-03-12", "2025-03-14", 1));

        // Free rooms may go or change type; occupied ones may move in the list or be renumbered.
        let mut s = spec();
        s.rooms.remove(1); // 102, free
        s.rooms[1].room_type_id = tid(STD); // 201, free, now standard
        s.rooms.reverse();
        s.rooms[1].number = "101A".into();
        s.rooms.push(RoomSpec { id: rid(4), number: "103".into(), room_type_id: tid(STD) });
        s.time_zone = "Pacific/Auckland".into();
        h.respec(s).expect("allowed");

        assert_eq!(h.time_zone().iana_name(), Some("Pacific/Auckland"));
        assert_eq!(h.check_invariants(&[(bid(1), &p.item)]), Ok(()));
        assert_eq!(
            h.place(&req(STD, Some(1), "2025-03-13", "2025-03-14", 1), now()),
            Err(DomainError::NoRoomAvailable)
        );
        // First free standard room in the new spec order: 201 (now first), then 103.
        assert_eq!(room_of(&h.place(&req(STD, None, "2025-03-12", "2025-03-14", 1), now()).expect("free")), rid(3));
        let a = h.availability(d("2025-03-12"), d("2025-03-14"), None, now()).expect("ok");
        assert_eq!((a[0].total_rooms, a[0].free_rooms), (3, 2));
        assert_eq!((a[1].total_rooms, a[1].free_rooms), (0, 0));
    }

    // --- ends_at, units, invariants ---

    #[test]
    fn ends_at_is_check_out_time_in_the_hotel_zone() {
        let mut s = spec();
        s.time_zone = "Europe/Berlin".into();
        let h = HotelInventory::new(s).expect("valid");
        let item = BookingItem::Stay {
            room_type_id: tid(STD),
            room_id: rid(1),
            check_in: d("2025-06-13"),
            check_out: d("2025-06-15"),
            guests: 1,
        };
        assert_eq!(h.ends_at(&item), ts("2025-06-15T09:00:00Z"));

        // 02:30 does not exist in New York on 2025-03-09: compatible moves it forward to 03:30 EDT.
        let mut s = spec();
        s.time_zone = "America/New_York".into();
        s.check_out_time = Time::constant(2, 30, 0, 0);
        let h = HotelInventory::new(s).expect("valid");
        let item = BookingItem::Stay {
            room_type_id: tid(STD),
            room_id: rid(1),
            check_in: d("2025-03-08"),
            check_out: d("2025-03-09"),
            guests: 1,
        };
        assert_eq!(h.ends_at(&item), ts("2025-03-09T07:30:00Z"));

        // Out of the timestamp range: no panic.
        let far = BookingItem::Stay {
            room_type_id: tid(STD),
            room_id: rid(1),
            check_in: d("9999-12-30"),
            check_out: Date::MAX,
            guests: 1,
        };
        let _ = h.ends_at(&far);
    }

    #[test]
    fn units_are_nights() {
        let h = hotel();
        let item = BookingItem::Stay {
            room_type_id: tid(STD),
            room_id: rid(1),
            check_in: d("2025-02-27"),
            check_out: d("2025-03-02"),
            guests: 1,
        };
        assert_eq!(h.units(&item), 3);
        assert_eq!(h.units(&BookingItem::Tickets { category_id: None, quantity: 5 }), 0);
    }

    #[test]
    fn check_invariants_catches_disagreement_and_overlap() {
        let mut h = hotel();
        let a = book(&mut h, 1, &req(STD, None, "2025-03-12", "2025-03-14", 1)).item;
        assert_eq!(h.check_invariants(&[(bid(1), &a)]), Ok(()));
        assert!(h.check_invariants(&[]).is_err(), "index holds a stay nobody has");
        let b = BookingItem::Stay {
            room_type_id: tid(STD),
            room_id: rid(1),
            check_in: d("2025-03-13"),
            check_out: d("2025-03-15"),
            guests: 1,
        };
        assert!(h.check_invariants(&[(bid(1), &a), (bid(2), &b)]).is_err(), "overlap / not indexed");
        // Even if forced into the index, an overlap is reported.
        h.take(bid(2), &b);
        let e = h.check_invariants(&[(bid(1), &a), (bid(2), &b)]).expect_err("overlap");
        assert!(e.contains("overlap"), "{e}");
        h.free(bid(2), &b);
        // A free whose item names the wrong check-in still drops what the booking holds.
        let shifted = BookingItem::Stay {
            room_type_id: tid(STD),
            room_id: rid(1),
            check_in: d("2025-03-11"),
            check_out: d("2025-03-14"),
            guests: 1,
        };
        h.free(bid(1), &shifted);
        assert_eq!(h.check_invariants(&[]), Ok(()));
        let wrong_type = BookingItem::Stay {
            room_type_id: tid(SUITE),
            room_id: rid(1),
            check_in: d("2025-03-12"),
            check_out: d("2025-03-14"),
            guests: 1,
        };
        h.take(bid(3), &wrong_type);
        assert!(h.check_invariants(&[(bid(3), &wrong_type)]).is_err());
    }

    // --- property test ---

    #[derive(Clone, Debug)]
    enum Op {
        /// Room type index, optional room index, check-in offset, nights, guests.
        Place { t: usize, room: Option<usize>, start: i64, nights: i64, guests: u16 },
        /// Frees the n-th (modulo) active stay.
        Free(usize),
        /// Retakes the n-th (modulo) freed stay and takes the result.
        Retake(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..2usize, proptest::option::of(0..4usize), 0..30i64, 1..6i64, 1..4u16)
                .prop_map(|(t, room, start, nights, guests)| Op::Place { t, room, start, nights, guests }),
            2 => any::<usize>().prop_map(Op::Free),
            1 => any::<usize>().prop_map(Op::Retake),
        ]
    }

    fn small_hotel() -> HotelInventory {
        let mut s = spec();
        s.time_zone = "UTC".into();
        s.rooms = vec![
            RoomSpec { id: rid(0), number: "1".into(), room_type_id: tid(STD) },
            RoomSpec { id: rid(1), number: "2".into(), room_type_id: tid(SUITE) },
            RoomSpec { id: rid(2), number: "3".into(), room_type_id: tid(STD) },
            RoomSpec { id: rid(3), number: "4".into(), room_type_id: tid(STD) },
        ];
        HotelInventory::new(s).expect("valid")
    }

    fn stay_parts(item: &BookingItem) -> (RoomTypeId, RoomId, Date, Date) {
        match item {
            BookingItem::Stay { room_type_id, room_id, check_in, check_out, .. } => {
                (*room_type_id, *room_id, *check_in, *check_out)
            }
            other => panic!("not a stay: {other:?}"),
        }
    }

    /// Model: is `room` free for `[ci, co)` given the model's active stays?
    fn model_free(model: &[(BookingId, BookingItem)], room: RoomId, ci: Date, co: Date) -> bool {
        model.iter().all(|(_, it)| {
            let (_, r, a, b) = stay_parts(it);
            r != room || b <= ci || co <= a
        })
    }

    #[test]
    fn long_stays_across_many_words_of_night_bits() {
        let mut h = hotel();
        // 300 nights span several 64-night words.
        book(&mut h, 1, &req(STD, Some(1), "2025-03-20", "2026-01-14", 1));
        assert_eq!(
            h.place(&req(STD, Some(1), "2025-08-01", "2025-08-02", 1), now()),
            Err(DomainError::NoRoomAvailable)
        );
        assert_eq!(
            h.place(&req(STD, Some(1), "2026-01-13", "2026-01-20", 1), now()),
            Err(DomainError::NoRoomAvailable)
        );
        assert!(h.place(&req(STD, Some(1), "2026-01-14", "2026-01-20", 1), now()).is_ok());
        assert!(h.place(&req(STD, Some(1), "2025-03-10", "2025-03-20", 1), now()).is_ok());
        let a = h.availability(d("2025-03-10"), d("2026-03-10"), None, now()).expect("ok");
        assert_eq!(a[0].free_rooms, 1);
        assert_eq!(a[0].total_price, eur(365 * 10_000 + 5_000 + 6_000));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The night bits against a plain set of nights, across word boundaries and negative days.
        #[test]
        fn night_bits_match_a_set_of_nights(
            ops in proptest::collection::vec((any::<bool>(), -300i64..300, 0i64..200), 1..40),
            queries in proptest::collection::vec((-400i64..400, 0i64..250), 1..20),
        ) {
            let mut bits = Nights::default();
            let mut model = std::collections::BTreeSet::new();
            for (add, first, len) in ops {
                let r = NightRange { first, end: first + len };
                if add {
                    bits.insert(r);
                    model.extend(first..first + len);
                } else {
                    bits.remove(r);
                    for n in first..first + len {
                        model.remove(&n);
                    }
                }
                prop_assert!(bits.words.first().is_none_or(|&w| w != 0) && bits.words.last().is_none_or(|&w| w != 0));
                for &(qf, ql) in &queries {
                    let free = (qf..qf + ql).all(|n| !model.contains(&n));
                    prop_assert_eq!(bits.is_free(NightRange { first: qf, end: qf + ql }), free, "query {}+{}", qf, ql);
                }
            }
            let mut rebuilt = Nights::default();
            for &n in &model {
                rebuilt.insert(NightRange { first: n, end: n + 1 });
            }
            prop_assert_eq!(bits, rebuilt, "not canonical");
        }

        #[test]
        fn random_place_free_retake_keeps_the_index_right(ops in proptest::collection::vec(op(), 1..60)) {
            let mut h = small_hotel();
            let now = ts("2025-01-01T12:00:00Z");
            let base = d("2025-01-01");
            let types = [tid(STD), tid(SUITE)];
            let mut model: Vec<(BookingId, BookingItem)> = Vec::new();
            let mut freed: Vec<BookingItem> = Vec::new();
            let mut next = 0u128;
            for op in ops {
                match op {
                    Op::Place { t, room, start, nights, guests } => {
                        let ci = base.checked_add(jiff::Span::new().days(start)).expect("date");
                        let co = ci.checked_add(jiff::Span::new().days(nights)).expect("date");
                        let room_id = room.map(|i| rid(i as u128));
                        let r = BookingRequest::Stay { room_type_id: types[t], room_id, check_in: ci, check_out: co, guests };
                        let of_type: Vec<RoomId> =
                            h.spec().rooms.iter().filter(|x| x.room_type_id == types[t]).map(|x| x.id).collect();
                        let cap = h.spec().room_types[t].capacity_guests;
                        match h.place(&r, now) {
                            Ok(p) => {
                                let (pt, pr, pci, pco) = stay_parts(&p.item);
                                prop_assert_eq!((pt, pci, pco), (types[t], ci, co));
                                prop_assert!(guests <= cap);
                                prop_assert!(model_free(&model, pr, ci, co), "assigned a taken room");
                                match room_id {
                                    Some(want) => prop_assert_eq!(pr, want),
                                    None => {
                                        let first = of_type.iter().copied().find(|&x| model_free(&model, x, ci, co));
                                        prop_assert_eq!(Some(pr), first, "not the first free room");
                                    }
                                }
                                next += 1;
                                h.take(bid(next), &p.item);
                                model.push((bid(next), p.item));
                            }
                            Err(DomainError::NoRoomAvailable) => {
                                match room_id {
                                    Some(want) => prop_assert!(!model_free(&model, want, ci, co)),
                                    None => prop_assert!(of_type.iter().all(|&x| !model_free(&model, x, ci, co))),
                                }
                            }
                            Err(DomainError::Validation(_)) => {
                                let bad_room = room_id.is_some_and(|x| !of_type.contains(&x));
                                prop_assert!(guests > cap || bad_room);
                            }
                            Err(e) => prop_assert!(false, "unexpected error {e:?}"),
                        }
                        if let Ok(a) = h.availability(ci, co, None, now) {
                            let free = of_type.iter().filter(|&&x| model_free(&model, x, ci, co)).count();
                            prop_assert_eq!(a[t].free_rooms as usize, free);
                        }
                    }
                    Op::Free(n) => {
                        if !model.is_empty() {
                            let (id, item) = model.remove(n % model.len());
                            h.free(id, &item);
                            freed.push(item);
                        }
                    }
                    Op::Retake(n) => {
                        if !freed.is_empty() {
                            let old = freed[n % freed.len()].clone();
                            if let Some(item) = h.retake(&old) {
                                let (ot, _, oci, oco) = stay_parts(&old);
                                let (nt, nr, nci, nco) = stay_parts(&item);
                                prop_assert_eq!((nt, nci, nco), (ot, oci, oco));
                                prop_assert!(model_free(&model, nr, nci, nco), "retake onto a taken room");
                                next += 1;
                                h.take(bid(next), &item);
                                model.push((bid(next), item));
                            } else {
                                let (ot, _, oci, oco) = stay_parts(&old);
                                prop_assert!(h.spec().rooms.iter().filter(|x| x.room_type_id == ot).all(|x| !model_free(&model, x.id, oci, oco)));
                            }
                        }
                    }
                }
                let active: Vec<(BookingId, &BookingItem)> = model.iter().map(|(b, i)| (*b, i)).collect();
                prop_assert_eq!(h.check_invariants(&active), Ok(()));
                for (i, (_, a)) in model.iter().enumerate() {
                    let (_, ra, ai, ao) = stay_parts(a);
                    for (_, b) in &model[i + 1..] {
                        let (_, rb, bi, bo) = stay_parts(b);
                        prop_assert!(ra != rb || ao <= bi || bo <= ai, "model stays overlap: {:?} {:?}", a, b);
                    }
                }
            }
        }
    }
}
