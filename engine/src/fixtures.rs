//! Sample resources for demos, tests and benchmarks: valid specifications built around `now`.

use crate::domain::event::{CategorySpec, EventSpec};
use crate::domain::hotel::{HotelSpec, RoomSpec, RoomTypeSpec};
use crate::domain::ids::{CategoryId, RoomId, RoomTypeId, UserId};
use crate::domain::money::Currency;
use crate::domain::provider::{DayHours, LocalInterval, ProviderSpec};
use crate::domain::spec::{KindSpec, ResourceSpec};
use jiff::civil::Time;
use jiff::{SignedDuration, Timestamp};
use std::collections::BTreeMap;
use uuid::Uuid;

fn eur() -> Currency {
    Currency::parse("EUR").unwrap_or_else(|_| unreachable!("EUR is a valid code"))
}

/// A deterministic id from a label, so fixtures built twice agree.
pub fn fixed_id(label: &str, n: u32) -> Uuid {
    let mut bytes = [0u8; 16];
    for (i, b) in label.bytes().enumerate() {
        bytes[i % 12] ^= b;
    }
    bytes[12..].copy_from_slice(&n.to_be_bytes());
    Uuid::from_bytes(bytes)
}

/// General-admission event starting 30 days after `now`, one ticket for 25.00 EUR.
pub fn event(owner: UserId, name: &str, capacity: u32, now: Timestamp) -> ResourceSpec {
    let starts_at = now + SignedDuration::from_hours(24 * 30);
    ResourceSpec {
        name: name.to_owned(),
        owner_id: owner,
        hold_ttl_secs: 600,
        offer_ttl_secs: 3_600,
        reference: None,
        kind: KindSpec::Event(EventSpec {
            starts_at,
            ends_at: starts_at + SignedDuration::from_hours(3),
            capacity,
            max_per_booking: 10,
            currency: eur(),
            price_minor: 2_500,
            categories: Vec::new(),
        }),
    }
}

/// An event with two ticket categories ("Stalls" and "Balcony") filling its capacity.
pub fn event_with_categories(owner: UserId, name: &str, stalls: u32, balcony: u32, now: Timestamp) -> ResourceSpec {
    let mut spec = event(owner, name, stalls + balcony, now);
    if let KindSpec::Event(e) = &mut spec.kind {
        e.categories = vec![
            CategorySpec {
                id: CategoryId(fixed_id(name, 1)),
                name: "Stalls".into(),
                capacity: stalls,
                price_minor: 4_000,
            },
            CategorySpec {
                id: CategoryId(fixed_id(name, 2)),
                name: "Balcony".into(),
                capacity: balcony,
                price_minor: 2_000,
            },
        ];
    }
    spec
}

/// A hotel in `city` with a "Double" type (2 guests, 100.00 EUR) and a "Suite" type (4 guests,
/// 250.00 EUR), `doubles` and `suites` rooms numbered 101.. and 201..
pub fn hotel(owner: UserId, name: &str, city: &str, doubles: u32, suites: u32) -> ResourceSpec {
    let double = RoomTypeId(fixed_id(name, 1));
    let suite = RoomTypeId(fixed_id(name, 2));
    let mut rooms = Vec::new();
    for i in 0..doubles {
        rooms.push(RoomSpec {
            id: RoomId(fixed_id(name, 1_000 + i)),
            number: format!("{}", 101 + i),
            room_type_id: double,
        });
    }
    for i in 0..suites {
        rooms.push(RoomSpec {
            id: RoomId(fixed_id(name, 2_000 + i)),
            number: format!("{}", 201 + i),
            room_type_id: suite,
        });
    }
    ResourceSpec {
        name: name.to_owned(),
        owner_id: owner,
        hold_ttl_secs: 900,
        offer_ttl_secs: 3_600,
        reference: None,
        kind: KindSpec::Hotel(HotelSpec {
            city: city.to_owned(),
            time_zone: "Europe/Berlin".into(),
            currency: eur(),
            check_out_time: Time::constant(11, 0, 0, 0),
            booking_horizon_days: 730,
            room_types: vec![
                RoomTypeSpec {
                    id: double,
                    name: "Double".into(),
                    capacity_guests: 2,
                    base_price_minor: 10_000,
                    price_overrides: BTreeMap::new(),
                },
                RoomTypeSpec {
                    id: suite,
                    name: "Suite".into(),
                    capacity_guests: 4,
                    base_price_minor: 25_000,
                    price_overrides: BTreeMap::new(),
                },
            ],
            rooms,
        }),
    }
}

/// A provider in Europe/Berlin working Monday to Friday 09:00–12:00 and 13:00–17:00, with
/// 30-minute appointments, a 10-minute buffer and one hour of minimum notice.
pub fn provider(owner: UserId, name: &str) -> ResourceSpec {
    let day = |weekday| DayHours {
        weekday,
        intervals: vec![
            LocalInterval { start_minute: 9 * 60, end_minute: 12 * 60 },
            LocalInterval { start_minute: 13 * 60, end_minute: 17 * 60 },
        ],
    };
    ResourceSpec {
        name: name.to_owned(),
        owner_id: owner,
        hold_ttl_secs: 600,
        offer_ttl_secs: 3_600,
        reference: None,
        kind: KindSpec::Provider(ProviderSpec {
            time_zone: "Europe/Berlin".into(),
            currency: eur(),
            price_minor: 6_000,
            slot_minutes: 30,
            buffer_minutes: 10,
            min_notice_minutes: 60,
            booking_horizon_days: 90,
            weekly: (1..=5).map(day).collect(),
            overrides: Vec::new(),
        }),
    }
}

/// The same resource with every price 0: what a client may book and confirm at once without a
/// payment (load tests that measure booking, not paying, use these).
pub fn free(mut spec: ResourceSpec) -> ResourceSpec {
    match &mut spec.kind {
        KindSpec::Event(e) => {
            e.price_minor = 0;
            e.categories.iter_mut().for_each(|c| c.price_minor = 0);
        }
        KindSpec::Hotel(h) => h.room_types.iter_mut().for_each(|t| {
            t.base_price_minor = 0;
            t.price_overrides.clear();
        }),
        KindSpec::Provider(p) => p.price_minor = 0,
    }
    spec
}
