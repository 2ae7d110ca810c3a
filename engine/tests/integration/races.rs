//! Many clients racing for one resource through the engine, then the invariants checked in
//! Postgres itself: no oversell, no overlap, every acknowledged booking present.

use crate::common::{TestDb, store_of, system_clock};
use engine::domain::booking::{BookingRequest, Requester};
use engine::domain::command::{Command, Outcome};
use engine::domain::error::DomainError;
use engine::domain::ids::{BookingId, ResourceId, UserId};
use engine::domain::spec::KindSpec;
use engine::{Engine, EngineConfig, EngineError, fixtures};
use futures::future::join_all;
use jiff::ToSpan;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use std::collections::BTreeSet;
use std::sync::Arc;
use uuid::Uuid;

async fn pg_engine(db: &TestDb) -> Engine {
    Engine::new(Arc::new(store_of(db).await), system_clock(), EngineConfig::default())
}

fn hold(user: UserId, request: BookingRequest, confirm: bool) -> (BookingId, Command) {
    let booking_id = BookingId::new_v7();
    (
        booking_id,
        Command::Hold {
            booking_id,
            user_id: user,
            request,
            confirm,
            by: if confirm { Requester::System } else { Requester::Client(user) },
        },
    )
}

/// Active booking ids of a resource, read from the database.
async fn active_rows(db: &TestDb, id: ResourceId) -> BTreeSet<Uuid> {
    let c = db.client().await;
    c.query("SELECT id FROM bookings WHERE resource_id = $1 AND status IN ('held', 'confirmed')", &[&id.0])
        .await
        .expect("query")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn acked(results: &[(BookingId, Result<Outcome, EngineError>)]) -> BTreeSet<Uuid> {
    results.iter().filter(|(_, r)| r.is_ok()).map(|(b, _)| b.0).collect()
}

fn count_err(results: &[(BookingId, Result<Outcome, EngineError>)], code: &str) -> usize {
    results.iter().filter(|(_, r)| matches!(r, Err(e) if e.code() == code)).count()
}

#[actix::test]
async fn a_thousand_clients_for_a_hundred_tickets() {
    let db = TestDb::new();
    let engine = pg_engine(&db).await;
    let id = engine.create(fixtures::event(UserId::new_v7(), "Flash sale", 100, engine.now())).await.expect("create");
    let results = join_all((0..1_000).map(|_| {
        let e = engine.clone();
        async move {
            let u = UserId::new_v7();
            let (bid, cmd) = hold(u, BookingRequest::Tickets { category_id: None, quantity: 1 }, true);
            (bid, e.execute(id, cmd, None).await)
        }
    }))
    .await;
    let ok = acked(&results);
    assert_eq!(ok.len(), 100, "exactly the capacity is sold");
    assert_eq!(count_err(&results, "sold_out"), 900, "everyone else hears sold_out");
    assert_eq!(active_rows(&db, id).await, ok, "the database holds exactly the acknowledged bookings");
    let c = db.client().await;
    let r = c
        .query_one(
            "SELECT e.taken, r.confirmed_units, r.held_units,
                    (SELECT coalesce(sum(quantity), 0) FROM bookings b WHERE b.resource_id = e.resource_id AND b.status IN ('held', 'confirmed'))
             FROM events e JOIN resources r ON r.id = e.resource_id WHERE e.resource_id = $1",
            &[&id.0],
        )
        .await
        .expect("counters");
    assert_eq!((r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, i64>(2), r.get::<_, i64>(3)), (100, 100, 0, 100));
}

/// The hotel's local "today", plus `days`.
fn hotel_day(days: i64) -> Date {
    let tz = TimeZone::get("Europe/Berlin").expect("zone");
    jiff::Timestamp::now().to_zoned(tz).date().checked_add(days.days()).expect("date")
}

#[actix::test]
async fn two_hundred_clients_for_one_room() {
    let db = TestDb::new();
    let engine = pg_engine(&db).await;
    let spec = fixtures::hotel(UserId::new_v7(), "One Room Inn", "Porto", 1, 0);
    let KindSpec::Hotel(h) = &spec.kind else { unreachable!() };
    let room_type = h.room_types[0].id;
    let room = h.rooms[0].id;
    let id = engine.create(spec).await.expect("create");
    // Every stay covers the night of day 13, so any two of them overlap.
    let results = join_all((0..200i64).map(|i| {
        let e = engine.clone();
        async move {
            let u = UserId::new_v7();
            let request = BookingRequest::Stay {
                room_type_id: room_type,
                room_id: if i % 2 == 0 { Some(room) } else { None },
                check_in: hotel_day(10 + i % 4),
                check_out: hotel_day(14 + i % 3),
                guests: 2,
            };
            let (bid, cmd) = hold(u, request, i % 3 == 0);
            (bid, e.execute(id, cmd, None).await)
        }
    }))
    .await;
    let ok = acked(&results);
    assert_eq!(ok.len(), 1, "one stay wins the room");
    assert_eq!(count_err(&results, "no_room_available"), 199);
    assert_eq!(active_rows(&db, id).await, ok);
    let c = db.client().await;
    let overlaps: i64 = c
        .query_one(
            "SELECT count(*) FROM bookings a JOIN bookings b ON a.room_id = b.room_id AND a.id < b.id
             WHERE a.resource_id = $1 AND a.status IN ('held', 'confirmed') AND b.status IN ('held', 'confirmed')
               AND daterange(a.check_in, a.check_out) && daterange(b.check_in, b.check_out)",
            &[&id.0],
        )
        .await
        .expect("overlaps")
        .get(0);
    assert_eq!(overlaps, 0);
    // The database's guard holds exactly the winner's nights.
    let nights: Vec<(Uuid, jiff::civil::Date)> = c
        .query("SELECT booking_id, night FROM room_nights ORDER BY night", &[])
        .await
        .expect("nights")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let winner = ok.iter().next().copied().expect("one winner");
    let row = c.query_one("SELECT check_in, check_out FROM bookings WHERE id = $1", &[&winner]).await.expect("winner");
    let (check_in, check_out): (jiff::civil::Date, jiff::civil::Date) = (row.get(0), row.get(1));
    let expected: Vec<(Uuid, jiff::civil::Date)> =
        check_in.series(1.day()).take_while(|d| *d < check_out).map(|d| (winner, d)).collect();
    assert_eq!(nights, expected);
}

#[actix::test]
async fn two_hundred_clients_for_one_appointment_slot() {
    let db = TestDb::new();
    let engine = pg_engine(&db).await;
    let id = engine.create(fixtures::provider(UserId::new_v7(), "Dr. Race")).await.expect("create");
    // The first free slot a few working days ahead.
    let slot = engine
        .read(id, |s, now| {
            (3..14).find_map(|d| s.provider_free_slots(hotel_day(d), now).ok().and_then(|v| v.into_iter().next()))
        })
        .await
        .expect("read")
        .expect("a working day has slots");
    let results = join_all((0..200).map(|i| {
        let e = engine.clone();
        async move {
            let u = UserId::new_v7();
            let (bid, cmd) = hold(u, BookingRequest::Appointment { starts_at: slot.starts_at }, i % 2 == 0);
            (bid, e.execute(id, cmd, None).await)
        }
    }))
    .await;
    let ok = acked(&results);
    assert_eq!(ok.len(), 1, "one appointment per slot");
    assert_eq!(count_err(&results, "slot_unavailable"), 199);
    assert_eq!(active_rows(&db, id).await, ok);
}

/// Two engines (two processes' worth: own actors, own pools) on one database. Each actor only
/// knows its own decisions; the version fence makes the loser of every race reload and retry.
#[actix::test]
async fn two_engines_on_one_database_never_oversell() {
    let db = TestDb::new();
    let a = pg_engine(&db).await;
    let b = pg_engine(&db).await;
    let id = a.create(fixtures::event(UserId::new_v7(), "Contested", 50, a.now())).await.expect("create");
    let results = join_all((0..400).map(|i| {
        let e = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move {
            let u = UserId::new_v7();
            let (bid, cmd) = hold(u, BookingRequest::Tickets { category_id: None, quantity: 1 }, true);
            // A client retries what was not decided (fenced batches, reloads), with the same
            // booking id and idempotency key, so a retry cannot book twice.
            let key = format!("k-{bid}");
            let mut last = Err(EngineError::Busy);
            for _ in 0..30 {
                last = e.execute(id, cmd.clone(), Some(key.clone())).await;
                match &last {
                    Err(err) if err.is_retryable() => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
                    _ => break,
                }
            }
            (bid, last)
        }
    }))
    .await;
    let ok = acked(&results);
    assert!(ok.len() <= 50, "oversold: {} acknowledged for 50 seats", ok.len());
    assert!(!ok.is_empty(), "the fence must not starve everyone");
    let rows = active_rows(&db, id).await;
    assert!(rows.len() <= 50, "the database holds {} active bookings for 50 seats", rows.len());
    assert!(ok.is_subset(&rows), "an acknowledged booking is missing from the database");
    // Whatever was decided, the stored counters agree with the rows.
    let c = db.client().await;
    let r = c
        .query_one(
            "SELECT e.taken, (SELECT count(*) FROM bookings b WHERE b.resource_id = e.resource_id AND b.status IN ('held', 'confirmed'))
             FROM events e WHERE e.resource_id = $1",
            &[&id.0],
        )
        .await
        .expect("counters");
    assert_eq!(r.get::<_, i64>(0), r.get::<_, i64>(1));
    let unexpected: Vec<_> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .filter(|e| !matches!(e, EngineError::Domain(DomainError::SoldOut)) && !e.is_retryable())
        .collect();
    assert!(unexpected.is_empty(), "unexpected errors: {unexpected:?}");
}

/// Spread load: two hundred events under two committers, so most transactions merge many
/// resources' batches, while another writer moves the version of some events now and then
/// (an injected fence conflict: their batches are refused alone and their actors reload).
/// Clients retry what was not decided, with the same booking id and key. Then, in PostgreSQL:
/// no event oversold, every acknowledged booking present, counters equal to the rows.
#[actix::test]
async fn two_hundred_events_under_two_committers_with_fence_conflicts_on_some() {
    let db = TestDb::new();
    let cfg = EngineConfig { committers: 2, ..EngineConfig::default() };
    let engine = Engine::new(Arc::new(store_of(&db).await), system_clock(), cfg);
    let owner = UserId::new_v7();
    let mut events = Vec::new();
    for i in 0..200 {
        events.push(
            engine.create(fixtures::event(owner, &format!("Spread {i}"), 5, engine.now())).await.expect("create"),
        );
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bumped = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let intruder = {
        let (stop, bumped) = (stop.clone(), bumped.clone());
        let victims: Vec<Uuid> = events.iter().step_by(10).map(|e| e.0).collect();
        let client = db.client().await;
        actix::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let n = client
                    .execute("UPDATE resources SET version = version + 1 WHERE id = ANY($1)", &[&victims])
                    .await
                    .unwrap_or(0);
                bumped.fetch_add(n as usize, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(15)).await;
            }
        })
    };
    let results = join_all((0..1_600).map(|i| {
        let e = engine.clone();
        let id = events[i % events.len()];
        async move {
            let u = UserId::new_v7();
            let (bid, cmd) = hold(u, BookingRequest::Tickets { category_id: None, quantity: 1 }, true);
            let key = format!("k-{bid}");
            let mut last = Err(EngineError::Busy);
            for _ in 0..50 {
                last = e.execute(id, cmd.clone(), Some(key.clone())).await;
                match &last {
                    Err(err) if err.is_retryable() => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
                    _ => break,
                }
            }
            (id, bid, last)
        }
    }))
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = intruder.await;
    assert!(bumped.load(std::sync::atomic::Ordering::SeqCst) > 0, "the intruder never moved a version");

    let c = db.client().await;
    let rows = c
        .query(
            "SELECT e.resource_id, e.taken, r.confirmed_units + r.held_units,
                    (SELECT count(*) FROM bookings b WHERE b.resource_id = e.resource_id AND b.status IN ('held', 'confirmed'))
             FROM events e JOIN resources r ON r.id = e.resource_id",
            &[],
        )
        .await
        .expect("counters");
    assert_eq!(rows.len(), 200);
    for r in &rows {
        let (taken, counters, active): (i64, i64, i64) = (r.get(1), r.get(2), r.get(3));
        assert!(active <= 5, "an event oversold: {active} of 5");
        assert_eq!((taken, counters), (active, active), "stored counters differ from the rows");
    }
    for id in &events {
        let acked: BTreeSet<Uuid> =
            results.iter().filter(|(e, _, r)| e == id && r.is_ok()).map(|(_, b, _)| b.0).collect();
        let stored = active_rows(&db, *id).await;
        assert!(acked.is_subset(&stored), "an acknowledged booking is missing from the database");
    }
    let sold: usize = results.iter().filter(|(_, _, r)| r.is_ok()).count();
    assert!(sold >= 900, "only {sold} of 1,000 seats sold: conflicts starved the clients");
    let unexpected: Vec<_> = results
        .iter()
        .filter_map(|(_, _, r)| r.as_ref().err())
        .filter(|e| !matches!(e, EngineError::Domain(DomainError::SoldOut)) && !e.is_retryable())
        .collect();
    assert!(unexpected.is_empty(), "unexpected errors: {unexpected:?}");
}
