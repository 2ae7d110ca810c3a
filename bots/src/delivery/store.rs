//! The SQL of delivery: fan-out of the outbox, reminders, claims, results, the admin views.
//! Every claim is `FOR UPDATE SKIP LOCKED`, so any number of notifiers share one database.

use super::{Channel, DeliveryConfig, DeliveryStoreError, Notice, NoticeKind, Recipient, ResourceView, signed};
use deadpool_postgres::{GenericClient, Pool};
use engine::domain::booking::{Booking, BookingItem};
use engine::domain::ids::BookingId;
use engine::store::postgres::PgStore;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_postgres::Row;
use uuid::Uuid;

/// Stays start on the check-in date at this local time (hotels declare no check-in time).
pub const STAY_CHECK_IN: Time = Time::constant(15, 0, 0, 0);

/// Longest error text kept on a delivery.
const MAX_ERROR_CHARS: usize = 1000;

type Result<T> = std::result::Result<T, DeliveryStoreError>;

/// Who these users are on every channel: the one place that reads recipients (a new channel's
/// address, e.g. a linked Telegram chat, is added to this query and to [`Recipient`]). Users
/// without an account are absent.
pub async fn recipients(c: &impl GenericClient, users: &[Uuid]) -> Result<HashMap<Uuid, Recipient>> {
    let rows = c
        .query(
            // Accounts the Telegram bot created have an address in the reserved domain
            // `telegram.invalid` and no mailbox: no email for them.
            "SELECT u.id, u.name, CASE WHEN u.email LIKE '%@telegram.invalid' THEN NULL ELSE u.email END, t.chat_id \
             FROM users u \
             LEFT JOIN telegram_links t ON t.user_id = u.id WHERE u.id = ANY($1)",
            &[&users],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let to = Recipient { user_id: r.get(0), name: r.get(1), email: r.get(2), telegram_chat_id: r.get(3) };
            (to.user_id, to)
        })
        .collect())
}

#[allow(clippy::too_many_arguments)]
async fn insert_deliveries(
    c: &impl GenericClient,
    channels: &[Arc<dyn Channel>],
    to: &Recipient,
    key_prefix: &str,
    kind: &str,
    resource_id: Uuid,
    booking_id: Option<Uuid>,
    entry_id: Option<Uuid>,
    payload: &serde_json::Value,
    notified_at: Timestamp,
    now: Timestamp,
) -> Result<()> {
    for ch in channels.iter().filter(|c| c.reaches(to)) {
        let key = format!("{key_prefix}:{}", ch.name());
        c.execute(
            "INSERT INTO deliveries (dedupe_key, channel, kind, user_id, resource_id, booking_id, entry_id, payload,
                 status, attempts, next_attempt_at, notified_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, $10, $9, $9)
             ON CONFLICT (dedupe_key) DO NOTHING",
            &[&key, &ch.name(), &kind, &to.user_id, &resource_id, &booking_id, &entry_id, payload, &now, &notified_at],
        )
        .await?;
    }
    Ok(())
}

/// Moves a batch of outbox rows into deliveries (one per channel the recipient has), brings the
/// reminders of their bookings in step and deletes the rows, in one transaction. Returns how
/// many outbox rows it consumed.
pub async fn fan_out(
    pool: &Pool,
    channels: &[Arc<dyn Channel>],
    cfg: &DeliveryConfig,
    now: Timestamp,
) -> Result<usize> {
    if channels.is_empty() {
        // Consuming the outbox with no channel would lose every notification.
        return Ok(0);
    }
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "SELECT id, resource_id, kind, user_id, booking_id, entry_id, created_at FROM outbox
             ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            &[&cfg.batch_size],
        )
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    // Reminders exist only for confirmed bookings: a batch whose only news about a booking is
    // a new hold or offer cannot change them. The others are synced under a per-booking lock,
    // all taken in one statement in one order (no deadlock between two notifiers).
    let mut bookings: Vec<Uuid> = rows
        .iter()
        .filter(|r| !matches!(r.get::<_, &str>(2), "hold_created" | "offer_made"))
        .filter_map(|r| r.get::<_, Option<Uuid>>(4))
        .collect();
    bookings.sort_unstable();
    bookings.dedup();
    if !bookings.is_empty() {
        tx.execute(
            "SELECT count(pg_advisory_xact_lock(hashtextextended(b::text, 7)))
             FROM (SELECT b FROM unnest($1::uuid[]) AS b ORDER BY b) AS s",
            &[&bookings],
        )
        .await?;
    }
    // The recipients of the whole batch in one read, its deliveries in one write.
    let mut users: Vec<Uuid> = rows.iter().map(|r| r.get::<_, Uuid>(3)).collect();
    users.sort_unstable();
    users.dedup();
    let recipients = recipients(&tx, &users).await?;
    let mut ids = Vec::with_capacity(rows.len());
    let mut d = NewDeliveries::default();
    for r in &rows {
        let id: i64 = r.get(0);
        ids.push(id);
        let user_id: Uuid = r.get(3);
        let Some(to) = recipients.get(&user_id) else {
            tracing::debug!(outbox_id = id, %user_id, "notification for a user without an account: not delivered");
            continue;
        };
        for ch in channels.iter().filter(|c| c.reaches(to)) {
            d.keys.push(format!("outbox:{id}:{}", ch.name()));
            d.channels.push(ch.name().to_owned());
            d.kinds.push(r.get(2));
            d.users.push(user_id);
            d.resources.push(r.get(1));
            d.bookings.push(r.get(4));
            d.entries.push(r.get(5));
            d.notified.push(r.get(6));
        }
    }
    if !d.keys.is_empty() {
        tx.execute(
            "INSERT INTO deliveries (dedupe_key, channel, kind, user_id, resource_id, booking_id, entry_id,
                 status, attempts, next_attempt_at, notified_at, created_at, updated_at)
             SELECT k, c, kd, u, r, b, e, 'pending', 0, $9, n, $9, $9
             FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::uuid[], $6::uuid[], $7::uuid[],
                         $8::timestamptz[]) AS t(k, c, kd, u, r, b, e, n)
             ON CONFLICT (dedupe_key) DO NOTHING",
            &[&d.keys, &d.channels, &d.kinds, &d.users, &d.resources, &d.bookings, &d.entries, &d.notified, &now],
        )
        .await?;
    }
    // Channels that deliver to owners' endpoints (webhooks) rather than to the recipient.
    for ch in channels.iter().filter(|c| c.audience() == super::Audience::OwnerEndpoints) {
        super::endpoints::fan_out(&tx, ch.name(), &ids, now).await?;
    }
    sync_reminders(&tx, &bookings, cfg, now).await?;
    tx.execute("DELETE FROM outbox WHERE id = ANY($1)", &[&ids]).await?;
    tx.commit().await?;
    metrics::counter!("notifications_fanned_out_total").increment(ids.len() as u64);
    Ok(ids.len())
}

/// Columns of the deliveries one fan-out writes (one `unnest` insert).
#[derive(Default)]
struct NewDeliveries {
    keys: Vec<String>,
    channels: Vec<String>,
    kinds: Vec<String>,
    users: Vec<Uuid>,
    resources: Vec<Uuid>,
    bookings: Vec<Option<Uuid>>,
    entries: Vec<Option<Uuid>>,
    notified: Vec<Timestamp>,
}

/// A booking as reminders see it.
struct BookingTimes {
    status: String,
    resource_id: Uuid,
    user_id: Uuid,
    starts_at: Option<Timestamp>,
}

const BOOKING_TIMES: &str = "
    SELECT b.id, b.status, b.resource_id, b.user_id, b.item_kind, b.check_in, b.starts_at, e.starts_at, h.time_zone
    FROM bookings b
    LEFT JOIN events e ON e.resource_id = b.resource_id
    LEFT JOIN hotels h ON h.resource_id = b.resource_id
    WHERE b.id = ANY($1)";

fn booking_times_of(r: &Row) -> (Uuid, BookingTimes) {
    let item_kind: &str = r.get(4);
    let starts_at = match item_kind {
        "appointment" => r.get::<_, Option<Timestamp>>(6),
        "tickets" => r.get::<_, Option<Timestamp>>(7),
        _ => {
            let check_in: Option<Date> = r.get(5);
            let tz = r.get::<_, Option<String>>(8).and_then(|z| TimeZone::get(&z).ok()).unwrap_or(TimeZone::UTC);
            check_in.and_then(|d| d.to_datetime(STAY_CHECK_IN).to_zoned(tz).ok()).map(|z| z.timestamp())
        }
    };
    (r.get(0), BookingTimes { status: r.get(1), resource_id: r.get(2), user_id: r.get(3), starts_at })
}

async fn booking_times(c: &impl GenericClient, booking_id: Uuid) -> Result<Option<BookingTimes>> {
    let rows = c.query(BOOKING_TIMES, &[&vec![booking_id]]).await?;
    Ok(rows.first().map(|r| booking_times_of(r).1))
}

/// Makes the bookings' reminders match them: scheduled before the start of a confirmed booking
/// (moved if the start moved, skipped if already past), cancelled for anything else. Three
/// statements whatever the number of bookings.
async fn sync_reminders(c: &impl GenericClient, bookings: &[Uuid], cfg: &DeliveryConfig, now: Timestamp) -> Result<()> {
    if bookings.is_empty() {
        return Ok(());
    }
    let times: HashMap<Uuid, BookingTimes> =
        c.query(BOOKING_TIMES, &[&bookings]).await?.iter().map(booking_times_of).collect();
    let (mut ids, mut offsets, mut resources, mut users, mut starts, mut dues, mut statuses) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut others = Vec::new();
    for id in bookings {
        let start = match times.get(id) {
            Some(b) if b.status == "confirmed" => b.starts_at.filter(|s| *s > now).map(|s| (b, s)),
            _ => None,
        };
        let Some((b, start)) = start else {
            others.push(*id);
            continue;
        };
        for &offset in &cfg.reminder_offsets_minutes {
            let due = start - SignedDuration::from_mins(i64::from(offset));
            ids.push(*id);
            offsets.push(offset);
            resources.push(b.resource_id);
            users.push(b.user_id);
            starts.push(start);
            dues.push(due);
            statuses.push(if due > now { "scheduled" } else { "skipped" });
        }
    }
    if !ids.is_empty() {
        c.execute(
            "INSERT INTO reminders (booking_id, offset_minutes, resource_id, user_id, starts_at, due_at, status, updated_at)
             SELECT b, o, r, u, s, d, st, $8
             FROM unnest($1::uuid[], $2::int4[], $3::uuid[], $4::uuid[], $5::timestamptz[], $6::timestamptz[], $7::text[])
                  AS t(b, o, r, u, s, d, st)
             ON CONFLICT (booking_id, offset_minutes) DO UPDATE
             SET starts_at = EXCLUDED.starts_at, due_at = EXCLUDED.due_at, status = EXCLUDED.status,
                 updated_at = EXCLUDED.updated_at
             WHERE reminders.starts_at <> EXCLUDED.starts_at OR reminders.status = 'cancelled'",
            &[&ids, &offsets, &resources, &users, &starts, &dues, &statuses, &now],
        )
        .await?;
    }
    if !others.is_empty() {
        c.execute(
            "UPDATE reminders SET status = 'cancelled', updated_at = $2 WHERE booking_id = ANY($1) AND status = 'scheduled'",
            &[&others, &now],
        )
        .await?;
    }
    Ok(())
}

/// Turns due reminders into deliveries (after checking that the booking is still confirmed and
/// still starts when the reminder says), in one transaction. Returns how many fired.
pub async fn fire_reminders(
    pool: &Pool,
    channels: &[Arc<dyn Channel>],
    cfg: &DeliveryConfig,
    now: Timestamp,
) -> Result<usize> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "SELECT booking_id, offset_minutes, resource_id, user_id, starts_at, due_at FROM reminders
             WHERE status = 'scheduled' AND due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
            &[&now, &cfg.batch_size],
        )
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut fired = 0;
    for r in &rows {
        let (booking_id, offset, resource_id, user_id): (Uuid, i32, Uuid, Uuid) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let (starts_at, due_at): (Timestamp, Timestamp) = (r.get(4), r.get(5));
        let current = booking_times(&tx, booking_id).await?;
        let still_valid = current.is_some_and(|b| b.status == "confirmed" && b.starts_at == Some(starts_at));
        let status = if !still_valid {
            "cancelled"
        } else if starts_at <= now {
            // We were down past the start: a reminder now would only confuse.
            "skipped"
        } else {
            if let Some(to) = recipients(&tx, &[user_id]).await?.remove(&user_id) {
                let prefix = format!("reminder:{booking_id}:{offset}:{}", starts_at.as_second());
                let payload = json!({"offset_minutes": offset, "starts_at": starts_at.to_string()});
                insert_deliveries(
                    &tx,
                    channels,
                    &to,
                    &prefix,
                    "reminder",
                    resource_id,
                    Some(booking_id),
                    None,
                    &payload,
                    due_at,
                    now,
                )
                .await?;
            }
            fired += 1;
            "sent"
        };
        tx.execute(
            "UPDATE reminders SET status = $3, updated_at = $4 WHERE booking_id = $1 AND offset_minutes = $2",
            &[&booking_id, &offset, &status, &now],
        )
        .await?;
    }
    tx.commit().await?;
    metrics::counter!("reminders_fired_total").increment(fired as u64);
    Ok(fired)
}

/// A delivery claimed by this worker for one attempt (`attempts` counts this one).
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub dedupe_key: String,
    pub channel: String,
    pub kind: String,
    pub user_id: Uuid,
    pub resource_id: Uuid,
    pub booking_id: Option<Uuid>,
    pub entry_id: Option<Uuid>,
    pub payload: serde_json::Value,
    pub attempts: i32,
    pub notified_at: Timestamp,
}

/// Claims up to `batch_size` due deliveries of these channels: one statement locks them
/// (skipping rows others hold), counts the attempt and moves them a lease ahead.
pub async fn claim_due(pool: &Pool, channels: &[String], cfg: &DeliveryConfig, now: Timestamp) -> Result<Vec<Claimed>> {
    let client = pool.get().await?;
    let lease_end = now + signed(cfg.lease);
    let rows = client
        .query(
            "WITH due AS (
                 SELECT id FROM deliveries
                 WHERE status = 'pending' AND next_attempt_at <= $1 AND channel = ANY($2)
                 ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)
             UPDATE deliveries d SET attempts = d.attempts + 1, next_attempt_at = $4, updated_at = $1
             FROM due WHERE d.id = due.id
             RETURNING d.id, d.dedupe_key, d.channel, d.kind, d.user_id, d.resource_id, d.booking_id, d.entry_id,
                       d.payload, d.attempts, d.notified_at",
            &[&now, &channels, &cfg.batch_size, &lease_end],
        )
        .await?;
    let mut claimed: Vec<Claimed> = rows
        .iter()
        .map(|r| Claimed {
            id: r.get(0),
            dedupe_key: r.get(1),
            channel: r.get(2),
            kind: r.get(3),
            user_id: r.get(4),
            resource_id: r.get(5),
            booking_id: r.get(6),
            entry_id: r.get(7),
            payload: r.get(8),
            attempts: r.get(9),
            notified_at: r.get(10),
        })
        .collect();
    claimed.sort_by_key(|c| c.id);
    Ok(claimed)
}

/// Where a booking is, as a notice names it: its resource, and the room or ticket category
/// whose label it carries.
type Place = (Uuid, Option<Uuid>, Option<Uuid>);

fn place_of(booking: &Booking) -> Place {
    match &booking.item {
        BookingItem::Stay { room_id, .. } => (booking.resource_id.0, Some(room_id.0), None),
        BookingItem::Tickets { category_id, .. } => (booking.resource_id.0, None, category_id.map(|c| c.0)),
        BookingItem::Appointment { .. } => (booking.resource_id.0, None, None),
    }
}

/// The resources and item labels of these places, in one statement.
async fn resource_views(c: &impl GenericClient, places: &[Place]) -> Result<HashMap<Place, ResourceView>> {
    if places.is_empty() {
        return Ok(HashMap::new());
    }
    let resources: Vec<Uuid> = places.iter().map(|p| p.0).collect();
    let rooms: Vec<Option<Uuid>> = places.iter().map(|p| p.1).collect();
    let categories: Vec<Option<Uuid>> = places.iter().map(|p| p.2).collect();
    let rows = c
        .query(
            "SELECT q.n, r.name, r.kind, h.city, coalesce(h.time_zone, p.time_zone), e.starts_at, e.ends_at,
                    h.check_out_time,
                    coalesce((SELECT rt.name || ', room ' || rm.number
                              FROM rooms rm JOIN room_types rt ON rt.id = rm.room_type_id WHERE rm.id = q.room),
                             (SELECT tc.name FROM ticket_categories tc WHERE tc.id = q.category))
             FROM unnest($1::uuid[], $2::uuid[], $3::uuid[]) WITH ORDINALITY AS q(resource, room, category, n)
             JOIN resources r ON r.id = q.resource
             LEFT JOIN hotels h ON h.resource_id = r.id
             LEFT JOIN providers p ON p.resource_id = r.id
             LEFT JOIN events e ON e.resource_id = r.id",
            &[&resources, &rooms, &categories],
        )
        .await?;
    let mut views = HashMap::with_capacity(rows.len());
    for row in &rows {
        // Ordinality counts from 1.
        let n: i64 = row.get(0);
        let Some(place) = usize::try_from(n - 1).ok().and_then(|i| places.get(i)) else { continue };
        let view = ResourceView {
            id: place.0,
            name: row.get(1),
            kind: row.get(2),
            city: row.get(3),
            time_zone: row.get(4),
            event_starts_at: row.get(5),
            event_ends_at: row.get(6),
            check_out_time: row.get(7),
            item_label: row.get(8),
        };
        views.insert(*place, view);
    }
    Ok(views)
}

/// Everything a channel needs for each claimed delivery, in the order given; `None` where its
/// booking, resource or recipient is gone (a permanent failure). Three reads for the whole
/// batch, whatever its size: the bookings, the recipients, the resources with their labels.
pub async fn notices(pool: &Pool, pg: &PgStore, batch: &[Claimed], now: Timestamp) -> Result<Vec<Option<Notice>>> {
    let mut ids: Vec<BookingId> = batch.iter().filter_map(|d| d.booking_id).map(BookingId).collect();
    ids.sort_unstable_by_key(|b| b.0);
    ids.dedup();
    // Before taking a connection of our own: the store takes one too (never hold two at once,
    // or concurrent passes could starve the pool).
    let bookings: HashMap<Uuid, Booking> = pg
        .bookings_by_id(&ids)
        .await
        .map_err(|e| DeliveryStoreError::Db(e.to_string()))?
        .into_iter()
        .map(|b| (b.id.0, b))
        .collect();
    // A delivery's booking must be of the delivery's resource.
    let booking_of =
        |d: &Claimed| d.booking_id.and_then(|id| bookings.get(&id)).filter(|b| b.resource_id.0 == d.resource_id);
    let client = pool.get().await?;
    let mut users: Vec<Uuid> = batch.iter().map(|d| d.user_id).collect();
    users.sort_unstable();
    users.dedup();
    let recipients = recipients(&client, &users).await?;
    let mut places: Vec<Place> = batch.iter().filter_map(booking_of).map(place_of).collect();
    places.sort_unstable();
    places.dedup();
    let views = resource_views(&client, &places).await?;
    Ok(batch
        .iter()
        .map(|d| {
            let booking = booking_of(d)?;
            let recipient = recipients.get(&d.user_id)?;
            let resource = views.get(&place_of(booking))?;
            let kind = if d.kind == "reminder" {
                let offset = d.payload.get("offset_minutes").and_then(serde_json::Value::as_i64).unwrap_or(0);
                NoticeKind::Reminder { offset_minutes: i32::try_from(offset).unwrap_or(0) }
            } else {
                NoticeKind::Notification(d.kind.clone())
            };
            Some(Notice {
                delivery_id: d.id,
                dedupe_key: d.dedupe_key.clone(),
                kind,
                recipient: recipient.clone(),
                resource: resource.clone(),
                booking: booking.clone(),
                entry_id: d.entry_id,
                at: d.notified_at,
                now,
            })
        })
        .collect())
}

fn clip(e: &str) -> String {
    e.chars().take(MAX_ERROR_CHARS).collect()
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Failed; to be tried again at `next`.
    Retry {
        next: Timestamp,
        error: String,
    },
    /// Failed for good (permanent, or out of attempts): left for an admin.
    Dead {
        error: String,
    },
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Retry { .. } => "retry",
            Outcome::Dead { .. } => "dead",
        }
    }
}

/// One attempt of a claimed delivery (`attempts` as claimed) and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempted {
    pub id: i64,
    pub attempts: i32,
    pub outcome: Outcome,
}

/// Records the results of a pass in one statement (one commit, one WAL flush, however many).
/// A result is recorded only if the claim is still ours (same attempt count, still pending):
/// a worker whose lease ran out never overwrites a later attempt.
pub async fn record_attempts(pool: &Pool, results: &[Attempted], at: Timestamp) -> Result<u64> {
    if results.is_empty() {
        return Ok(0);
    }
    let mut ids = Vec::with_capacity(results.len());
    let mut attempts = Vec::with_capacity(results.len());
    let mut statuses = Vec::with_capacity(results.len());
    let mut nexts: Vec<Option<Timestamp>> = Vec::with_capacity(results.len());
    let mut errors: Vec<Option<String>> = Vec::with_capacity(results.len());
    for r in results {
        ids.push(r.id);
        attempts.push(r.attempts);
        let (status, next, error) = match &r.outcome {
            Outcome::Delivered => ("delivered", None, None),
            Outcome::Retry { next, error } => ("pending", Some(*next), Some(clip(error))),
            Outcome::Dead { error } => ("dead", None, Some(clip(error))),
        };
        statuses.push(status);
        nexts.push(next);
        errors.push(error);
    }
    Ok(pool
        .get()
        .await?
        .execute(
            // Every parameter cast: a bare `$6` inside CASE would be typed text.
            "UPDATE deliveries d
             SET status = v.status, next_attempt_at = coalesce(v.next, d.next_attempt_at), last_error = v.error,
                 delivered_at = CASE WHEN v.status = 'delivered' THEN $6::timestamptz END,
                 updated_at = $6::timestamptz
             FROM unnest($1::int8[], $2::int4[], $3::text[], $4::timestamptz[], $5::text[])
                  AS v(id, attempts, status, next, error)
             WHERE d.id = v.id AND d.attempts = v.attempts AND d.status = 'pending'",
            &[&ids, &attempts, &statuses, &nexts, &errors, &at],
        )
        .await?)
}

/// Deletes up to `limit` delivered records delivered before `before` (oldest first). Safe for
/// dedupe: their outbox rows are long gone, so nothing can fan them out again.
pub async fn prune_delivered(pool: &Pool, before: Timestamp, limit: i64) -> Result<u64> {
    Ok(pool
        .get()
        .await?
        .execute(
            "DELETE FROM deliveries WHERE id IN (
                 SELECT id FROM deliveries WHERE status = 'delivered' AND delivered_at < $1 ORDER BY id LIMIT $2)",
            &[&before, &limit],
        )
        .await?)
}

pub struct Gauges {
    pub pending: i64,
    pub dead: i64,
    pub oldest_pending_secs: f64,
}

pub async fn gauges(pool: &Pool, now: Timestamp) -> Result<Gauges> {
    let row = pool
        .get()
        .await?
        .query_one(
            "SELECT (SELECT count(*) FROM deliveries WHERE status = 'pending'),
                    (SELECT count(*) FROM deliveries WHERE status = 'dead'),
                    (SELECT min(notified_at) FROM deliveries WHERE status = 'pending')",
            &[],
        )
        .await?;
    let oldest: Option<Timestamp> = row.get(2);
    let oldest_pending_secs = oldest.map(|t| now.duration_since(t).as_secs_f64().max(0.0)).unwrap_or(0.0);
    Ok(Gauges { pending: row.get(0), dead: row.get(1), oldest_pending_secs })
}

/// A delivery as admins see it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub id: i64,
    pub channel: String,
    pub kind: String,
    pub status: String,
    pub attempts: i32,
    pub user_id: Uuid,
    pub resource_id: Uuid,
    pub booking_id: Option<Uuid>,
    pub entry_id: Option<Uuid>,
    pub last_error: Option<String>,
    pub next_attempt_at: Timestamp,
    pub notified_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
}

const RECORD_COLUMNS: &str = "id, channel, kind, status, attempts, user_id, resource_id, booking_id, entry_id, \
     last_error, next_attempt_at, notified_at, created_at, updated_at, delivered_at";

fn record(r: &Row) -> DeliveryRecord {
    DeliveryRecord {
        id: r.get(0),
        channel: r.get(1),
        kind: r.get(2),
        status: r.get(3),
        attempts: r.get(4),
        user_id: r.get(5),
        resource_id: r.get(6),
        booking_id: r.get(7),
        entry_id: r.get(8),
        last_error: r.get(9),
        next_attempt_at: r.get(10),
        notified_at: r.get(11),
        created_at: r.get(12),
        updated_at: r.get(13),
        delivered_at: r.get(14),
    }
}

/// Deliveries newest first (by id), optionally of one status, strictly before `before_id`.
pub async fn list_deliveries(
    pool: &Pool,
    status: Option<&str>,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<DeliveryRecord>> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM deliveries
         WHERE ($1::text IS NULL OR status = $1) AND ($2::int8 IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3"
    );
    let rows = pool.get().await?.query(&sql, &[&status, &before_id, &limit.clamp(1, 1000)]).await?;
    Ok(rows.iter().map(record).collect())
}

pub async fn get_delivery(pool: &Pool, id: i64) -> Result<Option<DeliveryRecord>> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM deliveries WHERE id = $1");
    Ok(pool.get().await?.query_opt(&sql, &[&id]).await?.as_ref().map(record))
}

pub enum RetryOutcome {
    Retried(DeliveryRecord),
    NotFound,
    /// Only dead deliveries are retried by hand; pending ones retry by themselves.
    NotDead(DeliveryRecord),
}

/// Puts a dead delivery back in the queue, due now, with a fresh attempt budget.
pub async fn retry_delivery(pool: &Pool, id: i64, now: Timestamp) -> Result<RetryOutcome> {
    let sql = format!(
        "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $2, updated_at = $2
         WHERE id = $1 AND status = 'dead' RETURNING {RECORD_COLUMNS}"
    );
    if let Some(r) = pool.get().await?.query_opt(&sql, &[&id, &now]).await? {
        return Ok(RetryOutcome::Retried(record(&r)));
    }
    Ok(match get_delivery(pool, id).await? {
        Some(r) => RetryOutcome::NotDead(r),
        None => RetryOutcome::NotFound,
    })
}
