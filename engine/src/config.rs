//! Limits and tunables of the engine shell. Every queue and cache has a bound here.

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Most commands in one group commit (one transaction).
    pub max_batch: usize,
    /// Most decided-but-not-yet-committed commands per resource; beyond it callers get `Busy`.
    pub max_pending: usize,
    /// Most messages queued in one actor's mailbox; beyond it callers get `Busy`.
    pub mailbox_capacity: usize,
    /// An actor idle this long is passivated (dropped from memory; reloaded on next use).
    pub idle_passivate_secs: u64,
    /// Most resources held in memory; past it the least recently used one is passivated.
    pub max_active_resources: usize,
    /// Threads running actors (actix arbiters).
    pub arbiters: usize,
    /// How often the sweeper looks for lapsed holds of resources nobody has in memory.
    pub sweep_interval_ms: u64,
    /// Committed batches a live subscriber may fall behind before it is told it lagged.
    pub live_capacity: usize,
    /// Shards the resources are hashed into (`committer::shard_of`). Every node must use the
    /// same number: changing it needs a restart of every node.
    pub shards: u32,
    /// Shard committers: each serves `shard % committers` and holds one transaction (one
    /// pooled connection) at a time.
    pub committers: usize,
    /// Most resources' batches, and most changes, in one merged transaction.
    pub commit_max_batches: usize,
    pub commit_max_changes: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_batch: 2_000,
            max_pending: 20_000,
            mailbox_capacity: 20_000,
            idle_passivate_secs: 300,
            max_active_resources: 200_000,
            arbiters: 2,
            sweep_interval_ms: 1_000,
            live_capacity: 4_096,
            shards: 256,
            committers: 4,
            commit_max_batches: 512,
            commit_max_changes: 50_000,
        }
    }
}
