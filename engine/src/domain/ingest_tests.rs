//! The feed's rules, decided by the pure state machine: one-night confirmed stays in the named
//! room, refusals per event, cancellations only of the feed's own stays, replays answered the
//! same, and dashboard counters that follow every move.

use super::*;
use crate::domain::booking::{BookingRequest, BookingStatus, Requester};
use crate::domain::command::{Change, Command, Outcome};
use crate::domain::ids::{ResourceId, UserId};
use crate::domain::state::ResourceState;
use crate::domain::stats::DayStats;
use crate::fixtures;
use jiff::Timestamp;
use jiff::civil::{Date, date};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

fn owner() -> UserId {
    UserId(Uuid::from_u128(99))
}
fn now() -> Timestamp {
    "2027-06-01T10:00:00Z".parse().expect("now")
}
/// A hotel with rooms 101..=102 (doubles, 100.00 EUR) and 201 (suite, 250.00 EUR).
fn hotel() -> ResourceState {
    let spec = fixtures::hotel(owner(), "Feed Hotel", "Berlin", 2, 1);
    let mut s = ResourceState::create(ResourceId(Uuid::from_u128(7)), spec).expect("hotel");
    s.take_changes();
    s
}
fn ev(key: &str, room: &str, night: Date, action: IngestAction) -> IngestEvent {
    // The shell derives the id from the event; any fixed mapping will do here.
    let mut h: u128 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h = (h ^ u128::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    IngestEvent {
        key: key.to_owned(),
        booking_id: crate::domain::ids::BookingId(Uuid::from_u128(h)),
        room: room.to_owned(),
        night,
        action,
    }
}
fn book(key: &str, room: &str, night: Date) -> IngestEvent {
    ev(key, room, night, IngestAction::Book)
}
fn cancel(key: &str, room: &str, night: Date) -> IngestEvent {
    ev(key, room, night, IngestAction::Cancel)
}
fn ingest(s: &mut ResourceState, events: Vec<IngestEvent>) -> Vec<IngestResult> {
    let by = Requester::Owner(owner());
    match s.apply(Command::Ingest { events, by }, None, now()) {
        Ok(Outcome::Ingested { results }) => {
            s.check_invariants().expect("invariants");
            results
        }
        other => panic!("ingest answered {other:?}"),
    }
}
fn codes(r: &[IngestResult]) -> Vec<String> {
    r.iter()
        .map(|x| match x.status {
            IngestStatus::Booked => "booked".to_owned(),
            IngestStatus::Cancelled => "cancelled".to_owned(),
            IngestStatus::Rejected => x.code.clone().unwrap_or_default(),
        })
        .collect()
}
fn tallies(changes: &[Change]) -> BTreeMap<Date, DayStats> {
    let mut m: BTreeMap<Date, DayStats> = BTreeMap::new();
    for c in changes {
        if let Change::Tally(t) = c {
            m.entry(t.day).or_insert_with(|| DayStats::zero(t.day)).add(t);
        }
    }
    m.retain(|_, t| !t.is_zero());
    m
}

#[test]
fn a_booked_night_is_a_confirmed_one_night_stay_in_that_room() {
    let mut s = hotel();
    let night = date(2028, 2, 29);
    let r = ingest(&mut s, vec![book("a", "101", night)]);
    assert_eq!(codes(&r), ["booked"]);
    let id = r[0].booking_id.expect("id");
    let b = s.booking(id).expect("booking").clone();
    assert_eq!(b.status, BookingStatus::Confirmed);
    assert_eq!(b.user_id, owner());
    assert!(matches!(b.item, crate::domain::booking::BookingItem::Stay { check_in, check_out, .. }
        if check_in == night && check_out == date(2028, 3, 1)));
    let ch = s.take_changes();
    assert!(!ch.iter().any(|c| matches!(c, Change::Notify(_))), "the feed's guest is not our user: no notification");
    let t = tallies(&ch);
    assert_eq!(t.len(), 1);
    assert_eq!((t[&night].booked_units, t[&night].booked_minor), (1, 10_000));
}

#[test]
fn a_taken_room_night_is_refused_per_event_and_the_rest_of_the_batch_goes_on() {
    let mut s = hotel();
    let n = date(2028, 1, 31);
    let r = ingest(
        &mut s,
        vec![
            book("a", "101", n),
            book("b", "101", n),
            book("c", "102", n),
            book("d", "999", n),
            book("e", "101", date(2020, 1, 1)),
        ],
    );
    assert_eq!(codes(&r), ["booked", "room_night_taken", "booked", "room_not_found", "too_soon"]);
    // A room can also be named by its id.
    let room_id = fixtures::fixed_id("Feed Hotel", 2_000).to_string();
    let r = ingest(&mut s, vec![book("f", &room_id, n), book("g", "201", n)]);
    assert_eq!(codes(&r), ["booked", "room_night_taken"]);
}

#[test]
fn replays_answer_the_first_result_and_change_nothing() {
    let mut s = hotel();
    let n = date(2028, 3, 1);
    let first = ingest(&mut s, vec![book("a", "101", n), book("b", "101", n)]);
    s.take_changes();
    // Free the room: the refused event must still be refused when replayed.
    let c = ingest(&mut s, vec![cancel("x", "101", n)]);
    assert_eq!(codes(&c), ["cancelled"]);
    s.take_changes();
    let again = ingest(&mut s, vec![book("a", "101", n), book("b", "101", n), cancel("x", "101", n)]);
    assert_eq!(again[..2], first[..]);
    assert_eq!(again[2], c[0]);
    assert!(s.take_changes().is_empty(), "a replay writes nothing");
    // Duplicates inside one batch too.
    let r = ingest(&mut s, vec![book("z", "102", n), book("z", "102", n)]);
    assert_eq!(r[0], r[1]);
    assert_eq!(s.counters().confirmed_bookings, 1);
}

#[test]
fn a_replayed_booking_that_left_memory_is_found_again_not_rebooked() {
    let mut s = hotel();
    let n = date(2028, 3, 2);
    let r = ingest(&mut s, vec![book("a", "101", n)]);
    ingest(&mut s, vec![cancel("c", "101", n)]);
    s.take_changes();
    let b = s.booking(r[0].booking_id.expect("id")).expect("b").clone();
    let replay = Command::Ingest { events: vec![book("a", "101", n)], by: Requester::Owner(owner()) };
    assert!(s.feed_lookups(&replay).is_empty(), "still in memory: nothing to fetch");
    s.evict_inactive();
    assert!(s.booking(b.id).is_none());
    // The state remembers that the store holds it, so the actor fetches it first...
    assert_eq!(s.feed_lookups(&replay), [b.id]);
    // ...and puts back what the store has.
    s.admit_inactive(b);
    let again = ingest(&mut s, vec![book("a", "101", n)]);
    assert_eq!(again, r);
    assert!(s.take_changes().is_empty());
}

#[test]
fn a_replay_is_known_by_its_key_even_when_its_booking_id_was_derived_otherwise() {
    let mut s = hotel();
    let n = date(2028, 3, 3);
    let first = ingest(&mut s, vec![book("a", "101", n)]);
    s.take_changes();
    let mut replay = book("a", "101", n);
    replay.booking_id = crate::domain::ids::BookingId(Uuid::from_u128(12_345));
    let again = ingest(&mut s, vec![replay]);
    assert_eq!(again, first);
    assert!(s.take_changes().is_empty(), "a replay writes nothing");
    // Another event for that room-night is still refused.
    assert_eq!(codes(&ingest(&mut s, vec![book("b", "101", n)])), ["room_night_taken"]);
}

#[test]
fn a_cancellation_is_remembered_by_its_result_alone_and_older_records_still_answer() {
    use crate::domain::command::IdempotencyRecord;
    let mut s = hotel();
    let n = date(2028, 3, 4);
    let booked = ingest(&mut s, vec![book("a", "101", n), book("b", "102", n)]);
    s.take_changes();
    let c = ingest(&mut s, vec![cancel("x", "101", n), cancel("y", "201", n)]);
    assert_eq!(codes(&c), ["cancelled", "booking_not_found"]);
    let records: Vec<IdempotencyRecord> = s
        .take_changes()
        .into_iter()
        .filter_map(|ch| match ch {
            Change::Idempotency(r) => Some(*r),
            _ => None,
        })
        .collect();
    // What the store keeps is the event's own result, not the booking it cancelled.
    let kept: Vec<_> = records.iter().map(|r| r.result.clone()).collect();
    assert_eq!(
        kept,
        [Ok(Outcome::Ingested { results: vec![c[0].clone()] }), Ok(Outcome::Ingested { results: vec![c[1].clone()] })]
    );
    // A hotel restored with these records answers replays from them...
    let spec = fixtures::hotel(owner(), "Feed Hotel", "Berlin", 2, 1);
    let restored = |records: Vec<IdempotencyRecord>| {
        ResourceState::restore(ResourceId(Uuid::from_u128(7)), spec.clone(), vec![], vec![], records).expect("restore")
    };
    let mut r = restored(records.clone());
    assert_eq!(ingest(&mut r, vec![cancel("x", "101", n), cancel("y", "201", n)]), c);
    assert!(r.take_changes().is_empty(), "a replay writes nothing");
    // ...and so does one with records of the shape written before (the whole booking, or
    // the domain error), kept for a day after an upgrade.
    let b = s.booking(booked[0].booking_id.expect("id")).expect("cancelled booking").clone();
    let older = vec![
        IdempotencyRecord { result: Ok(Outcome::Booking { booking: b }), ..records[0].clone() },
        IdempotencyRecord { result: Err(crate::domain::error::DomainError::BookingNotFound), ..records[1].clone() },
    ];
    let mut r = restored(older);
    assert_eq!(ingest(&mut r, vec![cancel("x", "101", n), cancel("y", "201", n)]), c);
    assert!(r.take_changes().is_empty());
}

#[test]
fn the_store_is_asked_only_about_bookings_it_may_hold() {
    let by = Requester::Owner(owner());
    let n = date(2028, 3, 2);
    let events = vec![
        book("new", "101", n),
        book("gone", "102", n),
        book("old", "101", date(2027, 1, 5)),
        cancel("c", "101", n),
    ];
    let id = |i: usize| events[i].booking_id;
    let cmd = Command::Ingest { events: events.clone(), by };
    // A new hotel has nothing stored.
    assert!(hotel().feed_lookups(&cmd).is_empty());
    // A hotel loaded from the store: until the store says what it holds, every booking event
    // not in memory is asked about (cancellations name no booking of their own).
    let spec = fixtures::hotel(owner(), "Feed Hotel", "Berlin", 2, 1);
    let mut s = ResourceState::restore(ResourceId(Uuid::from_u128(7)), spec, vec![], vec![], vec![]).expect("restore");
    assert_eq!(s.feed_lookups(&cmd), [id(0), id(1), id(2)]);
    // Once it has: the ids it named, and nights before the date it is complete from.
    s.remember_feed_gone(date(2027, 6, 1), [id(1)]);
    assert_eq!(s.feed_lookups(&cmd), [id(1), id(2)]);
    // A booking event for a night in memory is answered from memory.
    ingest(&mut s, vec![book("new", "101", n)]);
    assert_eq!(s.feed_lookups(&cmd), [id(1), id(2)]);
}

#[test]
fn cancellations_move_the_night_from_booked_to_cancelled_and_only_touch_feed_stays() {
    let mut s = hotel();
    let n = date(2028, 4, 30);
    ingest(&mut s, vec![book("a", "101", n)]);
    s.take_changes();
    let r = ingest(&mut s, vec![cancel("c1", "101", n), cancel("c2", "101", n), cancel("c3", "102", n)]);
    assert_eq!(codes(&r), ["cancelled", "booking_not_found", "booking_not_found"]);
    let t = tallies(&s.take_changes());
    assert_eq!(
        (t[&n].booked_units, t[&n].booked_minor, t[&n].cancelled_units, t[&n].cancelled_minor),
        (-1, -10_000, 1, 10_000)
    );
    // A client's own stay on that room-night is not the feed's to cancel.
    let client = UserId(Uuid::from_u128(5));
    let (double, room) = match &s.spec().kind {
        crate::domain::spec::KindSpec::Hotel(h) => (h.room_types[0].id, h.rooms[0].id),
        _ => unreachable!(),
    };
    let req = BookingRequest::Stay {
        room_type_id: double,
        room_id: Some(room),
        check_in: n,
        check_out: date(2028, 5, 2),
        guests: 1,
    };
    let cmd = Command::Hold {
        booking_id: crate::domain::ids::BookingId(Uuid::from_u128(55)),
        user_id: client,
        request: req,
        confirm: true,
        // Booked for the client by staff: a client's own `confirm` needs a payment.
        by: Requester::System,
    };
    s.apply(cmd, None, now()).expect("client books");
    let r = ingest(&mut s, vec![cancel("c4", "101", n), book("b", "101", date(2028, 5, 1))]);
    assert_eq!(codes(&r), ["booking_not_found", "room_night_taken"]);
}

#[test]
fn only_staff_send_a_feed_and_only_to_a_hotel_within_limits() {
    let mut s = hotel();
    let client = UserId(Uuid::from_u128(5));
    let cmd = Command::Ingest { events: vec![book("a", "101", date(2028, 1, 1))], by: Requester::Client(client) };
    assert_eq!(s.apply(cmd, None, now()).map_err(|e| e.code()), Err("validation_failed"));
    let events: Vec<IngestEvent> =
        (0..=MAX_INGEST_EVENTS).map(|i| book(&format!("k{i}"), "101", date(2028, 1, 1))).collect();
    let cmd = Command::Ingest { events, by: Requester::Owner(owner()) };
    assert_eq!(s.apply(cmd, None, now()).map_err(|e| e.code()), Err("validation_failed"));
    let spec = fixtures::event(owner(), "Gig", 10, now());
    let mut e = ResourceState::create(ResourceId(Uuid::from_u128(8)), spec).expect("event");
    let cmd = Command::Ingest { events: vec![book("a", "101", date(2028, 1, 1))], by: Requester::Owner(owner()) };
    assert_eq!(e.apply(cmd, None, now()).map_err(|e| e.code()), Err("wrong_resource_kind"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Random feeds on 3 rooms × 6 nights, replays included: never two active stays on one
    /// room-night, every result agrees with a simple model, and the counters add up to the
    /// active bookings per night.
    #[test]
    fn random_feeds_never_double_book_and_counters_follow(
        ops in proptest::collection::vec((0u8..3, 0i16..6, any::<bool>(), 0u8..12), 1..80),
        split in 1usize..10,
    ) {
        let mut s = hotel();
        let rooms = ["101", "102", "201"];
        let base = date(2028, 2, 26);
        let events: Vec<IngestEvent> = ops.iter().map(|(r, d, is_book, k)| {
            let night = base.checked_add(jiff::Span::new().days(i64::from(*d))).expect("date");
            let key = format!("{r}-{d}-{is_book}-{k}");
            ev(&key, rooms[usize::from(*r)], night, if *is_book { IngestAction::Book } else { IngestAction::Cancel })
        }).collect();
        // Model: per room-night, which event key holds it; per key, its first answer.
        let mut holder: HashMap<(String, Date), String> = HashMap::new();
        let mut first: HashMap<String, IngestResult> = HashMap::new();
        let mut all = BTreeMap::new();
        for chunk in events.chunks(split) {
            let got = ingest(&mut s, chunk.to_vec());
            for (e, r) in chunk.iter().zip(got) {
                if let Some(f) = first.get(&e.key) {
                    prop_assert_eq!(&r, f, "replay of {} answered differently", e.key);
                    continue;
                }
                let slot = (e.room.clone(), e.night);
                let want = match (e.action, holder.get(&slot)) {
                    (IngestAction::Book, None) => { holder.insert(slot, e.key.clone()); IngestStatus::Booked }
                    (IngestAction::Book, Some(_)) => IngestStatus::Rejected,
                    (IngestAction::Cancel, Some(_)) => { holder.remove(&slot); IngestStatus::Cancelled }
                    (IngestAction::Cancel, None) => IngestStatus::Rejected,
                };
                prop_assert_eq!(r.status, want, "event {}", e.key);
                first.insert(e.key.clone(), r);
            }
            for (d, t) in tallies(&s.take_changes()) {
                all.entry(d).or_insert_with(|| DayStats::zero(d)).add(&t);
            }
        }
        let mut per_night: BTreeMap<Date, i64> = BTreeMap::new();
        for (_, night) in holder.keys() {
            *per_night.entry(*night).or_default() += 1;
        }
        let booked: BTreeMap<Date, i64> =
            all.iter().filter(|(_, t)| t.booked_units != 0).map(|(d, t)| (*d, t.booked_units)).collect();
        prop_assert_eq!(booked, per_night);
        prop_assert_eq!(s.counters().confirmed_bookings as usize, holder.len());
    }
}
