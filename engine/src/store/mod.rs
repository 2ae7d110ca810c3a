//! Persistence behind one trait. `postgres` is production; `memory` serves first runs with no
//! database and deterministic simulation tests (with injectable faults). Both pass the same
//! conformance suite (engine/tests/store_conformance.rs).
//!
//! The contract: `commit` writes a batch of changes atomically *only if* the resource's
//! version is still the one the writer loaded (fencing), and returns the new version.

pub mod memory;
pub mod postgres;

use crate::domain::booking::Booking;
use crate::domain::command::{Change, IdempotencyRecord};
use crate::domain::ids::{BookingId, ResourceId};
use crate::domain::spec::{ResourceKind, ResourceSpec};
use crate::domain::state::Counters;
use crate::domain::waitlist::WaitlistEntry;
use jiff::Timestamp;
use std::future::Future;
use std::pin::Pin;

pub type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'static>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Someone else wrote the resource since it was loaded (another engine, a stale actor).
    #[error("version conflict: the resource changed since it was loaded")]
    Conflict,
    /// The database is down, slow or refused: retryable.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// What the store holds cannot be turned back into domain values.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

/// Everything an actor needs to rebuild a resource's state.
#[derive(Debug, Clone)]
pub struct LoadedResource {
    pub spec: ResourceSpec,
    pub version: i64,
    /// Active (held, confirmed) bookings.
    pub bookings: Vec<Booking>,
    /// Active (waiting, offered) waitlist entries, plus the one with the highest position
    /// whatever its status, so that positions are never handed out twice.
    pub waitlist: Vec<WaitlistEntry>,
    /// Idempotency records younger than the retention period.
    pub idempotency: Vec<IdempotencyRecord>,
}

/// One group commit: all the changes an actor decided since its last commit.
#[derive(Debug, Clone)]
pub struct CommitBatch {
    pub resource_id: ResourceId,
    pub kind: ResourceKind,
    /// 0 when the batch creates the resource.
    pub expected_version: i64,
    pub changes: Vec<Change>,
    /// Held/confirmed totals after the batch, stored on the resource row so that readers
    /// (and the invariant checker) can compare them with the booking rows.
    pub counters: Counters,
    /// Time of the commit, for `updated_at` columns.
    pub at: Timestamp,
}

/// A resource as listed (for routing, search and admin overviews).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSummary {
    pub id: ResourceId,
    pub kind: ResourceKind,
    pub name: String,
    pub version: i64,
}

pub trait Store: Send + Sync + 'static {
    fn load(&self, id: ResourceId) -> StoreFuture<Option<LoadedResource>>;

    /// Atomically applies `batch` if the stored version equals `expected_version`; returns the
    /// new version. `StoreError::Conflict` if the version moved (or, for a create, if the
    /// resource exists); nothing is written then.
    fn commit(&self, batch: CommitBatch) -> StoreFuture<i64>;

    /// Any booking of the resource, whatever its status.
    fn load_booking(&self, resource_id: ResourceId, booking_id: BookingId) -> StoreFuture<Option<Booking>>;

    /// Which resource a booking belongs to (for routing commands that name only the booking).
    fn locate_booking(&self, booking_id: BookingId) -> StoreFuture<Option<ResourceId>>;

    /// Resources with a hold or offer that lapsed at or before `now`: the sweeper wakes them so
    /// expiries happen even for resources no actor has in memory (e.g. after a restart).
    fn resources_with_lapsed_holds(&self, now: Timestamp, limit: i64) -> StoreFuture<Vec<ResourceId>>;

    fn list_resources(&self, kind: Option<ResourceKind>, limit: i64) -> StoreFuture<Vec<ResourceSummary>>;
}
