//! Simulation: the real actors over the in-memory store, with injected faults (failed commits,
//! commits that wrote but reported failure, slow commits), engine restarts and random
//! commands from concurrent clients. Afterwards: every acknowledged success is in the store,
//! and what the store holds satisfies every invariant.

use engine::domain::booking::{BookingItem, BookingRequest, BookingStatus, Requester};
use engine::domain::command::{Command, Outcome};
use engine::domain::ids::{BookingId, ResourceId, UserId};
use engine::domain::spec::KindSpec;
use engine::domain::state::ResourceState;
use engine::store::Store;
use engine::store::memory::MemoryStore;
use engine::{Engine, EngineConfig, EngineError, ManualClock, fixtures};
use futures::future::join_all;
use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn t0() -> Timestamp {
    // A Monday, 09:00 in Berlin.
    "2030-01-07T08:00:00Z".parse().expect("timestamp")
}

/// Whether a booking acknowledged as `acked` may later be found as `now` (later commands and
/// expiries move it on, never back).
fn may_follow(acked: BookingStatus, now: BookingStatus) -> bool {
    use BookingStatus::*;
    acked == now
        || match acked {
            Held => true,
            Confirmed => matches!(now, Cancelled | Completed),
            Expired => matches!(now, Confirmed | Cancelled | Completed),
            Released | Cancelled | Completed => false,
        }
}

#[derive(Clone, Copy)]
enum Kind {
    Event,
    Hotel,
    Provider,
}

/// What one simulation runs against: a few resources under the default committers, or many
/// spread over few committers and shards so that most transactions merge several resources'
/// batches, with another writer moving versions under them.
#[derive(Clone, Copy)]
struct Shape {
    events: usize,
    hotels: usize,
    providers: usize,
    committers: usize,
    shards: u32,
    burst: (usize, usize),
    /// Another writer bumps random resources' versions while bursts are in flight.
    intruder: bool,
}

const FEW: Shape =
    Shape { events: 1, hotels: 1, providers: 1, committers: 4, shards: 256, burst: (5, 25), intruder: false };
const SPREAD: Shape =
    Shape { events: 30, hotels: 8, providers: 8, committers: 2, shards: 8, burst: (20, 60), intruder: true };

const SEATS: u32 = 12;

struct World {
    resources: Vec<(ResourceId, Kind)>,
    hotel_types: HashMap<ResourceId, Vec<engine::domain::ids::RoomTypeId>>,
}

fn random_request(rng: &mut StdRng, w: &World) -> (ResourceId, BookingRequest) {
    let day = |n: i64| -> jiff::civil::Date {
        "2030-01-08".parse::<jiff::civil::Date>().expect("date").checked_add(jiff::Span::new().days(n)).expect("date")
    };
    let (rid, kind) = w.resources[rng.random_range(0..w.resources.len())];
    match kind {
        Kind::Event => (rid, BookingRequest::Tickets { category_id: None, quantity: rng.random_range(1..=3) }),
        Kind::Hotel => {
            let ci = rng.random_range(0..12);
            let types = &w.hotel_types[&rid];
            (
                rid,
                BookingRequest::Stay {
                    room_type_id: types[rng.random_range(0..types.len())],
                    room_id: None,
                    check_in: day(ci),
                    check_out: day(ci + rng.random_range(1..4)),
                    guests: rng.random_range(1..=2),
                },
            )
        }
        Kind::Provider => {
            // Tuesday to Thursday, 09:00-12:00 Berlin, on and off the 30-minute grid.
            let d = rng.random_range(1..4);
            let k = rng.random_range(0..6);
            let off = if rng.random_bool(0.1) { 10 } else { 0 };
            let at = t0() + SignedDuration::from_hours(24 * d) + SignedDuration::from_mins(30 * k + off);
            (rid, BookingRequest::Appointment { starts_at: at })
        }
    }
}

/// What one simulation saw: commands that failed retryably (injected faults and fence
/// conflicts) and versions the intruder moved.
#[derive(Default)]
struct Tally {
    failures: usize,
    bumps: usize,
    widest_commit_batches: usize,
}

/// Runs one seeded simulation of `shape`.
async fn run(seed: u64, shape: Shape) -> Tally {
    let mut rng = StdRng::seed_from_u64(seed);
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(t0()));
    // Small batches so that one burst spans several group commits.
    let cfg = EngineConfig {
        max_batch: 4,
        committers: shape.committers,
        shards: shape.shards,
        // Small merged transactions too, so that the committers' limits are crossed.
        commit_max_batches: 6,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(store.clone(), clock.clone(), cfg.clone());
    let owner = UserId::new_v7();
    let mut world = World { resources: Vec::new(), hotel_types: HashMap::new() };
    for i in 0..shape.events {
        let id = engine.create(fixtures::event(owner, &format!("Sim Gig {i}"), SEATS, t0())).await.expect("event");
        world.resources.push((id, Kind::Event));
    }
    for i in 0..shape.hotels {
        let hotel_spec = fixtures::hotel(owner, &format!("Sim Hotel {i}"), "Graz", 2, 1);
        let KindSpec::Hotel(h) = &hotel_spec.kind else { unreachable!() };
        let types = h.room_types.iter().map(|t| t.id).collect();
        let id = engine.create(hotel_spec.clone()).await.expect("hotel");
        world.hotel_types.insert(id, types);
        world.resources.push((id, Kind::Hotel));
    }
    for i in 0..shape.providers {
        let id = engine.create(fixtures::provider(owner, &format!("Sim Clinic {i}"))).await.expect("provider");
        world.resources.push((id, Kind::Provider));
    }
    let mut tally = Tally::default();
    let users: Vec<UserId> = (0..6).map(|_| UserId::new_v7()).collect();
    let mut known: Vec<(ResourceId, BookingId, UserId)> = Vec::new();
    let mut acked: HashMap<BookingId, (ResourceId, BookingStatus)> = HashMap::new();

    for round in 0..40 {
        match rng.random_range(0..10) {
            0 => store.faults.fail_commits.store(rng.random_range(1..3), Ordering::SeqCst),
            1 => store.faults.ambiguous_commits.store(1, Ordering::SeqCst),
            2 => store.faults.commit_delay_ms.store(rng.random_range(1..4), Ordering::SeqCst),
            _ => store.faults.commit_delay_ms.store(0, Ordering::SeqCst),
        }
        let mut burst = Vec::new();
        for _ in 0..rng.random_range(shape.burst.0..shape.burst.1) {
            let u = users[rng.random_range(0..users.len())];
            let pick = (!known.is_empty()).then(|| known[rng.random_range(0..known.len())]);
            let (rid, cmd, new) = match (rng.random_range(0..10), pick) {
                (0..=4, _) | (_, None) => {
                    let (rid, request) = random_request(&mut rng, &world);
                    let booking_id = BookingId::new_v7();
                    let confirm = rng.random_bool(0.3);
                    (
                        rid,
                        Command::Hold {
                            booking_id,
                            user_id: u,
                            request,
                            confirm,
                            by: if confirm { Requester::System } else { Requester::Client(u) },
                        },
                        Some((rid, booking_id, u)),
                    )
                }
                (5..=6, Some((rid, b, _owner))) => (
                    rid,
                    Command::Confirm {
                        booking_id: b,
                        payment_ref: Some(format!("pay-{b}")),
                        by: Requester::System, // the payment succeeded
                    },
                    None,
                ),
                (7, Some((rid, b, owner))) => {
                    (rid, Command::Release { booking_id: b, by: Requester::Client(owner) }, None)
                }
                (_, Some((rid, b, owner))) => {
                    (rid, Command::Cancel { booking_id: b, reason: String::new(), by: Requester::Client(owner) }, None)
                }
            };
            if let Some(k) = new {
                known.push(k);
            }
            let e = engine.clone();
            burst.push(async move { (rid, e.execute(rid, cmd, None).await) });
        }
        // The intruder moves a few versions while the burst's batches are deciding and committing.
        let victims: Vec<(ResourceId, u64)> = if shape.intruder {
            (0..rng.random_range(0..4))
                .map(|_| (world.resources[rng.random_range(0..world.resources.len())].0, rng.random_range(0..3)))
                .collect()
        } else {
            Vec::new()
        };
        let intruder = {
            let store = store.clone();
            async move {
                let mut bumps = 0;
                for (rid, wait_ms) in victims {
                    tokio::time::sleep(Duration::from_millis(wait_ms)).await;
                    bumps += usize::from(store.bump_version(rid));
                }
                bumps
            }
        };
        let (answers, bumps) = futures::join!(join_all(burst), intruder);
        tally.bumps += bumps;
        for (rid, r) in answers {
            match r {
                Ok(Outcome::Booking { booking }) => {
                    acked.insert(booking.id, (rid, booking.status));
                }
                Ok(_) => {}
                Err(EngineError::Domain(_)) => {}
                Err(e) => {
                    assert!(e.is_retryable(), "round {round}: unexpected error {e:?}");
                    tally.failures += 1;
                }
            }
        }
        clock.advance(SignedDuration::from_secs(rng.random_range(0..500)));
        if rng.random_bool(0.15) {
            engine.shutdown(Duration::from_secs(5)).await;
            engine = Engine::new(store.clone(), clock.clone(), cfg.clone());
        }
    }
    store.faults.commit_delay_ms.store(0, Ordering::SeqCst);
    store.faults.fail_commits.store(0, Ordering::SeqCst);
    store.faults.ambiguous_commits.store(0, Ordering::SeqCst);
    engine.shutdown(Duration::from_secs(5)).await;

    // Every acknowledged booking is stored, in the acknowledged status or one it may move to.
    let data = store.snapshot();
    for (id, (rid, status)) in &acked {
        let stored = data.bookings.get(id).unwrap_or_else(|| panic!("seed {seed}: acknowledged booking {id} lost"));
        assert_eq!(stored.resource_id, *rid);
        assert!(
            may_follow(*status, stored.status),
            "seed {seed}: booking {id} acknowledged {status:?}, stored {:?}",
            stored.status
        );
    }
    // What the store holds rebuilds into sound states whose counters match the stored ones.
    for &(rid, _) in &world.resources {
        let l = store.load(rid).await.expect("load").expect("exists");
        let state =
            ResourceState::restore(rid, l.spec, l.bookings.clone(), l.waitlist, l.idempotency).expect("restore");
        state.check_invariants().unwrap_or_else(|e| panic!("seed {seed}: stored state broken: {e}"));
        assert_eq!(Some(state.counters()), data.counters(rid), "seed {seed}: stored counters disagree with the rows");
        // And independently of the domain's own checks: no oversell, no overlap.
        let active: Vec<_> = l.bookings.iter().filter(|b| b.status.is_active()).collect();
        let tickets: u32 =
            active.iter().map(|b| if let BookingItem::Tickets { quantity, .. } = b.item { quantity } else { 0 }).sum();
        assert!(tickets <= SEATS, "seed {seed}: {tickets} tickets for {SEATS} seats");
        for (i, a) in active.iter().enumerate() {
            for b in &active[i + 1..] {
                match (&a.item, &b.item) {
                    (
                        BookingItem::Stay { room_id: r1, check_in: i1, check_out: o1, .. },
                        BookingItem::Stay { room_id: r2, check_in: i2, check_out: o2, .. },
                    ) => {
                        assert!(r1 != r2 || o1 <= i2 || o2 <= i1, "seed {seed}: overlapping stays on one room");
                    }
                    (
                        BookingItem::Appointment { starts_at: s1, ends_at: e1 },
                        BookingItem::Appointment { starts_at: s2, ends_at: e2 },
                    ) => {
                        let buf = SignedDuration::from_mins(10);
                        assert!(
                            *e1 + buf <= *s2 || *e2 + buf <= *s1,
                            "seed {seed}: appointments overlap (buffers included)"
                        );
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(acked.len() > 20, "seed {seed}: the simulation barely booked anything ({} acks)", acked.len());
    tally.widest_commit_batches = store.faults.widest_commit_batches.load(Ordering::SeqCst);
    tally
}

#[actix::test]
async fn simulated_faults_and_restarts_lose_nothing_and_oversell_nothing() {
    let mut failures = 0;
    for seed in 0..6 {
        failures += run(seed, FEW).await.failures;
    }
    assert!(failures > 0, "no injected fault ever reached a client: the simulation tests nothing");
}

/// The same faults and restarts on spread load: 46 resources under two committers and eight
/// shards, so transactions carry several resources' batches (a merged commit fails or is lost
/// whole), while another writer moves versions under them (a fenced batch is refused alone).
#[actix::test]
async fn simulated_faults_on_spread_load_lose_nothing_and_oversell_nothing() {
    let mut total = Tally::default();
    for seed in 100..106 {
        let t = run(seed, SPREAD).await;
        total.failures += t.failures;
        total.bumps += t.bumps;
        total.widest_commit_batches = total.widest_commit_batches.max(t.widest_commit_batches);
    }
    assert!(total.failures > 0, "no injected fault ever reached a client: the simulation tests nothing");
    assert!(total.bumps > 0, "the intruder never moved a version");
    assert!(
        total.widest_commit_batches > 1,
        "no transaction ever merged two resources' batches: spread load was not simulated"
    );
}
