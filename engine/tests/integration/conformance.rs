//! One suite, two stores: whatever the in-memory store promises, Postgres promises too.

use crate::common::{TestDb, store_of};
use engine::domain::booking::{Booking, BookingRequest, BookingStatus, Requester, Wish};
use engine::domain::command::{Change, Command, Outcome};
use engine::domain::ids::{BookingId, ResourceId, UserId, WaitlistEntryId};
use engine::domain::provider::{DateOverride, LocalInterval};
use engine::domain::spec::{KindSpec, ResourceKind, ResourceSpec};
use engine::domain::state::ResourceState;
use engine::domain::waitlist::{WaitlistEntry, WaitlistStatus};
use engine::fixtures;
use engine::store::memory::MemoryStore;
use engine::store::{BookingFilter, CommitBatch, ResourceFilter, ResourceSummary, Store, StoreError, StoreOverview};
use jiff::{SignedDuration, Timestamp};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

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
        // Confirmed at once means paid: the system confirms (a client alone may not confirm a price).
        by: if confirm { Requester::System } else { Requester::Client(u) },
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

    let events = store
        .list_resources(ResourceFilter { kind: Some(ResourceKind::Event), limit: 100, ..Default::default() })
        .await
        .expect("list");
    assert!(events.iter().any(|r| r.id == id
        && r.version == version
        && r.name == "Conformance Concert"
        && r.owner_id == owner
        && r.city.is_none()));
    assert!(events.iter().all(|r| r.kind == ResourceKind::Event));
    let all = store.list_resources(ResourceFilter { limit: 100, ..Default::default() }).await.expect("list");
    assert_eq!(all.len(), 4);
    let hotel = all.iter().find(|r| r.kind == ResourceKind::Hotel).expect("the hotel is listed");
    assert_eq!(hotel.city.as_deref(), Some("Lisbon"));
}

#[tokio::test]
async fn memory_store_conforms() {
    suite(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn postgres_store_conforms() {
    let db = TestDb::new();
    suite(Arc::new(store_of(&db).await)).await;
}

#[tokio::test]
async fn postgres_stores_counters_and_history_readably() {
    let db = TestDb::new();
    let store = store_of(&db).await;
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
                // Booked and paid: confirmed by the system (a client alone may not confirm a price).
                by: Requester::System,
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
        (None, "confirmed".into(), "system".into())
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

// ---- listings -------------------------------------------------------------------------------

#[tokio::test]
async fn memory_store_lists_conformingly() {
    listings(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn postgres_store_lists_conformingly() {
    let db = TestDb::new();
    listings(Arc::new(store_of(&db).await)).await;
}

fn at(secs: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(secs)
}

fn uuid_max() -> Uuid {
    Uuid::from_bytes([0xff; 16])
}

#[tokio::test]
async fn memory_store_keeps_references_unique_per_owner() {
    references_are_unique_per_owner(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn postgres_store_keeps_references_unique_per_owner() {
    let db = TestDb::new();
    references_are_unique_per_owner(Arc::new(store_of(&db).await)).await;
}

/// Commits a new resource's first batch, returning what the store said.
async fn try_create(store: &dyn Store, spec: ResourceSpec) -> Result<i64, StoreError> {
    let mut state = ResourceState::create(ResourceId::new_v7(), spec).expect("valid spec");
    let mut version = 0;
    flush(store, &mut state, &mut version, t0()).await.map(|()| version)
}

/// An owner's reference names one of their resources: a second resource of the same owner
/// under it is refused whole (on create and on update); another owner may use it.
async fn references_are_unique_per_owner(store: Arc<dyn Store>) {
    let store = &*store;
    let (o1, o2) = (UserId::new_v7(), UserId::new_v7());
    let with_ref = |mut spec: ResourceSpec, r: &str| {
        spec.reference = Some(r.into());
        spec
    };
    let first =
        Res::create(store, ResourceId::new_v7(), with_ref(fixtures::hotel(o1, "Ref A", "Oslo", 1, 1), "0")).await;
    let again = try_create(store, with_ref(fixtures::provider(o1, "Ref B"), "0")).await;
    assert!(matches!(again, Err(StoreError::Conflict)), "o1's second \"0\": {again:?}");
    try_create(store, with_ref(fixtures::hotel(o2, "Ref C", "Oslo", 1, 1), "0"))
        .await
        .expect("o2 may call a hotel \"0\"");
    try_create(store, fixtures::hotel(o1, "Ref D", "Oslo", 1, 1)).await.expect("no reference");
    try_create(store, fixtures::hotel(o1, "Ref E", "Oslo", 1, 1)).await.expect("many without a reference");

    // Renaming another resource to a taken reference is refused; its own stays.
    let mut other = Res::create(store, ResourceId::new_v7(), with_ref(fixtures::provider(o1, "Ref F"), "1")).await;
    let taken = with_ref(other.state.spec(), "0");
    other.state.apply(Command::UpdateSpec { spec: taken, by: Requester::System }, None, at(5)).expect("decided");
    let refused = flush(store, &mut other.state, &mut other.version, at(5)).await;
    assert!(matches!(refused, Err(StoreError::Conflict)), "update to a taken reference: {refused:?}");
    let found = |r: &str, o: UserId| {
        let filter = ResourceFilter { reference: Some(r.into()), owner_id: Some(o), limit: 10, ..Default::default() };
        async move { store.list_resources(filter).await.expect("list").into_iter().map(|s| s.id).collect::<Vec<_>>() }
    };
    assert_eq!(found("0", o1).await, [first.state.id()]);
    assert_eq!(found("1", o1).await, [other.state.id()], "the refused update left the old reference");
    let loaded = store.load(first.state.id()).await.expect("load").expect("stored");
    assert_eq!(loaded.spec.reference.as_deref(), Some("0"), "the reference is stored with the spec");
}

/// What the listings must return: every booking and waitlist entry as last handed to the
/// store (the suite's own record, independent of either store).
#[derive(Default)]
struct Written {
    bookings: HashMap<BookingId, Booking>,
    entries: HashMap<WaitlistEntryId, WaitlistEntry>,
}

/// One resource under test: its deciding state and stored version.
struct Res {
    state: ResourceState,
    version: i64,
}

impl Res {
    async fn create(store: &dyn Store, id: ResourceId, spec: ResourceSpec) -> Res {
        let mut r = Res { state: ResourceState::create(id, spec).expect("valid spec"), version: 0 };
        r.commit(store, &mut Written::default(), t0()).await;
        r
    }

    /// Decides `cmd` at `now` and commits it at once, recording what was written.
    async fn run(&mut self, store: &dyn Store, w: &mut Written, cmd: Command, now: Timestamp) -> Outcome {
        let out = self.state.apply(cmd.clone(), None, now).unwrap_or_else(|e| panic!("{cmd:?} refused: {e:?}"));
        self.commit(store, w, now).await;
        out
    }

    async fn commit(&mut self, store: &dyn Store, w: &mut Written, now: Timestamp) {
        let changes = self.state.take_changes();
        for ch in &changes {
            match ch {
                Change::Booking(b) => {
                    w.bookings.insert(b.id, b.clone());
                }
                Change::Waitlist(e) => {
                    w.entries.insert(e.id, e.clone());
                }
                _ => {}
            }
        }
        let batch = CommitBatch {
            resource_id: self.state.id(),
            kind: self.state.kind().kind(),
            expected_version: self.version,
            changes,
            counters: self.state.counters(),
            at: now,
        };
        self.version = store.commit(batch).await.expect("commit");
    }
}

fn tickets(booking_id: BookingId, u: UserId, confirm: bool) -> Command {
    Command::Hold {
        booking_id,
        user_id: u,
        request: BookingRequest::Tickets { category_id: None, quantity: 1 },
        confirm,
        // Confirmed at once means paid: the system confirms (a client alone may not confirm a price).
        by: if confirm { Requester::System } else { Requester::Client(u) },
    }
}

fn join(entry_id: WaitlistEntryId, u: UserId) -> Command {
    Command::JoinWaitlist {
        entry_id,
        user_id: u,
        wish: Wish::Tickets { category_id: None, quantity: 1 },
        by: Requester::Client(u),
    }
}

/// Follows `after` through every page of `filter` with `limit`; checks that each page is full
/// but the last and returns everything seen, in order.
async fn page_resources(store: &dyn Store, filter: &ResourceFilter, limit: i64) -> Vec<ResourceSummary> {
    let mut seen: Vec<ResourceSummary> = Vec::new();
    let mut after = filter.after;
    for _ in 0..100 {
        let page =
            store.list_resources(ResourceFilter { after, limit, ..filter.clone() }).await.expect("list resources");
        assert!(page.len() as i64 <= limit, "{filter:?}, limit {limit}: a page of {}", page.len());
        let Some(last) = page.last() else { return seen };
        after = Some(last.id);
        let full = page.len() as i64 == limit;
        seen.extend(page);
        if !full {
            // A short page is the last one: the next must be empty.
            let rest = store.list_resources(ResourceFilter { after, limit, ..filter.clone() }).await.expect("list");
            assert!(rest.is_empty(), "{filter:?}, limit {limit}: a short page was not the last");
            return seen;
        }
    }
    panic!("{filter:?}, limit {limit}: paging with `after` never ends");
}

/// The same for bookings, following `before`.
async fn page_bookings(store: &dyn Store, filter: &BookingFilter, limit: i64) -> Vec<Booking> {
    let mut seen: Vec<Booking> = Vec::new();
    let mut before = filter.before;
    for _ in 0..2_000 {
        let page = store.list_bookings(BookingFilter { before, limit, ..filter.clone() }).await.expect("list bookings");
        assert!(page.len() as i64 <= limit, "{filter:?}, limit {limit}: a page of {}", page.len());
        let Some(last) = page.last() else { return seen };
        before = Some((last.created_at, last.id));
        let full = page.len() as i64 == limit;
        seen.extend(page);
        if !full {
            let rest = store.list_bookings(BookingFilter { before, limit, ..filter.clone() }).await.expect("list");
            assert!(rest.is_empty(), "{filter:?}, limit {limit}: a short page was not the last");
            return seen;
        }
    }
    panic!("{filter:?}, limit {limit}: paging with `before` never ends");
}

/// Newest first: created_at descending, then id descending.
fn newest_first(mut v: Vec<Booking>) -> Vec<Booking> {
    v.sort_by_key(|b| std::cmp::Reverse((b.created_at, b.id)));
    v
}

async fn listings(store: Arc<dyn Store>) {
    let store = &*store;
    let (o1, o2, o3, stranger) = (UserId::new_v7(), UserId::new_v7(), UserId::new_v7(), UserId::new_v7());

    // ---- resources ----
    // Ids are handed out out of creation order, so insertion order is not id order.
    let specs = vec![
        fixtures::hotel(o1, "Listing Hotel A", "Lisbon", 3, 1),
        fixtures::event(o1, "Listing Event A", 50, t0()),
        fixtures::provider(o2, "Listing Clinic A"),
        fixtures::hotel(o2, "Listing Hotel B", "LISBON", 3, 1),
        fixtures::event(o2, "Listing Event B", 50, t0()),
        fixtures::hotel(o1, "Listing Hotel C", "Porto", 3, 1),
        fixtures::provider(o1, "Listing Clinic B"),
        fixtures::hotel(o2, "Listing Hotel D", "porto", 3, 1),
        fixtures::event(o1, "Listing Event C", 50, t0()),
        fixtures::hotel(o2, "Listing Hotel E", "lisbon", 3, 1),
        fixtures::provider(o2, "Listing Clinic C"),
    ];
    let n = specs.len();
    let mut pool: Vec<ResourceId> = (0..n).map(|_| ResourceId::new_v7()).collect();
    pool.sort();
    let mut res: Vec<Res> = Vec::new();
    let mut model: Vec<ResourceSummary> = Vec::new();
    // Two owners both call a hotel "0"; one event has a reference of its own.
    let references = [(0, "0"), (3, "0"), (1, "berlin-1")];
    for (i, mut spec) in specs.into_iter().enumerate() {
        spec.reference = references.iter().find(|(j, _)| *j == i).map(|(_, r)| r.to_string());
        let id = pool[(i * 7) % n];
        model.push(ResourceSummary {
            id,
            kind: spec.kind.kind(),
            name: spec.name.clone(),
            owner_id: spec.owner_id,
            city: match &spec.kind {
                KindSpec::Hotel(h) => Some(h.city.clone()),
                _ => None,
            },
            version: 1,
            reference: spec.reference.clone(),
        });
        res.push(Res::create(store, id, spec).await);
    }
    let by_id = |v: &[ResourceSummary]| {
        let mut v = v.to_vec();
        v.sort_by_key(|r| r.id);
        v
    };
    let names = |v: &[ResourceSummary]| v.iter().map(|r| r.name.clone()).collect::<Vec<String>>();
    let expect = |f: &ResourceFilter| -> Vec<ResourceSummary> {
        by_id(
            &model
                .iter()
                .filter(|r| {
                    f.kind.is_none_or(|k| r.kind == k)
                        && f.owner_id.is_none_or(|o| r.owner_id == o)
                        && f.after.is_none_or(|a| r.id > a)
                        && f.reference.as_ref().is_none_or(|x| r.reference.as_ref() == Some(x))
                        && f.city
                            .as_ref()
                            .is_none_or(|c| r.city.as_ref().is_some_and(|rc| rc.to_lowercase() == c.to_lowercase()))
                })
                .cloned()
                .collect::<Vec<_>>(),
        )
    };
    let filters = [
        ResourceFilter::default(),
        ResourceFilter { kind: Some(ResourceKind::Hotel), ..Default::default() },
        ResourceFilter { kind: Some(ResourceKind::Event), ..Default::default() },
        ResourceFilter { kind: Some(ResourceKind::Provider), ..Default::default() },
        ResourceFilter { owner_id: Some(o1), ..Default::default() },
        ResourceFilter { owner_id: Some(o2), ..Default::default() },
        ResourceFilter { owner_id: Some(stranger), ..Default::default() },
        ResourceFilter { city: Some("lisbon".into()), ..Default::default() },
        ResourceFilter { city: Some("LiSbOn".into()), ..Default::default() },
        ResourceFilter { city: Some("PORTO".into()), ..Default::default() },
        ResourceFilter { city: Some("Lisb".into()), ..Default::default() },
        ResourceFilter { city: Some("Lisbon ".into()), ..Default::default() },
        ResourceFilter { city: Some("Lisbon".into()), kind: Some(ResourceKind::Event), ..Default::default() },
        ResourceFilter {
            city: Some("lisbon".into()),
            kind: Some(ResourceKind::Hotel),
            owner_id: Some(o2),
            ..Default::default()
        },
        ResourceFilter { kind: Some(ResourceKind::Provider), owner_id: Some(o1), ..Default::default() },
        ResourceFilter { kind: Some(ResourceKind::Hotel), owner_id: Some(o2), ..Default::default() },
        ResourceFilter { owner_id: Some(o2), after: Some(pool[4]), ..Default::default() },
        ResourceFilter { after: Some(ResourceId(Uuid::nil())), ..Default::default() },
        ResourceFilter { after: Some(ResourceId(uuid_max())), ..Default::default() },
        ResourceFilter { reference: Some("0".into()), ..Default::default() },
        ResourceFilter { reference: Some("0".into()), owner_id: Some(o2), ..Default::default() },
        ResourceFilter { reference: Some("berlin-1".into()), kind: Some(ResourceKind::Hotel), ..Default::default() },
        ResourceFilter { reference: Some("BERLIN-1".into()), ..Default::default() },
    ];
    for f in &filters {
        let want = expect(f);
        for limit in [1, 2, 3, 1_000] {
            assert_eq!(page_resources(store, f, limit).await, want, "{f:?} paged by {limit}");
        }
    }
    // The model the filters were checked against says what the fixture means.
    assert_eq!(model.len(), 11);
    assert_eq!(expect(&filters[0]).len(), 11);
    let lisbon = expect(&filters[7]);
    let mut lisbon_names = names(&lisbon);
    lisbon_names.sort();
    assert_eq!(lisbon_names, ["Listing Hotel A", "Listing Hotel B", "Listing Hotel E"]);
    assert_eq!(names(&expect(&filters[9])).len(), 2, "two hotels in Porto");
    assert_eq!(names(&expect(&filters[13])).len(), 2, "o2 has two hotels in Lisbon");
    assert_eq!(expect(&filters[4]).len(), 5, "o1 owns five resources");
    assert_eq!(names(&expect(&filters[19])).len(), 2, "two owners call a hotel \"0\"");
    assert_eq!(names(&expect(&filters[20])), ["Listing Hotel B"], "o2's \"0\"");
    for empty in [6, 10, 11, 12, 18, 21, 22] {
        assert!(expect(&filters[empty]).is_empty(), "{:?} matches nothing", filters[empty]);
    }
    // Cities come back as spelled, and only for hotels.
    let all = store.list_resources(ResourceFilter { limit: 100, ..Default::default() }).await.expect("list");
    assert!(all.iter().all(|r| (r.kind == ResourceKind::Hotel) == r.city.is_some()), "{all:?}");
    assert!(all.iter().any(|r| r.city.as_deref() == Some("LISBON")));
    // Limits are clamped to 1..=1000.
    let first = vec![by_id(&model)[0].clone()];
    for limit in [0, -1, i64::MIN] {
        let got = store.list_resources(ResourceFilter { limit, ..Default::default() }).await.expect("list");
        assert_eq!(got, first, "limit {limit} lists one resource");
    }
    for limit in [1_001, i64::MAX] {
        let got = store.list_resources(ResourceFilter { limit, ..Default::default() }).await.expect("list");
        assert_eq!(got, by_id(&model), "limit {limit} lists them all");
    }

    // ---- bookings ----
    let (u1, u2, u3) = (UserId::new_v7(), UserId::new_v7(), UserId::new_v7());
    let mut w = Written::default();
    // Booking ids are also handed out out of creation order, so neither id order nor
    // insertion order is the listing order.
    let mut bpool: Vec<BookingId> = (0..13).map(|_| BookingId::new_v7()).collect();
    bpool.sort();
    let b: Vec<BookingId> = (0..13).map(|i| bpool[(i * 5) % 13]).collect();
    let (hotel_a, event_a, event_b, event_c) = (0, 1, 4, 8);
    let room_type = match &res[hotel_a].state.spec().kind {
        KindSpec::Hotel(h) => h.room_types[0].id,
        _ => unreachable!("hotel A is a hotel"),
    };
    let stay = |id: BookingId, u: UserId| Command::Hold {
        booking_id: id,
        user_id: u,
        request: BookingRequest::Stay {
            room_type_id: room_type,
            room_id: None,
            check_in: "2030-03-01".parse().expect("date"),
            check_out: "2030-03-03".parse().expect("date"),
            guests: 2,
        },
        confirm: true,
        // Booked and paid: confirmed by the system (a client alone may not confirm a price).
        by: Requester::System,
    };
    res[event_c].run(store, &mut w, tickets(b[0], u1, false), at(0)).await;
    res[event_c].run(store, &mut w, tickets(b[1], u2, true), at(0)).await;
    res[event_a].run(store, &mut w, tickets(b[2], u1, true), at(10)).await;
    res[event_a].run(store, &mut w, tickets(b[3], u2, true), at(10)).await;
    res[event_a].run(store, &mut w, tickets(b[4], u3, false), at(10)).await;
    res[event_b].run(store, &mut w, tickets(b[5], u1, false), at(20)).await;
    res[event_a].run(store, &mut w, tickets(b[6], u3, true), at(20)).await;
    res[event_b].run(store, &mut w, tickets(b[7], u2, true), at(30)).await;
    let cancel = Command::Cancel { booking_id: b[7], reason: "cannot come".into(), by: Requester::Client(u2) };
    res[event_b].run(store, &mut w, cancel, at(40)).await;
    res[event_a].run(store, &mut w, tickets(b[8], u1, false), at(40)).await;
    res[event_a].run(store, &mut w, Command::Release { booking_id: b[8], by: Requester::Client(u1) }, at(50)).await;
    res[hotel_a].run(store, &mut w, stay(b[9], u2), at(50)).await;
    res[event_b].run(store, &mut w, tickets(b[10], u3, true), at(60)).await;
    res[event_b].run(store, &mut w, tickets(b[11], u1, true), at(60)).await;
    res[event_c].run(store, &mut w, tickets(b[12], u3, true), at(70)).await;
    // The first hold lapses (ten minutes); the other holds were placed on other resources.
    res[event_c].run(store, &mut w, Command::Tick, at(700)).await;

    let status = |i: usize| w.bookings[&b[i]].status;
    use BookingStatus::{Cancelled, Completed, Confirmed, Expired, Held, Released};
    assert_eq!(
        (0..13).map(status).collect::<Vec<_>>(),
        [
            Expired, Confirmed, Confirmed, Confirmed, Held, Held, Confirmed, Cancelled, Released, Confirmed, Confirmed,
            Confirmed, Confirmed
        ],
        "the fixture's statuses"
    );
    let everything = newest_first(w.bookings.values().cloned().collect());
    assert_eq!(everything.len(), 13);
    // The fixture discriminates: newest-first is neither id order nor creation order reversed.
    let order: Vec<BookingId> = everything.iter().map(|x| x.id).collect();
    let mut by_id_desc = order.clone();
    by_id_desc.sort_by(|x, y| y.cmp(x));
    assert_ne!(order, by_id_desc);
    assert_ne!(order, b.iter().rev().copied().collect::<Vec<_>>());

    let owner_of = |rid: ResourceId| model.iter().find(|r| r.id == rid).map(|r| r.owner_id);
    let expect_b = |f: &BookingFilter| -> Vec<Booking> {
        everything
            .iter()
            .filter(|x| {
                f.user_id.is_none_or(|u| x.user_id == u)
                    && f.resource_id.is_none_or(|r| x.resource_id == r)
                    && f.owner_id.is_none_or(|o| owner_of(x.resource_id) == Some(o))
                    && (f.statuses.is_empty() || f.statuses.contains(&x.status))
                    && f.created_from.is_none_or(|t| x.created_at >= t)
                    && f.created_to.is_none_or(|t| x.created_at < t)
                    && f.before.is_none_or(|c| (x.created_at, x.id) < c)
            })
            .cloned()
            .collect()
    };
    let rid = |i: usize| res[i].state.id();
    let bf = BookingFilter::default;
    let filters: Vec<(BookingFilter, Vec<usize>)> = vec![
        (bf(), vec![12, 10, 11, 9, 8, 7, 5, 6, 2, 3, 4, 0, 1]),
        (BookingFilter { user_id: Some(u1), ..bf() }, vec![11, 8, 5, 2, 0]),
        (BookingFilter { user_id: Some(u2), ..bf() }, vec![9, 7, 3, 1]),
        (BookingFilter { user_id: Some(u3), ..bf() }, vec![12, 10, 6, 4]),
        (BookingFilter { user_id: Some(stranger), ..bf() }, vec![]),
        (BookingFilter { resource_id: Some(rid(event_a)), ..bf() }, vec![8, 6, 2, 3, 4]),
        (BookingFilter { resource_id: Some(rid(event_b)), ..bf() }, vec![10, 11, 7, 5]),
        (BookingFilter { resource_id: Some(rid(event_c)), ..bf() }, vec![12, 0, 1]),
        (BookingFilter { resource_id: Some(rid(hotel_a)), ..bf() }, vec![9]),
        (BookingFilter { resource_id: Some(rid(2)), ..bf() }, vec![]),
        (BookingFilter { owner_id: Some(o1), ..bf() }, vec![12, 9, 8, 6, 2, 3, 4, 0, 1]),
        (BookingFilter { owner_id: Some(o2), ..bf() }, vec![10, 11, 7, 5]),
        (BookingFilter { owner_id: Some(stranger), ..bf() }, vec![]),
        (BookingFilter { statuses: vec![Held], ..bf() }, vec![5, 4]),
        (BookingFilter { statuses: vec![Confirmed, Cancelled], ..bf() }, vec![12, 10, 11, 9, 7, 6, 2, 3, 1]),
        (BookingFilter { statuses: vec![Expired], ..bf() }, vec![0]),
        (BookingFilter { statuses: vec![Released], ..bf() }, vec![8]),
        (BookingFilter { statuses: vec![Completed], ..bf() }, vec![]),
        (
            BookingFilter { statuses: vec![Held, Confirmed, Completed, Released, Expired, Cancelled], ..bf() },
            vec![12, 10, 11, 9, 8, 7, 5, 6, 2, 3, 4, 0, 1],
        ),
        // [from, to): a booking made exactly at `from` is in, one made exactly at `to` is out.
        (BookingFilter { created_from: Some(at(20)), created_to: Some(at(50)), ..bf() }, vec![8, 7, 5, 6]),
        (BookingFilter { created_from: Some(at(50)), ..bf() }, vec![12, 10, 11, 9]),
        (BookingFilter { created_to: Some(at(10)), ..bf() }, vec![0, 1]),
        (BookingFilter { created_from: Some(at(30)), created_to: Some(at(30)), ..bf() }, vec![]),
        (BookingFilter { created_from: Some(at(50)), created_to: Some(at(20)), ..bf() }, vec![]),
        (BookingFilter { user_id: Some(u1), statuses: vec![Held, Released], ..bf() }, vec![8, 5]),
        (BookingFilter { owner_id: Some(o1), user_id: Some(u2), ..bf() }, vec![9, 3, 1]),
        (BookingFilter { owner_id: Some(o1), resource_id: Some(rid(event_b)), ..bf() }, vec![]),
        (BookingFilter { owner_id: Some(o2), resource_id: Some(rid(event_b)), ..bf() }, vec![10, 11, 7, 5]),
        (
            BookingFilter {
                user_id: Some(u3),
                statuses: vec![Confirmed],
                created_from: Some(at(10)),
                created_to: Some(at(61)),
                ..bf()
            },
            vec![10, 6],
        ),
        (
            BookingFilter {
                resource_id: Some(rid(event_a)),
                statuses: vec![Confirmed, Held],
                created_to: Some(at(20)),
                ..bf()
            },
            vec![2, 3, 4],
        ),
        // Cursors that are no booking: everything at that instant is before (t, max) and
        // nothing at it is before (t, nil).
        (BookingFilter { before: Some((at(10), BookingId(uuid_max()))), ..bf() }, vec![2, 3, 4, 0, 1]),
        (BookingFilter { before: Some((at(10), BookingId(Uuid::nil()))), ..bf() }, vec![0, 1]),
        (BookingFilter { before: Some((at(0), BookingId(Uuid::nil()))), ..bf() }, vec![]),
        (
            BookingFilter { before: Some((at(1_000), BookingId(Uuid::nil()))), owner_id: Some(o2), ..bf() },
            vec![10, 11, 7, 5],
        ),
    ];
    for (f, handwritten) in &filters {
        let want = expect_b(f);
        // Ties on created_at were written by hand in creation order: sort them by id (desc).
        let mut by_hand: Vec<Booking> = handwritten.iter().map(|&i| w.bookings[&b[i]].clone()).collect();
        by_hand = newest_first(by_hand);
        assert_eq!(want, by_hand, "the suite's model disagrees with the fixture for {f:?}");
        for limit in [2, 1_000] {
            assert_eq!(page_bookings(store, f, limit).await, want, "{f:?} paged by {limit}");
        }
    }
    // A cursor inside a group of bookings made at the same instant splits it by id.
    let tied: Vec<&Booking> = everything.iter().filter(|x| x.created_at == at(10)).collect();
    assert_eq!(tied.len(), 3);
    let cursor = (tied[1].created_at, tied[1].id);
    let got = store.list_bookings(BookingFilter { before: Some(cursor), limit: 100, ..bf() }).await.expect("list");
    assert_eq!(got, everything.iter().skip_while(|x| (x.created_at, x.id) >= cursor).cloned().collect::<Vec<_>>());
    assert_eq!(got.len(), 3, "the last of the tie and the two older bookings");
    // Limits are clamped to 1..=1000.
    for limit in [0, -1, i64::MIN] {
        let got = store.list_bookings(BookingFilter { limit, ..bf() }).await.expect("list");
        assert_eq!(got, everything[..1], "limit {limit} lists one booking");
    }
    for limit in [1_001, i64::MAX] {
        let got = store.list_bookings(BookingFilter { limit, ..bf() }).await.expect("list");
        assert_eq!(got, everything, "limit {limit} lists them all");
    }
    // Resource versions moved with the commits.
    let listed = store.list_resources(ResourceFilter { limit: 100, ..Default::default() }).await.expect("list");
    for r in &res {
        let s = listed.iter().find(|x| x.id == r.state.id()).expect("listed");
        assert_eq!(s.version, r.version, "version of {}", s.name);
    }
    assert!(res[event_a].version > 1);

    // More than a page: 1,001 bookings made at one instant, listed by id alone.
    let ub = UserId::new_v7();
    let mut bulk = Res::create(store, ResourceId::new_v7(), fixtures::event(o3, "Listing Bulk", 1_100, t0())).await;
    for _ in 0..1_001 {
        bulk.state.apply(tickets(BookingId::new_v7(), ub, true), None, at(800)).expect("book");
    }
    bulk.commit(store, &mut w, at(800)).await;
    let mine = newest_first(w.bookings.values().filter(|x| x.user_id == ub).cloned().collect());
    assert_eq!(mine.len(), 1_001);
    let f = BookingFilter { user_id: Some(ub), ..bf() };
    for limit in [1_000, 1_001, 5_000, i64::MAX] {
        let got = store.list_bookings(BookingFilter { limit, ..f.clone() }).await.expect("list");
        assert_eq!(got, mine[..1_000], "limit {limit} is clamped to 1000");
    }
    let got = store.list_bookings(BookingFilter { limit: 999, ..f.clone() }).await.expect("list");
    assert_eq!(got, mine[..999]);
    assert_eq!(page_bookings(store, &f, 1_000).await, mine);
    assert_eq!(page_bookings(store, &f, 333).await, mine);
    let of_o3 = BookingFilter { owner_id: Some(o3), limit: 5_000, ..bf() };
    assert_eq!(store.list_bookings(of_o3).await.expect("list"), mine[..1_000]);

    // ---- waitlist entries ----
    let (w1, w2, filler) = (UserId::new_v7(), UserId::new_v7(), UserId::new_v7());
    let mut wl1 = Res::create(store, ResourceId::new_v7(), fixtures::event(o3, "Listing Waitlist One", 1, t0())).await;
    let mut wl2 = Res::create(store, ResourceId::new_v7(), fixtures::event(o3, "Listing Waitlist Two", 1, t0())).await;
    let mut epool: Vec<WaitlistEntryId> = (0..4).map(|_| WaitlistEntryId::new_v7()).collect();
    epool.sort();
    let (e1, e2, e3, e4) = (epool[3], epool[0], epool[2], epool[1]);
    wl1.run(store, &mut w, tickets(BookingId::new_v7(), filler, true), at(900)).await;
    let filler_b = BookingId::new_v7();
    wl2.run(store, &mut w, tickets(filler_b, filler, true), at(900)).await;
    wl1.run(store, &mut w, join(e1, w1), at(910)).await;
    wl2.run(store, &mut w, join(e2, w1), at(910)).await;
    wl1.run(store, &mut w, join(e3, w2), at(920)).await;
    wl1.run(store, &mut w, Command::LeaveWaitlist { entry_id: e1, by: Requester::Client(w1) }, at(930)).await;
    let cancel = Command::Cancel { booking_id: filler_b, reason: "freed".into(), by: Requester::Client(filler) };
    wl2.run(store, &mut w, cancel, at(940)).await;
    wl1.run(store, &mut w, join(e4, w1), at(950)).await;
    let entry = |id: WaitlistEntryId| w.entries[&id].clone();
    assert_eq!(entry(e1).status, WaitlistStatus::Left);
    assert_eq!(entry(e2).status, WaitlistStatus::Offered, "the freed ticket is offered to w1");
    assert_eq!(entry(e4).status, WaitlistStatus::Waiting);
    let w1_entries = vec![entry(e4), entry(e1), entry(e2)];
    // Newest first, the tie at 910 broken by id: neither id order nor creation order.
    assert!(e1 > e2 && e4 < e1);
    for limit in [3, 10, 1_001, i64::MAX] {
        assert_eq!(store.list_waitlist_entries(w1, limit).await.expect("list"), w1_entries, "limit {limit}");
    }
    assert_eq!(store.list_waitlist_entries(w1, 2).await.expect("list"), w1_entries[..2]);
    for limit in [1, 0, -3, i64::MIN] {
        assert_eq!(store.list_waitlist_entries(w1, limit).await.expect("list"), w1_entries[..1], "limit {limit}");
    }
    assert_eq!(store.list_waitlist_entries(w2, 10).await.expect("list"), vec![entry(e3)]);
    assert!(store.list_waitlist_entries(stranger, 10).await.expect("list").is_empty());
    assert!(store.list_waitlist_entries(filler, 10).await.expect("list").is_empty());
    for (e, r) in [(e1, &wl1), (e2, &wl2), (e3, &wl1), (e4, &wl1)] {
        assert_eq!(store.locate_entry(e).await.expect("locate"), Some(r.state.id()), "entry {e:?}");
    }
    assert_eq!(store.locate_entry(WaitlistEntryId::new_v7()).await.expect("locate"), None);
    // The offer is a held booking of w1 carrying the entry's id.
    let offers = store.list_bookings(BookingFilter { user_id: Some(w1), limit: 10, ..bf() }).await.expect("list");
    assert_eq!(offers.len(), 1);
    assert_eq!((offers[0].status, offers[0].waitlist_entry_id), (Held, Some(e2)));
    assert_eq!(offers[0], w.bookings[&offers[0].id]);
}

// ---- overview -------------------------------------------------------------------------------

#[tokio::test]
async fn memory_store_overview_conforms() {
    overview(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn postgres_store_overview_conforms() {
    let db = TestDb::new();
    overview(Arc::new(store_of(&db).await)).await;
}

/// The overview sums what the resources committed: kinds, held and confirmed counters,
/// waiting and offered waitlist entries (finished ones excluded).
async fn overview(store: Arc<dyn Store>) {
    let store = &*store;
    assert_eq!(store.overview().await.expect("overview"), StoreOverview::default(), "an empty store has nothing");
    let owner = UserId::new_v7();
    let u: Vec<UserId> = (0..5).map(|_| UserId::new_v7()).collect();
    let mut w = Written::default();
    Res::create(store, ResourceId::new_v7(), fixtures::hotel(owner, "Overview Hotel", "Porto", 2, 1)).await;
    Res::create(store, ResourceId::new_v7(), fixtures::provider(owner, "Overview Clinic")).await;

    // Three tickets: two confirmed in one booking, one held; then two clients wait.
    let mut small = Res::create(store, ResourceId::new_v7(), fixtures::event(owner, "Overview Small", 3, t0())).await;
    let pair = Command::Hold {
        booking_id: BookingId::new_v7(),
        user_id: u[0],
        request: BookingRequest::Tickets { category_id: None, quantity: 2 },
        confirm: true,
        // Booked and paid: confirmed by the system (a client alone may not confirm a price).
        by: Requester::System,
    };
    small.run(store, &mut w, pair, at(1)).await;
    let held = BookingId::new_v7();
    small.run(store, &mut w, tickets(held, u[1], false), at(2)).await;
    let (first, second, gone) = (WaitlistEntryId::new_v7(), WaitlistEntryId::new_v7(), WaitlistEntryId::new_v7());
    small.run(store, &mut w, join(first, u[2]), at(3)).await;
    small.run(store, &mut w, join(second, u[3]), at(4)).await;
    small.run(store, &mut w, join(gone, u[4]), at(5)).await;
    small.run(store, &mut w, Command::LeaveWaitlist { entry_id: gone, by: Requester::Client(u[4]) }, at(6)).await;
    // The held ticket is released: it is offered to the first waiting client (a held booking).
    small.run(store, &mut w, Command::Release { booking_id: held, by: Requester::Client(u[1]) }, at(7)).await;
    assert_eq!(w.entries[&first].status, WaitlistStatus::Offered, "the release made an offer");

    // Ten tickets: three held in one booking, four confirmed in one, one released.
    let mut big = Res::create(store, ResourceId::new_v7(), fixtures::event(owner, "Overview Big", 10, t0())).await;
    let take = |user: UserId, quantity: u32, confirm: bool| Command::Hold {
        booking_id: BookingId::new_v7(),
        user_id: user,
        request: BookingRequest::Tickets { category_id: None, quantity },
        confirm,
        // Confirmed at once means paid: the system confirms (a client alone may not confirm a price).
        by: if confirm { Requester::System } else { Requester::Client(user) },
    };
    big.run(store, &mut w, take(u[0], 3, false), at(8)).await;
    big.run(store, &mut w, take(u[1], 4, true), at(9)).await;
    let let_go = BookingId::new_v7();
    big.run(store, &mut w, tickets(let_go, u[2], false), at(10)).await;
    big.run(store, &mut w, Command::Release { booking_id: let_go, by: Requester::Client(u[2]) }, at(11)).await;

    let o = store.overview().await.expect("overview");
    assert_eq!(
        o,
        StoreOverview {
            hotels: 1,
            events: 2,
            providers: 1,
            // The offer (1 ticket) and the hold of 3.
            held_bookings: 2,
            held_units: 4,
            confirmed_bookings: 2,
            confirmed_units: 6,
            waitlist_waiting: 1,
            waitlist_offered: 1,
        }
    );
}

// ---- upcoming and past ----------------------------------------------------------------------

#[tokio::test]
async fn memory_store_filters_by_service_end() {
    service_end_filters(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn postgres_store_filters_by_service_end() {
    let db = TestDb::new();
    service_end_filters(Arc::new(store_of(&db).await)).await;
}

/// A stay (Berlin, check-out 11:00), event tickets and an appointment: each is "upcoming"
/// until its service ends and "past" from then on, at the same instant in both stores.
async fn service_end_filters(store: Arc<dyn Store>) {
    let store = &*store;
    let (owner, u) = (UserId::new_v7(), UserId::new_v7());
    let mut w = Written::default();
    let mut hotel =
        Res::create(store, ResourceId::new_v7(), fixtures::hotel(owner, "Ends Hotel", "Berlin", 1, 0)).await;
    let mut event = Res::create(store, ResourceId::new_v7(), fixtures::event(owner, "Ends Event", 10, t0())).await;
    let mut clinic = Res::create(store, ResourceId::new_v7(), fixtures::provider(owner, "Ends Clinic")).await;
    let room_type = match &hotel.state.spec().kind {
        KindSpec::Hotel(h) => h.room_types[0].id,
        _ => unreachable!("a hotel"),
    };
    let hold = |request: BookingRequest| Command::Hold {
        booking_id: BookingId::new_v7(),
        user_id: u,
        request,
        confirm: true,
        // Booked and paid: confirmed by the system (a client alone may not confirm a price).
        by: Requester::System,
    };
    let stay = BookingRequest::Stay {
        room_type_id: room_type,
        room_id: None,
        check_in: "2030-03-01".parse().expect("date"),
        check_out: "2030-03-03".parse().expect("date"),
        guests: 1,
    };
    let slot = (1..14)
        .find_map(|d| {
            let day = "2030-01-07".parse::<jiff::civil::Date>().expect("date") + jiff::Span::new().days(d);
            clinic.state.provider_free_slots(day, t0()).ok().and_then(|v| v.into_iter().next())
        })
        .expect("a working day has slots");
    let booked = |o: Outcome| match o {
        Outcome::Booking { booking } => booking,
        other => panic!("not a booking: {other:?}"),
    };
    let s = booked(hotel.run(store, &mut w, hold(stay), t0()).await);
    let t =
        booked(event.run(store, &mut w, hold(BookingRequest::Tickets { category_id: None, quantity: 1 }), t0()).await);
    let a =
        booked(clinic.run(store, &mut w, hold(BookingRequest::Appointment { starts_at: slot.starts_at }), t0()).await);
    let event_end = match &event.state.spec().kind {
        KindSpec::Event(e) => e.ends_at,
        _ => unreachable!("an event"),
    };
    // Check-out 11:00 in Berlin on 2030-03-03 is 10:00 UTC (winter time).
    let stay_end: Timestamp = "2030-03-03T10:00:00Z".parse().expect("timestamp");
    let ends = [(s.id, stay_end), (t.id, event_end), (a.id, slot.ends_at)];
    let mut instants: Vec<Timestamp> = vec![t0()];
    for (_, end) in ends {
        instants.extend([end - SignedDuration::from_secs(1), end, end + SignedDuration::from_secs(1)]);
    }
    for now in instants {
        let mut upcoming: Vec<BookingId> = ends.iter().filter(|(_, e)| *e > now).map(|(id, _)| *id).collect();
        let mut past: Vec<BookingId> = ends.iter().filter(|(_, e)| *e <= now).map(|(id, _)| *id).collect();
        let list = |f: BookingFilter| async move {
            let mut ids: Vec<BookingId> = store.list_bookings(f).await.expect("list").iter().map(|b| b.id).collect();
            ids.sort();
            ids
        };
        upcoming.sort();
        past.sort();
        let mine = BookingFilter { user_id: Some(u), limit: 100, ..BookingFilter::default() };
        assert_eq!(list(BookingFilter { ends_after: Some(now), ..mine.clone() }).await, upcoming, "upcoming at {now}");
        assert_eq!(list(BookingFilter { ended_by: Some(now), ..mine.clone() }).await, past, "past at {now}");
        // Combined with the other filters, e.g. an owner's.
        let owners =
            BookingFilter { owner_id: Some(owner), ends_after: Some(now), limit: 100, ..BookingFilter::default() };
        assert_eq!(list(owners).await, upcoming, "owner's upcoming at {now}");
    }
}

// ---- unscoped listings ----------------------------------------------------------------------

#[tokio::test]
async fn memory_store_lists_everything_across_time() {
    unscoped_listing(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn postgres_store_lists_everything_across_time() {
    let db = TestDb::new();
    unscoped_listing(Arc::new(store_of(&db).await)).await;
}

/// Bookings made from minutes to years ago, listed with no user, resource or owner (an
/// admin's view), page by page: Postgres reads growing windows of recent rows first, and no
/// page size may make it skip or repeat one.
async fn unscoped_listing(store: Arc<dyn Store>) {
    let store = &*store;
    // Whole microseconds, as PostgreSQL keeps them.
    let now = Timestamp::from_microsecond(Timestamp::now().as_microsecond()).expect("in range");
    let ago = |mins: i64| now - SignedDuration::from_mins(mins);
    let long_ago = ago(3 * 365 * 24 * 60);
    let owner = UserId::new_v7();
    let mut w = Written::default();
    let mut r = Res {
        state: ResourceState::create(ResourceId::new_v7(), fixtures::event(owner, "Across Time", 100, now))
            .expect("valid"),
        version: 0,
    };
    r.commit(store, &mut w, long_ago).await;
    // Two in the last hour, then a few hours, days, weeks, months and years back.
    let mins = [2 * 365 * 24 * 60, 200 * 24 * 60, 20 * 24 * 60, 20 * 24 * 60, 3 * 24 * 60, 5 * 60, 30, 10];
    for m in mins {
        r.run(store, &mut w, tickets(BookingId::new_v7(), UserId::new_v7(), true), ago(m)).await;
    }
    let all = newest_first(w.bookings.values().cloned().collect());
    assert_eq!(all.len(), mins.len());
    for limit in 1..=9 {
        assert_eq!(page_bookings(store, &BookingFilter::default(), limit).await, all, "paged by {limit}");
    }
    // With a status filter and an upper bound, too.
    let f = BookingFilter {
        created_to: Some(ago(60)),
        statuses: vec![BookingStatus::Confirmed],
        ..BookingFilter::default()
    };
    let older: Vec<Booking> = all.iter().filter(|b| b.created_at < ago(60)).cloned().collect();
    assert_eq!(older.len(), 6);
    for limit in [1, 2, 4, 100] {
        assert_eq!(page_bookings(store, &f, limit).await, older, "before an hour ago, paged by {limit}");
    }
}

#[tokio::test]
async fn memory_store_keeps_dashboard_counters_conformingly() {
    dashboard_counters(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn postgres_store_keeps_dashboard_counters_conformingly() {
    let db = TestDb::new();
    dashboard_counters(Arc::new(store_of(&db).await)).await;
}

/// The counters the state machine emits are added up per day across batches, read back by
/// range, and the bookings a feed replay asks for come back whatever their status.
async fn dashboard_counters(store: Arc<dyn Store>) {
    use engine::domain::ingest::{IngestAction, IngestEvent, IngestStatus};
    use jiff::civil::date;
    let owner = UserId::new_v7();
    let now = t0();
    let spec = fixtures::hotel(owner, "Counting Hotel", "Porto", 2, 0);
    let (double, room) = match &spec.kind {
        KindSpec::Hotel(h) => (h.room_types[0].id, h.rooms[0].id),
        _ => unreachable!(),
    };
    let id = ResourceId::new_v7();
    let mut state = ResourceState::create(id, spec).expect("hotel");
    let mut version = 0;
    flush(&*store, &mut state, &mut version, now).await.expect("create");

    // A client's three nights over a month end (100.00 a night), then the feed books and
    // cancels single nights, in two batches.
    let client = UserId::new_v7();
    let stay = BookingRequest::Stay {
        room_type_id: double,
        room_id: Some(room),
        check_in: date(2030, 1, 30),
        check_out: date(2030, 2, 2),
        guests: 2,
    };
    let cmd = Command::Hold {
        booking_id: BookingId::new_v7(),
        user_id: client,
        request: stay,
        confirm: true,
        // Booked and paid: confirmed by the system (a client alone may not confirm a price).
        by: Requester::System,
    };
    state.apply(cmd, None, now).expect("stay");
    let ev = |key: &str, room: &str, night, action| IngestEvent {
        key: key.into(),
        booking_id: BookingId::new_v7(),
        room: room.into(),
        night,
        action,
    };
    let by = Requester::Owner(owner);
    let first = vec![
        ev("a", "102", date(2030, 1, 31), IngestAction::Book),
        ev("b", "102", date(2030, 2, 1), IngestAction::Book),
    ];
    let booked_b = first[1].booking_id;
    let out = state.apply(Command::Ingest { events: first, by }, None, now).expect("ingest");
    assert!(matches!(&out, Outcome::Ingested { results } if results.iter().all(|r| r.status == IngestStatus::Booked)));
    flush(&*store, &mut state, &mut version, now).await.expect("batch 1");
    let second = vec![ev("c", "102", date(2030, 2, 1), IngestAction::Cancel)];
    state.apply(Command::Ingest { events: second, by }, None, now).expect("cancel");
    flush(&*store, &mut state, &mut version, now).await.expect("batch 2");

    let got = store.daily_stats(id, date(2030, 1, 1), date(2031, 1, 1)).await.expect("stats");
    let rows: Vec<(String, i64, i64, i64, i64)> = got
        .iter()
        .map(|d| (d.day.to_string(), d.booked_units, d.booked_minor, d.cancelled_units, d.cancelled_minor))
        .collect();
    // 30,000 over three nights: 10,000 each; the feed's nights are 100.00 each.
    assert_eq!(
        rows,
        vec![
            ("2030-01-30".to_owned(), 1, 10_000, 0, 0),
            ("2030-01-31".to_owned(), 2, 20_000, 0, 0),
            ("2030-02-01".to_owned(), 1, 10_000, 1, 10_000),
        ]
    );
    // Ranges are half-open and per resource.
    let feb = store.daily_stats(id, date(2030, 2, 1), date(2030, 3, 1)).await.expect("feb");
    assert_eq!(feb.len(), 1);
    assert!(
        store.daily_stats(ResourceId::new_v7(), date(2030, 1, 1), date(2031, 1, 1)).await.expect("other").is_empty()
    );

    let found = store.load_bookings(id, vec![booked_b, BookingId::new_v7()]).await.expect("load");
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].id, found[0].status), (booked_b, BookingStatus::Cancelled));
    assert!(store.load_bookings(ResourceId::new_v7(), vec![booked_b]).await.expect("other").is_empty());
}

/// The V6 migration backfills `daily_stats` from bookings written before it; with the same
/// rules as the engine, it must produce exactly the counters the engine keeps.
#[tokio::test]
async fn the_migration_backfill_agrees_with_the_engine_counters() {
    let db = TestDb::new();
    let store = Arc::new(store_of(&db).await);
    dashboard_counters(store.clone()).await;
    let owner = UserId::new_v7();
    let now = t0();
    // An event: two sales, one cancelled. A provider: one appointment.
    let mut event =
        ResourceState::create(ResourceId::new_v7(), fixtures::event(owner, "Backfill Gig", 10, now)).expect("event");
    let mut v = 0;
    let (u, sold) = (UserId::new_v7(), BookingId::new_v7());
    event.apply(tickets(sold, u, true), None, now).expect("sale");
    event.apply(tickets(BookingId::new_v7(), u, true), None, now).expect("sale");
    event
        .apply(Command::Cancel { booking_id: sold, reason: String::new(), by: Requester::Client(u) }, None, now)
        .expect("cancel");
    flush(&*store, &mut event, &mut v, now).await.expect("event");
    let mut provider =
        ResourceState::create(ResourceId::new_v7(), fixtures::provider(owner, "Backfill Clinic")).expect("provider");
    let mut v = 0;
    let starts_at: Timestamp = "2030-01-08T08:00:00Z".parse().expect("instant");
    let appointment = Command::Hold {
        booking_id: BookingId::new_v7(),
        user_id: u,
        request: BookingRequest::Appointment { starts_at },
        confirm: true,
        // Booked and paid: confirmed by the system (a client alone may not confirm a price).
        by: Requester::System,
    };
    provider.apply(appointment, None, now).expect("appointment");
    flush(&*store, &mut provider, &mut v, now).await.expect("provider");

    let c = db.client().await;
    let snapshot = async |c: &tokio_postgres::Client| -> Vec<String> {
        c.query(
            "SELECT concat_ws(' ', resource_id, day, booked_units, booked_minutes, booked_minor, cancelled_units, cancelled_minor)
             FROM daily_stats WHERE (booked_units, booked_minutes, booked_minor, cancelled_units, cancelled_minor) <> (0, 0, 0, 0, 0)
             ORDER BY resource_id, day",
            &[],
        )
        .await
        .expect("rows")
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    let engine_rows = snapshot(&c).await;
    assert_eq!(engine_rows.len(), 3 + 2, "hotel nights, the event's sale day, the appointment's day: {engine_rows:?}");
    c.batch_execute("DELETE FROM daily_stats").await.expect("delete");
    let sql = include_str!("../../../migrations/V6__dashboard.sql");
    let backfill = sql.find("INSERT INTO daily_stats").map(|i| &sql[i..]).expect("the backfill statement");
    c.batch_execute(backfill).await.expect("backfill");
    assert_eq!(snapshot(&c).await, engine_rows);
}

// ---- a booking id is used once --------------------------------------------------------------

#[tokio::test]
async fn memory_store_refuses_a_second_booking_under_a_known_id() {
    booking_ids_are_unique(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn postgres_store_refuses_a_second_booking_under_a_known_id() {
    let db = TestDb::new();
    booking_ids_are_unique(Arc::new(store_of(&db).await)).await;
}

/// Two resources each decide a booking under the same id (neither can know the other's):
/// the store keeps the first and refuses the second batch whole, as a conflict.
async fn booking_ids_are_unique(store: Arc<dyn Store>) {
    let store = &*store;
    let (owner, u) = (UserId::new_v7(), UserId::new_v7());
    let mut w = Written::default();
    let mut a = Res::create(store, ResourceId::new_v7(), fixtures::event(owner, "Ids A", 10, t0())).await;
    let mut b = Res::create(store, ResourceId::new_v7(), fixtures::event(owner, "Ids B", 10, t0())).await;
    let id = BookingId::new_v7();
    a.run(store, &mut w, tickets(id, u, true), at(1)).await;
    b.state.apply(tickets(id, u, true), None, at(2)).expect("B cannot know the id is taken");
    let batch = CommitBatch {
        resource_id: b.state.id(),
        kind: b.state.kind().kind(),
        expected_version: b.version,
        changes: b.state.take_changes(),
        counters: b.state.counters(),
        at: at(2),
    };
    assert!(matches!(store.commit(batch).await, Err(StoreError::Conflict)), "a second booking under a known id");
    let kept = store.load_booking(a.state.id(), id).await.expect("load").expect("the first booking is kept");
    assert_eq!(kept, w.bookings[&id]);
    assert_eq!(store.locate_booking(id).await.expect("locate"), Some(a.state.id()));
    let listed = store.list_resources(ResourceFilter { limit: 100, ..Default::default() }).await.expect("list");
    let b_now = listed.iter().find(|r| r.id == b.state.id()).expect("B listed");
    assert_eq!(b_now.version, b.version, "the refused batch left nothing behind");
}

#[tokio::test]
async fn memory_store_fences_each_batch_of_a_merged_commit_alone() {
    merged_commits(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn postgres_store_fences_each_batch_of_a_merged_commit_alone() {
    let db = TestDb::new();
    merged_commits(Arc::new(store_of(&db).await)).await;
}

/// One resource's next batch: a confirmed ticket (or, with `waitlist`, also a joined entry).
fn next_batch(r: &mut Res, u: UserId, now: Timestamp) -> (CommitBatch, BookingId) {
    let id = BookingId::new_v7();
    r.state.apply(tickets(id, u, true), None, now).expect("decided");
    let batch = CommitBatch {
        resource_id: r.state.id(),
        kind: r.state.kind().kind(),
        expected_version: r.version,
        changes: r.state.take_changes(),
        counters: r.state.counters(),
        at: now,
    };
    (batch, id)
}

/// Many resources' batches in one merged commit: the stale ones (a version that moved, a
/// second batch for one resource, a create of an existing id) are refused alone and write
/// nothing; every other batch is written exactly, and a later merged commit builds on them.
async fn merged_commits(store: Arc<dyn Store>) {
    let store = &*store;
    let owner = UserId::new_v7();
    let mut res = Vec::new();
    for i in 0..60 {
        res.push(
            Res::create(store, ResourceId::new_v7(), fixtures::event(owner, &format!("Merged {i}"), 10, t0())).await,
        );
    }
    for round in 0..2 {
        let now = at(10 + round);
        let mut batches = Vec::new();
        let mut booked = Vec::new();
        for (i, r) in res.iter_mut().enumerate() {
            let (mut b, id) = next_batch(r, UserId::new_v7(), now);
            // Every seventh resource's fence is stale, as if another writer had moved it.
            let stale = i % 7 == 3;
            if stale {
                b.expected_version -= 1;
            }
            batches.push(b);
            booked.push((i, id, stale));
        }
        // A second batch for resource 0 in the same commit, and a create of an existing id.
        let dup = CommitBatch { changes: Vec::new(), ..batches[0].clone() };
        batches.push(dup);
        let mut recreate =
            ResourceState::create(res[1].state.id(), fixtures::event(owner, "Again", 10, t0())).expect("valid");
        batches.push(CommitBatch {
            resource_id: recreate.id(),
            kind: recreate.kind().kind(),
            expected_version: 0,
            changes: recreate.take_changes(),
            counters: recreate.counters(),
            at: now,
        });
        let results = store.commit_many(batches).await.expect("the merged transaction commits");
        assert_eq!(results.len(), 62);
        assert!(matches!(results[60], Err(StoreError::Conflict)), "a second batch for one resource: {:?}", results[60]);
        assert!(matches!(results[61], Err(StoreError::Conflict)), "a create of an existing id: {:?}", results[61]);
        for (i, id, stale) in booked {
            let stored = store.load_booking(res[i].state.id(), id).await.expect("load");
            if stale {
                assert!(matches!(results[i], Err(StoreError::Conflict)), "resource {i}: {:?}", results[i]);
                assert!(stored.is_none(), "a refused batch wrote its booking");
                // Its actor would reload: the store's state, without the refused decision.
                let loaded = store.load(res[i].state.id()).await.expect("load").expect("exists");
                res[i].state = ResourceState::restore(
                    res[i].state.id(),
                    loaded.spec,
                    loaded.bookings,
                    loaded.waitlist,
                    loaded.idempotency,
                )
                .expect("restore");
                res[i].version = loaded.version;
            } else {
                assert_eq!(results[i], Ok(res[i].version + 1), "resource {i}");
                res[i].version += 1;
                assert_eq!(stored.map(|b| b.status), Some(BookingStatus::Confirmed), "resource {i}");
            }
        }
    }
    // Every resource's stored version and counters are its own: round by round, refused or not.
    let listed = store
        .list_resources(ResourceFilter { limit: 1000, owner_id: Some(owner), ..Default::default() })
        .await
        .expect("list");
    for r in &res {
        let l = listed.iter().find(|s| s.id == r.state.id()).expect("listed");
        assert_eq!(l.version, r.version, "{}", l.name);
        let loaded = store.load(r.state.id()).await.expect("load").expect("exists");
        let stale = res.iter().position(|x| x.state.id() == r.state.id()).is_some_and(|i| i % 7 == 3);
        assert_eq!(loaded.bookings.len(), if stale { 0 } else { 2 }, "{}", l.name);
    }
}

/// A merged transaction that a database guard refuses (here an event's `taken` over its
/// capacity, a wrong decision) fails whole: every batch gets the error and none is written.
#[tokio::test]
async fn postgres_fails_a_merged_commit_whole_when_a_guard_refuses_one_batch() {
    let db = TestDb::new();
    let store = store_of(&db).await;
    let owner = UserId::new_v7();
    let mut good = Res::create(&store, ResourceId::new_v7(), fixtures::event(owner, "Good", 10, t0())).await;
    let mut bad = Res::create(&store, ResourceId::new_v7(), fixtures::event(owner, "Bad", 10, t0())).await;
    let (ok_batch, ok_id) = next_batch(&mut good, UserId::new_v7(), at(5));
    let (mut wrong, wrong_id) = next_batch(&mut bad, UserId::new_v7(), at(5));
    wrong.counters.confirmed_units = 11;
    let r = store.commit_many(vec![ok_batch, wrong]).await;
    assert!(r.is_err(), "the guard must fail the transaction: {r:?}");
    assert_eq!(store.load_booking(good.state.id(), ok_id).await.expect("load"), None, "nothing of it is written");
    assert_eq!(store.load_booking(bad.state.id(), wrong_id).await.expect("load"), None);
    let v = store.load(good.state.id()).await.expect("load").expect("exists").version;
    assert_eq!(v, good.version, "the fence of the innocent batch was rolled back too");
}

/// Injected faults hit a merged commit as a whole: a failed one writes nothing, an ambiguous
/// one (written, reported failed) answers every batch with the error.
#[tokio::test]
async fn memory_faults_hit_a_merged_commit_whole() {
    let store = MemoryStore::new();
    let owner = UserId::new_v7();
    let mut a = Res::create(&store, ResourceId::new_v7(), fixtures::event(owner, "A", 10, t0())).await;
    let mut b = Res::create(&store, ResourceId::new_v7(), fixtures::event(owner, "B", 10, t0())).await;
    let (ba, ia) = next_batch(&mut a, UserId::new_v7(), at(5));
    let (bb, ib) = next_batch(&mut b, UserId::new_v7(), at(5));
    store.faults.fail_commits.store(1, std::sync::atomic::Ordering::SeqCst);
    assert!(store.commit_many(vec![ba.clone(), bb.clone()]).await.is_err());
    assert_eq!(store.load_booking(a.state.id(), ia).await.expect("load"), None);
    assert_eq!(store.load_booking(b.state.id(), ib).await.expect("load"), None);
    store.faults.ambiguous_commits.store(1, std::sync::atomic::Ordering::SeqCst);
    assert!(store.commit_many(vec![ba, bb]).await.is_err(), "an unknown outcome is an error for every batch");
    assert!(store.load_booking(a.state.id(), ia).await.expect("load").is_some(), "written all the same");
    assert!(store.load_booking(b.state.id(), ib).await.expect("load").is_some());
}
