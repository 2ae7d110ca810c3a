//! What every handler shares.

use crate::accounts::Accounts;
use crate::auth::JwtKeys;
use crate::configuration::Settings;
use crate::error::ApiError;
use crate::idempotency::IdempotencyStore;
use crate::payments::Payments;
use crate::payments::provider::PaymentProvider;
use crate::rate_limit::RateLimits;
use deadpool_postgres::Pool;
use engine::Engine;
use engine::store::postgres::PgStore;
use std::sync::Arc;

pub struct AppState {
    pub engine: Engine,
    pub accounts: Arc<dyn Accounts>,
    pub keys: JwtKeys,
    /// Set when running on PostgreSQL (readiness checks it).
    pub pg: Option<PgStore>,
    pub settings: Settings,
    /// Idempotency-Key records (PostgreSQL or memory, like the accounts).
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub rate_limits: RateLimits,
    /// Payments (PostgreSQL or memory) and the simulated provider that settles them.
    pub payments: Arc<dyn Payments>,
    pub payment_provider: Arc<PaymentProvider>,
    /// Live updates: the WebSocket connections and what they are sent (`live.rs`).
    pub live: Arc<crate::live::Hub>,
    /// Telegram chat links and link codes (PostgreSQL or memory).
    pub telegram: crate::telegram::Links,
}

impl AppState {
    /// The PostgreSQL pool, for the features that live only there; without PostgreSQL, 501
    /// with `code` and a sentence saying that `what` needs it (e.g. "calendar feeds are served").
    pub fn pg_pool(&self, code: &'static str, what: &str) -> Result<&Pool, ApiError> {
        self.pg.as_ref().map(|pg| pg.pool()).ok_or_else(|| {
            ApiError::new(
                actix_web::http::StatusCode::NOT_IMPLEMENTED,
                code,
                format!("{what} only when the server runs on PostgreSQL (DATABASE_URL)"),
            )
        })
    }
}
