//! Idempotency records in PostgreSQL (table `http_idempotency`, migration V4).

use super::{
    Begin, IdemFuture, IdempotencyError, IdempotencyStore, Reservation, STALE_RESERVATION, StoredResponse, TTL,
};
use deadpool_postgres::Pool;
use jiff::Timestamp;
use uuid::Uuid;

#[derive(Clone)]
pub struct PgIdempotency {
    pool: Pool,
}

impl PgIdempotency {
    pub fn new(pool: Pool) -> Self {
        PgIdempotency { pool }
    }
}

fn unavailable(e: impl std::fmt::Display) -> IdempotencyError {
    IdempotencyError(e.to_string())
}

/// Inserts a reservation, or takes over a record that is expired (24 h) or abandoned (an
/// in-progress one past `STALE_RESERVATION`); returns no row when a live record holds the key.
const RESERVE: &str = "
    INSERT INTO http_idempotency (scope, key, fingerprint, state, lock_id, created_at)
    VALUES ($1, $2, $3, 'in_progress', $4, $5)
    ON CONFLICT (scope, key) DO UPDATE
       SET fingerprint = EXCLUDED.fingerprint, state = 'in_progress', lock_id = EXCLUDED.lock_id,
           status = NULL, content_type = NULL, location = NULL, body = NULL, created_at = EXCLUDED.created_at
     WHERE http_idempotency.created_at <= $6
        OR (http_idempotency.state = 'in_progress' AND http_idempotency.created_at <= $7)
    RETURNING lock_id";

impl IdempotencyStore for PgIdempotency {
    fn begin(&self, scope: &str, key: &str, fingerprint: &str, now: Timestamp) -> IdemFuture<Begin> {
        let pool = self.pool.clone();
        let (scope, key, fingerprint) = (scope.to_owned(), key.to_owned(), fingerprint.to_owned());
        Box::pin(async move {
            let c = pool.get().await.map_err(unavailable)?;
            let (expired, stale) = (now - TTL, now - STALE_RESERVATION);
            // A record can vanish between the two statements (released): then try again.
            for _ in 0..3 {
                let lock_id = Uuid::now_v7();
                let reserved = c
                    .query_opt(RESERVE, &[&scope, &key, &fingerprint, &lock_id, &now, &expired, &stale])
                    .await
                    .map_err(unavailable)?;
                if reserved.is_some() {
                    return Ok(Begin::Reserved(Reservation { scope, key, lock_id }));
                }
                let row = c
                    .query_opt(
                        "SELECT fingerprint, state, status, content_type, location, body
                         FROM http_idempotency WHERE scope = $1 AND key = $2",
                        &[&scope, &key],
                    )
                    .await
                    .map_err(unavailable)?;
                let Some(row) = row else { continue };
                let found: String = row.get("fingerprint");
                if found != fingerprint {
                    return Ok(Begin::Mismatch);
                }
                let state: String = row.get("state");
                if state != "done" {
                    return Ok(Begin::InProgress);
                }
                let status: i16 = row.get("status");
                return Ok(Begin::Replay(StoredResponse {
                    status: u16::try_from(status).map_err(unavailable)?,
                    content_type: row.get("content_type"),
                    location: row.get("location"),
                    body: row.get("body"),
                }));
            }
            Ok(Begin::InProgress)
        })
    }

    fn complete(&self, r: &Reservation, response: StoredResponse) -> IdemFuture<()> {
        let pool = self.pool.clone();
        let r = r.clone();
        Box::pin(async move {
            let c = pool.get().await.map_err(unavailable)?;
            let status = i16::try_from(response.status).map_err(unavailable)?;
            c.execute(
                "UPDATE http_idempotency
                 SET state = 'done', lock_id = NULL, status = $4, content_type = $5, location = $6, body = $7
                 WHERE scope = $1 AND key = $2 AND lock_id = $3",
                &[&r.scope, &r.key, &r.lock_id, &status, &response.content_type, &response.location, &response.body],
            )
            .await
            .map_err(unavailable)?;
            Ok(())
        })
    }

    fn release(&self, r: &Reservation) -> IdemFuture<()> {
        let pool = self.pool.clone();
        let r = r.clone();
        Box::pin(async move {
            let c = pool.get().await.map_err(unavailable)?;
            c.execute(
                "DELETE FROM http_idempotency WHERE scope = $1 AND key = $2 AND lock_id = $3",
                &[&r.scope, &r.key, &r.lock_id],
            )
            .await
            .map_err(unavailable)?;
            Ok(())
        })
    }

    fn purge_expired(&self, now: Timestamp) -> IdemFuture<u64> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let c = pool.get().await.map_err(unavailable)?;
            c.execute("DELETE FROM http_idempotency WHERE created_at <= $1", &[&(now - TTL)]).await.map_err(unavailable)
        })
    }
}
