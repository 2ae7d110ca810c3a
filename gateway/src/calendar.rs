//! iCal feeds at secret URLs: a user's bookings, or one resource's schedule for its owner.
//! Only a SHA-256 of each token is stored (like refresh tokens); the URL is shown once, when
//! the feed is created or rotated. The calendar is rendered by `bots::ics`, the renderer of
//! the email attachments. PostgreSQL only.

use crate::auth::hash_token;
use crate::error::ApiError;
use bots::delivery::store::STAY_CHECK_IN;
use bots::ics::{self, CalEvent, When};
use deadpool_postgres::Pool;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use rand::RngCore;
use uuid::Uuid;

/// Bookings that ended more than this many days ago are left out of a feed.
pub const FEED_PAST_DAYS: i64 = 90;
/// Most events in one feed (the earliest in the window first).
pub const MAX_FEED_EVENTS: i64 = 1000;
/// Active feeds one user may have.
pub const MAX_FEEDS_PER_USER: i64 = 20;

fn db(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(e.to_string())
}

/// A feed as its creator sees it (never with its token).
#[derive(Debug, Clone)]
pub struct Feed {
    pub id: Uuid,
    /// `user` or `resource`.
    pub scope: String,
    pub resource_id: Option<Uuid>,
    pub created_at: Timestamp,
    pub rotated_at: Option<Timestamp>,
}

const FEED_COLUMNS: &str = "id, scope, resource_id, created_at, rotated_at";

fn feed(r: &tokio_postgres::Row) -> Feed {
    Feed { id: r.get(0), scope: r.get(1), resource_id: r.get(2), created_at: r.get(3), rotated_at: r.get(4) }
}

/// A fresh token: 32 random bytes in hex.
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Creates a feed of `user`'s bookings (`resource` None) or of one resource's; returns it with
/// its token, or `None` if the user already has [`MAX_FEEDS_PER_USER`] active feeds.
pub async fn create(
    pool: &Pool,
    user: Uuid,
    resource: Option<Uuid>,
    now: Timestamp,
) -> Result<Option<(Feed, String)>, ApiError> {
    let mut client = pool.get().await.map_err(db)?;
    let tx = client.transaction().await.map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text, 10))", &[&user]).await.map_err(db)?;
    let active: i64 = tx
        .query_one("SELECT count(*) FROM calendar_feeds WHERE user_id = $1 AND revoked_at IS NULL", &[&user])
        .await
        .map_err(db)?
        .get(0);
    if active >= MAX_FEEDS_PER_USER {
        return Ok(None);
    }
    let token = new_token();
    let scope = if resource.is_some() { "resource" } else { "user" };
    let sql = format!(
        "INSERT INTO calendar_feeds (id, token_hash, scope, user_id, resource_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {FEED_COLUMNS}"
    );
    let row = tx
        .query_one(&sql, &[&Uuid::now_v7(), &hash_token(&token), &scope, &user, &resource, &now])
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(Some((feed(&row), token)))
}

/// The user's active feeds, newest first.
pub async fn list(pool: &Pool, user: Uuid) -> Result<Vec<Feed>, ApiError> {
    let sql = format!(
        "SELECT {FEED_COLUMNS} FROM calendar_feeds WHERE user_id = $1 AND revoked_at IS NULL
         ORDER BY created_at DESC, id DESC"
    );
    let rows = pool.get().await.map_err(db)?.query(&sql, &[&user]).await.map_err(db)?;
    Ok(rows.iter().map(feed).collect())
}

/// A new token for one of the user's active feeds (the old URL stops working at once).
pub async fn rotate(pool: &Pool, user: Uuid, id: Uuid, now: Timestamp) -> Result<Option<(Feed, String)>, ApiError> {
    let token = new_token();
    let sql = format!(
        "UPDATE calendar_feeds SET token_hash = $3, rotated_at = $4
         WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING {FEED_COLUMNS}"
    );
    let row =
        pool.get().await.map_err(db)?.query_opt(&sql, &[&id, &user, &hash_token(&token), &now]).await.map_err(db)?;
    Ok(row.map(|r| (feed(&r), token)))
}

/// Revokes one of the user's active feeds; true if there was one.
pub async fn revoke(pool: &Pool, user: Uuid, id: Uuid, now: Timestamp) -> Result<bool, ApiError> {
    let n = pool
        .get()
        .await
        .map_err(db)?
        .execute(
            "UPDATE calendar_feeds SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
            &[&id, &user, &now],
        )
        .await
        .map_err(db)?;
    Ok(n > 0)
}

/// What a token shows.
pub enum Target {
    User(Uuid),
    Resource(Uuid),
}

/// The target of an active feed's token; `None` for anything else (unknown, rotated, revoked).
pub async fn by_token(pool: &Pool, token: &str) -> Result<Option<Target>, ApiError> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let row = pool
        .get()
        .await
        .map_err(db)?
        .query_opt(
            "SELECT user_id, resource_id FROM calendar_feeds WHERE token_hash = $1 AND revoked_at IS NULL",
            &[&hash_token(&token.to_ascii_lowercase())],
        )
        .await
        .map_err(db)?;
    Ok(row.map(|r| match r.get::<_, Option<Uuid>>(1) {
        Some(resource) => Target::Resource(resource),
        None => Target::User(r.get(0)),
    }))
}

const FEED_BOOKINGS: &str = "
    SELECT b.id, b.status, b.item_kind, b.check_in, b.check_out, b.starts_at, b.ends_at, b.created_at,
           b.updated_at, r.name, h.city, h.time_zone, h.check_out_time, e.starts_at, e.ends_at,
           coalesce((SELECT rt.name || ', room ' || rm.number
                     FROM rooms rm JOIN room_types rt ON rt.id = rm.room_type_id WHERE rm.id = b.room_id),
                    (SELECT name FROM ticket_categories WHERE id = b.category_id)),
           b.quantity
    FROM bookings b
    JOIN resources r ON r.id = b.resource_id
    LEFT JOIN hotels h ON h.resource_id = b.resource_id
    LEFT JOIN events e ON e.resource_id = b.resource_id
    WHERE {target}
      AND b.status IN ('confirmed', 'completed', 'cancelled')
      AND CASE b.item_kind WHEN 'stay' THEN b.check_out >= $2
                           WHEN 'appointment' THEN b.ends_at >= $3
                           ELSE e.ends_at >= $3 END
    ORDER BY coalesce(b.starts_at, e.starts_at, b.check_in::timestamp AT TIME ZONE 'UTC'), b.id
    LIMIT $4";

/// A local date and time in `tz` as an instant (the later one in a fold, the shifted one in a gap).
fn local(date: Date, time: Time, tz: &TimeZone) -> Option<Timestamp> {
    date.to_datetime(time).to_zoned(tz.clone()).ok().map(|z| z.timestamp())
}

/// The feed's calendar: confirmed and completed bookings (CONFIRMED) and cancelled ones
/// (CANCELLED, so subscribed calendars drop them) that ended at most [`FEED_PAST_DAYS`] ago,
/// at most [`MAX_FEED_EVENTS`]. Stays run from check-in (15:00) to the check-out time, in the
/// hotel's zone; events and appointments at their instants.
pub async fn render(pool: &Pool, target: &Target, now: Timestamp) -> Result<String, ApiError> {
    let (clause, id, owner_view) = match target {
        Target::User(u) => ("b.user_id = $1", *u, false),
        Target::Resource(r) => ("b.resource_id = $1", *r, true),
    };
    let since = now - SignedDuration::from_hours(24 * FEED_PAST_DAYS);
    // A day's slack for stays: dates are local, `since` is UTC.
    let since_date = since.to_zoned(TimeZone::UTC).date().yesterday().map_err(ApiError::internal)?;
    let sql = FEED_BOOKINGS.replace("{target}", clause);
    let rows =
        pool.get().await.map_err(db)?.query(&sql, &[&id, &since_date, &since, &MAX_FEED_EVENTS]).await.map_err(db)?;
    let mut events = Vec::with_capacity(rows.len());
    let mut title = None;
    for r in &rows {
        let booking_id: Uuid = r.get(0);
        let status: &str = r.get(1);
        let item_kind: &str = r.get(2);
        let name: String = r.get(9);
        let city: Option<String> = r.get(10);
        let label: Option<String> = r.get(15);
        let times = match item_kind {
            "stay" => {
                let tz = r.get::<_, Option<String>>(11).and_then(|z| TimeZone::get(&z).ok()).unwrap_or(TimeZone::UTC);
                let (check_in, check_out): (Option<Date>, Option<Date>) = (r.get(3), r.get(4));
                let out_time: Time = r.get::<_, Option<Time>>(12).unwrap_or(Time::constant(11, 0, 0, 0));
                check_in.zip(check_out).and_then(|(i, o)| local(i, STAY_CHECK_IN, &tz).zip(local(o, out_time, &tz)))
            }
            "appointment" => r.get::<_, Option<Timestamp>>(5).zip(r.get::<_, Option<Timestamp>>(6)),
            _ => r.get::<_, Option<Timestamp>>(13).zip(r.get::<_, Option<Timestamp>>(14)),
        };
        let Some((start, end)) = times else { continue };
        let reference = bots::render::reference(booking_id);
        let what = match (item_kind, r.get::<_, Option<i32>>(16)) {
            ("tickets", Some(q)) => Some(format!("{q} ticket{}", if q == 1 { "" } else { "s" })),
            _ => None,
        };
        let detail = [label.clone(), what].into_iter().flatten().collect::<Vec<_>>().join(", ");
        let summary = match (owner_view, detail.is_empty()) {
            (true, true) => format!("{reference}: {name}"),
            (true, false) => format!("{reference}: {detail}"),
            (false, _) => name.clone(),
        };
        let mut description = format!("Booking reference {reference}\nBooking id {booking_id}");
        if !detail.is_empty() {
            description = format!("{detail}\n{description}");
        }
        if owner_view {
            title.get_or_insert_with(|| name.clone());
        }
        events.push(CalEvent {
            uid: ics::booking_uid(booking_id),
            start: When::Instant(start),
            end: When::Instant(end),
            sequence: ics::booking_sequence(r.get(7), r.get(8)),
            summary,
            location: city.unwrap_or(name),
            description,
            status: if status == "cancelled" { "CANCELLED" } else { "CONFIRMED" },
            last_modified: Some(r.get(8)),
        });
    }
    let title = match target {
        Target::User(_) => "My bookings".to_owned(),
        Target::Resource(_) => format!("{}: bookings", title.as_deref().unwrap_or("Schedule")),
    };
    Ok(ics::calendar(Some(&title), &events, now))
}
