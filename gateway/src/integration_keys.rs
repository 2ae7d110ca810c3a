//! Integration keys: what a channel manager sends the feed with (`Authorization: Bearer ik_...`)
//! instead of a person's short-lived access token. Made by an owner or admin, optionally
//! limited to some of their hotels, shown once; only a SHA-256 of the key is stored (like
//! refresh tokens and calendar feed tokens). A key acts as its owner, on the feed only, and
//! stops working when revoked or when its owner is no longer staff. PostgreSQL only.

use crate::accounts::Role;
use crate::auth::{AuthUser, hash_token};
use crate::error::ApiError;
use deadpool_postgres::Pool;
use engine::domain::ids::{ResourceId, UserId};
use jiff::Timestamp;
use rand::RngCore;
use uuid::Uuid;

/// Every key starts with this, so a key is told from an access token (a JWT) at a glance, and
/// secret scanners can spot one pasted where it should not be.
pub const KEY_PREFIX: &str = "ik_";
/// Active keys one user may have.
pub const MAX_KEYS_PER_USER: i64 = 20;
/// Most hotels one key may be limited to.
pub const MAX_HOTELS_PER_KEY: usize = 100;
pub const MAX_NAME_CHARS: usize = 100;
/// Characters of the key kept in the clear to tell keys apart (`ik_` and 8 of the secret).
const SHOWN_CHARS: usize = KEY_PREFIX.len() + 8;
/// `last_used_at` is written at most this often per key: a busy feed must not turn every
/// request into a write.
const LAST_USED_EVERY_SECS: i64 = 60;

fn db(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(e.to_string())
}

/// A key as its owner sees it (never the secret).
#[derive(Debug, Clone)]
pub struct Key {
    pub id: Uuid,
    pub name: String,
    pub key_prefix: String,
    pub hotel_ids: Option<Vec<Uuid>>,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

const KEY_COLUMNS: &str = "id, name, key_prefix, hotel_ids, created_at, last_used_at";

fn key(r: &tokio_postgres::Row) -> Key {
    Key {
        id: r.get(0),
        name: r.get(1),
        key_prefix: r.get(2),
        hotel_ids: r.get(3),
        created_at: r.get(4),
        last_used_at: r.get(5),
    }
}

/// A fresh key: the prefix and 32 random bytes in hex.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{KEY_PREFIX}{}", hex::encode(bytes))
}

/// Whether a bearer token is an integration key rather than an access token.
pub fn is_key(token: &str) -> bool {
    token.starts_with(KEY_PREFIX)
}

/// Makes a key for `owner` (limited to `hotels` if given, already checked to be theirs);
/// returns it with its secret, or `None` if the owner has [`MAX_KEYS_PER_USER`] active keys.
pub async fn create(
    pool: &Pool,
    owner: Uuid,
    name: &str,
    hotels: Option<Vec<Uuid>>,
    now: Timestamp,
) -> Result<Option<(Key, String)>, ApiError> {
    let mut client = pool.get().await.map_err(db)?;
    let tx = client.transaction().await.map_err(db)?;
    // Serialise one owner's creations so two at once cannot both pass the count.
    tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text, 11))", &[&owner]).await.map_err(db)?;
    let active: i64 = tx
        .query_one("SELECT count(*) FROM integration_keys WHERE owner_id = $1 AND revoked_at IS NULL", &[&owner])
        .await
        .map_err(db)?
        .get(0);
    if active >= MAX_KEYS_PER_USER {
        return Ok(None);
    }
    let secret = new_secret();
    let sql = format!(
        "INSERT INTO integration_keys (id, owner_id, name, key_hash, key_prefix, hotel_ids, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {KEY_COLUMNS}"
    );
    let shown: String = secret.chars().take(SHOWN_CHARS).collect();
    let row = tx
        .query_one(&sql, &[&Uuid::now_v7(), &owner, &name, &hash_token(&secret), &shown, &hotels, &now])
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(Some((key(&row), secret)))
}

/// The owner's active keys, newest first.
pub async fn list(pool: &Pool, owner: Uuid) -> Result<Vec<Key>, ApiError> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM integration_keys WHERE owner_id = $1 AND revoked_at IS NULL
         ORDER BY created_at DESC, id DESC"
    );
    let rows = pool.get().await.map_err(db)?.query(&sql, &[&owner]).await.map_err(db)?;
    Ok(rows.iter().map(key).collect())
}

/// Revokes one of the owner's active keys (it stops working at once); true if there was one.
pub async fn revoke(pool: &Pool, owner: Uuid, id: Uuid, now: Timestamp) -> Result<bool, ApiError> {
    let n = pool
        .get()
        .await
        .map_err(db)?
        .execute(
            "UPDATE integration_keys SET revoked_at = $3 WHERE id = $1 AND owner_id = $2 AND revoked_at IS NULL",
            &[&id, &owner, &now],
        )
        .await
        .map_err(db)?;
    Ok(n > 0)
}

/// Who sends with a key, and where it may send.
#[derive(Debug, Clone)]
pub struct KeyHolder {
    /// The key's owner, with the role they have now.
    pub user: AuthUser,
    /// `None`: every hotel the owner has.
    pub hotels: Option<Vec<ResourceId>>,
}

impl KeyHolder {
    pub fn may_feed(&self, hotel: ResourceId) -> bool {
        self.hotels.as_ref().is_none_or(|h| h.contains(&hotel))
    }
}

/// The holder of an active key whose owner is still staff; `None` for anything else
/// (malformed, unknown, revoked, or its owner now a client).
pub async fn authenticate(pool: &Pool, secret: &str, now: Timestamp) -> Result<Option<KeyHolder>, ApiError> {
    let hex = secret.strip_prefix(KEY_PREFIX).unwrap_or_default();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let client = pool.get().await.map_err(db)?;
    let row = client
        .query_opt(
            "SELECT k.id, k.owner_id, u.role, k.hotel_ids, k.last_used_at
             FROM integration_keys k JOIN users u ON u.id = k.owner_id
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
            &[&hash_token(&format!("{KEY_PREFIX}{}", hex.to_ascii_lowercase()))],
        )
        .await
        .map_err(db)?;
    let Some(row) = row else { return Ok(None) };
    let role = row.get::<_, String>(2);
    let Some(role) = Role::parse(&role).filter(|r| *r != Role::Client) else { return Ok(None) };
    let last_used: Option<Timestamp> = row.get(4);
    if last_used.is_none_or(|t| now.as_second() - t.as_second() >= LAST_USED_EVERY_SECS) {
        let id: Uuid = row.get(0);
        client
            .execute("UPDATE integration_keys SET last_used_at = $2 WHERE id = $1", &[&id, &now])
            .await
            .map_err(db)?;
    }
    let hotels: Option<Vec<Uuid>> = row.get(3);
    Ok(Some(KeyHolder {
        user: AuthUser { id: UserId(row.get(1)), role },
        hotels: hotels.map(|h| h.into_iter().map(ResourceId).collect()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_and_told_from_access_tokens() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(is_key(&a) && a.len() == KEY_PREFIX.len() + 64, "{a}");
        assert!(!is_key("eyJhbGciOiJIUzI1NiJ9.e30.x"), "a JWT is not a key");
        assert_ne!(hash_token(&a), a, "only the hash is stored");
    }

    #[test]
    fn a_key_limited_to_hotels_feeds_only_those() {
        let user = AuthUser { id: UserId(Uuid::now_v7()), role: Role::Owner };
        let (h1, h2) = (ResourceId(Uuid::now_v7()), ResourceId(Uuid::now_v7()));
        let all = KeyHolder { user, hotels: None };
        let one = KeyHolder { user, hotels: Some(vec![h1]) };
        assert!(all.may_feed(h1) && all.may_feed(h2));
        assert!(one.may_feed(h1) && !one.may_feed(h2));
    }
}
