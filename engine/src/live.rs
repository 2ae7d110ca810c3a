//! Live updates: what a resource actor committed, published in-process for subscribers (the
//! gateway's WebSocket hub).
//!
//! The publish point is in `ResourceActor::committed`, after the store reported the batch's
//! transaction committed, never before: a decision that is rolled back (a failed commit, a
//! version conflict) is never published. Publishing is a `tokio::sync::broadcast` send: it never
//! blocks and never waits for a subscriber; a subscriber that falls behind by more than
//! `EngineConfig::live_capacity` messages gets `RecvError::Lagged` and must resynchronise (the
//! gateway disconnects its clients). With no subscriber nothing is copied at all: the actor
//! checks `receiver_count()` before it clones the batch's booking changes.
//!
//! In-process only: a subscriber sees what this engine's actors committed. Another server on
//! the same database publishes its own commits to its own subscribers.

use crate::domain::command::Change;
use crate::domain::ids::{ResourceId, UserId};
use crate::domain::spec::ResourceKind;
use crate::domain::state::Counters;
use jiff::Timestamp;
use std::sync::Arc;
use tokio::sync::broadcast;

/// One committed batch of one resource, as far as live subscribers care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub resource_id: ResourceId,
    /// The resource's owner when the batch was sent to the store.
    pub owner_id: Option<UserId>,
    pub kind: ResourceKind,
    /// The resource's version after this commit: increases with every commit of the resource.
    pub version: i64,
    /// Held and confirmed totals of the resource right after this batch (what was stored).
    pub counters: Counters,
    pub at: Timestamp,
    /// The batch's `Booking`, `Waitlist` and `Notify` changes, in decision order (the rest:
    /// history, idempotency records, tallies, specifications, are left out).
    pub changes: Vec<Change>,
}

pub type LiveSender = broadcast::Sender<Arc<Committed>>;
pub type LiveReceiver = broadcast::Receiver<Arc<Committed>>;

/// What a subscriber is told about.
fn relevant(c: &Change) -> bool {
    matches!(c, Change::Booking(_) | Change::Waitlist(_) | Change::Notify(_))
}

/// Called when a batch goes to the store: copies what will be published if it commits. Costs
/// one atomic load when nobody listens; `None` also when the batch changes no booking.
pub(crate) fn prepare(
    tx: &LiveSender,
    resource_id: ResourceId,
    owner_id: Option<UserId>,
    kind: ResourceKind,
    changes: &[Change],
    counters: Counters,
    at: Timestamp,
) -> Option<Committed> {
    if tx.receiver_count() == 0 {
        return None;
    }
    let changes: Vec<Change> = changes.iter().filter(|c| relevant(c)).cloned().collect();
    if changes.is_empty() {
        return None;
    }
    Some(Committed { resource_id, owner_id, kind, version: 0, counters, at, changes })
}

/// Called only after the batch committed as `version`. Never blocks; a send without
/// subscribers (they left meanwhile) is simply dropped.
pub(crate) fn publish(tx: &LiveSender, mut committed: Committed, version: i64) {
    committed.version = version;
    let _ = tx.send(Arc::new(committed));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::command::{Notification, NotificationKind};

    fn notify() -> Change {
        Change::Notify(Notification {
            kind: NotificationKind::Confirmed,
            user_id: UserId::new_v7(),
            booking_id: None,
            entry_id: None,
            at: Timestamp::UNIX_EPOCH,
        })
    }

    #[test]
    fn nothing_is_copied_without_a_subscriber_or_without_a_relevant_change() {
        let (tx, _) = broadcast::channel(4);
        let id = ResourceId::new_v7();
        let c = Counters::default();
        let at = Timestamp::UNIX_EPOCH;
        assert_eq!(prepare(&tx, id, None, ResourceKind::Event, &[notify()], c, at), None, "no subscriber");
        let mut rx = tx.subscribe();
        let tally = Change::Tally(Default::default());
        assert_eq!(
            prepare(&tx, id, None, ResourceKind::Event, std::slice::from_ref(&tally), c, at),
            None,
            "nothing to tell"
        );
        let copy = prepare(&tx, id, None, ResourceKind::Event, &[tally, notify()], c, at).expect("a copy");
        assert!(matches!(copy.changes.as_slice(), [Change::Notify(_)]), "only the notification: {:?}", copy.changes);
        publish(&tx, copy, 7);
        assert_eq!(rx.try_recv().expect("published").version, 7);
    }
}
