//! Idempotency records in memory, for the no-database mode. Bounded in count and stored bytes:
//! past the bounds the oldest records are forgotten first.

use super::{Begin, IdemFuture, IdempotencyStore, Reservation, STALE_RESERVATION, StoredResponse, TTL};
use jiff::Timestamp;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use uuid::Uuid;

pub const MAX_RECORDS: usize = 100_000;
pub const MAX_STORED_BYTES: usize = 64 * 1024 * 1024;

enum State {
    InProgress(Uuid),
    Done(StoredResponse),
}

struct Entry {
    fingerprint: String,
    created_at: Timestamp,
    seq: u64,
    state: State,
}

impl Entry {
    fn bytes(&self) -> usize {
        match &self.state {
            State::Done(r) => r.body.len(),
            State::InProgress(_) => 0,
        }
    }
}

type Key = (String, String);

#[derive(Default)]
struct Data {
    entries: HashMap<Key, Entry>,
    /// Insertion order (oldest first), for expiry and eviction.
    order: BTreeMap<u64, Key>,
    next_seq: u64,
    bytes: usize,
}

impl Data {
    /// Forgets the record inserted as `seq` (if it is still that record).
    fn drop_seq(&mut self, seq: u64) {
        let Some(key) = self.order.remove(&seq) else { return };
        if self.entries.get(&key).is_some_and(|e| e.seq == seq)
            && let Some(e) = self.entries.remove(&key)
        {
            self.bytes -= e.bytes();
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some(seq) = self.entries.get(key).map(|e| e.seq) {
            self.drop_seq(seq);
        }
    }

    /// Forgets records created before `cutoff` (oldest first; stops at the first younger one).
    fn purge(&mut self, cutoff: Timestamp) -> u64 {
        let mut n = 0;
        while let Some((&seq, key)) = self.order.first_key_value() {
            if self.entries.get(key).is_some_and(|e| e.created_at >= cutoff) {
                break;
            }
            self.drop_seq(seq);
            n += 1;
        }
        n
    }

    fn shrink_to_bounds(&mut self) {
        while self.entries.len() > MAX_RECORDS || self.bytes > MAX_STORED_BYTES {
            let Some(&seq) = self.order.keys().next() else { break };
            self.drop_seq(seq);
        }
    }
}

#[derive(Clone, Default)]
pub struct MemoryIdempotency {
    data: Arc<Mutex<Data>>,
}

impl MemoryIdempotency {
    fn lock(&self) -> MutexGuard<'_, Data> {
        // Each operation leaves the maps consistent before it can panic: a poisoned lock is fine.
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl IdempotencyStore for MemoryIdempotency {
    fn begin(&self, scope: &str, key: &str, fingerprint: &str, now: Timestamp) -> IdemFuture<Begin> {
        let this = self.clone();
        let k: Key = (scope.to_owned(), key.to_owned());
        let fingerprint = fingerprint.to_owned();
        Box::pin(async move {
            let mut d = this.lock();
            if let Some(e) = d.entries.get(&k) {
                let live = match e.state {
                    State::Done(_) => e.created_at > now - TTL,
                    State::InProgress(_) => e.created_at > now - STALE_RESERVATION,
                };
                if live {
                    return Ok(match &e.state {
                        _ if e.fingerprint != fingerprint => Begin::Mismatch,
                        State::Done(r) => Begin::Replay(r.clone()),
                        State::InProgress(_) => Begin::InProgress,
                    });
                }
                d.remove(&k);
            }
            let lock_id = Uuid::now_v7();
            let seq = d.next_seq;
            d.next_seq += 1;
            d.order.insert(seq, k.clone());
            d.entries.insert(k.clone(), Entry { fingerprint, created_at: now, seq, state: State::InProgress(lock_id) });
            if d.entries.len() > MAX_RECORDS {
                d.purge(now - TTL);
                d.shrink_to_bounds();
            }
            Ok(Begin::Reserved(Reservation { scope: k.0, key: k.1, lock_id }))
        })
    }

    fn complete(&self, r: &Reservation, response: StoredResponse) -> IdemFuture<()> {
        let this = self.clone();
        let k: Key = (r.scope.clone(), r.key.clone());
        let lock_id = r.lock_id;
        Box::pin(async move {
            let mut d = this.lock();
            let added = response.body.len();
            match d.entries.get_mut(&k) {
                Some(e) if matches!(e.state, State::InProgress(id) if id == lock_id) => e.state = State::Done(response),
                _ => return Ok(()),
            }
            d.bytes += added;
            d.shrink_to_bounds();
            Ok(())
        })
    }

    fn release(&self, r: &Reservation) -> IdemFuture<()> {
        let this = self.clone();
        let k: Key = (r.scope.clone(), r.key.clone());
        let lock_id = r.lock_id;
        Box::pin(async move {
            let mut d = this.lock();
            if d.entries.get(&k).is_some_and(|e| matches!(e.state, State::InProgress(id) if id == lock_id)) {
                d.remove(&k);
            }
            Ok(())
        })
    }

    fn purge_expired(&self, now: Timestamp) -> IdemFuture<u64> {
        let this = self.clone();
        Box::pin(async move { Ok(this.lock().purge(now - TTL)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(body: &str) -> StoredResponse {
        StoredResponse {
            status: 201,
            content_type: Some("application/json".into()),
            location: None,
            body: body.as_bytes().to_vec(),
        }
    }

    #[actix_web::test]
    async fn reserve_replay_mismatch_release_and_expire() {
        let s = MemoryIdempotency::default();
        let t0 = Timestamp::now();
        let Begin::Reserved(r) = s.begin("u", "k", "f1", t0).await.expect("begin") else { panic!("reserved") };
        assert!(matches!(s.begin("u", "k", "f1", t0).await, Ok(Begin::InProgress)));
        assert!(matches!(s.begin("u", "k", "f2", t0).await, Ok(Begin::Mismatch)));
        assert!(matches!(s.begin("v", "k", "f2", t0).await, Ok(Begin::Reserved(_))), "scopes are separate");
        s.complete(&r, response("one")).await.expect("complete");
        let Ok(Begin::Replay(got)) = s.begin("u", "k", "f1", t0).await else { panic!("replay") };
        assert_eq!(got, response("one"));
        // Released reservations are forgotten; a late release of a completed one is a no-op.
        s.release(&r).await.expect("release");
        assert!(matches!(s.begin("u", "k", "f1", t0).await, Ok(Begin::Replay(_))));
        let Begin::Reserved(r2) = s.begin("u", "other", "f", t0).await.expect("begin") else { panic!("reserved") };
        s.release(&r2).await.expect("release");
        assert!(matches!(s.begin("u", "other", "f", t0).await, Ok(Begin::Reserved(_))));
        // After 24 h the key is free again; abandoned reservations after a minute.
        let later = t0 + TTL + jiff::SignedDuration::from_secs(1);
        assert!(matches!(s.begin("u", "k", "f2", later).await, Ok(Begin::Reserved(_))));
        assert_eq!(s.purge_expired(later + TTL + jiff::SignedDuration::from_secs(1)).await.expect("purge"), 3);
        assert!(s.is_empty());
    }

    #[actix_web::test]
    async fn memory_stays_bounded() {
        let s = MemoryIdempotency::default();
        let now = Timestamp::now();
        for i in 0..MAX_RECORDS + 10 {
            let _ = s.begin("u", &i.to_string(), "f", now).await.expect("begin");
        }
        assert_eq!(s.len(), MAX_RECORDS);
        assert!(matches!(s.begin("u", "0", "f", now).await, Ok(Begin::Reserved(_))), "the oldest was forgotten");
    }
}
