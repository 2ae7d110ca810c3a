//! Users and refresh tokens: a trait with a PostgreSQL and an in-memory implementation (the
//! latter for the no-database demo), kept in step by the same tests.

pub mod memory;
pub mod postgres;

use engine::domain::ids::UserId;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use uuid::Uuid;

pub type AccountFuture<T> = Pin<Box<dyn Future<Output = Result<T, AccountError>> + Send + 'static>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Client,
    Owner,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Owner => "owner",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "client" => Some(Role::Client),
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "0190c3f2-1a2b-7c3d-8e4f-5a6b7c8d9e0f", "email": "ada@example.com", "name": "Ada Lovelace", "role": "client", "created_at": "2026-11-21T07:00:00Z"}))]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug)]
pub struct UserWithHash {
    pub user: User,
    pub password_hash: String,
}

#[derive(Clone, Debug)]
pub struct RefreshRecord {
    pub token_hash: String,
    pub family_id: Uuid,
    pub user_id: UserId,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// What presenting a refresh token found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefreshUse {
    /// Valid: it is now used (rotated); issue the next token in `family_id`.
    Rotated { user_id: UserId, family_id: Uuid },
    /// It was already rotated or revoked: the family is now revoked.
    Reused,
    /// Unknown or expired.
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("an account with this email exists")]
    EmailTaken,
    #[error("account store unavailable: {0}")]
    Unavailable(String),
}

pub trait Accounts: Send + Sync + 'static {
    fn create_user(&self, user: User, password_hash: String) -> AccountFuture<()>;
    /// `email` is compared lower-cased.
    fn user_by_email(&self, email: &str) -> AccountFuture<Option<UserWithHash>>;
    fn user_by_id(&self, id: UserId) -> AccountFuture<Option<User>>;
    fn count_users(&self) -> AccountFuture<i64>;
    fn store_refresh(&self, rec: RefreshRecord) -> AccountFuture<()>;
    /// Atomically marks the token used if it is valid at `now`; on reuse revokes its family.
    fn use_refresh(&self, token_hash: &str, now: Timestamp) -> AccountFuture<RefreshUse>;
    /// Revokes the family of this token (logout). Unknown tokens are ignored.
    fn revoke_family_of(&self, token_hash: &str, now: Timestamp) -> AccountFuture<()>;
}

pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}
