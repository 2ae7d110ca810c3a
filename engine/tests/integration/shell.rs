//! The actor shell's limits and lifecycle: overload answers `busy`, memory stays bounded,
//! idle resources leave memory and come back intact, a failed commit is never acknowledged.

use crate::common::TestDb;
use engine::domain::booking::{BookingRequest, Requester};
use engine::domain::command::{Command, Outcome};
use engine::domain::ids::{BookingId, ResourceId, UserId};
use engine::store::memory::MemoryStore;
use engine::store::postgres::{PgConfig, PgStore};
use engine::store::{ResourceFilter, Store};
use engine::{Engine, EngineConfig, EngineError, SystemClock, fixtures};
use futures::future::join_all;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn book(u: UserId) -> (BookingId, Command) {
    let booking_id = BookingId::new_v7();
    let cmd = Command::Hold {
        booking_id,
        user_id: u,
        request: BookingRequest::Tickets { category_id: None, quantity: 1 },
        confirm: true,
        // Booked and paid: confirmed by the system (a client alone may not confirm a price).
        by: Requester::System,
    };
    (booking_id, cmd)
}

async fn taken(e: &Engine, id: ResourceId) -> u64 {
    e.read(id, |s, _| s.event_availability().map(|a| a.taken).unwrap_or(0)).await.expect("read")
}

#[actix::test]
async fn overload_answers_busy_instead_of_queueing_without_bound() {
    let store = Arc::new(MemoryStore::new());
    let cfg = EngineConfig { max_pending: 10, max_batch: 5, ..EngineConfig::default() };
    let e = Engine::new(store.clone(), Arc::new(SystemClock), cfg);
    let id = e.create(fixtures::event(UserId::new_v7(), "Slow store", 1_000, e.now())).await.expect("create");
    store.faults.commit_delay_ms.store(200, Ordering::SeqCst);
    let results = join_all((0..100).map(|_| {
        let e = e.clone();
        async move {
            let (bid, cmd) = book(UserId::new_v7());
            (bid, e.execute(id, cmd, None).await)
        }
    }))
    .await;
    let busy = results.iter().filter(|(_, r)| matches!(r, Err(EngineError::Busy))).count();
    let ok: Vec<BookingId> = results.iter().filter(|(_, r)| r.is_ok()).map(|(b, _)| *b).collect();
    assert!(busy > 0, "a slow store with 100 callers and room for 10 must answer busy");
    assert_eq!(busy + ok.len(), 100, "every call is either decided and durable or refused as busy");
    let data = store.snapshot();
    for b in &ok {
        assert!(data.bookings.contains_key(b), "acknowledged booking {b} missing");
    }
    assert_eq!(data.bookings.len(), ok.len(), "a busy answer must not leave a booking behind");
}

#[actix::test]
async fn a_burst_on_a_resource_that_is_waking_up_is_not_refused_busy() {
    // A flash sale's first second: the resource is not in memory (a new engine over the store),
    // and hundreds of commands arrive before its actor has started. Its mailbox bound is the
    // configured one from the first message, not actix's 16.
    let store = Arc::new(MemoryStore::new());
    let first = Engine::new(store.clone(), Arc::new(SystemClock), EngineConfig::default());
    let id = first.create(fixtures::event(UserId::new_v7(), "Waking", 1_000, first.now())).await.expect("create");
    first.shutdown(Duration::from_secs(5)).await;
    for arbiters in [0, 2] {
        let e = Engine::new(store.clone(), Arc::new(SystemClock), EngineConfig { arbiters, ..EngineConfig::default() });
        let results = join_all((0..300).map(|_| {
            let e = e.clone();
            async move { e.execute(id, book(UserId::new_v7()).1, None).await }
        }))
        .await;
        let busy = results.iter().filter(|r| matches!(r, Err(EngineError::Busy))).count();
        assert_eq!(busy, 0, "{arbiters} arbiters: {busy} of 300 refused busy while the actor started");
        assert!(results.iter().all(Result::is_ok), "{arbiters} arbiters: every booking taken");
        e.shutdown(Duration::from_secs(5)).await;
    }
}

#[actix::test]
async fn read_many_answers_each_resource_in_order_whether_in_memory_or_not() {
    let store = Arc::new(MemoryStore::new());
    for arbiters in [0, 2] {
        // Room for 4 of the 8 events: the reads must bring the passivated ones back.
        let cfg = EngineConfig { arbiters, max_active_resources: 4, ..EngineConfig::default() };
        let e = Engine::new(store.clone(), Arc::new(SystemClock), cfg);
        let owner = UserId::new_v7();
        let mut ids = Vec::new();
        for i in 0..8u64 {
            let id =
                e.create(fixtures::event(owner, &format!("Gig {arbiters}-{i}"), 10, e.now())).await.expect("create");
            for _ in 0..i {
                e.execute(id, book(UserId::new_v7()).1, None).await.expect("book");
            }
            ids.push((id, i));
        }
        // Asked in another order than created, with an unknown resource in the middle.
        let unknown = ResourceId::new_v7();
        let mut order: Vec<ResourceId> = ids.iter().rev().map(|(id, _)| *id).collect();
        order.insert(3, unknown);
        let answers = e.read_many(&order, |s, _| (s.id(), s.event_availability().map(|a| a.taken))).await;
        assert_eq!(answers.len(), order.len());
        for (asked, answer) in order.iter().zip(&answers) {
            if *asked == unknown {
                assert!(answer.is_err(), "{arbiters} arbiters: an unknown resource answered {answer:?}");
                continue;
            }
            let sold = ids.iter().find(|(id, _)| id == asked).map(|(_, n)| *n).expect("known");
            let (id, taken) = answer.as_ref().expect("read");
            assert_eq!((*id, *taken), (*asked, Some(sold)), "{arbiters} arbiters: each answer is its own resource's");
        }
        assert!(e.active_resources() <= 4, "{arbiters} arbiters: {} in memory", e.active_resources());
    }
}

#[actix::test]
async fn least_recently_used_resources_leave_memory_and_come_back_intact() {
    let store = Arc::new(MemoryStore::new());
    let cfg = EngineConfig { max_active_resources: 3, ..EngineConfig::default() };
    let e = Engine::new(store.clone(), Arc::new(SystemClock), cfg);
    let owner = UserId::new_v7();
    let mut ids = Vec::new();
    for i in 0..10 {
        let id = e.create(fixtures::event(owner, &format!("Gig {i}"), 10, e.now())).await.expect("create");
        e.execute(id, book(UserId::new_v7()).1, None).await.expect("book");
        ids.push(id);
        assert!(e.active_resources() <= 3, "{} resources in memory, limit 3", e.active_resources());
    }
    // The first ones were passivated; using them again reloads them from the store.
    for id in &ids {
        e.execute(*id, book(UserId::new_v7()).1, None).await.expect("book again");
        assert_eq!(taken(&e, *id).await, 2);
        assert!(e.active_resources() <= 3);
    }
}

#[actix::test]
async fn idle_resources_are_passivated() {
    let store = Arc::new(MemoryStore::new());
    let cfg = EngineConfig { idle_passivate_secs: 1, ..EngineConfig::default() };
    let e = Engine::new(store.clone(), Arc::new(SystemClock), cfg);
    let id = e.create(fixtures::event(UserId::new_v7(), "Quiet", 10, e.now())).await.expect("create");
    e.execute(id, book(UserId::new_v7()).1, None).await.expect("book");
    assert_eq!(e.active_resources(), 1);
    for _ in 0..100 {
        if e.active_resources() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(e.active_resources(), 0, "an idle actor must leave memory");
    assert_eq!(taken(&e, id).await, 1, "and come back with its state");
}

#[actix::test]
async fn a_failed_commit_is_never_acknowledged_and_the_actor_recovers() {
    let store = Arc::new(MemoryStore::new());
    let e = Engine::new(store.clone(), Arc::new(SystemClock), EngineConfig::default());
    let id = e.create(fixtures::event(UserId::new_v7(), "Flaky", 10, e.now())).await.expect("create");
    store.faults.fail_commits.store(1, Ordering::SeqCst);
    let (lost, cmd) = book(UserId::new_v7());
    let r = e.execute(id, cmd, None).await;
    assert!(matches!(r, Err(EngineError::StoreUnavailable(_))), "got {r:?}");
    assert!(!store.snapshot().bookings.contains_key(&lost));
    // The actor reloaded from the store: the refused booking does not hold a ticket.
    let (kept, cmd) = book(UserId::new_v7());
    match e.execute(id, cmd, None).await.expect("after recovery") {
        Outcome::Booking { booking } => assert_eq!(booking.id, kept),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(taken(&e, id).await, 1);
    // An unknown resource is "not found"...
    let unknown = ResourceId::new_v7();
    assert_eq!(e.execute(unknown, book(UserId::new_v7()).1, None).await, Err(EngineError::ResourceNotFound));
    // ...and a resource that cannot be loaded is "unavailable", until a later attempt loads it.
    e.shutdown(Duration::from_secs(5)).await;
    let e = Engine::new(store.clone(), Arc::new(SystemClock), EngineConfig::default());
    store.faults.fail_loads.store(1, Ordering::SeqCst);
    let r = e.execute(id, book(UserId::new_v7()).1, None).await;
    assert!(matches!(r, Err(EngineError::StoreUnavailable(_))), "got {r:?}");
    e.execute(id, book(UserId::new_v7()).1, None).await.expect("loads on the next attempt");
    assert_eq!(taken(&e, id).await, 2);
}

#[actix::test]
async fn an_invalid_specification_is_refused_with_field_errors() {
    let e = Engine::new(Arc::new(MemoryStore::new()), Arc::new(SystemClock), EngineConfig::default());
    let mut spec = fixtures::event(UserId::new_v7(), "", 0, e.now());
    spec.hold_ttl_secs = 0;
    match e.create(spec).await {
        Err(EngineError::Domain(engine::domain::error::DomainError::Validation(v))) => {
            let fields: Vec<&str> = v.errors.iter().map(|f| f.field.as_str()).collect();
            assert!(fields.contains(&"name") && fields.contains(&"hold_ttl_secs"), "fields: {fields:?}");
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert_eq!(e.active_resources(), 0);
}

#[tokio::test]
async fn two_processes_can_migrate_one_database_at_once() {
    let db = TestDb::new();
    let cfg = PgConfig::new(&db.url);
    let (a, b) = tokio::join!(PgStore::connect(&cfg), PgStore::connect(&cfg));
    let (a, b) = (a.expect("first start"), b.expect("second start"));
    assert!(
        a.list_resources(ResourceFilter { limit: 10, ..Default::default() }).await.expect("schema ready").is_empty()
    );
    assert!(
        b.list_resources(ResourceFilter { limit: 10, ..Default::default() }).await.expect("schema ready").is_empty()
    );
}

/// A replayed feed event whose booking left memory (cancelled, then evicted once durable; or
/// the resource passivated and reloaded) must find it in the store, not book it again: a
/// second insert of the same id would fail the whole commit.
#[actix::test]
async fn a_replayed_feed_event_finds_its_booking_in_the_store() {
    use engine::domain::ingest::{IngestAction, IngestEvent, IngestStatus};
    let store = Arc::new(MemoryStore::new());
    let e = Engine::new(store.clone(), Arc::new(SystemClock), EngineConfig::default());
    let owner = UserId::new_v7();
    let mut spec = fixtures::hotel(owner, "Replay Hotel", "Faro", 1, 0);
    if let engine::domain::spec::KindSpec::Hotel(h) = &mut spec.kind {
        h.booking_horizon_days = 1_100;
    }
    let id = e.create(spec).await.expect("create");
    let night = jiff::civil::date(2028, 2, 29);
    let booking_id = BookingId::new_v7();
    let ev = |key: &str, action| IngestEvent {
        key: key.into(),
        booking_id: if action == IngestAction::Book { booking_id } else { BookingId::new_v7() },
        room: "101".into(),
        night,
        action,
    };
    let feed = |events| Command::Ingest { events, by: Requester::Owner(owner) };
    let status = |o: Outcome| match o {
        Outcome::Ingested { results } => results.iter().map(|r| (r.status, r.booking_id)).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    let first = status(e.execute(id, feed(vec![ev("b", IngestAction::Book)]), None).await.expect("book"));
    assert_eq!(first, vec![(IngestStatus::Booked, Some(booking_id))]);
    let c = status(e.execute(id, feed(vec![ev("c", IngestAction::Cancel)]), None).await.expect("cancel"));
    assert_eq!(c, vec![(IngestStatus::Cancelled, Some(booking_id))]);
    // Let the actor go quiet (finished bookings leave memory), then replay.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let gone = e.read(id, move |s, _| s.booking(booking_id).is_none()).await.expect("read");
    assert!(gone, "the cancelled booking left memory once durable");
    let again = status(e.execute(id, feed(vec![ev("b", IngestAction::Book)]), None).await.expect("replay"));
    assert_eq!(again, first);
    let data = store.snapshot();
    assert_eq!(data.bookings.values().filter(|b| b.resource_id == id).count(), 1, "no second booking");
    let b = data.bookings.get(&booking_id).expect("the booking");
    assert_eq!(b.status, engine::domain::booking::BookingStatus::Cancelled, "a replay must not revive it");
    let day = data.daily_stats.get(&(id, night)).copied().expect("counters of the night");
    assert_eq!((day.booked_units, day.cancelled_units), (0, 1), "booked once, cancelled once");
    let free = e.read(id, move |s, now| s.hotel_availability(night, jiff::civil::date(2028, 3, 1), None, now)).await;
    assert_eq!(free.expect("read").expect("availability")[0].free_rooms, 1, "the room is free again");
}
