//! Accounts in memory, for the no-database demo. Nothing survives the process.

use super::{AccountError, AccountFuture, Accounts, RefreshRecord, RefreshUse, User, UserWithHash, normalize_email};
use engine::domain::ids::UserId;
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use uuid::Uuid;

#[derive(Clone)]
struct Token {
    rec: RefreshRecord,
    used: bool,
    revoked: bool,
}

#[derive(Default)]
struct Data {
    users: HashMap<UserId, UserWithHash>,
    tokens: HashMap<String, Token>,
}

#[derive(Clone, Default)]
pub struct MemoryAccounts {
    data: Arc<Mutex<Data>>,
}

impl MemoryAccounts {
    fn lock(&self) -> MutexGuard<'_, Data> {
        // Every update below is a single insert or flag change: a poisoned lock still guards
        // consistent data.
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Accounts for MemoryAccounts {
    fn create_user(&self, user: User, password_hash: String) -> AccountFuture<()> {
        let this = self.clone();
        Box::pin(async move {
            let mut d = this.lock();
            let email = normalize_email(&user.email);
            if d.users.values().any(|u| u.user.email == email) {
                return Err(AccountError::EmailTaken);
            }
            d.users.insert(user.id, UserWithHash { user: User { email, ..user }, password_hash });
            Ok(())
        })
    }

    fn user_by_email(&self, email: &str) -> AccountFuture<Option<UserWithHash>> {
        let this = self.clone();
        let email = normalize_email(email);
        Box::pin(async move { Ok(this.lock().users.values().find(|u| u.user.email == email).cloned()) })
    }

    fn user_by_id(&self, id: UserId) -> AccountFuture<Option<User>> {
        let this = self.clone();
        Box::pin(async move { Ok(this.lock().users.get(&id).map(|u| u.user.clone())) })
    }

    fn count_users(&self) -> AccountFuture<i64> {
        let this = self.clone();
        Box::pin(async move { Ok(i64::try_from(this.lock().users.len()).unwrap_or(i64::MAX)) })
    }

    fn store_refresh(&self, rec: RefreshRecord) -> AccountFuture<()> {
        let this = self.clone();
        Box::pin(async move {
            this.lock().tokens.insert(rec.token_hash.clone(), Token { rec, used: false, revoked: false });
            Ok(())
        })
    }

    fn use_refresh(&self, token_hash: &str, now: Timestamp) -> AccountFuture<RefreshUse> {
        let this = self.clone();
        let token_hash = token_hash.to_owned();
        Box::pin(async move {
            let mut d = this.lock();
            let Some(t) = d.tokens.get(&token_hash).cloned() else { return Ok(RefreshUse::Invalid) };
            if t.used || t.revoked {
                let family: Uuid = t.rec.family_id;
                for tok in d.tokens.values_mut().filter(|x| x.rec.family_id == family) {
                    tok.revoked = true;
                }
                return Ok(RefreshUse::Reused);
            }
            if t.rec.expires_at <= now {
                return Ok(RefreshUse::Invalid);
            }
            if let Some(tok) = d.tokens.get_mut(&token_hash) {
                tok.used = true;
            }
            Ok(RefreshUse::Rotated { user_id: t.rec.user_id, family_id: t.rec.family_id })
        })
    }

    fn revoke_family_of(&self, token_hash: &str, _now: Timestamp) -> AccountFuture<()> {
        let this = self.clone();
        let token_hash = token_hash.to_owned();
        Box::pin(async move {
            let mut d = this.lock();
            if let Some(family) = d.tokens.get(&token_hash).map(|t| t.rec.family_id) {
                for tok in d.tokens.values_mut().filter(|x| x.rec.family_id == family) {
                    tok.revoked = true;
                }
            }
            Ok(())
        })
    }
}
