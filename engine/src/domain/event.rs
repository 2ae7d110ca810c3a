//! Events: a fixed capacity, optionally split into ticket categories, sold by quantity.

use super::booking::{BookingItem, BookingRequest, Wish};
use super::error::{DomainError, Problems, SpecError};
use super::ids::{BookingId, CategoryId};
use super::inventory::{Inventory, Placement};
use super::money::{Currency, MAX_UNIT_PRICE_MINOR, Money};
use super::spec::check_name;
use super::stats::TallyDay;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub const MAX_EVENT_CAPACITY: u32 = 10_000_000;
pub const MAX_PER_BOOKING_LIMIT: u32 = 1_000;
pub const MAX_CATEGORIES: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 10_000_000))]
    pub capacity: u32,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_000))]
    pub max_per_booking: u32,
    pub currency: Currency,
    /// Price of one ticket when the event has no categories.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 10_000_000_000.0))]
    pub price_minor: i64,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 100))]
    pub categories: Vec<CategorySpec>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CategorySpec {
    pub id: CategoryId,
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub capacity: u32,
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 10_000_000_000.0))]
    pub price_minor: i64,
}

impl EventSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        let mut p = Problems::default();
        p.check(self.ends_at > self.starts_at, "ends_at", "must be after starts_at");
        p.check(
            (1..=MAX_EVENT_CAPACITY).contains(&self.capacity),
            "capacity",
            format!("must be between 1 and {MAX_EVENT_CAPACITY}"),
        );
        p.check(
            (1..=MAX_PER_BOOKING_LIMIT).contains(&self.max_per_booking),
            "max_per_booking",
            format!("must be between 1 and {MAX_PER_BOOKING_LIMIT}"),
        );
        p.check(
            (0..=MAX_UNIT_PRICE_MINOR).contains(&self.price_minor),
            "price_minor",
            format!("must be between 0 and {MAX_UNIT_PRICE_MINOR}"),
        );
        p.check(self.categories.len() <= MAX_CATEGORIES, "categories", format!("at most {MAX_CATEGORIES}"));
        let mut seen = std::collections::HashSet::new();
        let mut sum: u64 = 0;
        for (i, c) in self.categories.iter().enumerate() {
            p.check(seen.insert(c.id), format!("categories[{i}].id"), "duplicate category id");
            if let Err(e) = check_name(&c.name) {
                p.push(format!("categories[{i}].name"), e);
            }
            p.check(c.capacity >= 1, format!("categories[{i}].capacity"), "must be at least 1");
            p.check(
                (0..=MAX_UNIT_PRICE_MINOR).contains(&c.price_minor),
                format!("categories[{i}].price_minor"),
                format!("must be between 0 and {MAX_UNIT_PRICE_MINOR}"),
            );
            sum += u64::from(c.capacity);
        }
        p.check(
            sum <= u64::from(self.capacity),
            "categories",
            "the category capacities add up to more than the event capacity",
        );
        p.into_result(())
    }
}

/// Per-category and total tickets taken (held + confirmed).
#[derive(Clone, Debug)]
pub struct EventInventory {
    spec: EventSpec,
    taken_total: u64,
    taken_by_category: HashMap<CategoryId, u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventAvailability {
    pub capacity: u32,
    pub taken: u64,
    pub remaining: u64,
    pub categories: Vec<CategoryAvailability>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CategoryAvailability {
    pub id: CategoryId,
    pub name: String,
    pub capacity: u32,
    pub taken: u64,
    /// Also bounded by what is left of the whole event.
    pub remaining: u64,
    pub price: Money,
}

impl EventInventory {
    pub fn new(spec: EventSpec) -> Result<Self, SpecError> {
        spec.validate()?;
        Ok(EventInventory { spec, taken_total: 0, taken_by_category: HashMap::new() })
    }

    pub fn spec(&self) -> &EventSpec {
        &self.spec
    }

    /// Replaces the specification; refused if the tickets already taken would not fit it.
    pub fn respec(&mut self, spec: EventSpec) -> Result<(), DomainError> {
        spec.validate()?;
        if self.taken_total > u64::from(spec.capacity) {
            return Err(DomainError::conflicts(format!(
                "{} tickets are taken, more than the new capacity {}",
                self.taken_total, spec.capacity
            )));
        }
        for (cat, taken) in &self.taken_by_category {
            match spec.categories.iter().find(|c| c.id == *cat) {
                Some(c) if u64::from(c.capacity) >= *taken => {}
                _ if *taken == 0 => {}
                _ => {
                    return Err(DomainError::conflicts(format!(
                        "category {cat} has {taken} tickets taken that the new categories do not hold"
                    )));
                }
            }
        }
        self.spec = spec;
        Ok(())
    }

    pub fn availability(&self) -> EventAvailability {
        let remaining = u64::from(self.spec.capacity).saturating_sub(self.taken_total);
        EventAvailability {
            capacity: self.spec.capacity,
            taken: self.taken_total,
            remaining,
            categories: self
                .spec
                .categories
                .iter()
                .map(|c| {
                    let taken = self.taken_by_category.get(&c.id).copied().unwrap_or(0);
                    CategoryAvailability {
                        id: c.id,
                        name: c.name.clone(),
                        capacity: c.capacity,
                        taken,
                        remaining: u64::from(c.capacity).saturating_sub(taken).min(remaining),
                        price: Money::new(c.price_minor, self.spec.currency),
                    }
                })
                .collect(),
        }
    }

    /// Unit price for a category (or the event price), after checking the category exists.
    fn unit_price(&self, category_id: Option<CategoryId>) -> Result<(i64, Option<u32>), DomainError> {
        match (category_id, self.spec.categories.is_empty()) {
            (None, true) => Ok((self.spec.price_minor, None)),
            (None, false) => {
                Err(DomainError::validation("category_id", "this event sells tickets by category: name one"))
            }
            (Some(id), _) => self
                .spec
                .categories
                .iter()
                .find(|c| c.id == id)
                .map(|c| (c.price_minor, Some(c.capacity)))
                .ok_or_else(|| DomainError::validation("category_id", "no such ticket category")),
        }
    }

    fn check_quantity(&self, quantity: u32) -> Result<(), DomainError> {
        if quantity == 0 || quantity > self.spec.max_per_booking {
            return Err(DomainError::validation(
                "quantity",
                format!("must be between 1 and {} for this event", self.spec.max_per_booking),
            ));
        }
        Ok(())
    }

    fn fits(&self, category_id: Option<CategoryId>, quantity: u32, category_cap: Option<u32>) -> bool {
        let q = u64::from(quantity);
        if self.taken_total + q > u64::from(self.spec.capacity) {
            return false;
        }
        match (category_id, category_cap) {
            (Some(id), Some(cap)) => self.taken_by_category.get(&id).copied().unwrap_or(0) + q <= u64::from(cap),
            _ => true,
        }
    }

    fn place_tickets(
        &self,
        category_id: Option<CategoryId>,
        quantity: u32,
        now: Timestamp,
    ) -> Result<Placement, DomainError> {
        self.check_quantity(quantity)?;
        let (price, cap) = self.unit_price(category_id)?;
        if now >= self.spec.starts_at {
            return Err(DomainError::EventStarted);
        }
        if !self.fits(category_id, quantity, cap) {
            return Err(DomainError::SoldOut);
        }
        let amount = Money::new(price, self.spec.currency)
            .checked_mul(i64::from(quantity))
            .ok_or_else(|| DomainError::validation("quantity", "total price out of range"))?;
        Ok(Placement { item: BookingItem::Tickets { category_id, quantity }, amount })
    }
}

fn wrong_kind() -> DomainError {
    DomainError::WrongResourceKind { kind: "event".into() }
}

impl Inventory for EventInventory {
    fn place(&self, req: &BookingRequest, now: Timestamp) -> Result<Placement, DomainError> {
        match req {
            BookingRequest::Tickets { category_id, quantity } => self.place_tickets(*category_id, *quantity, now),
            _ => Err(wrong_kind()),
        }
    }

    fn place_wish(&self, wish: &Wish, now: Timestamp) -> Result<Placement, DomainError> {
        match wish {
            Wish::Tickets { category_id, quantity } => self.place_tickets(*category_id, *quantity, now),
            _ => Err(wrong_kind()),
        }
    }

    fn check_wish(&self, wish: &Wish, now: Timestamp) -> Result<(), DomainError> {
        match wish {
            Wish::Tickets { category_id, quantity } => {
                self.check_quantity(*quantity)?;
                self.unit_price(*category_id)?;
                if now >= self.spec.starts_at {
                    return Err(DomainError::EventStarted);
                }
                Ok(())
            }
            _ => Err(wrong_kind()),
        }
    }

    fn take(&mut self, _id: BookingId, item: &BookingItem) {
        if let BookingItem::Tickets { category_id, quantity } = item {
            self.taken_total += u64::from(*quantity);
            if let Some(c) = category_id {
                *self.taken_by_category.entry(*c).or_insert(0) += u64::from(*quantity);
            }
        }
    }

    fn free(&mut self, _id: BookingId, item: &BookingItem) {
        if let BookingItem::Tickets { category_id, quantity } = item {
            self.taken_total = self.taken_total.saturating_sub(u64::from(*quantity));
            if let Some(t) = category_id.and_then(|c| self.taken_by_category.get_mut(&c)) {
                *t = t.saturating_sub(u64::from(*quantity));
            }
        }
    }

    fn retake(&self, item: &BookingItem) -> Option<BookingItem> {
        match item {
            BookingItem::Tickets { category_id, quantity } => {
                let (_, cap) = self.unit_price(*category_id).ok()?;
                self.fits(*category_id, *quantity, cap).then(|| item.clone())
            }
            _ => None,
        }
    }

    fn ends_at(&self, _item: &BookingItem) -> Timestamp {
        self.spec.ends_at
    }

    fn units(&self, item: &BookingItem) -> u64 {
        match item {
            BookingItem::Tickets { quantity, .. } => u64::from(*quantity),
            _ => 0,
        }
    }

    fn tally_days(&self, item: &BookingItem, created_at: Timestamp) -> Vec<TallyDay> {
        let BookingItem::Tickets { quantity, .. } = item else { return Vec::new() };
        // The day of sale, in UTC: an event has no time zone of its own.
        let day = jiff::tz::TimeZone::UTC.to_datetime(created_at).date();
        vec![TallyDay { day, units: i64::from(*quantity), minutes: 0 }]
    }

    fn check_invariants(&self, active: &[(BookingId, &BookingItem)]) -> Result<(), String> {
        let mut total = 0u64;
        let mut by_cat: HashMap<CategoryId, u64> = HashMap::new();
        for (_, item) in active {
            if let BookingItem::Tickets { category_id, quantity } = item {
                total += u64::from(*quantity);
                if let Some(c) = category_id {
                    *by_cat.entry(*c).or_insert(0) += u64::from(*quantity);
                }
            } else {
                return Err(format!("non-ticket item on an event: {item:?}"));
            }
        }
        if total != self.taken_total {
            return Err(format!("index says {} taken, active bookings hold {total}", self.taken_total));
        }
        if total > u64::from(self.spec.capacity) {
            return Err(format!("oversold: {total} > capacity {}", self.spec.capacity));
        }
        for c in &self.spec.categories {
            let t = by_cat.get(&c.id).copied().unwrap_or(0);
            if t > u64::from(c.capacity) {
                return Err(format!("category {} oversold: {t} > {}", c.id, c.capacity));
            }
            if self.taken_by_category.get(&c.id).copied().unwrap_or(0) != t {
                return Err(format!("category {} index out of step", c.id));
            }
        }
        Ok(())
    }
}
