//! The SQL of owners' webhook endpoints: fan-out of outbox rows to matching endpoints (called
//! from `store::fan_out`, inside its transaction), and the owner's views (endpoints, the
//! delivery log of one endpoint).

use super::DeliveryStoreError;
use deadpool_postgres::{GenericClient, Pool};
use jiff::Timestamp;
use tokio_postgres::Row;
use uuid::Uuid;

type Result<T> = std::result::Result<T, DeliveryStoreError>;

/// Writes one delivery of `channel` per (outbox row, endpoint) where the endpoint subscribes to
/// the row's kind and covers its resource (named, or every resource of the endpoint's owner).
/// Dedupe key `outbox:<id>:<channel>:<endpoint id>`. Rows without a booking or whose user has
/// no account are skipped (as for the other channels). One statement for the whole batch.
pub async fn fan_out(c: &impl GenericClient, channel: &str, outbox_ids: &[i64], now: Timestamp) -> Result<u64> {
    if outbox_ids.is_empty() {
        return Ok(0);
    }
    let n = c
        .execute(
            "INSERT INTO deliveries (dedupe_key, channel, kind, user_id, resource_id, booking_id, entry_id,
                 status, attempts, next_attempt_at, notified_at, created_at, updated_at, webhook_endpoint_id)
             SELECT 'outbox:' || o.id || ':' || $2::text || ':' || w.id, $2::text, o.kind, o.user_id, o.resource_id,
                    o.booking_id, o.entry_id, 'pending', 0, $3, o.created_at, $3, $3, w.id
             FROM outbox o
             JOIN resources r ON r.id = o.resource_id
             JOIN webhook_endpoints w ON o.kind = ANY (w.event_types)
                  AND (w.resource_id = o.resource_id OR (w.resource_id IS NULL AND w.owner_id = r.owner_id))
             WHERE o.id = ANY ($1) AND o.booking_id IS NOT NULL
               AND EXISTS (SELECT 1 FROM users u WHERE u.id = o.user_id)
             ON CONFLICT (dedupe_key) DO NOTHING",
            &[&outbox_ids, &channel, &now],
        )
        .await?;
    Ok(n)
}

/// A registered endpoint (never with its secret, which is shown once at creation).
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    pub resource_id: Option<Uuid>,
    pub description: Option<String>,
    pub created_at: Timestamp,
}

const ENDPOINT_COLUMNS: &str = "id, owner_id, url, event_types, resource_id, description, created_at";

fn endpoint(r: &Row) -> Endpoint {
    Endpoint {
        id: r.get(0),
        owner_id: r.get(1),
        url: r.get(2),
        event_types: r.get(3),
        resource_id: r.get(4),
        description: r.get(5),
        created_at: r.get(6),
    }
}

pub struct NewEndpoint<'a> {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub url: &'a str,
    pub secret: &'a str,
    pub event_types: &'a [String],
    pub resource_id: Option<Uuid>,
    pub description: Option<&'a str>,
    pub now: Timestamp,
}

/// Creates the endpoint unless the owner already has `max_per_owner`; `None` when at the limit.
/// The count and the insert run under a per-owner advisory lock, so two concurrent creations
/// cannot both pass the limit.
pub async fn create(pool: &Pool, e: &NewEndpoint<'_>, max_per_owner: i64) -> Result<Option<Endpoint>> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text, 9))", &[&e.owner_id]).await?;
    let count: i64 =
        tx.query_one("SELECT count(*) FROM webhook_endpoints WHERE owner_id = $1", &[&e.owner_id]).await?.get(0);
    if count >= max_per_owner {
        return Ok(None);
    }
    let sql = format!(
        "INSERT INTO webhook_endpoints (id, owner_id, url, secret, event_types, resource_id, description, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {ENDPOINT_COLUMNS}"
    );
    let row = tx
        .query_one(
            &sql,
            &[&e.id, &e.owner_id, &e.url, &e.secret, &e.event_types, &e.resource_id, &e.description, &e.now],
        )
        .await?;
    tx.commit().await?;
    Ok(Some(endpoint(&row)))
}

/// The owner's endpoints, newest first, strictly before `before` (a creation time and id).
pub async fn list(pool: &Pool, owner_id: Uuid, before: Option<(Timestamp, Uuid)>, limit: i64) -> Result<Vec<Endpoint>> {
    let (at, id) = before.unzip();
    let sql = format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints
         WHERE owner_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
         ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    let rows = pool.get().await?.query(&sql, &[&owner_id, &at, &id, &limit.clamp(1, 1000)]).await?;
    Ok(rows.iter().map(endpoint).collect())
}

/// One endpoint of this owner (`None` if it does not exist or is someone else's).
pub async fn get(pool: &Pool, owner_id: Uuid, id: Uuid) -> Result<Option<Endpoint>> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1 AND owner_id = $2");
    Ok(pool.get().await?.query_opt(&sql, &[&id, &owner_id]).await?.as_ref().map(endpoint))
}

/// Deletes one endpoint of this owner; its pending deliveries dead-letter when they come due
/// (the channel finds no endpoint). True if it existed.
pub async fn delete(pool: &Pool, owner_id: Uuid, id: Uuid) -> Result<bool> {
    let n = pool
        .get()
        .await?
        .execute("DELETE FROM webhook_endpoints WHERE id = $1 AND owner_id = $2", &[&id, &owner_id])
        .await?;
    Ok(n > 0)
}

/// One attempt record of an endpoint's delivery log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub id: i64,
    /// The dedupe key, sent as `Webhook-Id`.
    pub event_id: String,
    pub kind: String,
    pub status: String,
    pub attempts: i32,
    pub response_code: Option<i32>,
    pub last_error: Option<String>,
    pub resource_id: Uuid,
    pub booking_id: Option<Uuid>,
    pub next_attempt_at: Timestamp,
    pub notified_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
}

/// The deliveries to one endpoint, newest first, strictly before delivery id `before_id`.
pub async fn log(pool: &Pool, endpoint_id: Uuid, before_id: Option<i64>, limit: i64) -> Result<Vec<LogEntry>> {
    let rows = pool
        .get()
        .await?
        .query(
            "SELECT id, dedupe_key, kind, status, attempts, response_code, last_error, resource_id, booking_id,
                    next_attempt_at, notified_at, created_at, updated_at, delivered_at
             FROM deliveries WHERE webhook_endpoint_id = $1 AND ($2::int8 IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3",
            &[&endpoint_id, &before_id, &limit.clamp(1, 1000)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| LogEntry {
            id: r.get(0),
            event_id: r.get(1),
            kind: r.get(2),
            status: r.get(3),
            attempts: r.get(4),
            response_code: r.get(5),
            last_error: r.get(6),
            resource_id: r.get(7),
            booking_id: r.get(8),
            next_attempt_at: r.get(9),
            notified_at: r.get(10),
            created_at: r.get(11),
            updated_at: r.get(12),
            delivered_at: r.get(13),
        })
        .collect())
}
