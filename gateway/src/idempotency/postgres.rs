//! Idempotency records in PostgreSQL (table `http_idempotency`, migration V4).

use super::{
    Begin, IdemFuture, IdempotencyError, IdempotencyStore, Reservation, STALE_RESERVATION, StoredResponse, TTL,
};
use deadpool_postgres::Pool;
use jiff::Timestamp;
use uuid::Uuid;

/// How often this process says it is alive (table `gateway_instances`, V14).
const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// A process whose heartbeat is older than this is dead: its reservations may be taken over.
/// Several heartbeats, so a slow statement or a busy database does not make a live process
/// look dead (then a running request could be run a second time).
const INSTANCE_DEAD_SECS: f64 = 5.0;
/// Rows of processes gone for this long are deleted (they hold nothing any more).
const FORGET_INSTANCE_SECS: f64 = 24.0 * 3600.0;

#[derive(Clone)]
pub struct PgIdempotency {
    pool: Pool,
    /// This process: every reservation it makes carries it.
    instance_id: Uuid,
}

impl PgIdempotency {
    /// A store for this process; [`PgIdempotency::start`] registers it and keeps it beating.
    pub fn new(pool: Pool) -> Self {
        PgIdempotency { pool, instance_id: Uuid::now_v7() }
    }

    /// Registers this process, frees the reservations of processes that stopped beating (a
    /// retry after a crash then runs at once), and beats about every second for as long as the
    /// runtime runs. Call inside the server's runtime, before serving.
    pub async fn start(&self) -> Result<(), IdempotencyError> {
        let c = self.pool.get().await.map_err(unavailable)?;
        c.execute(HEARTBEAT, &[&self.instance_id]).await.map_err(unavailable)?;
        let freed = c.execute(FREE_DEAD, &[&INSTANCE_DEAD_SECS]).await.map_err(unavailable)?;
        c.execute(
            "DELETE FROM gateway_instances WHERE heartbeat_at < now() - make_interval(secs => $1)",
            &[&FORGET_INSTANCE_SECS],
        )
        .await
        .map_err(unavailable)?;
        if freed > 0 {
            tracing::info!(freed, "freed the Idempotency-Key reservations of stopped processes");
        }
        drop(c);
        let (pool, id) = (self.pool.clone(), self.instance_id);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(HEARTBEAT_EVERY);
            let mut failing = false;
            loop {
                every.tick().await;
                let beat = async {
                    pool.get().await.map_err(unavailable)?.execute(HEARTBEAT, &[&id]).await.map_err(unavailable)
                };
                match beat.await {
                    Ok(_) if failing => {
                        failing = false;
                        tracing::info!("idempotency heartbeat written again");
                    }
                    Ok(_) => {}
                    // Once per outage, not every second.
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "could not write the idempotency heartbeat");
                    }
                    Err(_) => {}
                }
            }
        });
        Ok(())
    }
}

const HEARTBEAT: &str = "
    INSERT INTO gateway_instances (id) VALUES ($1)
    ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()";

/// The reservations no live process holds.
const FREE_DEAD: &str = "
    DELETE FROM http_idempotency h
     WHERE h.state = 'in_progress'
       AND NOT EXISTS (SELECT 1 FROM gateway_instances g
                        WHERE g.id = h.instance_id AND g.heartbeat_at >= now() - make_interval(secs => $1))";

fn unavailable(e: impl std::fmt::Display) -> IdempotencyError {
    IdempotencyError(e.to_string())
}

/// Inserts a reservation, or takes over a record that is expired (24 h) or abandoned: an
/// in-progress one past `STALE_RESERVATION`, or one whose process stopped beating. Returns no
/// row when a live record holds the key.
const RESERVE: &str = "
    INSERT INTO http_idempotency (scope, key, fingerprint, state, lock_id, created_at, instance_id)
    VALUES ($1, $2, $3, 'in_progress', $4, $5, $8)
    ON CONFLICT (scope, key) DO UPDATE
       SET fingerprint = EXCLUDED.fingerprint, state = 'in_progress', lock_id = EXCLUDED.lock_id,
           status = NULL, content_type = NULL, location = NULL, body = NULL, created_at = EXCLUDED.created_at,
           instance_id = EXCLUDED.instance_id
     WHERE http_idempotency.created_at <= $6
        OR (http_idempotency.state = 'in_progress'
            AND (http_idempotency.created_at <= $7
                 OR NOT EXISTS (SELECT 1 FROM gateway_instances g
                                 WHERE g.id = http_idempotency.instance_id
                                   AND g.heartbeat_at >= now() - make_interval(secs => $9))))
    RETURNING lock_id";

impl IdempotencyStore for PgIdempotency {
    fn begin(&self, scope: &str, key: &str, fingerprint: &str, now: Timestamp) -> IdemFuture<Begin> {
        let pool = self.pool.clone();
        let (scope, key, fingerprint) = (scope.to_owned(), key.to_owned(), fingerprint.to_owned());
        let instance = self.instance_id;
        Box::pin(async move {
            let c = pool.get().await.map_err(unavailable)?;
            let (expired, stale) = (now - TTL, now - STALE_RESERVATION);
            // A record can vanish between the two statements (released): then try again.
            for _ in 0..3 {
                let lock_id = Uuid::now_v7();
                let reserved = c
                    .query_opt(
                        RESERVE,
                        &[&scope, &key, &fingerprint, &lock_id, &now, &expired, &stale, &instance, &INSTANCE_DEAD_SECS],
                    )
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
