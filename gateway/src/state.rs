//! What every handler shares.

use crate::accounts::Accounts;
use crate::auth::JwtKeys;
use crate::configuration::Settings;
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
}
