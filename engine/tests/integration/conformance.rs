//! One suite, two stores: whatever the in-memory store promises, Postgres promises too.

use crate::common::TestDb;
use engine::domain::booking::{BookingRequest, BookingStatus, Requester, Wish};
use engine::domain::command::{Command, Outcome};
use engine::domain::ids::{BookingId, ResourceId, UserId, WaitlistEntryId};
use engine::domain::provider::{DateOverride, LocalInterval};
use engine::domain::spec::{KindSpec, ResourceKind, ResourceSpec};
use engine::domain::state::ResourceState;
use engine::fixtures;
use engine::store::memory::MemoryStore;
use engine::store::{CommitBatch, Store, StoreError};
use jiff::{SignedDuration, Timestamp};
use std::sync::Arc;

fn t0() -> Timestamp {
    "2030-01-07T08:00:00Z".parse().expect("timestamp")
}

/// Commits whatever `state` decided since the last call.
async fn flush(
    store: &dyn Store,
    state: &mut ResourceState,
    version: &mut i64,
    at: Timestamp,
) -> Result<(), StoreError> {
    let batch = CommitBatch {
        resource_id: state.id(),
        kind: state.kind().kind(),
        expected_version: *version,
        changes: state.take_changes(),
        counters: state.counters(),
        at,
    };
    *version = store.commit(batch).await?;
    Ok(())
}

fn specs(owner: UserId) -> Vec<ResourceSpec> {
    let mut hotel = fixtures::hotel(owner, "Conformance Hotel", "Lisbon", 3, 1);
    if let KindSpec::Hotel(h) = &mut hotel.kind {
        let d = |s: &str| s.parse().expect("date");
        h.room_types[0].price_overrides.insert(d("2030-02-14"), 19_900);
        h.room_types[0].price_overrides.insert(d("2030-02-15"), 17_500);
    }
    let mut provider = fixtures::provider(owner, "Conformance Clinic");
    if let KindSpec::Provider(p) = &mut provider.kind {
        let d = |s: &str| s.parse().expect("date");
        p.overrides = vec![
            DateOverride { date: d("2030-01-09"), intervals: vec![] },
            DateOverride {
                date: d("2030-01-10"),
                intervals: vec![
                    LocalInterval { start_minute: 8 * 60, end_minute: 10 * 60 },
                    LocalInterval { start_minute: 14 * 60, end_minute: 15 * 60 },
                ],
            },
        ];
    }
    vec![fixtures::event_with_categories(owner, "Conformance Gala", 5, 3, t0()), hotel, provider]
}

async fn suite(store: Arc<dyn Store>) {
    let owner = UserId::new_v7();
    let now = t0();

    // Every kind's specification survives the round trip exactly.
    let mut ids = Vec::new();
    for spec in specs(owner) {
        let id = ResourceId::new_v7();
        let mut state = ResourceState::create(id, spec.clone()).expect("valid spec");
        let mut version = 0;
        flush(&*store, &mut state, &mut version, now).await.expect("create");
        assert_eq!(version, 1);
        let loaded = store.load(id).await.expect("load").expect("exists");
        assert_eq!(loaded.spec, spec, "specification changed on the way through the store");
        assert_eq!(loaded.version, 1);
        // Creating it a second time is refused.
        let mut again = ResourceState::create(id, spec).expect("valid spec");
        let mut v0 = 0;
        assert_eq!(flush(&*store, &mut again, &mut v0, now).await, Err(StoreError::Conflict));
        ids.push((id, loaded.spec.kind.kind()));
    }
    assert!(store.load(ResourceId::new_v7()).await.expect("load").is_none());

    // Bookings, history, waitlist and idempotency records of an event.
    let spec = fixtures::event(owner, "Conformance Concert", 3, now);
    let id = ResourceId::new_v7();
    let mut state = ResourceState::create(id, spec).expect("valid spec");
    let mut version = 0;
    flush(&*store, &mut state, &mut version, now).await.expect("create");
    let users: Vec<UserId> = (0..4).map(|_| UserId::new_v7()).collect();
    let hold = |u: UserId, confirm: bool| Command::Hold {
        booking_id: BookingId::new_v7(),
        user_id: u,
        request: BookingRequest::Tickets { category_id: None, quantity: 1 },
        confirm,
        by: Requester::Client(u),
    };
    let booking_of = |o: Outcome| match o {
        Outcome::Booking { booking } => booking,
        other => panic!("expected a booking, got {other:?}"),
    };
    let cmd_a = hold(users[0], true);
    let a = booking_of(state.apply(cmd_a.clone(), Some("key-a"), now).expect("book a"));
    let b = booking_of(state.apply(hold(users[1], false), None, now).expect("hold b"));
    let c = booking_of(state.apply(hold(users[2], true), None, now).expect("book c"));
    state
        .apply(
            Command::JoinWaitlist {
                entry_id: WaitlistEntryId::new_v7(),
                user_id: users[3],
                wish: Wish::Tickets { category_id: None, quantity: 1 },
                by: Requester::Client(users[3]),
            },
            None,
            now,
        )
        .expect("join: sold out");
    flush(&*store, &mut state, &mut version, now).await.expect("commit bookings");

    // A stale writer is fenced off and writes nothing.
    let later = now + SignedDuration::from_mins(1);
    state
        .apply(
            Command::Cancel { booking_id: c.id, reason: "plans changed".into(), by: Requester::Client(users[2]) },
            None,
            later,
        )
        .expect("cancel c");
    let pending = state.take_changes();
    let refused = store
        .commit(CommitBatch {
            resource_id: id,
            kind: ResourceKind::Event,
            expected_version: 1,
            changes: pending.clone(),
            counters: state.counters(),
            at: later,
        })
        .await;
    assert_eq!(refused, Err(StoreError::Conflict));
    let seen = store.load_booking(id, c.id).await.expect("load booking").expect("exists");
    assert_eq!(seen.status, BookingStatus::Confirmed, "a fenced commit must not write");
    version = store
        .commit(CommitBatch {
            resource_id: id,
            kind: ResourceKind::Event,
            expected_version: version,
            changes: pending,
            counters: state.counters(),
            at: later,
        })
        .await
        .expect("commit with the right version");
    assert_eq!(version, 3);

    // What load returns rebuilds the same state.
    let loaded = store.load(id).await.expect("load").expect("exists");
    assert_eq!(loaded.version, version);
    let mut active: Vec<BookingId> = loaded.bookings.iter().map(|b| b.id).collect();
    active.sort();
    let mut expected = vec![a.id, b.id];
    // Cancelling c freed a ticket: the waitlisted user got an offer (a held booking).
    let offer = state.bookings().find(|x| x.waitlist_entry_id.is_some()).expect("an offer was made").clone();
    expected.push(offer.id);
    expected.sort();
    assert_eq!(active, expected);
    for lb in &loaded.bookings {
        assert_eq!(Some(lb), state.booking(lb.id), "booking {} differs after the round trip", lb.id);
    }
    assert_eq!(loaded.waitlist.len(), 1);
    assert_eq!(loaded.waitlist[0].status, engine::domain::waitlist::WaitlistStatus::Offered);
    assert_eq!(loaded.idempotency.len(), 1);
    let restored =
        ResourceState::restore(id, loaded.spec, loaded.bookings, loaded.waitlist, loaded.idempotency).expect("restore");
    assert_eq!(restored.counters(), state.counters());
    restored.check_invariants().expect("restored state is sound");
    let mut restored = restored;
    // The same command under the same key answers as the first time, even after a restart...
    let replay = restored.apply(cmd_a, Some("key-a"), later).expect("replay");
    assert_eq!(booking_of(replay), a);
    assert!(restored.take_changes().is_empty(), "a replay decides nothing new");
    // ...and another command under that key is refused.
    let other = restored.apply(hold(users[0], true), Some("key-a"), later);
    assert_eq!(other, Err(engine::domain::error::DomainError::IdempotencyKeyReused));

    // Finished bookings stay readable; other resources' bookings are not.
    let cancelled = store.load_booking(id, c.id).await.expect("load").expect("exists");
    assert_eq!(cancelled.status, BookingStatus::Cancelled);
    assert!(store.load_booking(ids[0].0, c.id).await.expect("load").is_none());
    assert!(store.load_booking(id, BookingId::new_v7()).await.expect("load").is_none());
    assert_eq!(store.locate_booking(a.id).await.expect("locate"), Some(id));
    assert_eq!(store.locate_booking(BookingId::new_v7()).await.expect("locate"), None);

    // Lapsed holds are found once their time has come.
    let lapse = b.hold_expires_at.expect("held");
    assert!(
        !store
            .resources_with_lapsed_holds(lapse - SignedDuration::from_secs(1), 100)
            .await
            .expect("sweep")
            .contains(&id)
    );
    assert!(store.resources_with_lapsed_holds(lapse, 100).await.expect("sweep").contains(&id));

    let events = store.list_resources(Some(ResourceKind::Event), 100).await.expect("list");
    assert!(events.iter().any(|r| r.id == id && r.version == version && r.name == "Conformance Concert"));
    assert!(events.iter().all(|r| r.kind == ResourceKind::Event));
    let all = store.list_resources(None, 100).await.expect("list");
    assert_eq!(all.len(), 4);
}

#[tokio::test]
async fn memory_store_conforms() {
    suite(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn postgres_store_conforms() {
    let db = TestDb::new();
    suite(Arc::new(db.store().await)).await;
}

#[tokio::test]
async fn postgres_stores_counters_and_history_readably() {
    let db = TestDb::new();
    let store = db.store().await;
    let owner = UserId::new_v7();
    let id = ResourceId::new_v7();
    let mut state = ResourceState::create(id, fixtures::event(owner, "Readable", 10, t0())).expect("spec");
    let mut version = 0;
    let u = UserId::new_v7();
    state
        .apply(
            Command::Hold {
                booking_id: BookingId::new_v7(),
                user_id: u,
                request: BookingRequest::Tickets { category_id: None, quantity: 3 },
                confirm: true,
                by: Requester::Client(u),
            },
            None,
            t0(),
        )
        .expect("book");
    flush(&store, &mut state, &mut version, t0()).await.expect("commit");
    let c = db.client().await;
    let row = c
        .query_one("SELECT confirmed_bookings, confirmed_units, version FROM resources WHERE id = $1", &[&id.0])
        .await
        .expect("resource row");
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1), row.get::<_, i64>(2)), (1, 3, 1));
    let taken: i64 =
        c.query_one("SELECT taken FROM events WHERE resource_id = $1", &[&id.0]).await.expect("event").get(0);
    assert_eq!(taken, 3);
    let h = c
        .query_one("SELECT from_status, to_status, by_role FROM booking_history WHERE resource_id = $1", &[&id.0])
        .await
        .expect("history");
    assert_eq!(
        (h.get::<_, Option<String>>(0), h.get::<_, String>(1), h.get::<_, String>(2)),
        (None, "confirmed".into(), "client".into())
    );
    let n: i64 = c
        .query_one("SELECT count(*) FROM outbox WHERE resource_id = $1 AND kind = 'confirmed'", &[&id.0])
        .await
        .expect("outbox")
        .get(0);
    assert_eq!(n, 1, "the confirmation notification is written with the booking");
    // The database itself refuses an oversell even if an actor were wrong.
    let over = c.execute("UPDATE events SET taken = 11 WHERE resource_id = $1", &[&id.0]).await;
    assert!(over.is_err(), "CHECK (taken <= capacity) must refuse");
}
