//! Accounts in PostgreSQL (tables `users`, `refresh_tokens`, migration V2).

use super::{
    AccountError, AccountFuture, Accounts, RefreshRecord, RefreshUse, Role, User, UserWithHash, normalize_email,
};
use deadpool_postgres::Pool;
use engine::domain::ids::UserId;
use jiff::Timestamp;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

#[derive(Clone)]
pub struct PgAccounts {
    pool: Pool,
}

impl PgAccounts {
    pub fn new(pool: Pool) -> Self {
        PgAccounts { pool }
    }
}

fn unavailable(e: impl std::fmt::Display) -> AccountError {
    AccountError::Unavailable(e.to_string())
}

fn user_from(row: &tokio_postgres::Row) -> Result<User, AccountError> {
    let role: String = row.get("role");
    Ok(User {
        id: UserId(row.get("id")),
        email: row.get("email"),
        name: row.get("name"),
        role: Role::parse(&role).ok_or_else(|| unavailable(format!("unknown role {role}")))?,
        created_at: row.get("created_at"),
    })
}

impl Accounts for PgAccounts {
    fn create_user(&self, user: User, password_hash: String) -> AccountFuture<()> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let c = pool.get().await.map_err(unavailable)?;
            let r = c
                .execute(
                    "INSERT INTO users (id, email, name, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                    &[&user.id.0, &normalize_email(&user.email), &user.name, &user.role.as_str(), &password_hash, &user.created_at],
                )
                .await;
            match r {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Err(AccountError::EmailTaken),
                Err(e) => Err(unavailable(e)),
            }
        })
    }

    fn user_by_email(&self, email: &str) -> AccountFuture<Option<UserWithHash>> {
        let pool = self.pool.clone();
        let email = normalize_email(email);
        Box::pin(async move {
            let c = pool.get().await.map_err(unavailable)?;
            let row = c
                .query_opt(
                    "SELECT id, email, name, role, created_at, password_hash FROM users WHERE email = $1",
                    &[&email],
                )
                .await
                .map_err(unavailable)?;
            match row {
                Some(r) => Ok(Some(UserWithHash { user: user_from(&r)?, password_hash: r.get("password_hash") })),
                None => Ok(None),
            }
        })
    }

    fn user_by_id(&self, id: UserId) -> AccountFuture<Option<User>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let c = pool.get().await.map_err(unavailable)?;
            let row = c
                .query_opt("SELECT id, email, name, role, created_at FROM users WHERE id = $1", &[&id.0])
                .await
                .map_err(unavailable)?;
            row.as_ref().map(user_from).transpose()
        })
    }

    fn count_users(&self) -> AccountFuture<i64> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let c = pool.get().await.map_err(unavailable)?;
            Ok(c.query_one("SELECT count(*) FROM users", &[]).await.map_err(unavailable)?.get(0))
        })
    }

    fn store_refresh(&self, rec: RefreshRecord) -> AccountFuture<()> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let c = pool.get().await.map_err(unavailable)?;
            c.execute(
                "INSERT INTO refresh_tokens (token_hash, family_id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                &[&rec.token_hash, &rec.family_id, &rec.user_id.0, &rec.created_at, &rec.expires_at],
            )
            .await
            .map_err(unavailable)?;
            Ok(())
        })
    }

    fn use_refresh(&self, token_hash: &str, now: Timestamp) -> AccountFuture<RefreshUse> {
        let pool = self.pool.clone();
        let token_hash = token_hash.to_owned();
        Box::pin(async move {
            let mut c = pool.get().await.map_err(unavailable)?;
            let tx = c.transaction().await.map_err(unavailable)?;
            // The row lock makes two concurrent refreshes with one token see each other: the
            // second finds it used and revokes the family.
            let row = tx
                .query_opt(
                    "SELECT family_id, user_id, expires_at, used_at IS NOT NULL OR revoked_at IS NOT NULL AS spent
                     FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
                    &[&token_hash],
                )
                .await
                .map_err(unavailable)?;
            let Some(row) = row else { return Ok(RefreshUse::Invalid) };
            let family: Uuid = row.get(0);
            let user: Uuid = row.get(1);
            let expires: Timestamp = row.get(2);
            let spent: bool = row.get(3);
            let outcome = if spent {
                tx.execute(
                    "UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, $2) WHERE family_id = $1",
                    &[&family, &now],
                )
                .await
                .map_err(unavailable)?;
                RefreshUse::Reused
            } else if expires <= now {
                RefreshUse::Invalid
            } else {
                tx.execute("UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1", &[&token_hash, &now])
                    .await
                    .map_err(unavailable)?;
                RefreshUse::Rotated { user_id: UserId(user), family_id: family }
            };
            tx.commit().await.map_err(unavailable)?;
            Ok(outcome)
        })
    }

    fn revoke_family_of(&self, token_hash: &str, now: Timestamp) -> AccountFuture<()> {
        let pool = self.pool.clone();
        let token_hash = token_hash.to_owned();
        Box::pin(async move {
            let c = pool.get().await.map_err(unavailable)?;
            c.execute(
                "UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, $2)
                 WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)",
                &[&token_hash, &now],
            )
            .await
            .map_err(unavailable)?;
            Ok(())
        })
    }
}
