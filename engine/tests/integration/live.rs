//! Live updates (`engine::live`): only what was committed is published, after the commit.

use engine::domain::booking::{BookingRequest, BookingStatus, Requester};
use engine::domain::command::{Change, Command, NotificationKind};
use engine::domain::ids::{BookingId, UserId};
use engine::live::LiveReceiver;
use engine::store::memory::MemoryStore;
use engine::{Engine, EngineConfig, EngineError, SystemClock, fixtures};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::broadcast::error::TryRecvError;

fn hold(u: UserId, confirm: bool) -> (BookingId, Command) {
    let booking_id = BookingId::new_v7();
    let cmd = Command::Hold {
        booking_id,
        user_id: u,
        request: BookingRequest::Tickets { category_id: None, quantity: 2 },
        confirm,
        // Confirmed at once means paid: the system confirms (a client alone may not confirm a price).
        by: if confirm { Requester::System } else { Requester::Client(u) },
    };
    (booking_id, cmd)
}

/// The booking changes of everything published so far, as (booking, status).
async fn drain(rx: &mut LiveReceiver) -> Vec<(BookingId, BookingStatus)> {
    // Publishing happens on the actor's thread before the caller is answered; give a
    // straggler a moment anyway.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(c) => out.extend(c.changes.iter().filter_map(|ch| match ch {
                Change::Booking(b) => Some((b.id, b.status)),
                _ => None,
            })),
            Err(TryRecvError::Empty) => return out,
            Err(e) => panic!("live receiver: {e}"),
        }
    }
}

#[actix::test]
async fn a_committed_booking_is_published_with_its_owner_counters_and_notification() {
    let store = Arc::new(MemoryStore::new());
    let e = Engine::new(store.clone(), Arc::new(SystemClock), EngineConfig::default());
    let owner = UserId::new_v7();
    let id = e.create(fixtures::event(owner, "Live", 10, e.now())).await.expect("create");
    let mut rx = e.subscribe();
    let client = UserId::new_v7();
    let (bid, cmd) = hold(client, false);
    e.execute(id, cmd, None).await.expect("hold");
    let c = rx.try_recv().expect("published before the caller was answered");
    assert_eq!(c.resource_id, id);
    assert_eq!(c.owner_id, Some(owner));
    assert_eq!((c.counters.held_bookings, c.counters.held_units), (1, 2));
    let first_version = c.version;
    assert!(c.changes.iter().any(
        |ch| matches!(ch, Change::Booking(b) if b.id == bid && b.status == BookingStatus::Held && b.user_id == client)
    ));
    assert!(c.changes.iter().any(|ch| matches!(ch, Change::Notify(n) if n.kind == NotificationKind::HoldCreated)));
    assert!(
        c.changes.iter().all(|ch| matches!(ch, Change::Booking(_) | Change::Waitlist(_) | Change::Notify(_))),
        "history, idempotency records and tallies stay out: {:?}",
        c.changes
    );
    e.execute(id, Command::Confirm { booking_id: bid, payment_ref: None, by: Requester::System }, None)
        .await
        .expect("confirm");
    let c = rx.try_recv().expect("confirmation published");
    assert!(c.version > first_version, "versions grow with every commit");
    assert_eq!((c.counters.held_units, c.counters.confirmed_units), (0, 2));
    assert_eq!(drain(&mut rx).await, vec![], "one message per committed batch");
}

#[actix::test]
async fn a_failed_commit_publishes_nothing() {
    let store = Arc::new(MemoryStore::new());
    let e = Engine::new(store.clone(), Arc::new(SystemClock), EngineConfig::default());
    let id = e.create(fixtures::event(UserId::new_v7(), "Failing", 10, e.now())).await.expect("create");
    let mut rx = e.subscribe();
    store.faults.fail_commits.store(1, Ordering::SeqCst);
    let (lost, cmd) = hold(UserId::new_v7(), true);
    let r = e.execute(id, cmd, None).await;
    assert!(matches!(r, Err(EngineError::StoreUnavailable(_))), "{r:?}");
    assert_eq!(drain(&mut rx).await, vec![], "a rolled-back decision must never be published");
    // The actor reloads and goes on: the next booking is published, the lost one never.
    let (kept, cmd) = hold(UserId::new_v7(), true);
    e.execute(id, cmd, None).await.expect("book after the failure");
    assert_eq!(drain(&mut rx).await, vec![(kept, BookingStatus::Confirmed)]);
    assert!(!store.snapshot().bookings.contains_key(&lost));
}

#[actix::test]
async fn without_subscribers_nothing_is_published_and_commands_still_succeed() {
    let store = Arc::new(MemoryStore::new());
    let e =
        Engine::new(store.clone(), Arc::new(SystemClock), EngineConfig { live_capacity: 1, ..EngineConfig::default() });
    let id = e.create(fixtures::event(UserId::new_v7(), "Quiet", 100, e.now())).await.expect("create");
    for _ in 0..5 {
        e.execute(id, hold(UserId::new_v7(), true).1, None).await.expect("book");
    }
    // A subscriber that joins later sees only what commits after it joined; a lagging one is
    // told so instead of blocking the actor.
    let mut rx = e.subscribe();
    for _ in 0..3 {
        e.execute(id, hold(UserId::new_v7(), true).1, None).await.expect("book");
    }
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Lagged(2))));
    assert!(rx.try_recv().is_ok());
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
}
