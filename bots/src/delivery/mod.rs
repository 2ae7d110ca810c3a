//! The outbox consumer: channel-agnostic, at-least-once delivery with a dedupe key.
//!
//! One pass of a [`Notifier`] does three things, each in short transactions of its own:
//! 1. **fan-out** (`store::fan_out`): claims outbox rows (`FOR UPDATE SKIP LOCKED`), writes one
//!    `deliveries` row per channel the recipient has (dedupe key `outbox:<id>:<channel>`,
//!    unique), brings the booking's reminders in step, and deletes the outbox rows — all in
//!    one transaction, so a notification is durable in `deliveries` before it leaves the outbox.
//! 2. **reminders** (`store::fire_reminders`): claims due reminders the same way and turns them
//!    into deliveries (dedupe key `reminder:<booking>:<offset>:<start>:<channel>`).
//! 3. **send** (`store::claim_due`): claims due deliveries by moving their `next_attempt_at` a
//!    lease ahead in one statement (so another process skips them), reads what their notices
//!    need in three statements for the whole batch (`store::notices`), sends each through its
//!    [`Channel`], then records every result (delivered / retry with backoff and jitter / dead)
//!    in one statement (`store::record_attempts`). A worker that
//!    dies mid-send leaves its claim to come due again when the lease ends: at-least-once. The
//!    channel gets the dedupe key (email: the Message-ID) so a recipient sees it once.
//!
//! Time comes from the engine's injected [`Clock`], so tests drive passes with a manual clock.

pub mod endpoints;
pub mod store;

use engine::Clock;
use engine::domain::booking::Booking;
use engine::store::postgres::PgStore;
use futures::future::BoxFuture;
use jiff::{SignedDuration, Timestamp};
use metrics::{Unit, describe_counter, describe_gauge};
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;

/// Who a notification is for, with every address a channel may use. Channels that need more
/// (a Telegram chat id) add a field here and fill it in `store::recipients`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    pub user_id: Uuid,
    pub name: String,
    pub email: Option<String>,
    /// The Telegram chat linked to the account (`telegram_links`), if any.
    pub telegram_chat_id: Option<i64>,
}

/// What happened: an outbox notification kind (`hold_created`, `confirmed`, ...) or a reminder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoticeKind {
    Notification(String),
    Reminder { offset_minutes: i32 },
}

impl NoticeKind {
    pub fn as_str(&self) -> &str {
        match self {
            NoticeKind::Notification(k) => k,
            NoticeKind::Reminder { .. } => "reminder",
        }
    }
}

/// Where a booking is: what the messages name and in which time zone they speak.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceView {
    pub id: Uuid,
    pub name: String,
    /// `hotel`, `event` or `provider`.
    pub kind: String,
    /// Hotels only.
    pub city: Option<String>,
    /// IANA zone of a hotel or provider. Events carry none: their times are shown in UTC.
    pub time_zone: Option<String>,
    /// Events only.
    pub event_starts_at: Option<Timestamp>,
    pub event_ends_at: Option<Timestamp>,
    /// Hotels only: the local time stays end on the check-out date.
    pub check_out_time: Option<jiff::civil::Time>,
    /// Room type and room number of a stay, or the ticket category's name.
    pub item_label: Option<String>,
}

/// One delivery to send: everything a channel needs to render and send it.
#[derive(Clone, Debug)]
pub struct Notice {
    pub delivery_id: i64,
    /// Unique per (notification, channel); stable across retries.
    pub dedupe_key: String,
    pub kind: NoticeKind,
    pub recipient: Recipient,
    pub resource: ResourceView,
    pub booking: Booking,
    pub entry_id: Option<Uuid>,
    /// When the cause happened.
    pub at: Timestamp,
    /// When this attempt is made (for DTSTAMP and "sent at").
    pub now: Timestamp,
}

/// Why a delivery failed: transient failures are retried with backoff, permanent ones are
/// dead-lettered at once (an address the server refuses will not become valid by waiting).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("transient: {0}")]
    Transient(String),
    #[error("permanent: {0}")]
    Permanent(String),
}

/// A way to reach people: email now; Telegram, outbound webhooks and WebSocket later.
///
/// Contract: `name` is stored in `deliveries.channel` and used as a metrics label, so it never
/// changes; `reaches` is decided when the notification is fanned out (a recipient without an
/// address on this channel gets no delivery row); `deliver` may be called more than once for
/// the same `dedupe_key` (after a crash between sending and recording) and should pass the key
/// on wherever the far side can de-duplicate with it.
pub trait Channel: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn reaches(&self, to: &Recipient) -> bool;
    /// Whom fan-out writes deliveries for: the notification's recipient (one delivery if
    /// `reaches`), or the endpoints the resource's owner registered (webhooks: one delivery per
    /// matching endpoint, see [`endpoints`]).
    fn audience(&self) -> Audience {
        Audience::Recipient
    }
    fn deliver<'a>(&'a self, notice: &'a Notice) -> BoxFuture<'a, Result<(), DeliveryError>>;
}

/// Who a channel's deliveries are for (see [`Channel::audience`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// The user the notification is about, if the channel `reaches` them.
    Recipient,
    /// The resource owner's registered endpoints whose event types include the notification's
    /// kind (dedupe key `outbox:<id>:<channel>:<endpoint id>`).
    OwnerEndpoints,
}

/// How the notifier works; the defaults suit production, tests shorten them.
#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    /// Pause between passes when there was nothing to do.
    pub poll_interval: Duration,
    /// Rows claimed per statement (outbox rows, reminders, deliveries). Measured under spread
    /// load (docs/benchmarks.md): 50 let the backlog grow for the whole run, 500 kept pace.
    pub batch_size: i64,
    /// Attempts before a delivery is dead-lettered.
    pub max_attempts: i32,
    /// Backoff after the n-th failure: `base * 2^(n-1)`, at most `max`, with jitter (a random
    /// point in its upper half).
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long a claim keeps a delivery from other workers; longer than any send takes.
    pub lease: Duration,
    /// Reminders before a confirmed booking starts, in minutes (e.g. 1440 and 60).
    pub reminder_offsets_minutes: Vec<i32>,
    /// Deliveries sent at the same time by one notifier.
    pub send_concurrency: usize,
    /// Delivered records older than this are deleted (dead ones stay until an admin acts).
    pub retention: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            poll_interval: Duration::from_secs(1),
            batch_size: 500,
            max_attempts: 8,
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(3600),
            lease: Duration::from_secs(300),
            reminder_offsets_minutes: vec![24 * 60, 60],
            send_concurrency: 4,
            retention: Duration::from_secs(30 * 86_400),
        }
    }
}

/// The delay before retrying after `attempts` failures, jittered into `[d/2, d]`.
pub fn backoff(cfg: &DeliveryConfig, attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let base = cfg.backoff_base.as_millis().min(u128::from(u64::MAX)) as u64;
    let cap = cfg.backoff_max.as_millis().min(u128::from(u64::MAX)) as u64;
    let full = base.saturating_mul(1u64 << exp).min(cap).max(1);
    let half = full / 2;
    Duration::from_millis(half + rand::rng().random_range(0..=full - half))
}

pub fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryStoreError {
    #[error("database: {0}")]
    Db(String),
}

impl From<tokio_postgres::Error> for DeliveryStoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        DeliveryStoreError::Db(e.to_string())
    }
}
impl From<deadpool_postgres::PoolError> for DeliveryStoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        DeliveryStoreError::Db(e.to_string())
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    pub fanned_out: usize,
    pub reminders_fired: usize,
    pub sent: usize,
    pub failed: usize,
}

impl PassReport {
    pub fn did_work(&self) -> bool {
        self.fanned_out + self.reminders_fired + self.sent + self.failed > 0
    }
}

/// Describes the delivery metrics (call once the recorder is installed).
pub fn describe_metrics() {
    describe_counter!("deliveries_total", "Delivery attempts, by channel and outcome (delivered, retry, dead)");
    describe_counter!("delivery_retries_total", "Failed deliveries scheduled for another attempt, by channel");
    describe_counter!("notifications_fanned_out_total", "Outbox notifications moved into per-channel deliveries");
    describe_counter!("reminders_fired_total", "Reminders that came due and became deliveries");
    describe_gauge!("delivery_backlog", "Deliveries pending (due or backing off)");
    describe_gauge!("delivery_dead", "Dead-lettered deliveries waiting for an admin");
    describe_gauge!(
        "delivery_oldest_pending_seconds",
        Unit::Seconds,
        "Age of the oldest pending delivery's notification"
    );
}

/// The outbox consumer of one process. Several (in one process or many) may run against one
/// database: every claim skips rows another holds.
pub struct Notifier {
    pg: PgStore,
    clock: Arc<dyn Clock>,
    channels: Vec<Arc<dyn Channel>>,
    cfg: DeliveryConfig,
}

/// Stops the notifier's loop: `shutdown` lets the pass in progress finish; dropping the handle
/// aborts the loop (a claim cut short comes due again when its lease ends).
pub struct NotifierHandle {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl NotifierHandle {
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for NotifierHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Notifier {
    pub fn new(pg: PgStore, clock: Arc<dyn Clock>, channels: Vec<Arc<dyn Channel>>, cfg: DeliveryConfig) -> Self {
        Notifier { pg, clock, channels, cfg }
    }

    pub fn config(&self) -> &DeliveryConfig {
        &self.cfg
    }

    fn channel_names(&self) -> Vec<String> {
        self.channels.iter().map(|c| c.name().to_owned()).collect()
    }

    /// One pass: fan out a batch of the outbox, fire due reminders, send due deliveries.
    pub async fn run_once(&self) -> Result<PassReport, DeliveryStoreError> {
        let pool = self.pg.pool();
        let fanned_out = store::fan_out(pool, &self.channels, &self.cfg, self.clock.now()).await?;
        let reminders_fired = store::fire_reminders(pool, &self.channels, &self.cfg, self.clock.now()).await?;
        let (sent, failed) = self.send_due().await?;
        Ok(PassReport { fanned_out, reminders_fired, sent, failed })
    }

    /// Claims a batch of due deliveries, reads what they need in three statements, sends them
    /// (`send_concurrency` at a time) and records every result in one statement; returns
    /// (delivered, failed).
    pub async fn send_due(&self) -> Result<(usize, usize), DeliveryStoreError> {
        use futures::StreamExt;
        let pool = self.pg.pool();
        let claimed = store::claim_due(pool, &self.channel_names(), &self.cfg, self.clock.now()).await?;
        if claimed.is_empty() {
            return Ok((0, 0));
        }
        let notices = match store::notices(pool, &self.pg, &claimed, self.clock.now()).await {
            Ok(n) => n.into_iter().map(Ok).collect(),
            // The reads failed: every attempt failed for now, and backs off like any other.
            Err(e) => claimed.iter().map(|_| Err(DeliveryError::Transient(e.to_string()))).collect::<Vec<_>>(),
        };
        // A Vec of futures, not a lazy map: `buffer_unordered` over a closure borrowing `self`
        // is not `Send` for every lifetime, which `tokio::spawn` of the loop needs.
        let attempts: Vec<_> = claimed.into_iter().zip(notices).map(|(d, n)| self.attempt(d, n)).collect();
        let results: Vec<(store::Claimed, store::Outcome)> =
            futures::stream::iter(attempts).buffer_unordered(self.cfg.send_concurrency.max(1)).collect().await;
        let records: Vec<store::Attempted> = results
            .iter()
            .map(|(d, outcome)| store::Attempted { id: d.id, attempts: d.attempts, outcome: outcome.clone() })
            .collect();
        store::record_attempts(pool, &records, self.clock.now()).await?;
        let (mut sent, mut failed) = (0, 0);
        for (d, outcome) in &results {
            match outcome {
                store::Outcome::Delivered => sent += 1,
                store::Outcome::Retry { next, error } => {
                    tracing::info!(delivery_id = d.id, channel = %d.channel, attempts = d.attempts, next_attempt_at = %next, %error, "delivery failed; will retry");
                    metrics::counter!("delivery_retries_total", "channel" => d.channel.clone()).increment(1);
                    failed += 1;
                }
                store::Outcome::Dead { error } => {
                    tracing::warn!(delivery_id = d.id, channel = %d.channel, attempts = d.attempts, %error, "delivery dead-lettered");
                    failed += 1;
                }
            }
            metrics::counter!("deliveries_total", "channel" => d.channel.clone(), "outcome" => outcome.label())
                .increment(1);
        }
        Ok((sent, failed))
    }

    /// One attempt of one claimed delivery, and what became of it (recorded by the caller).
    async fn attempt(
        &self,
        d: store::Claimed,
        notice: Result<Option<Notice>, DeliveryError>,
    ) -> (store::Claimed, store::Outcome) {
        let result = match (self.channels.iter().find(|c| c.name() == d.channel), notice) {
            (None, _) => Err(DeliveryError::Transient(format!("no channel {} in this notifier", d.channel))),
            (Some(channel), Ok(Some(notice))) => channel.deliver(&notice).await,
            (Some(_), Ok(None)) => {
                Err(DeliveryError::Permanent("the booking or its recipient no longer exists".into()))
            }
            (Some(_), Err(e)) => Err(e),
        };
        let outcome = match result {
            Ok(()) => store::Outcome::Delivered,
            Err(e) => {
                let permanent = matches!(e, DeliveryError::Permanent(_));
                if permanent || d.attempts >= self.cfg.max_attempts {
                    store::Outcome::Dead { error: e.to_string() }
                } else {
                    let next = self.clock.now() + signed(backoff(&self.cfg, d.attempts));
                    store::Outcome::Retry { next, error: e.to_string() }
                }
            }
        };
        (d, outcome)
    }

    /// Refreshes the delivery gauges from the database.
    pub async fn refresh_gauges(&self) -> Result<(), DeliveryStoreError> {
        let g = store::gauges(self.pg.pool(), self.clock.now()).await?;
        metrics::gauge!("delivery_backlog").set(g.pending as f64);
        metrics::gauge!("delivery_dead").set(g.dead as f64);
        metrics::gauge!("delivery_oldest_pending_seconds").set(g.oldest_pending_secs);
        Ok(())
    }

    /// Runs passes until stopped: straight on while there is work, else every `poll_interval`.
    /// A failed pass (database down) is logged and retried after the interval.
    pub fn spawn(self) -> NotifierHandle {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let (mut last_gauges, mut last_prune): (Option<Instant>, Option<Instant>) = (None, None);
            loop {
                if *stopped.borrow() {
                    break;
                }
                let busy = match self.run_once().await {
                    Ok(r) => r.did_work(),
                    Err(e) => {
                        tracing::warn!(error = %e, "delivery pass failed; retrying");
                        false
                    }
                };
                if last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                    let before = self.clock.now() - signed(self.cfg.retention);
                    match store::prune_delivered(self.pg.pool(), before, 10_000).await {
                        Ok(n) if n > 0 => tracing::info!(deleted = n, "old delivered records pruned"),
                        Ok(_) => {}
                        Err(e) => tracing::debug!(error = %e, "delivered records not pruned"),
                    }
                    last_prune = Some(Instant::now());
                }
                if last_gauges.is_none_or(|t| t.elapsed() >= Duration::from_secs(15)) {
                    if let Err(e) = self.refresh_gauges().await {
                        tracing::debug!(error = %e, "delivery gauges not refreshed");
                    }
                    last_gauges = Some(Instant::now());
                }
                if !busy {
                    tokio::select! {
                        _ = tokio::time::sleep(self.cfg.poll_interval) => {}
                        _ = stopped.changed() => {}
                    }
                }
            }
        });
        NotifierHandle { stop, task: Some(task) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_the_cap() {
        let cfg = DeliveryConfig {
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(100),
            ..DeliveryConfig::default()
        };
        for _ in 0..200 {
            let d1 = backoff(&cfg, 1);
            assert!((Duration::from_secs(5)..=Duration::from_secs(10)).contains(&d1), "{d1:?}");
            let d3 = backoff(&cfg, 3);
            assert!((Duration::from_secs(20)..=Duration::from_secs(40)).contains(&d3), "{d3:?}");
            let d20 = backoff(&cfg, 20);
            assert!((Duration::from_secs(50)..=Duration::from_secs(100)).contains(&d20), "{d20:?}");
        }
        assert!(backoff(&cfg, i32::MAX) <= Duration::from_secs(100));
        assert!(backoff(&cfg, 0) <= Duration::from_secs(10));
    }
}
