//! The engine's public face and its registry of resource actors.
//!
//! The registry maps a resource id to its one actor, starting it on first use (it loads its
//! state from the store) and forgetting it when it is idle or when too many are in memory.
//! Every send happens under the registry lock through the registry's own `Addr`, so an actor
//! that was forgotten (and told to stop) never receives a command after its `Stop`.

use crate::actor::{Exec, Read, Reply, ResourceActor, Stop};
use crate::clock::Clock;
use crate::committer::Committers;
use crate::config::EngineConfig;
use crate::domain::command::{Command, Outcome};
use crate::domain::ids::{BookingId, ResourceId};
use crate::domain::spec::ResourceSpec;
use crate::domain::state::ResourceState;
use crate::error::EngineError;
use crate::live::{LiveReceiver, LiveSender};
use crate::store::Store;
use actix::dev::SendError;
use actix::prelude::*;
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

struct Entry {
    addr: Addr<ResourceActor>,
    /// The arbiter the actor runs on (`None`: the caller's own thread, without arbiters).
    arbiter: Option<usize>,
    last_used: Instant,
}

pub struct EngineInner {
    store: Arc<dyn Store>,
    /// Where actors send their batches to be committed (`committer.rs`).
    committers: Arc<Committers>,
    clock: Arc<dyn Clock>,
    cfg: Arc<EngineConfig>,
    actors: Mutex<HashMap<ResourceId, Entry>>,
    arbiters: Vec<Arbiter>,
    next_arbiter: AtomicUsize,
    shutting_down: AtomicBool,
    me: Weak<EngineInner>,
    /// Committed batches for live subscribers (`live.rs`); every actor publishes here.
    live: LiveSender,
}

impl EngineInner {
    fn lock(&self) -> MutexGuard<'_, HashMap<ResourceId, Entry>> {
        // The map is only ever inserted into or removed from; a panic elsewhere cannot leave
        // it half-updated, so a poisoned lock still guards a usable map.
        self.actors.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn spawn_actor(&self, id: ResourceId, create: Option<(ResourceState, Option<Reply>)>) -> Entry {
        let (store, clock, cfg, me) = (self.store.clone(), self.clock.clone(), self.cfg.clone(), self.me.clone());
        let committers = self.committers.clone();
        let live = self.live.clone();
        // The mailbox gets its bound here, with the address: actix starts an actor with a
        // 16-message mailbox and `started` runs only later on the actor's thread, so a burst
        // arriving while a resource activates (a flash sale's first second) would find 16
        // places and be answered Busy.
        let (tx, rx) = actix::dev::channel::channel::<ResourceActor>(self.cfg.mailbox_capacity.max(1));
        let run = move || {
            let ctx = Context::with_receiver(rx);
            let act = ResourceActor::new(id, store, committers, clock, cfg, me, create, live);
            actix::spawn(ctx.into_future(act));
        };
        let arbiter = if self.arbiters.is_empty() {
            run();
            None
        } else {
            let i = self.next_arbiter.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
            self.arbiters[i].spawn_fn(run);
            Some(i)
        };
        Entry { addr: Addr::new(tx), arbiter, last_used: Instant::now() }
    }

    /// Makes room for one more actor by passivating the least recently used ones.
    fn make_room(&self, map: &mut HashMap<ResourceId, Entry>) {
        while map.len() >= self.cfg.max_active_resources.max(1) {
            let Some(oldest) = map.iter().min_by_key(|(_, e)| e.last_used).map(|(id, _)| *id) else { return };
            if let Some(e) = map.remove(&oldest) {
                e.addr.do_send(Stop);
            }
        }
    }

    /// Forgets the actor of `id` and tells it to stop after what it already queued.
    pub(crate) fn forget(&self, id: ResourceId) {
        let mut map = self.lock();
        if let Some(e) = map.remove(&id) {
            e.addr.do_send(Stop);
        }
        metrics::gauge!("engine_active_resources").set(map.len() as f64);
    }

    fn send<M>(&self, id: ResourceId, msg: M) -> Result<(), EngineError>
    where
        M: Message<Result = ()> + Send + 'static,
        ResourceActor: Handler<M>,
    {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(EngineError::ShuttingDown);
        }
        let mut map = self.lock();
        let mut msg = msg;
        // Twice at most: an actor that stopped by itself is replaced once.
        for _ in 0..2 {
            if !map.contains_key(&id) {
                self.make_room(&mut map);
                let entry = self.spawn_actor(id, None);
                map.insert(id, entry);
                metrics::gauge!("engine_active_resources").set(map.len() as f64);
            }
            let Some(entry) = map.get_mut(&id) else { break };
            entry.last_used = Instant::now();
            match entry.addr.try_send(msg) {
                Ok(()) => return Ok(()),
                Err(SendError::Full(_)) => return Err(EngineError::Busy),
                Err(SendError::Closed(m)) => {
                    map.remove(&id);
                    msg = m;
                }
            }
        }
        Err(EngineError::StoreUnavailable("the resource's actor could not be started".into()))
    }
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        for a in &self.arbiters {
            a.stop();
        }
    }
}

/// A cheap, clonable handle to the engine. Create it inside a running actix `System`.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, cfg: EngineConfig) -> Engine {
        let arbiters: Vec<Arbiter> = (0..cfg.arbiters).map(|_| Arbiter::new()).collect();
        let (live, _) = tokio::sync::broadcast::channel(cfg.live_capacity.max(1));
        let committers = Arc::new(Committers::start(store.clone(), &cfg, &arbiters));
        let inner = Arc::new_cyclic(|me| EngineInner {
            store,
            committers,
            clock,
            cfg: Arc::new(cfg),
            actors: Mutex::new(HashMap::new()),
            arbiters,
            next_arbiter: AtomicUsize::new(0),
            shutting_down: AtomicBool::new(false),
            me: me.clone(),
            live,
        });
        Engine { inner }
    }

    /// Live updates: every batch committed from now on that changed a booking, waitlist entry
    /// or notification (see `live.rs`). Drop the receiver to stop the copying.
    pub fn subscribe(&self) -> LiveReceiver {
        self.inner.live.subscribe()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// Creates a resource; answers once it is durable.
    pub async fn create(&self, spec: ResourceSpec) -> Result<ResourceId, EngineError> {
        self.create_with_id(ResourceId::new_v7(), spec).await
    }

    pub async fn create_with_id(&self, id: ResourceId, spec: ResourceSpec) -> Result<ResourceId, EngineError> {
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            return Err(EngineError::ShuttingDown);
        }
        // Validate here, synchronously: an actor only ever starts with a valid resource.
        let state = ResourceState::create(id, spec)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut map = self.inner.lock();
            if map.contains_key(&id) {
                return Err(EngineError::Domain(crate::domain::error::DomainError::validation("id", "already exists")));
            }
            self.inner.make_room(&mut map);
            let entry = self.inner.spawn_actor(id, Some((state, Some(tx))));
            map.insert(id, entry);
        }
        match rx.await {
            Ok(Ok(_)) => Ok(id),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(EngineError::StoreUnavailable("the resource's actor stopped before answering".into())),
        }
    }

    /// Decides `cmd` on resource `id`; answers once the decision is durable.
    pub async fn execute(
        &self,
        id: ResourceId,
        cmd: Command,
        idempotency_key: Option<String>,
    ) -> Result<Outcome, EngineError> {
        let name = cmd.name();
        let (tx, rx) = oneshot::channel();
        let result = match self.inner.send(id, Exec { cmd, idempotency_key, reply: Some(tx) }) {
            Ok(()) => {
                // Sent and not yet answered: what sits in mailboxes and pending batches.
                let queued = metrics::gauge!("engine_queued_commands");
                queued.increment(1.0);
                let r = rx.await.unwrap_or_else(|_| {
                    Err(EngineError::StoreUnavailable("the resource's actor stopped before answering".into()))
                });
                queued.decrement(1.0);
                r
            }
            Err(e) => Err(e),
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.code(),
        };
        metrics::counter!("engine_commands_total", "command" => name, "outcome" => outcome).increment(1);
        result
    }

    /// Runs `f` against the resource's current state (decisions in flight included).
    pub async fn read<R, F>(&self, id: ResourceId, f: F) -> Result<R, EngineError>
    where
        R: Send + 'static,
        F: FnOnce(&ResourceState, Timestamp) -> R + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = Box::new(move |st: Result<&ResourceState, EngineError>, now: Timestamp| {
            let _ = tx.send(st.map(|s| f(s, now)));
        });
        self.inner.send(id, Read(job))?;
        rx.await.unwrap_or_else(|_| {
            Err(EngineError::StoreUnavailable("the resource's actor stopped before answering".into()))
        })
    }

    /// Runs `f` against each resource's current state, as [`Engine::read`] does for one, with
    /// the answers in the order of `ids`.
    ///
    /// Why not `join_all` over `read`: each read is a message from the caller's thread to the
    /// actor's arbiter thread and a reply back, and each of those wakes a sleeping thread (an
    /// eventfd write and a context switch). A search over a page of 20 hotels paid 40 of them;
    /// the profile of the search benchmark was dominated by those wake-ups and by the registry
    /// lock taken 20 times. Here the registry is locked once, and one job per arbiter sends the
    /// reads to that arbiter's actors from their own thread and answers once for all of them.
    pub async fn read_many<R, F>(&self, ids: &[ResourceId], f: F) -> Vec<Result<R, EngineError>>
    where
        R: Send + 'static,
        F: Fn(&ResourceState, Timestamp) -> R + Send + Sync + 'static,
    {
        if self.inner.arbiters.is_empty() || self.inner.shutting_down.load(Ordering::SeqCst) {
            return self.read_each(ids, Arc::new(f)).await;
        }
        let f = Arc::new(f);
        // Per arbiter: (position in `ids`, actor address).
        let mut groups: Vec<Vec<(usize, Addr<ResourceActor>)>> = vec![Vec::new(); self.inner.arbiters.len()];
        {
            let mut map = self.inner.lock();
            for (pos, id) in ids.iter().enumerate() {
                if !map.contains_key(id) {
                    self.inner.make_room(&mut map);
                    let entry = self.inner.spawn_actor(*id, None);
                    map.insert(*id, entry);
                }
                if let Some(e) = map.get_mut(id) {
                    e.last_used = Instant::now();
                    if let Some(i) = e.arbiter {
                        groups[i].push((pos, e.addr.clone()));
                    }
                }
            }
            metrics::gauge!("engine_active_resources").set(map.len() as f64);
        }
        let mut answers: Vec<Option<Result<R, EngineError>>> = ids.iter().map(|_| None).collect();
        let mut jobs = Vec::new();
        for (i, group) in groups.into_iter().enumerate().filter(|(_, g)| !g.is_empty()) {
            let (tx, rx) = oneshot::channel();
            let f = f.clone();
            let sent = self.inner.arbiters[i].spawn(async move {
                let waits: Vec<_> = group
                    .into_iter()
                    .map(|(pos, addr)| {
                        let (one_tx, one_rx) = oneshot::channel();
                        let f = f.clone();
                        let job = Box::new(move |st: Result<&ResourceState, EngineError>, now: Timestamp| {
                            let _ = one_tx.send(st.map(|s| f(s, now)));
                        });
                        let sent = match addr.try_send(Read(job)) {
                            Ok(()) => Ok(()),
                            Err(SendError::Full(_)) => Err(EngineError::Busy),
                            // Stopped since the registry was read: the caller retries it alone.
                            Err(SendError::Closed(_)) => Err(EngineError::ShuttingDown),
                        };
                        async move {
                            let r = match sent {
                                Ok(()) => one_rx.await.unwrap_or(Err(EngineError::ShuttingDown)),
                                Err(e) => Err(e),
                            };
                            (pos, r)
                        }
                    })
                    .collect();
                let _ = tx.send(futures::future::join_all(waits).await);
            });
            if sent {
                jobs.push(rx);
            }
        }
        for rx in jobs {
            for (pos, r) in rx.await.unwrap_or_default() {
                answers[pos] = Some(r);
            }
        }
        // What no arbiter answered (an actor that stopped in between, an arbiter gone) is read
        // the ordinary way, which starts a new actor if need be.
        let mut out = Vec::with_capacity(ids.len());
        for (pos, a) in answers.into_iter().enumerate() {
            out.push(match a {
                Some(r) if !matches!(r, Err(EngineError::ShuttingDown)) => r,
                _ => {
                    let f = f.clone();
                    self.read(ids[pos], move |s, now| f(s, now)).await
                }
            });
        }
        out
    }

    async fn read_each<R, F>(&self, ids: &[ResourceId], f: Arc<F>) -> Vec<Result<R, EngineError>>
    where
        R: Send + 'static,
        F: Fn(&ResourceState, Timestamp) -> R + Send + Sync + 'static,
    {
        let reads = ids.iter().map(|id| {
            let f = f.clone();
            self.read(*id, move |s, now| f(s, now))
        });
        futures::future::join_all(reads).await
    }

    /// Which resource a booking belongs to.
    pub async fn locate_booking(&self, booking_id: BookingId) -> Result<Option<ResourceId>, EngineError> {
        self.inner.store.locate_booking(booking_id).await.map_err(|e| EngineError::StoreUnavailable(e.to_string()))
    }

    /// Resources currently in memory.
    pub fn active_resources(&self) -> usize {
        self.inner.lock().len()
    }

    /// Wakes resources whose holds lapsed while no actor had them in memory (after a restart,
    /// or once passivated), so their capacity is freed and their waitlists offered.
    pub async fn sweep_once(&self) -> Result<usize, EngineError> {
        let ids = self
            .inner
            .store
            .resources_with_lapsed_holds(self.now(), 1_000)
            .await
            .map_err(|e| EngineError::StoreUnavailable(e.to_string()))?;
        for id in &ids {
            // Fire and forget: a busy resource expires its holds by itself anyway.
            let _ = self.inner.send(*id, Exec { cmd: Command::Tick, idempotency_key: None, reply: None });
        }
        Ok(ids.len())
    }

    /// Runs `sweep_once` every `sweep_interval_ms` until the engine shuts down or is dropped.
    pub fn start_sweeper(&self) {
        let weak = Arc::downgrade(&self.inner);
        let every = Duration::from_millis(self.inner.cfg.sweep_interval_ms.max(10));
        let fut = async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(inner) = weak.upgrade() else { break };
                if inner.shutting_down.load(Ordering::SeqCst) {
                    break;
                }
                let engine = Engine { inner };
                if let Err(e) = engine.sweep_once().await {
                    tracing::warn!(error = %e, "expiry sweep failed");
                }
            }
        };
        match self.inner.arbiters.first() {
            Some(a) => {
                a.spawn(fut);
            }
            None => {
                actix::spawn(fut);
            }
        }
    }

    /// Stops taking commands, lets every actor finish its in-flight commits, and waits (up to
    /// `timeout`) until all have stopped.
    pub async fn shutdown(&self, timeout: Duration) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        let addrs: Vec<Addr<ResourceActor>> = self.inner.lock().drain().map(|(_, e)| e.addr).collect();
        for a in &addrs {
            a.do_send(Stop);
        }
        let deadline = Instant::now() + timeout;
        while addrs.iter().any(|a| a.connected()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
