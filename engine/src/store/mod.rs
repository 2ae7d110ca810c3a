//! Persistence behind one trait. `postgres` is production; `memory` serves first runs with no
//! database and deterministic simulation tests (with injectable faults). Both pass the same
//! conformance suite (engine/tests/integration/conformance.rs).
//!
//! The contract: `commit` writes a batch of changes atomically *only if* the resource's
//! version is still the one the writer loaded (fencing), and returns the new version;
//! `commit_many` does so for many resources' batches in one transaction, fencing each alone.

pub mod memory;
pub mod postgres;

use crate::domain::booking::{Booking, BookingStatus};
use crate::domain::command::{Change, IdempotencyRecord};
use crate::domain::ids::{BookingId, ResourceId, UserId, WaitlistEntryId};
use crate::domain::spec::{ResourceKind, ResourceSpec};
use crate::domain::state::Counters;
use crate::domain::stats::DayStats;
use crate::domain::waitlist::WaitlistEntry;
use jiff::Timestamp;
use jiff::civil::Date;
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
    /// The resource's feed bookings that are not active, at least those with a night on or
    /// after `feed_known_from` (`ResourceState::remember_feed_gone`).
    pub feed_gone: Vec<BookingId>,
    pub feed_known_from: Date,
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
    pub owner_id: UserId,
    /// The hotel's city as the owner spelled it; `None` for every other kind.
    pub city: Option<String>,
    pub version: i64,
    /// The owner's reference, if the owner gave one.
    pub reference: Option<String>,
}

/// Largest page any listing returns.
pub const MAX_LIST_LIMIT: i64 = 1000;

/// A listing's page size: `limit` clamped to `1..=MAX_LIST_LIMIT`.
pub fn clamp_list_limit(limit: i64) -> i64 {
    limit.clamp(1, MAX_LIST_LIMIT)
}

/// Which resources to list. Ordered by id ascending; `after` is the keyset cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceFilter {
    pub kind: Option<ResourceKind>,
    pub owner_id: Option<UserId>,
    /// Hotels whose city equals this, ignoring case (resources of other kinds never match).
    pub city: Option<String>,
    /// The resource with this owner's reference (exact match; with `owner_id`, at most one).
    pub reference: Option<String>,
    pub after: Option<ResourceId>,
    /// 1..=1000; larger values are clamped to 1000, smaller to 1.
    pub limit: i64,
}

/// Which bookings to list. Ordered newest first: created_at descending, then id descending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BookingFilter {
    pub user_id: Option<UserId>,
    pub resource_id: Option<ResourceId>,
    /// Bookings of any resource this user owns.
    pub owner_id: Option<UserId>,
    /// Empty means any status.
    pub statuses: Vec<BookingStatus>,
    /// created_at in [created_from, created_to).
    pub created_from: Option<Timestamp>,
    pub created_to: Option<Timestamp>,
    /// Only bookings whose service ends after this instant ("upcoming" at now) or has ended
    /// at or before it ("past"); the end is `KindSpec::service_ends_at`: a stay's check-out
    /// time in the hotel's zone, the event's end, the appointment's end.
    pub ends_after: Option<Timestamp>,
    pub ended_by: Option<Timestamp>,
    /// Keyset cursor: only bookings strictly before (created_at, id) in the order above.
    pub before: Option<(Timestamp, BookingId)>,
    /// 1..=1000, clamped like ResourceFilter::limit.
    pub limit: i64,
}

/// Totals over every resource, for the admin overview. The booking figures are the counters
/// stored on the resource rows with each commit (a hold that lapsed but was not yet expired by
/// its actor still counts as held).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreOverview {
    pub hotels: u64,
    pub events: u64,
    pub providers: u64,
    pub held_bookings: u64,
    pub held_units: u64,
    pub confirmed_bookings: u64,
    pub confirmed_units: u64,
    /// Waitlist entries still waiting, and those holding an open offer.
    pub waitlist_waiting: u64,
    pub waitlist_offered: u64,
}

pub trait Store: Send + Sync + 'static {
    fn load(&self, id: ResourceId) -> StoreFuture<Option<LoadedResource>>;

    /// Atomically applies `batch` if the stored version equals `expected_version`; returns the
    /// new version. `StoreError::Conflict` if the version moved (or, for a create, if the
    /// resource exists); nothing is written then.
    fn commit(&self, batch: CommitBatch) -> StoreFuture<i64>;

    /// Commits several resources' batches in one transaction: a shard committer's merged
    /// commit (`crate::committer`). Each batch is fenced on its own, as `commit` fences one: a
    /// batch whose version moved (or a create whose resource exists) is answered `Conflict` and
    /// writes nothing, and the others commit. One answer per batch, in order. `Err` means the
    /// transaction failed or its outcome is unknown: it holds for every batch.
    fn commit_many(&self, batches: Vec<CommitBatch>) -> StoreFuture<Vec<Result<i64, StoreError>>>;

    /// Any booking of the resource, whatever its status.
    fn load_booking(&self, resource_id: ResourceId, booking_id: BookingId) -> StoreFuture<Option<Booking>>;

    /// Those of `ids` that are bookings of the resource, whatever their status (for a feed
    /// replay: `ResourceState::feed_lookups`). At most 1000 ids are asked for at once.
    fn load_bookings(&self, resource_id: ResourceId, ids: Vec<BookingId>) -> StoreFuture<Vec<Booking>>;

    /// The resource's dashboard counters for the days in `[from, to)` that have any, by day
    /// ascending (days never touched are absent: callers zero-fill).
    fn daily_stats(&self, resource_id: ResourceId, from: Date, to: Date) -> StoreFuture<Vec<DayStats>>;

    /// Which resource a booking belongs to (for routing commands that name only the booking).
    fn locate_booking(&self, booking_id: BookingId) -> StoreFuture<Option<ResourceId>>;

    /// Resources with a hold or offer that lapsed at or before `now`: the sweeper wakes them so
    /// expiries happen even for resources no actor has in memory (e.g. after a restart).
    fn resources_with_lapsed_holds(&self, now: Timestamp, limit: i64) -> StoreFuture<Vec<ResourceId>>;

    /// Resources matching `filter`, by id ascending, at most `filter.limit` (clamped 1..=1000).
    fn list_resources(&self, filter: ResourceFilter) -> StoreFuture<Vec<ResourceSummary>>;

    /// Bookings matching every filter that is set, any status unless `statuses` says otherwise,
    /// newest first (created_at desc, id desc), at most `filter.limit` (clamped 1..=1000).
    fn list_bookings(&self, filter: BookingFilter) -> StoreFuture<Vec<Booking>>;

    /// Which resource a waitlist entry belongs to (for routing commands that name only the entry).
    fn locate_entry(&self, entry_id: WaitlistEntryId) -> StoreFuture<Option<ResourceId>>;

    /// A user's waitlist entries, any status, newest first (joined_at desc, id desc), at most `limit` (clamped 1..=1000).
    fn list_waitlist_entries(&self, user_id: UserId, limit: i64) -> StoreFuture<Vec<WaitlistEntry>>;

    /// Totals for the admin overview: resources per kind, held and confirmed counters summed
    /// over all resources, waiting and offered waitlist entries.
    fn overview(&self) -> StoreFuture<StoreOverview>;
}
