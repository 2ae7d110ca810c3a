//! Shared plumbing: stores, users, bookings, and a channel that records what it was given.

use bots::delivery::{Channel, DeliveryConfig, DeliveryError, Notice, Notifier, Recipient};
use engine::domain::booking::{BookingRequest, Requester};
use engine::domain::command::{Command, Outcome};
use engine::domain::ids::{BookingId, ResourceId, UserId};
use engine::store::postgres::{PgConfig, PgStore};
use engine::{Clock, Engine, EngineConfig};
use futures::future::BoxFuture;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use engine::testing::TestDb;

pub async fn store_of(db: &TestDb) -> PgStore {
    let mut cfg = PgConfig::new(&db.url);
    cfg.pool_size = 4;
    PgStore::connect(&cfg).await.expect("connect to the test database")
}

pub async fn engine_of(db: &TestDb, clock: Arc<dyn Clock>) -> Engine {
    Engine::new(Arc::new(store_of(db).await), clock, EngineConfig::default())
}

/// An account in the gateway's `users` table (where the notifier finds the address).
pub async fn add_user(db: &TestDb, name: &str, email: &str) -> UserId {
    let id = UserId::new_v7();
    db.client()
        .await
        .execute(
            "INSERT INTO users (id, email, name, role, password_hash, created_at) VALUES ($1, $2, $3, 'client', 'x', now())",
            &[&id.0, &email, &name],
        )
        .await
        .expect("insert user");
    id
}

pub async fn book(e: &Engine, resource: ResourceId, user: UserId, request: BookingRequest, confirm: bool) -> BookingId {
    let booking_id = BookingId::new_v7();
    // Confirmed at once is booked by staff (the fixtures have prices: a client's own confirm
    // would need a payment).
    let by = if confirm { Requester::System } else { Requester::Client(user) };
    let cmd = Command::Hold { booking_id, user_id: user, request, confirm, by };
    match e.execute(resource, cmd, None).await.expect("booked") {
        Outcome::Booking { booking } => booking.id,
        other => panic!("unexpected {other:?}"),
    }
}

pub fn tickets(quantity: u32) -> BookingRequest {
    BookingRequest::Tickets { category_id: None, quantity }
}

pub async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client().await.query_one(sql, &[]).await.expect("count").get(0)
}

pub fn test_config() -> DeliveryConfig {
    DeliveryConfig {
        poll_interval: Duration::from_millis(10),
        batch_size: 7,
        max_attempts: 3,
        backoff_base: Duration::from_secs(10),
        backoff_max: Duration::from_secs(100),
        lease: Duration::from_secs(60),
        reminder_offsets_minutes: vec![24 * 60, 60],
        ..DeliveryConfig::default()
    }
}

pub const OK: u8 = 0;
pub const TRANSIENT: u8 = 1;
pub const PERMANENT: u8 = 2;

/// A channel that records every delivery (by dedupe key) and fails when told to.
#[derive(Clone, Default)]
pub struct Recorder {
    pub seen: Arc<Mutex<HashMap<String, usize>>>,
    pub notices: Arc<Mutex<Vec<Notice>>>,
    pub mode: Arc<AtomicU8>,
    /// Recipients whose deliveries fail for now whatever the mode (a full mailbox).
    pub failing: Arc<Mutex<HashSet<UserId>>>,
}

impl Recorder {
    pub fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
    pub fn seen(&self) -> HashMap<String, usize> {
        self.seen.lock().expect("lock").clone()
    }
    pub fn kinds(&self) -> Vec<String> {
        self.notices.lock().expect("lock").iter().map(|n| n.kind.as_str().to_owned()).collect()
    }
}

impl Channel for Recorder {
    fn name(&self) -> &'static str {
        "test"
    }
    fn reaches(&self, to: &Recipient) -> bool {
        to.email.is_some()
    }
    fn deliver<'a>(&'a self, n: &'a Notice) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            // Give the other worker a chance to run in between (more interleaving).
            tokio::task::yield_now().await;
            match self.mode.load(Ordering::SeqCst) {
                TRANSIENT => return Err(DeliveryError::Transient("try later".into())),
                PERMANENT => return Err(DeliveryError::Permanent("no such mailbox".into())),
                _ => {}
            }
            if self.failing.lock().expect("lock").contains(&UserId(n.recipient.user_id)) {
                return Err(DeliveryError::Transient("mailbox full".into()));
            }
            *self.seen.lock().expect("lock").entry(n.dedupe_key.clone()).or_default() += 1;
            self.notices.lock().expect("lock").push(n.clone());
            Ok(())
        })
    }
}

pub async fn notifier(db: &TestDb, clock: Arc<dyn Clock>, channel: Arc<dyn Channel>, cfg: DeliveryConfig) -> Notifier {
    Notifier::new(store_of(db).await, clock, vec![channel], cfg)
}
