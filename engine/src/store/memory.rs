//! The embedded in-memory store: nothing survives the process. It serves first runs with no
//! database and deterministic simulation tests, where `Faults` injects commit failures,
//! ambiguous commits (written, but reported failed) and slow commits.

use super::{
    BookingFilter, CommitBatch, LoadedResource, ResourceFilter, ResourceSummary, Store, StoreError, StoreFuture,
    StoreOverview, clamp_list_limit,
};
use crate::domain::booking::{Booking, BookingStatus, Transition};
use crate::domain::command::{Change, IdempotencyRecord, Notification};
use crate::domain::ids::{BookingId, ResourceId, UserId, WaitlistEntryId};
use crate::domain::ingest::is_feed_booking;
use crate::domain::spec::{KindSpec, ResourceKind, ResourceSpec};
use crate::domain::state::{Counters, IDEMPOTENCY_RETENTION_SECS};
use crate::domain::stats::DayStats;
use crate::domain::waitlist::{WaitlistEntry, WaitlistStatus};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

#[derive(Default)]
pub struct Faults {
    /// The next N commits fail without writing anything.
    pub fail_commits: AtomicU32,
    /// The next N commits write everything and then report failure (a lost COMMIT reply).
    pub ambiguous_commits: AtomicU32,
    /// The next N loads fail.
    pub fail_loads: AtomicU32,
    /// Every commit waits this long first (milliseconds).
    pub commit_delay_ms: AtomicU64,
    /// The most batches one merged commit has carried so far (tests read it to know that
    /// merged commits happened at all).
    pub widest_commit_batches: AtomicUsize,
}

fn take_one(n: &AtomicU32) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1)).is_ok()
}

#[derive(Clone)]
struct StoredResource {
    spec: ResourceSpec,
    version: i64,
    counters: Counters,
}

/// Everything the store holds; tests read it through [`MemoryStore::snapshot`].
#[derive(Clone, Default)]
pub struct MemoryData {
    resources: HashMap<ResourceId, StoredResource>,
    pub bookings: HashMap<BookingId, Booking>,
    pub history: Vec<Transition>,
    pub waitlist: HashMap<WaitlistEntryId, WaitlistEntry>,
    pub outbox: Vec<Notification>,
    pub idempotency: HashMap<(ResourceId, String, String), IdempotencyRecord>,
    pub daily_stats: BTreeMap<(ResourceId, Date), DayStats>,
}

impl MemoryData {
    pub fn version(&self, id: ResourceId) -> Option<i64> {
        self.resources.get(&id).map(|r| r.version)
    }
    pub fn counters(&self, id: ResourceId) -> Option<Counters> {
        self.resources.get(&id).map(|r| r.counters)
    }
    pub fn spec(&self, id: ResourceId) -> Option<&ResourceSpec> {
        self.resources.get(&id).map(|r| &r.spec)
    }
}

#[derive(Clone, Default)]
pub struct MemoryStore {
    data: Arc<Mutex<MemoryData>>,
    pub faults: Arc<Faults>,
}

impl MemoryStore {
    /// Says loudly that nothing is persisted: this store is for demos and tests only.
    pub fn new() -> Self {
        tracing::warn!("using the embedded in-memory store: NOTHING IS PERSISTED, every booking is lost on exit");
        Self::default()
    }

    pub fn snapshot(&self) -> MemoryData {
        self.lock().clone()
    }

    /// Another writer moves a resource's version, as a second node or a by-hand `UPDATE`
    /// would: the actor's next batch for it is refused by the fence. Tests use it to inject
    /// fence conflicts; false when the resource does not exist.
    pub fn bump_version(&self, id: ResourceId) -> bool {
        match self.lock().resources.get_mut(&id) {
            Some(r) => {
                r.version += 1;
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> MutexGuard<'_, MemoryData> {
        // `apply` checks everything before its first write and cannot panic midway, so a
        // poisoned lock still guards consistent data.
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn apply(data: &mut MemoryData, batch: CommitBatch) -> Result<i64, StoreError> {
        let current = data.resources.get(&batch.resource_id).map(|r| r.version);
        if current.unwrap_or(0) != batch.expected_version {
            return Err(StoreError::Conflict);
        }
        // Every check happens before the first write, so a refused batch leaves nothing behind.
        if current.is_none() && !batch.changes.iter().any(|c| matches!(c, Change::Spec(_))) {
            return Err(StoreError::Corrupt("a batch for a resource that was never created".into()));
        }
        // A booking created in this batch (its first transition is here) must be new, as the
        // primary key makes it in PostgreSQL: a second booking under a known id is refused
        // like a constraint violation there, as a conflict.
        let reused = batch
            .changes
            .iter()
            .any(|c| matches!(c, Change::History(t) if t.from.is_none() && data.bookings.contains_key(&t.booking_id)));
        if reused {
            return Err(StoreError::Conflict);
        }
        // An owner's reference names one of their resources, as the unique index
        // resources_owner_reference makes it in PostgreSQL.
        let taken = batch.changes.iter().any(|c| match c {
            Change::Spec(spec) => spec.reference.as_ref().is_some_and(|reference| {
                data.resources.iter().any(|(id, r)| {
                    *id != batch.resource_id
                        && r.spec.owner_id == spec.owner_id
                        && r.spec.reference.as_ref() == Some(reference)
                })
            }),
            _ => false,
        });
        if taken {
            return Err(StoreError::Conflict);
        }
        let version = batch.expected_version + 1;
        for change in batch.changes {
            match change {
                Change::Spec(spec) => {
                    data.resources
                        .insert(batch.resource_id, StoredResource { spec: *spec, version, counters: batch.counters });
                }
                Change::Booking(b) => {
                    data.bookings.insert(b.id, b);
                }
                Change::History(t) => data.history.push(t),
                Change::Waitlist(e) => {
                    data.waitlist.insert(e.id, e);
                }
                Change::Notify(n) => data.outbox.push(n),
                Change::Idempotency(r) => {
                    data.idempotency.insert((batch.resource_id, r.scope.clone(), r.key.clone()), *r);
                }
                Change::Tally(t) => {
                    data.daily_stats.entry((batch.resource_id, t.day)).or_insert_with(|| DayStats::zero(t.day)).add(&t);
                }
            }
        }
        if let Some(r) = data.resources.get_mut(&batch.resource_id) {
            r.version = version;
            r.counters = batch.counters;
        }
        Ok(version)
    }
}

impl Store for MemoryStore {
    fn load_bookings(&self, resource_id: ResourceId, ids: Vec<BookingId>) -> StoreFuture<Vec<Booking>> {
        let this = self.clone();
        Box::pin(async move {
            let d = this.lock();
            Ok(ids
                .iter()
                .filter_map(|id| d.bookings.get(id))
                .filter(|b| b.resource_id == resource_id)
                .cloned()
                .collect())
        })
    }

    fn daily_stats(&self, resource_id: ResourceId, from: Date, to: Date) -> StoreFuture<Vec<DayStats>> {
        let this = self.clone();
        Box::pin(async move {
            if from >= to {
                return Ok(Vec::new());
            }
            let d = this.lock();
            Ok(d.daily_stats.range((resource_id, from)..(resource_id, to)).map(|(_, s)| *s).collect())
        })
    }

    fn load(&self, id: ResourceId) -> StoreFuture<Option<LoadedResource>> {
        let this = self.clone();
        Box::pin(async move {
            if take_one(&this.faults.fail_loads) {
                return Err(StoreError::Unavailable("injected load failure".into()));
            }
            let d = this.lock();
            let Some(r) = d.resources.get(&id) else { return Ok(None) };
            let newest = d.idempotency.values().map(|r| r.at).max();
            let horizon = newest.map(|t| t - SignedDuration::from_secs(IDEMPOTENCY_RETENTION_SECS));
            Ok(Some(LoadedResource {
                spec: r.spec.clone(),
                version: r.version,
                bookings: d
                    .bookings
                    .values()
                    .filter(|b| b.resource_id == id && b.status.is_active())
                    .cloned()
                    .collect(),
                waitlist: {
                    let mine = || d.waitlist.values().filter(|e| e.resource_id == id);
                    let last = mine().map(|e| e.position).max();
                    mine().filter(|e| e.status.is_active() || Some(e.position) == last).cloned().collect()
                },
                idempotency: d
                    .idempotency
                    .iter()
                    .filter(|((rid, _, _), rec)| *rid == id && horizon.is_none_or(|h| rec.at > h))
                    .map(|(_, rec)| rec.clone())
                    .collect(),
                feed_gone: d
                    .bookings
                    .values()
                    .filter(|b| b.resource_id == id && !b.status.is_active() && is_feed_booking(b))
                    .map(|b| b.id)
                    .collect(),
                feed_known_from: Date::MIN,
            }))
        })
    }

    fn commit(&self, batch: CommitBatch) -> StoreFuture<i64> {
        // One batch is a merged commit of one: the same faults, the same checks.
        let merged = self.commit_many(vec![batch]);
        Box::pin(async move {
            let mut results = merged.await?;
            results.pop().unwrap_or_else(|| Err(StoreError::Corrupt("a merged commit answered no batch".into())))
        })
    }

    fn commit_many(&self, batches: Vec<CommitBatch>) -> StoreFuture<Vec<Result<i64, StoreError>>> {
        let this = self.clone();
        Box::pin(async move {
            this.faults.widest_commit_batches.fetch_max(batches.len(), Ordering::SeqCst);
            // The faults hit the merged commit as a whole, as they would one transaction.
            let delay = this.faults.commit_delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if take_one(&this.faults.fail_commits) {
                return Err(StoreError::Unavailable("injected commit failure".into()));
            }
            let ambiguous = take_one(&this.faults.ambiguous_commits);
            let results = {
                let mut d = this.lock();
                // `apply` checks each batch before its first write: a refused one leaves nothing.
                batches.into_iter().map(|b| Self::apply(&mut d, b)).collect()
            };
            if ambiguous {
                return Err(StoreError::Unavailable("injected failure after the write".into()));
            }
            Ok(results)
        })
    }

    fn load_booking(&self, resource_id: ResourceId, booking_id: BookingId) -> StoreFuture<Option<Booking>> {
        let this = self.clone();
        Box::pin(
            async move { Ok(this.lock().bookings.get(&booking_id).filter(|b| b.resource_id == resource_id).cloned()) },
        )
    }

    fn locate_booking(&self, booking_id: BookingId) -> StoreFuture<Option<ResourceId>> {
        let this = self.clone();
        Box::pin(async move { Ok(this.lock().bookings.get(&booking_id).map(|b| b.resource_id)) })
    }

    fn resources_with_lapsed_holds(&self, now: Timestamp, limit: i64) -> StoreFuture<Vec<ResourceId>> {
        let this = self.clone();
        Box::pin(async move {
            let d = this.lock();
            let mut ids: Vec<ResourceId> = d
                .bookings
                .values()
                .filter(|b| b.status == BookingStatus::Held && b.hold_expires_at.is_some_and(|t| t <= now))
                .map(|b| b.resource_id)
                .collect();
            ids.sort();
            ids.dedup();
            ids.truncate(usize::try_from(limit).unwrap_or(0));
            Ok(ids)
        })
    }

    fn list_resources(&self, filter: ResourceFilter) -> StoreFuture<Vec<ResourceSummary>> {
        let this = self.clone();
        Box::pin(async move {
            let d = this.lock();
            let city = filter.city.as_deref().map(str::to_lowercase);
            let mut v: Vec<ResourceSummary> = d
                .resources
                .iter()
                .filter(|(id, r)| {
                    filter.kind.is_none_or(|k| r.spec.kind.kind() == k)
                        && filter.owner_id.is_none_or(|o| r.spec.owner_id == o)
                        && filter.after.is_none_or(|a| **id > a)
                        && filter.reference.as_ref().is_none_or(|x| r.spec.reference.as_ref() == Some(x))
                        && city.as_ref().is_none_or(|c| match &r.spec.kind {
                            KindSpec::Hotel(h) => h.city.to_lowercase() == *c,
                            _ => false,
                        })
                })
                .map(|(id, r)| ResourceSummary {
                    id: *id,
                    kind: r.spec.kind.kind(),
                    name: r.spec.name.clone(),
                    owner_id: r.spec.owner_id,
                    city: match &r.spec.kind {
                        KindSpec::Hotel(h) => Some(h.city.clone()),
                        _ => None,
                    },
                    version: r.version,
                    reference: r.spec.reference.clone(),
                })
                .collect();
            v.sort_by_key(|r| r.id);
            v.truncate(page_len(filter.limit));
            Ok(v)
        })
    }

    fn list_bookings(&self, filter: BookingFilter) -> StoreFuture<Vec<Booking>> {
        let this = self.clone();
        Box::pin(async move {
            let d = this.lock();
            let owned_by =
                |b: &Booking, owner: UserId| d.resources.get(&b.resource_id).is_some_and(|r| r.spec.owner_id == owner);
            let mut v: Vec<Booking> = d
                .bookings
                .values()
                .filter(|b| {
                    filter.user_id.is_none_or(|u| b.user_id == u)
                        && filter.resource_id.is_none_or(|r| b.resource_id == r)
                        && filter.owner_id.is_none_or(|o| owned_by(b, o))
                        && (filter.statuses.is_empty() || filter.statuses.contains(&b.status))
                        && filter.created_from.is_none_or(|t| b.created_at >= t)
                        && filter.created_to.is_none_or(|t| b.created_at < t)
                        && filter.before.is_none_or(|cursor| (b.created_at, b.id) < cursor)
                        && (filter.ends_after.is_none() && filter.ended_by.is_none() || {
                            let ends = d
                                .resources
                                .get(&b.resource_id)
                                .map_or(Timestamp::MAX, |r| r.spec.kind.service_ends_at(&b.item));
                            filter.ends_after.is_none_or(|t| ends > t) && filter.ended_by.is_none_or(|t| ends <= t)
                        })
                })
                .cloned()
                .collect();
            v.sort_by_key(|b| Reverse((b.created_at, b.id)));
            v.truncate(page_len(filter.limit));
            Ok(v)
        })
    }

    fn locate_entry(&self, entry_id: WaitlistEntryId) -> StoreFuture<Option<ResourceId>> {
        let this = self.clone();
        Box::pin(async move { Ok(this.lock().waitlist.get(&entry_id).map(|e| e.resource_id)) })
    }

    fn list_waitlist_entries(&self, user_id: UserId, limit: i64) -> StoreFuture<Vec<WaitlistEntry>> {
        let this = self.clone();
        Box::pin(async move {
            let d = this.lock();
            let mut v: Vec<WaitlistEntry> = d.waitlist.values().filter(|e| e.user_id == user_id).cloned().collect();
            v.sort_by_key(|e| Reverse((e.joined_at, e.id)));
            v.truncate(page_len(limit));
            Ok(v)
        })
    }

    fn overview(&self) -> StoreFuture<StoreOverview> {
        let this = self.clone();
        Box::pin(async move {
            let d = this.lock();
            let mut o = StoreOverview::default();
            for r in d.resources.values() {
                match r.spec.kind.kind() {
                    ResourceKind::Hotel => o.hotels += 1,
                    ResourceKind::Event => o.events += 1,
                    ResourceKind::Provider => o.providers += 1,
                }
                o.held_bookings += r.counters.held_bookings;
                o.held_units += r.counters.held_units;
                o.confirmed_bookings += r.counters.confirmed_bookings;
                o.confirmed_units += r.counters.confirmed_units;
            }
            for e in d.waitlist.values() {
                match e.status {
                    WaitlistStatus::Waiting => o.waitlist_waiting += 1,
                    WaitlistStatus::Offered => o.waitlist_offered += 1,
                    _ => {}
                }
            }
            Ok(o)
        })
    }
}

/// A listing's page size as a length (the clamp keeps it within 1..=1000).
fn page_len(limit: i64) -> usize {
    usize::try_from(clamp_list_limit(limit)).unwrap_or(1)
}
