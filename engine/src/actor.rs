//! The actor that owns one resource: the thin shell around its `ResourceState`.
//!
//! Commands are decided strictly one at a time, in mailbox order, against the in-memory state
//! (which includes decisions not yet committed). Replies wait until the decision is durable.
//! One batch is in flight at a time, handed to the shard's committer (`committer.rs`), which
//! writes it in one transaction with other resources' batches; whatever is decided meanwhile
//! forms the next batch (group commit). If a commit fails, no waiter of that batch or of any
//! later decision is told "success": all get `StoreUnavailable`, and the actor reloads from
//! the store, which is the truth. Every handler body is synchronous, so actix cannot interleave two decisions; the only
//! asynchronous steps (load, fetch of a finished booking, reload) run under `ctx.wait`, which
//! holds the mailbox until they finish.

use crate::clock::Clock;
use crate::committer::Committers;
use crate::config::EngineConfig;
use crate::domain::command::{Change, Command, Outcome};
use crate::domain::error::DomainError;
use crate::domain::ids::ResourceId;
use crate::domain::spec::ResourceKind;
use crate::domain::state::{Counters, ResourceState};
use crate::engine::EngineInner;
use crate::error::EngineError;
use crate::live::{self, Committed, LiveSender};
use crate::store::{CommitBatch, LoadedResource, Store, StoreError};
use actix::prelude::*;
use jiff::Timestamp;
use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

pub type Reply = oneshot::Sender<Result<Outcome, EngineError>>;

/// Decide a command; the answer goes to `reply` once it is durable.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Exec {
    pub cmd: Command,
    pub idempotency_key: Option<String>,
    pub reply: Option<Reply>,
}

/// Run a read-only function against the state (including decisions still being committed).
/// It receives the error to report if the resource does not exist or could not be loaded.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Read(pub ReadFn);

pub type ReadFn = Box<dyn FnOnce(Result<&ResourceState, EngineError>, Timestamp) + Send>;

/// Sent by the registry after it forgot this actor: finish what is queued, then stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

struct Waiter {
    reply: Option<Reply>,
    result: Result<Outcome, DomainError>,
    changes: Vec<Change>,
    /// Totals right after this decision: the batch ending here stores them.
    counters: Counters,
}

impl Waiter {
    fn answer(self, r: Result<Outcome, EngineError>) {
        if let Some(tx) = self.reply {
            // The caller may have given up waiting; that is its business.
            let _ = tx.send(r);
        }
    }
}

enum Phase {
    Loading,
    Ready,
    /// The store has no such resource: answer "not found" until the registry stops us.
    Missing,
    /// Loading failed: answer "unavailable" until the registry stops us.
    Failed,
}

pub struct ResourceActor {
    id: ResourceId,
    store: Arc<dyn Store>,
    /// Commits go through the shard's committer (merged with other resources' batches).
    committers: Arc<Committers>,
    clock: Arc<dyn Clock>,
    cfg: Arc<EngineConfig>,
    registry: Weak<EngineInner>,
    /// Set when this actor was started to create the resource rather than load it: the new
    /// (already validated) state and who to tell once it is durable.
    create: Option<(Option<ResourceState>, Option<Reply>)>,
    phase: Phase,
    state: Option<ResourceState>,
    kind: ResourceKind,
    /// Version of the resource row as last committed by us: the fence for the next commit.
    version: i64,
    in_flight: Option<Vec<Waiter>>,
    pending: VecDeque<Waiter>,
    stopping: bool,
    last_active: Instant,
    timer: Option<(Timestamp, SpawnHandle)>,
    /// When the in-flight commit started, and when the previous one ended (for tracing).
    commit_started: Instant,
    last_commit_ended: Instant,
    /// Live updates (`live.rs`): where committed batches are published, and the in-flight
    /// batch's copy to publish once (and only if) its commit succeeds.
    live: LiveSender,
    in_flight_live: Option<Committed>,
}

impl ResourceActor {
    // The actor's wiring, each part from a different owner (engine, registry, creator):
    // bundling them would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: ResourceId,
        store: Arc<dyn Store>,
        committers: Arc<Committers>,
        clock: Arc<dyn Clock>,
        cfg: Arc<EngineConfig>,
        registry: Weak<EngineInner>,
        create: Option<(ResourceState, Option<Reply>)>,
        live: LiveSender,
    ) -> Self {
        let kind = create.as_ref().map(|(s, _)| s.kind().kind()).unwrap_or(ResourceKind::Event);
        let create = create.map(|(s, r)| (Some(s), r));
        ResourceActor {
            id,
            store,
            committers,
            clock,
            cfg,
            registry,
            create,
            phase: Phase::Loading,
            state: None,
            kind,
            version: 0,
            in_flight: None,
            pending: VecDeque::new(),
            stopping: false,
            last_active: Instant::now(),
            timer: None,
            commit_started: Instant::now(),
            last_commit_ended: Instant::now(),
            live,
            in_flight_live: None,
        }
    }

    fn load(&mut self, ctx: &mut Context<Self>) {
        let fut = self.store.load(self.id);
        ctx.wait(fut.into_actor(self).map(|res, act, ctx| act.loaded(res, ctx)));
    }

    fn loaded(&mut self, res: Result<Option<LoadedResource>, StoreError>, ctx: &mut Context<Self>) {
        match res {
            Ok(Some(l)) => match ResourceState::restore(self.id, l.spec.clone(), l.bookings, l.waitlist, l.idempotency)
            {
                Ok(mut s) => {
                    s.remember_feed_gone(l.feed_known_from, l.feed_gone);
                    self.kind = l.spec.kind.kind();
                    self.version = l.version;
                    self.state = Some(s);
                    self.phase = Phase::Ready;
                    self.arm_timer(ctx);
                }
                Err(e) => {
                    tracing::error!(resource = %self.id, error = %e, "stored specification no longer validates");
                    self.give_up(Phase::Failed);
                }
            },
            Ok(None) => self.give_up(Phase::Missing),
            Err(e) => {
                tracing::warn!(resource = %self.id, error = %e, "could not load resource");
                self.give_up(Phase::Failed);
            }
        }
    }

    /// Stops serving: the registry forgets us and sends `Stop`, queued messages get answers.
    fn give_up(&mut self, phase: Phase) {
        self.phase = phase;
        self.state = None;
        if let Some(reg) = self.registry.upgrade() {
            reg.forget(self.id);
        }
    }

    fn not_ready_error(&self) -> EngineError {
        match self.phase {
            Phase::Missing => EngineError::ResourceNotFound,
            _ => EngineError::StoreUnavailable("the resource could not be loaded; retry".into()),
        }
    }

    fn decide(&mut self, msg: Exec, ctx: &mut Context<Self>) {
        let now = self.clock.now();
        let Some(state) = self.state.as_mut() else {
            let err = self.not_ready_error();
            if let Some(tx) = msg.reply {
                let _ = tx.send(Err(err));
            }
            return;
        };
        let result = state.apply(msg.cmd, msg.idempotency_key.as_deref(), now);
        let changes = state.take_changes();
        let counters = state.counters();
        let w = Waiter { reply: msg.reply, result, changes, counters };
        if w.changes.is_empty() && self.in_flight.is_none() && self.pending.is_empty() {
            // Nothing to persist and nothing earlier to wait for.
            let r = w.result.clone().map_err(EngineError::Domain);
            w.answer(r);
        } else {
            self.pending.push_back(w);
            if self.in_flight.is_none() {
                self.start_commit(ctx);
            }
        }
        self.arm_timer(ctx);
    }

    fn start_commit(&mut self, ctx: &mut Context<Self>) {
        // Leading decisions without changes depend only on what is already durable.
        while self.pending.front().is_some_and(|w| w.changes.is_empty()) {
            if let Some(w) = self.pending.pop_front() {
                let r = w.result.clone().map_err(EngineError::Domain);
                w.answer(r);
            }
        }
        if self.pending.is_empty() {
            self.quiet(ctx);
            return;
        }
        let mut waiters = Vec::with_capacity(self.pending.len().min(self.cfg.max_batch));
        let mut changes = Vec::new();
        let mut counters = Counters::default();
        while waiters.len() < self.cfg.max_batch {
            let Some(mut w) = self.pending.pop_front() else { break };
            changes.append(&mut w.changes);
            counters = w.counters;
            waiters.push(w);
        }
        let at = self.clock.now();
        // Live updates: a copy for subscribers, published only after this batch commits.
        let owner = self.state.as_ref().map(|s| s.owner_id());
        self.in_flight_live = live::prepare(&self.live, self.id, owner, self.kind, &changes, counters, at);
        let batch = CommitBatch {
            resource_id: self.id,
            kind: self.kind,
            expected_version: self.version,
            changes,
            counters,
            at,
        };
        self.in_flight = Some(waiters);
        self.commit_started = Instant::now();
        let fut = self.committers.commit(batch);
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| act.committed(res, ctx)));
    }

    fn committed(&mut self, res: Result<i64, StoreError>, ctx: &mut Context<Self>) {
        let waiters = self.in_flight.take().unwrap_or_default();
        let live_copy = self.in_flight_live.take();
        let now = Instant::now();
        metrics::histogram!("engine_commit_batch_size").record(waiters.len() as f64);
        metrics::histogram!("engine_commit_duration_seconds")
            .record(now.duration_since(self.commit_started).as_secs_f64());
        if res.is_err() {
            metrics::counter!("engine_commit_failures_total").increment(1);
        }
        tracing::debug!(
            resource = %self.id,
            batch = waiters.len(),
            commit_us = now.duration_since(self.commit_started).as_micros() as u64,
            idle_before_us = self.commit_started.duration_since(self.last_commit_ended).as_micros() as u64,
            ok = res.is_ok(),
            "group commit"
        );
        self.last_commit_ended = now;
        match res {
            Ok(v) => {
                self.version = v;
                // Committed: now (never earlier) subscribers may hear of it. Never blocks.
                if let Some(c) = live_copy {
                    live::publish(&self.live, c, v);
                }
                if let Some((_, Some(tx))) = self.create.take() {
                    let _ = tx.send(Ok(Outcome::SpecUpdated));
                }
                for w in waiters {
                    let r = w.result.clone().map_err(EngineError::Domain);
                    w.answer(r);
                }
                self.start_commit(ctx);
            }
            Err(e) => {
                tracing::warn!(resource = %self.id, error = %e, batch = waiters.len(), pending = self.pending.len(),
                    "commit failed: rejecting the batch and everything decided after it, reloading");
                let err = EngineError::StoreUnavailable(match e {
                    StoreError::Conflict => "another writer changed this resource; retry".into(),
                    other => other.to_string(),
                });
                if let Some((_, Some(tx))) = self.create.take() {
                    let _ = tx.send(Err(err.clone()));
                }
                for w in waiters.into_iter().chain(self.pending.drain(..)) {
                    w.answer(Err(err.clone()));
                }
                self.state = None;
                self.phase = Phase::Loading;
                if let Some((_, h)) = self.timer.take() {
                    ctx.cancel_future(h);
                }
                self.load(ctx);
            }
        }
    }

    /// Nothing in flight, nothing pending: everything decided is durable.
    fn quiet(&mut self, ctx: &mut Context<Self>) {
        if let Some(s) = self.state.as_mut() {
            s.evict_inactive();
        }
        if self.stopping {
            ctx.stop();
        }
    }

    /// Keeps one timer armed for the earliest hold/offer expiry or completion.
    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        let Some(deadline) = self.state.as_ref().and_then(|s| s.next_deadline()) else {
            if let Some((_, h)) = self.timer.take() {
                ctx.cancel_future(h);
            }
            return;
        };
        if let Some((t, h)) = self.timer {
            if t <= deadline {
                return;
            }
            ctx.cancel_future(h);
        }
        // Wake at most an hour from now (then re-arm), so a far deadline or a clock jump
        // never leaves the actor asleep for too long. 5 ms of slack lands after the deadline.
        let wait = deadline.duration_since(self.clock.now()).as_millis().clamp(0, 3_600_000);
        let delay = Duration::from_millis(u64::try_from(wait).unwrap_or(0) + 5);
        let h = ctx.run_later(delay, |act, ctx| {
            act.timer = None;
            act.decide(Exec { cmd: Command::Tick, idempotency_key: None, reply: None }, ctx);
        });
        self.timer = Some((deadline, h));
    }
}

impl Actor for ResourceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.cfg.mailbox_capacity);
        let idle = Duration::from_secs(self.cfg.idle_passivate_secs.max(1));
        ctx.run_interval(idle / 2, move |act, _ctx| {
            if act.last_active.elapsed() >= idle && act.in_flight.is_none() && act.pending.is_empty() && !act.stopping {
                tracing::debug!(resource = %act.id, "passivating idle resource");
                if let Some(reg) = act.registry.upgrade() {
                    reg.forget(act.id);
                }
            }
        });
        match self.create.as_mut().and_then(|(s, _)| s.take()) {
            None => self.load(ctx),
            Some(mut s) => {
                let changes = s.take_changes();
                let counters = s.counters();
                self.state = Some(s);
                self.phase = Phase::Ready;
                self.pending.push_back(Waiter { reply: None, result: Ok(Outcome::SpecUpdated), changes, counters });
                self.start_commit(ctx);
            }
        }
    }
}

impl Handler<Exec> for ResourceActor {
    type Result = ();

    fn handle(&mut self, msg: Exec, ctx: &mut Context<Self>) {
        self.last_active = Instant::now();
        let Some(state) = self.state.as_ref() else {
            let err = self.not_ready_error();
            if let Some(tx) = msg.reply {
                let _ = tx.send(Err(err));
            }
            return;
        };
        if self.pending.len() >= self.cfg.max_pending {
            if let Some(tx) = msg.reply {
                let _ = tx.send(Err(EngineError::Busy));
            }
            return;
        }
        // A feed replay names bookings that may have left memory (cancelled, completed): fetch
        // those the store has, so the replay finds them instead of creating them again. The
        // state knows which ids those can be, so a batch of new events asks nothing.
        let missing = state.feed_lookups(&msg.cmd);
        if !missing.is_empty() {
            let fut = self.store.load_bookings(self.id, missing);
            ctx.wait(fut.into_actor(self).map(move |res, act, ctx| match res {
                Ok(found) => {
                    if let Some(s) = act.state.as_mut() {
                        for b in found {
                            s.admit_inactive(b);
                        }
                    }
                    act.decide(msg, ctx);
                }
                Err(e) => {
                    if let Some(tx) = msg.reply {
                        let _ = tx.send(Err(EngineError::StoreUnavailable(e.to_string())));
                    }
                }
            }));
            return;
        }
        // A command about a booking that left memory (finished, or older than this actor)
        // first fetches it, holding the mailbox so decisions stay in order.
        if let Some(bid) = msg.cmd.booking_ref().filter(|b| state.booking(*b).is_none()) {
            let fut = self.store.load_booking(self.id, bid);
            ctx.wait(fut.into_actor(self).map(move |res, act, ctx| match res {
                Ok(found) => {
                    if let (Some(b), Some(s)) = (found, act.state.as_mut()) {
                        s.admit_inactive(b);
                    }
                    act.decide(msg, ctx);
                }
                Err(e) => {
                    if let Some(tx) = msg.reply {
                        let _ = tx.send(Err(EngineError::StoreUnavailable(e.to_string())));
                    }
                }
            }));
            return;
        }
        self.decide(msg, ctx);
    }
}

impl Handler<Read> for ResourceActor {
    type Result = ();

    fn handle(&mut self, msg: Read, _ctx: &mut Context<Self>) {
        self.last_active = Instant::now();
        let now = self.clock.now();
        match self.state.as_ref() {
            Some(s) => (msg.0)(Ok(s), now),
            None => (msg.0)(Err(self.not_ready_error()), now),
        }
    }
}

impl Handler<Stop> for ResourceActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        self.stopping = true;
        if self.in_flight.is_none() && self.pending.is_empty() {
            ctx.stop();
        }
    }
}
