//! Live updates over WebSocket: the hub between the engine's committed-changes broadcast
//! (`engine::live`) and the connections of `routes/live.rs`.
//!
//! One router task per process reads the engine's broadcast and puts each message, serialised
//! once, into the bounded queue of every connection that may see it: a booking's (and waitlist
//! entry's) user gets `booking` / `waitlist` messages, the resource's owner and every admin get
//! one `availability` message per committed batch. The router never waits: a full queue means
//! the connection is too slow, and it is unsubscribed and closed (1008 "too slow"); a router
//! that lagged behind the engine's broadcast has lost messages for everyone, so every
//! connection is closed (1013, reconnect). The router exists only while some connection is
//! subscribed: with nobody connected the engine copies nothing.
//!
//! In-process: a connection hears of what this server's engine committed (see ARCHITECTURE.md).

use crate::accounts::Role;
use crate::auth::AuthUser;
use crate::configuration::Settings;
use bytestring::ByteString;
use engine::Engine;
use engine::domain::booking::Booking;
use engine::domain::command::{Change, NotificationKind};
use engine::domain::ids::UserId;
use engine::live::{Committed, LiveReceiver};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Notify, mpsc, oneshot};

/// Largest frame a client may send (it has nothing to send but pings and pongs).
pub const MAX_INCOMING_FRAME_BYTES: usize = 4 * 1024;

/// The bounds of live updates (from `Settings`).
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// Messages queued per connection; a connection whose queue is full is dropped.
    pub queue_capacity: usize,
    pub max_connections_per_user: usize,
    pub max_connections: usize,
    pub ping_interval: Duration,
    /// A connection that sends nothing (not even a pong) this long is closed; also the longest
    /// a single message may take to be written out.
    pub client_timeout: Duration,
}

impl LiveConfig {
    pub fn from_settings(s: &Settings) -> LiveConfig {
        LiveConfig {
            queue_capacity: s.ws_queue_capacity,
            max_connections_per_user: s.ws_max_connections_per_user,
            max_connections: s.ws_max_connections,
            ping_interval: Duration::from_secs(s.ws_ping_interval_secs),
            client_timeout: Duration::from_secs(s.ws_client_timeout_secs),
        }
    }
}

/// Why the hub dropped a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KickReason {
    /// Its queue was full: the client does not read fast enough.
    TooSlow,
    /// The router fell behind the engine: messages were lost for every connection.
    Overloaded,
    /// The server is stopping.
    ShuttingDown,
}

/// Set by the hub, read by the connection: why its queue was closed.
#[derive(Default)]
pub struct Kick {
    reason: AtomicU8,
    notify: Notify,
}

impl Kick {
    fn set(&self, r: KickReason) {
        let v = match r {
            KickReason::TooSlow => 1,
            KickReason::Overloaded => 2,
            KickReason::ShuttingDown => 3,
        };
        self.reason.store(v, Ordering::SeqCst);
        self.notify.notify_one();
    }
    pub fn reason(&self) -> Option<KickReason> {
        match self.reason.load(Ordering::SeqCst) {
            1 => Some(KickReason::TooSlow),
            2 => Some(KickReason::Overloaded),
            3 => Some(KickReason::ShuttingDown),
            _ => None,
        }
    }
    /// Resolves once the connection was kicked (at once if it already was).
    pub async fn kicked(&self) {
        if self.reason().is_none() {
            self.notify.notified().await;
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum RegisterError {
    TooManyForUser(usize),
    TooMany,
}

struct Sub {
    user: UserId,
    role: Role,
    tx: mpsc::Sender<ByteString>,
    kick: Arc<Kick>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    /// Connections counted against the caps: from registration until the socket is gone.
    slots: HashMap<UserId, usize>,
    total: usize,
    /// Subscribed connections (a kicked one leaves at once, its slot only when it is gone).
    subs: HashMap<u64, Sub>,
    by_user: HashMap<UserId, Vec<u64>>,
    admins: Vec<u64>,
    /// Identifies the current router; a stale router stops at its next message.
    generation: u64,
    /// Dropping it stops the router (and with it the engine's copying).
    router_stop: Option<oneshot::Sender<()>>,
}

impl Inner {
    fn unsubscribe(&mut self, id: u64) {
        let Some(sub) = self.subs.remove(&id) else { return };
        if let Some(v) = self.by_user.get_mut(&sub.user) {
            v.retain(|x| *x != id);
            if v.is_empty() {
                self.by_user.remove(&sub.user);
            }
        }
        if sub.role == Role::Admin {
            self.admins.retain(|x| *x != id);
        }
        if self.subs.is_empty() {
            self.router_stop = None;
        }
    }
    fn kick(&mut self, id: u64, reason: KickReason) {
        if let Some(sub) = self.subs.get(&id) {
            sub.kick.set(reason);
            metrics::counter!("ws_dropped_total", "reason" => reason_label(reason)).increment(1);
        }
        self.unsubscribe(id);
    }
}

fn reason_label(r: KickReason) -> &'static str {
    match r {
        KickReason::TooSlow => "too_slow",
        KickReason::Overloaded => "overloaded",
        KickReason::ShuttingDown => "shutdown",
    }
}

pub struct Hub {
    engine: Engine,
    cfg: LiveConfig,
    inner: Mutex<Inner>,
    me: std::sync::Weak<Hub>,
}

/// A connection's place in the hub: its queue, why it was kicked, and its slot (released when
/// this is dropped, i.e. when the connection's task ends).
pub struct Registration {
    hub: Arc<Hub>,
    id: u64,
    user: UserId,
    pub queue: mpsc::Receiver<ByteString>,
    pub kick: Arc<Kick>,
}

impl Registration {
    /// Stop receiving messages (the connection is closing); the slot stays taken.
    pub fn unsubscribe(&self) {
        self.hub.lock().unsubscribe(self.id);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut inner = self.hub.lock();
        inner.unsubscribe(self.id);
        if let Some(n) = inner.slots.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inner.slots.remove(&self.user);
            }
        }
        inner.total = inner.total.saturating_sub(1);
        metrics::gauge!("ws_connections").set(inner.total as f64);
    }
}

impl Hub {
    pub fn new(engine: Engine, cfg: LiveConfig) -> Arc<Hub> {
        Arc::new_cyclic(|me| Hub { engine, cfg, inner: Mutex::new(Inner::default()), me: me.clone() })
    }

    pub fn config(&self) -> &LiveConfig {
        &self.cfg
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves the maps consistent; a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections currently counted (open or closing).
    pub fn connections(&self) -> usize {
        self.lock().total
    }

    /// Takes a slot and subscribes `user`. Messages committed after this returns reach the
    /// queue. Must be called on the actix runtime (it may start the router task).
    pub fn register(&self, user: AuthUser) -> Result<Registration, RegisterError> {
        let hub = self.me.upgrade().ok_or(RegisterError::TooMany)?;
        let mut inner = self.lock();
        if inner.total >= self.cfg.max_connections {
            return Err(RegisterError::TooMany);
        }
        let mine = inner.slots.get(&user.id).copied().unwrap_or(0);
        if mine >= self.cfg.max_connections_per_user {
            return Err(RegisterError::TooManyForUser(self.cfg.max_connections_per_user));
        }
        *inner.slots.entry(user.id).or_default() += 1;
        inner.total += 1;
        metrics::gauge!("ws_connections").set(inner.total as f64);
        inner.next_id += 1;
        let id = inner.next_id;
        let (tx, queue) = mpsc::channel(self.cfg.queue_capacity.max(1));
        let kick = Arc::new(Kick::default());
        inner.subs.insert(id, Sub { user: user.id, role: user.role, tx, kick: kick.clone() });
        inner.by_user.entry(user.id).or_default().push(id);
        if user.role == Role::Admin {
            inner.admins.push(id);
        }
        if inner.router_stop.is_none() {
            // Subscribed under the lock, before this connection is answered: nothing that
            // commits after the handshake can be missed.
            let rx = self.engine.subscribe();
            let (stop_tx, stop_rx) = oneshot::channel();
            inner.generation += 1;
            inner.router_stop = Some(stop_tx);
            actix_web::rt::spawn(route(hub.clone(), rx, stop_rx, inner.generation));
        }
        drop(inner);
        Ok(Registration { hub, id, user: user.id, queue, kick })
    }

    /// Queues one committed batch's messages; false if this router is stale.
    fn dispatch(&self, c: &Committed, generation: u64) -> bool {
        // Serialise outside the lock, once per message.
        let personal = personal_messages(c);
        let availability = availability_message(c).map(|v| ByteString::from(v.to_string()));
        let mut inner = self.lock();
        if inner.generation != generation || inner.router_stop.is_none() {
            return false;
        }
        let mut slow = Vec::new();
        for (user, msg) in &personal {
            for id in inner.by_user.get(user).into_iter().flatten() {
                offer(&inner, *id, msg, &mut slow);
            }
        }
        if let Some(msg) = &availability {
            // The owner's connections and every admin's, each once.
            let owners = c.owner_id.and_then(|o| inner.by_user.get(&o)).into_iter().flatten();
            let mut targets: Vec<u64> = owners.chain(inner.admins.iter()).copied().collect();
            targets.sort_unstable();
            targets.dedup();
            for id in targets {
                offer(&inner, id, msg, &mut slow);
            }
        }
        slow.sort_unstable();
        slow.dedup();
        for id in slow {
            inner.kick(id, KickReason::TooSlow);
        }
        true
    }

    /// The router lost messages: every connection must resynchronise.
    fn kick_all(&self, generation: u64) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        let ids: Vec<u64> = inner.subs.keys().copied().collect();
        for id in ids {
            inner.kick(id, KickReason::Overloaded);
        }
    }

    /// The server is stopping: every connection is closed (1001). Open WebSockets would
    /// otherwise hold the graceful shutdown for its whole timeout (they never end by themselves).
    pub fn close_all(&self) {
        let mut inner = self.lock();
        let ids: Vec<u64> = inner.subs.keys().copied().collect();
        for id in ids {
            inner.kick(id, KickReason::ShuttingDown);
        }
    }
}

/// Puts `msg` into connection `id`'s queue without waiting; a full queue marks it slow.
fn offer(inner: &Inner, id: u64, msg: &ByteString, slow: &mut Vec<u64>) {
    let Some(sub) = inner.subs.get(&id) else { return };
    match sub.tx.try_send(msg.clone()) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => slow.push(id),
        // The connection is ending; its registration unsubscribes it.
        Err(mpsc::error::TrySendError::Closed(_)) => {}
    }
}

/// Closes every connection on SIGTERM or ctrl-c, the signals on which actix starts its graceful
/// shutdown (it keeps listening for them itself).
pub async fn close_on_signal(hub: Arc<Hub>) {
    #[cfg(unix)]
    {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
    }
    tracing::info!(connections = hub.connections(), "closing live-update connections for shutdown");
    hub.close_all();
}

async fn route(hub: Arc<Hub>, mut rx: LiveReceiver, mut stop: oneshot::Receiver<()>, generation: u64) {
    loop {
        let next = tokio::select! {
            _ = &mut stop => break,
            r = rx.recv() => r,
        };
        match next {
            Ok(c) => {
                if !hub.dispatch(&c, generation) {
                    break;
                }
            }
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "live updates fell behind the engine: closing every WebSocket");
                hub.kick_all(generation);
            }
            Err(RecvError::Closed) => break,
        }
    }
}

/// What a booking change is called: the notification the batch made for it, else its status.
fn event_name(changes: &[Change], at: usize, b: &Booking) -> &'static str {
    for c in &changes[at + 1..] {
        match c {
            Change::Notify(n) if n.booking_id == Some(b.id) => return notification_event(n.kind),
            Change::Booking(other) if other.id == b.id => break,
            _ => {}
        }
    }
    b.status.as_str()
}

fn notification_event(k: NotificationKind) -> &'static str {
    match k {
        NotificationKind::HoldCreated => "held",
        other => other.as_str(),
    }
}

/// `booking` and `waitlist` messages, each for the one user it is about.
fn personal_messages(c: &Committed) -> Vec<(UserId, ByteString)> {
    let mut out = Vec::new();
    for (i, ch) in c.changes.iter().enumerate() {
        let (user, v) = match ch {
            Change::Booking(b) => (
                b.user_id,
                json!({
                    "type": "booking",
                    "event": event_name(&c.changes, i, b),
                    "resource_id": c.resource_id,
                    "version": c.version,
                    "booking": b,
                }),
            ),
            Change::Waitlist(e) => (
                e.user_id,
                json!({
                    "type": "waitlist",
                    "event": e.status.as_str(),
                    "resource_id": c.resource_id,
                    "version": c.version,
                    "entry": e,
                }),
            ),
            _ => continue,
        };
        out.push((user, ByteString::from(v.to_string())));
    }
    out
}

/// One message per committed batch for the owner (and admins): the resource's totals after
/// the batch and what changed (which bookings, their items: dates, tickets, slots). None when
/// the batch changed no booking (a waitlist entry joined or left: availability is the same).
fn availability_message(c: &Committed) -> Option<serde_json::Value> {
    let changes: Vec<serde_json::Value> = c
        .changes
        .iter()
        .enumerate()
        .filter_map(|(i, ch)| match ch {
            Change::Booking(b) => Some(json!({
                "booking_id": b.id,
                "user_id": b.user_id,
                "event": event_name(&c.changes, i, b),
                "status": b.status,
                "item": b.item,
            })),
            _ => None,
        })
        .collect();
    if changes.is_empty() {
        return None;
    }
    Some(json!({
        "type": "availability",
        "resource_id": c.resource_id,
        "resource_kind": c.kind,
        "version": c.version,
        "at": c.at,
        "held_bookings": c.counters.held_bookings,
        "held_units": c.counters.held_units,
        "confirmed_bookings": c.counters.confirmed_bookings,
        "confirmed_units": c.counters.confirmed_units,
        "changes": changes,
    }))
}
