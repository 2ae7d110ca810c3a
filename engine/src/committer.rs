//! Shard committers: where actors' batches become transactions.
//!
//! Every resource belongs to one of `EngineConfig::shards` shards (a stable hash of its id,
//! [`shard_of`]); the shard is the unit of commit here and, later, the unit a node owns under
//! a lease. A few committers (`EngineConfig::committers`) each serve a fixed set of shards
//! (`shard % committers`). An actor keeps deciding alone, with one batch in flight, and hands
//! that batch to its shard's committer instead of opening a transaction. A committer takes
//! every batch waiting for it (at most `commit_max_batches` batches and `commit_max_changes`
//! changes), writes them in one transaction (`Store::commit_many`, each batch fenced on its
//! own version) and answers each actor. While that transaction is in flight, new batches
//! queue and form the next one: group commit across resources.
//!
//! Why: a quiet resource's batch holds one or two decisions, and a transaction's fixed cost
//! (round trips, the WAL flush) paid per resource made spread load slower than one SQL
//! transaction per booking. Merged, the fixed cost is paid once for every resource in it.
//!
//! Must never: answer a batch before its transaction's outcome is known (an unknown outcome is
//! an error for every batch in it); answer one batch with another's result; hold more than one
//! transaction in flight per committer (the queue is the batching).

use crate::config::EngineConfig;
use crate::domain::ids::ResourceId;
use crate::store::{CommitBatch, Store, StoreError};
use actix::Arbiter;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// The shard of a resource: FNV-1a over its id's 16 bytes, modulo `shards`. Stable across
/// processes and versions (nodes must agree on it), unlike `std`'s hasher.
pub fn shard_of(id: ResourceId, shards: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.0.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // The remainder is below `shards`, a u32.
    u32::try_from(h % u64::from(shards.max(1))).unwrap_or(0)
}

struct Job {
    batch: CommitBatch,
    reply: oneshot::Sender<Result<i64, StoreError>>,
}

/// Bounds of one merged transaction.
#[derive(Clone, Copy)]
struct Limits {
    max_batches: usize,
    max_changes: usize,
}

pub struct Committers {
    lanes: Vec<mpsc::UnboundedSender<Job>>,
    shards: u32,
}

impl Committers {
    /// Starts the committers, spread over `arbiters` (or on the caller's actix runtime if
    /// there are none). The queues need no bound of their own: each actor has at most one
    /// batch in flight, and the actors in memory are bounded (`max_active_resources`).
    pub(crate) fn start(store: Arc<dyn Store>, cfg: &EngineConfig, arbiters: &[Arbiter]) -> Committers {
        let limits = Limits { max_batches: cfg.commit_max_batches.max(1), max_changes: cfg.commit_max_changes.max(1) };
        let lanes = (0..cfg.committers.max(1))
            .map(|i| {
                let (tx, rx) = mpsc::unbounded_channel();
                let run = run(store.clone(), rx, limits);
                match arbiters.get(i % arbiters.len().max(1)) {
                    Some(a) => {
                        a.spawn(run);
                    }
                    None => {
                        actix::spawn(run);
                    }
                }
                tx
            })
            .collect();
        Committers { lanes, shards: cfg.shards.max(1) }
    }

    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// Which committer serves this resource's shard.
    fn lane(&self, id: ResourceId) -> usize {
        let shard = shard_of(id, self.shards) as usize;
        shard % self.lanes.len().max(1)
    }

    /// Hands `batch` to its shard's committer; resolves once its transaction's outcome is
    /// known. The same contract as `Store::commit`.
    pub fn commit(&self, batch: CommitBatch) -> impl Future<Output = Result<i64, StoreError>> + 'static {
        let (reply, answer) = oneshot::channel();
        let sent = match self.lanes.get(self.lane(batch.resource_id)) {
            Some(lane) => lane.send(Job { batch, reply }).is_ok(),
            None => false,
        };
        async move {
            if !sent {
                return Err(StoreError::Unavailable("the shard's committer has stopped".into()));
            }
            answer
                .await
                .unwrap_or_else(|_| Err(StoreError::Unavailable("the committer stopped before answering".into())))
        }
    }
}

/// One committer: waits for a batch, takes whatever else is waiting (within the limits),
/// commits them together, answers each, repeats. Ends when every sender is gone.
async fn run(store: Arc<dyn Store>, mut rx: mpsc::UnboundedReceiver<Job>, limits: Limits) {
    while let Some(first) = rx.recv().await {
        let mut changes = first.batch.changes.len();
        let mut jobs = vec![first];
        while jobs.len() < limits.max_batches && changes < limits.max_changes {
            match rx.try_recv() {
                Ok(j) => {
                    changes += j.batch.changes.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        metrics::histogram!("engine_merged_commit_resources").record(jobs.len() as f64);
        let (batches, replies): (Vec<CommitBatch>, Vec<_>) = jobs.into_iter().map(|j| (j.batch, j.reply)).unzip();
        let n = batches.len();
        match store.commit_many(batches).await {
            Ok(results) if results.len() == n => {
                for (r, reply) in results.into_iter().zip(replies) {
                    // An actor that stopped waiting is its own business.
                    let _ = reply.send(r);
                }
            }
            Ok(_) => {
                let e = StoreError::Corrupt("a merged commit answered the wrong number of batches".into());
                tracing::error!(error = %e, "merged commit");
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            Err(e) => {
                metrics::counter!("engine_merged_commit_failures_total").increment(1);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn shards_are_stable_and_spread() {
        // Pinned: nodes of different builds must agree on every resource's shard.
        assert_eq!(shard_of(ResourceId(Uuid::nil()), 256), 101);
        let fixed = ResourceId(Uuid::from_u128(0x0190_f1c2_0000_7000_8000_0000_0000_0001));
        assert_eq!(shard_of(fixed, 256), 212);
        assert_eq!(shard_of(fixed, 1), 0);
        assert_eq!(shard_of(fixed, 0), 0, "no shards reads as one");
        let mut counts = vec![0u32; 16];
        for _ in 0..16_000 {
            counts[shard_of(ResourceId::new_v7(), 16) as usize] += 1;
        }
        // UUIDv7s made in one millisecond share most bits; the hash still spreads them.
        assert!(counts.iter().all(|&c| (700..1300).contains(&c)), "{counts:?}");
    }
}
