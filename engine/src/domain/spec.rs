//! What an owner declares about a resource. `ResourceSpec::validate` is the single place that
//! decides whether a specification is acceptable; the kind modules hold their own rules.

use super::booking::BookingItem;
use super::error::{Problems, SpecError};
use super::event::EventSpec;
use super::hotel::HotelSpec;
use super::ids::UserId;
use super::provider::ProviderSpec;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

pub const MAX_NAME_CHARS: usize = 200;
/// Holds longer than a day are reservations in disguise; offers get up to a week.
pub const MAX_HOLD_TTL_SECS: u32 = 86_400;
pub const MAX_OFFER_TTL_SECS: u32 = 7 * 86_400;
/// What a resource gets when its owner names no TTL: a quarter of an hour to pay for a hold,
/// an hour to answer a waitlist offer.
pub const DEFAULT_HOLD_TTL_SECS: u32 = 900;
pub const DEFAULT_OFFER_TTL_SECS: u32 = 3_600;
/// An owner's reference: short enough for a channel manager's id field and a URL query.
pub const MAX_REFERENCE_CHARS: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    pub name: String,
    pub owner_id: UserId,
    /// The owner's own name for this resource ("0", "berlin-1"): what a system moving here
    /// already calls it. Unique among one owner's resources; letters, digits, `.`, `_`, `-`,
    /// starting with a letter or digit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", max_length = 64))]
    pub reference: Option<String>,
    /// How long a hold keeps capacity before it expires unless confirmed.
    pub hold_ttl_secs: u32,
    /// How long a waitlist offer keeps the freed capacity for the offered client.
    pub offer_ttl_secs: u32,
    pub kind: KindSpec,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KindSpec {
    Hotel(HotelSpec),
    Event(EventSpec),
    Provider(ProviderSpec),
}

impl KindSpec {
    /// When the service `item` books is over, as this kind's `Inventory::ends_at` decides it,
    /// computed from the spec alone (no inventory index to build): what "upcoming" and "past"
    /// mean in booking listings. The Postgres store computes the same in SQL.
    pub fn service_ends_at(&self, item: &BookingItem) -> Timestamp {
        match (self, item) {
            (KindSpec::Hotel(h), BookingItem::Stay { check_out, .. }) => {
                // A spec in the store was validated, so its zone parses; UTC is the safe fallback.
                let tz = TimeZone::get(&h.time_zone).unwrap_or(TimeZone::UTC);
                super::hotel::stay_ends_at(&tz, *check_out, h.check_out_time)
            }
            (KindSpec::Event(e), BookingItem::Tickets { .. }) => e.ends_at,
            (KindSpec::Provider(_), BookingItem::Appointment { ends_at, .. }) => *ends_at,
            // An item of another kind never happens here; it never ends rather than ended.
            _ => Timestamp::MAX,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Hotel,
    Event,
    Provider,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Hotel => "hotel",
            ResourceKind::Event => "event",
            ResourceKind::Provider => "provider",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hotel" => Some(ResourceKind::Hotel),
            "event" => Some(ResourceKind::Event),
            "provider" => Some(ResourceKind::Provider),
            _ => None,
        }
    }
}

impl KindSpec {
    pub fn kind(&self) -> ResourceKind {
        match self {
            KindSpec::Hotel(_) => ResourceKind::Hotel,
            KindSpec::Event(_) => ResourceKind::Event,
            KindSpec::Provider(_) => ResourceKind::Provider,
        }
    }
}

impl ResourceSpec {
    /// Checks the common fields; the kind's own rules are checked when its inventory is built.
    pub fn validate_common(&self) -> Result<(), SpecError> {
        let mut p = Problems::default();
        if let Err(e) = check_name(&self.name) {
            p.push("name", e);
        }
        if let Some(r) = &self.reference
            && let Err(e) = check_reference(r)
        {
            p.push("reference", e);
        }
        p.check(
            (1..=MAX_HOLD_TTL_SECS).contains(&self.hold_ttl_secs),
            "hold_ttl_secs",
            format!("must be between 1 and {MAX_HOLD_TTL_SECS}"),
        );
        p.check(
            (1..=MAX_OFFER_TTL_SECS).contains(&self.offer_ttl_secs),
            "offer_ttl_secs",
            format!("must be between 1 and {MAX_OFFER_TTL_SECS}"),
        );
        p.into_result(())
    }
}

/// A display name: 1..=200 characters, not blank, no control characters.
pub fn check_name(name: &str) -> Result<(), String> {
    let n = name.chars().count();
    if name.trim().is_empty() {
        Err("must not be blank".into())
    } else if n > MAX_NAME_CHARS {
        Err(format!("must be at most {MAX_NAME_CHARS} characters"))
    } else if name.chars().any(char::is_control) {
        Err("must not contain control characters".into())
    } else {
        Ok(())
    }
}

/// An owner's reference: 1..=64 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit, so it
/// fits in a URL query and a feed's id field unescaped.
pub fn check_reference(reference: &str) -> Result<(), String> {
    let mut chars = reference.chars();
    match chars.next() {
        None => return Err("must not be empty".into()),
        Some(c) if !c.is_ascii_alphanumeric() => return Err("must start with a letter or a digit".into()),
        Some(_) => {}
    }
    if reference.chars().count() > MAX_REFERENCE_CHARS {
        return Err(format!("must be at most {MAX_REFERENCE_CHARS} characters"));
    }
    if chars.any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err("may hold only letters, digits, '.', '_' and '-'".into());
    }
    // Where a resource id or a reference may be given, a UUID is read as the id.
    if uuid::Uuid::parse_str(reference).is_ok() {
        return Err("must not be a UUID (it would read as a resource id)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::EventInventory;
    use crate::domain::hotel::HotelInventory;
    use crate::domain::ids::{RoomId, RoomTypeId};
    use crate::domain::inventory::Inventory;
    use crate::domain::provider::ProviderInventory;
    use crate::fixtures;
    use uuid::Uuid;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn service_ends_at_agrees_with_each_inventory() {
        let owner = UserId::new_v7();
        let now = ts("2030-01-07T08:00:00Z");
        // Berlin, check-out 11:00: in winter 10:00 UTC, in summer 09:00 UTC.
        let hotel = fixtures::hotel(owner, "H", "Berlin", 1, 1).kind;
        let KindSpec::Hotel(h) = &hotel else { panic!("a hotel") };
        let inv = HotelInventory::new(h.clone()).expect("valid");
        for (check_out, want) in [("2030-03-03", "2030-03-03T10:00:00Z"), ("2030-07-03", "2030-07-03T09:00:00Z")] {
            let stay = BookingItem::Stay {
                room_type_id: RoomTypeId(Uuid::nil()),
                room_id: RoomId(Uuid::nil()),
                check_in: "2030-03-01".parse().expect("date"),
                check_out: check_out.parse().expect("date"),
                guests: 1,
            };
            assert_eq!(hotel.service_ends_at(&stay), ts(want), "check-out {check_out}");
            assert_eq!(hotel.service_ends_at(&stay), inv.ends_at(&stay));
        }

        let event = fixtures::event(owner, "E", 10, now).kind;
        let KindSpec::Event(e) = &event else { panic!("an event") };
        let tickets = BookingItem::Tickets { category_id: None, quantity: 2 };
        assert_eq!(event.service_ends_at(&tickets), e.ends_at);
        assert_eq!(event.service_ends_at(&tickets), EventInventory::new(e.clone()).expect("valid").ends_at(&tickets));

        let provider = fixtures::provider(owner, "P").kind;
        let KindSpec::Provider(p) = &provider else { panic!("a provider") };
        let appt =
            BookingItem::Appointment { starts_at: ts("2030-01-08T09:00:00Z"), ends_at: ts("2030-01-08T09:30:00Z") };
        assert_eq!(provider.service_ends_at(&appt), ts("2030-01-08T09:30:00Z"));
        assert_eq!(provider.service_ends_at(&appt), ProviderInventory::new(p.clone()).expect("valid").ends_at(&appt));

        // An item of another kind never ends.
        assert_eq!(event.service_ends_at(&appt), Timestamp::MAX);
    }

    #[test]
    fn a_reference_is_short_and_url_safe() {
        for ok in ["0", "101", "berlin-1", "Hotel_A.2", &"x".repeat(MAX_REFERENCE_CHARS)] {
            assert_eq!(check_reference(ok), Ok(()), "{ok:?}");
        }
        let uuid = "0190f1c2-0000-7000-8000-000000000001";
        for bad in ["", "-1", ".a", "a b", "a/b", "ä", "a?x=1", uuid, &"x".repeat(MAX_REFERENCE_CHARS + 1)] {
            assert!(check_reference(bad).is_err(), "{bad:?} accepted");
        }
        let mut spec = fixtures::provider(UserId::new_v7(), "P");
        spec.reference = Some("bad ref".into());
        let problems = spec.validate_common().expect_err("bad reference accepted");
        assert!(format!("{problems:?}").contains("reference"), "{problems:?}");
        spec.reference = Some("clinic-7".into());
        assert_eq!(spec.validate_common(), Ok(()));
    }
}
