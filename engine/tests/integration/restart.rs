//! Drop the engine, start a new one on the same database: the same state, holds that still
//! expire on time, the waitlist in the same order.

use crate::common::{TestDb, store_of};
use engine::domain::booking::{BookingRequest, BookingStatus, Requester, Wish};
use engine::domain::command::{Command, Outcome};
use engine::domain::ids::{BookingId, ResourceId, UserId, WaitlistEntryId};
use engine::domain::ingest::{IngestAction, IngestEvent, IngestResult, IngestStatus};
use engine::domain::waitlist::WaitlistStatus;
use engine::{Clock, Engine, EngineConfig, ManualClock, fixtures};
use jiff::{SignedDuration, Timestamp};
use std::sync::Arc;
use std::time::Duration;

fn tickets(q: u32) -> BookingRequest {
    BookingRequest::Tickets { category_id: None, quantity: q }
}

async fn hold(e: &Engine, id: ResourceId, u: UserId, confirm: bool) -> BookingId {
    let booking_id = BookingId::new_v7();
    let cmd = Command::Hold {
        booking_id,
        user_id: u,
        request: tickets(1),
        confirm,
        by: if confirm { Requester::System } else { Requester::Client(u) },
    };
    match e.execute(id, cmd, None).await.expect("hold") {
        Outcome::Booking { booking } => booking.id,
        other => panic!("unexpected {other:?}"),
    }
}

async fn join(e: &Engine, id: ResourceId, u: UserId) -> WaitlistEntryId {
    let entry_id = WaitlistEntryId::new_v7();
    let cmd = Command::JoinWaitlist {
        entry_id,
        user_id: u,
        wish: Wish::Tickets { category_id: None, quantity: 1 },
        by: Requester::Client(u),
    };
    e.execute(id, cmd, None).await.expect("join");
    entry_id
}

/// (status of each booking, waitlist statuses in queue order) as the engine sees them.
async fn snapshot(e: &Engine, id: ResourceId) -> (u64, u64, Vec<(WaitlistEntryId, WaitlistStatus)>) {
    e.read(id, |s, _| {
        let a = s.event_availability().expect("an event");
        (a.taken, a.remaining, s.waitlist().iter().map(|w| (w.id, w.status)).collect())
    })
    .await
    .expect("read")
}

async fn status_in_db(db: &TestDb, table: &str, id: uuid::Uuid) -> String {
    let c = db.client().await;
    c.query_one(&format!("SELECT status FROM {table} WHERE id = $1"), &[&id]).await.expect("row").get(0)
}

#[actix::test]
async fn restart_keeps_state_expiries_and_waitlist_order() {
    let db = TestDb::new();
    let start: Timestamp = Timestamp::now();
    let clock = Arc::new(ManualClock::new(start));
    let (held, first, second, id, before) = {
        let e = Engine::new(Arc::new(store_of(&db).await), clock.clone(), EngineConfig::default());
        let id = e.create(fixtures::event(UserId::new_v7(), "Restartable", 2, clock.now())).await.expect("create");
        let held = hold(&e, id, UserId::new_v7(), false).await;
        hold(&e, id, UserId::new_v7(), true).await;
        let first = join(&e, id, UserId::new_v7()).await;
        let second = join(&e, id, UserId::new_v7()).await;
        let before = snapshot(&e, id).await;
        e.shutdown(Duration::from_secs(5)).await;
        (held, first, second, id, before)
    };
    assert_eq!(before, (2, 0, vec![(first, WaitlistStatus::Waiting), (second, WaitlistStatus::Waiting)]));

    let e = Engine::new(Arc::new(store_of(&db).await), clock.clone(), EngineConfig::default());
    assert_eq!(snapshot(&e, id).await, before, "a restarted engine sees the same state");
    e.shutdown(Duration::from_secs(5)).await;
    drop(e);

    // While no engine runs, the hold's time passes (TTL 600 s in the fixture).
    clock.advance(SignedDuration::from_secs(601));
    let e = Engine::new(Arc::new(store_of(&db).await), clock.clone(), EngineConfig::default());
    // Nobody asks for the resource: the sweeper finds the lapsed hold by itself.
    assert_eq!(e.sweep_once().await.expect("sweep"), 1);
    let mut waited = 0;
    while status_in_db(&db, "bookings", held.0).await != "expired" {
        assert!(waited < 100, "the lapsed hold was not expired after restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    // The freed ticket went to the first in the queue, not the second.
    assert_eq!(status_in_db(&db, "waitlist_entries", first.0).await, "offered");
    assert_eq!(status_in_db(&db, "waitlist_entries", second.0).await, "waiting");
    let (taken, remaining, queue) = snapshot(&e, id).await;
    assert_eq!((taken, remaining), (2, 0), "the offer holds the freed ticket");
    assert_eq!(queue, vec![(first, WaitlistStatus::Offered), (second, WaitlistStatus::Waiting)]);
}

#[actix::test]
async fn holds_expire_on_time_with_the_real_clock_after_restart() {
    let db = TestDb::new();
    let clock: Arc<dyn Clock> = Arc::new(engine::SystemClock);
    let (id, held) = {
        let e = Engine::new(Arc::new(store_of(&db).await), clock.clone(), EngineConfig::default());
        let mut spec = fixtures::event(UserId::new_v7(), "Short holds", 5, clock.now());
        spec.hold_ttl_secs = 1;
        let id = e.create(spec).await.expect("create");
        let held = hold(&e, id, UserId::new_v7(), false).await;
        e.shutdown(Duration::from_secs(5)).await;
        (id, held)
    };
    let cfg = EngineConfig { sweep_interval_ms: 100, ..EngineConfig::default() };
    let e = Engine::new(Arc::new(store_of(&db).await), clock.clone(), cfg);
    e.start_sweeper();
    // Expiry within a generous bound of the 1 s TTL (this checks it happens, not its speed).
    for _ in 0..200 {
        if status_in_db(&db, "bookings", held.0).await == "expired" {
            let free = e.read(id, |s, _| s.event_availability().map(|a| a.remaining)).await.expect("read");
            assert_eq!(free, Some(5), "the expired hold gave its ticket back");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the hold did not expire within 10 s of its 1 s TTL");
}

#[actix::test]
async fn an_active_actor_expires_its_holds_by_timer() {
    let db = TestDb::new();
    let clock: Arc<dyn Clock> = Arc::new(engine::SystemClock);
    let e = Engine::new(Arc::new(store_of(&db).await), clock.clone(), EngineConfig::default());
    let mut spec = fixtures::event(UserId::new_v7(), "Timer", 1, clock.now());
    spec.hold_ttl_secs = 1;
    let id = e.create(spec).await.expect("create");
    let held = hold(&e, id, UserId::new_v7(), false).await;
    for _ in 0..200 {
        let st = e.read(id, move |s, _| s.booking(held).map(|b| b.status)).await.expect("read");
        if st == Some(BookingStatus::Expired) || status_in_db(&db, "bookings", held.0).await == "expired" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the actor's timer did not expire the hold");
}

/// One feed event through the engine; its one result.
async fn feed(e: &Engine, id: ResourceId, owner: UserId, event: IngestEvent) -> IngestResult {
    let cmd = Command::Ingest { events: vec![event], by: Requester::Owner(owner) };
    match e.execute(id, cmd, None).await.expect("ingest") {
        Outcome::Ingested { mut results } if results.len() == 1 => results.remove(0),
        other => panic!("unexpected {other:?}"),
    }
}

#[actix::test]
async fn after_a_restart_a_feed_replay_finds_its_cancelled_or_past_booking_instead_of_booking_again() {
    let db = TestDb::new();
    let owner = UserId::new_v7();
    let night = Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(jiff::Span::new().days(30))
        .expect("night");
    let event = |key: &str, booking_id: BookingId, night, action| IngestEvent {
        key: key.to_owned(),
        booking_id,
        room: "101".into(),
        night,
        action,
    };
    let booked = BookingId::new_v7();
    let id = {
        let e = Engine::new(Arc::new(store_of(&db).await), Arc::new(engine::SystemClock), EngineConfig::default());
        let id = e.create(fixtures::hotel(owner, "Replay Inn", "Porto", 1, 0)).await.expect("create");
        let r = feed(&e, id, owner, event("b1", booked, night, IngestAction::Book)).await;
        assert_eq!((r.status, r.booking_id), (IngestStatus::Booked, Some(booked)));
        let r = feed(&e, id, owner, event("c1", BookingId::new_v7(), night, IngestAction::Cancel)).await;
        assert_eq!((r.status, r.booking_id), (IngestStatus::Cancelled, Some(booked)));
        id
    };
    // An old feed stay, finished long ago, written behind the engine's back.
    let past = Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .checked_sub(jiff::Span::new().days(40))
        .expect("past");
    let old = BookingId::new_v7();
    let c = db.client().await;
    let room = fixtures::fixed_id("Replay Inn", 1_000);
    c.execute(
        "INSERT INTO bookings (id, resource_id, item_kind, user_id, status, room_type_id, room_id, check_in, check_out,
            guests, amount_minor, currency, idempotency_key, created_at, updated_at)
         VALUES ($1, $2, 'stay', $3, 'completed', $4, $5, $6::date, $6::date + 1, 1, 10000, 'EUR', 'ingest:b0', now(), now())",
        &[&old.0, &id.0, &owner.0, &fixtures::fixed_id("Replay Inn", 1), &room, &past],
    )
    .await
    .expect("an old stay");

    // A new engine loads the hotel from the database: replays answer what the first delivery did.
    let e = Engine::new(Arc::new(store_of(&db).await), Arc::new(engine::SystemClock), EngineConfig::default());
    let r = feed(&e, id, owner, event("b1", booked, night, IngestAction::Book)).await;
    assert_eq!((r.status, r.booking_id), (IngestStatus::Booked, Some(booked)), "{r:?}");
    let r = feed(&e, id, owner, event("b0", old, past, IngestAction::Book)).await;
    assert_eq!((r.status, r.booking_id), (IngestStatus::Booked, Some(old)), "{r:?}");
    assert_eq!(status_in_db(&db, "bookings", booked.0).await, "cancelled");
    // And a new event for the freed night books it, as a new booking.
    let fresh = BookingId::new_v7();
    let r = feed(&e, id, owner, event("b2", fresh, night, IngestAction::Book)).await;
    assert_eq!((r.status, r.booking_id), (IngestStatus::Booked, Some(fresh)), "{r:?}");
    let rows: i64 =
        c.query_one("SELECT count(*) FROM bookings WHERE resource_id = $1", &[&id.0]).await.expect("count").get(0);
    assert_eq!(rows, 3, "no booking written twice");
}
