//! Shared test plumbing: a fresh Postgres database per test, engines over either store.

use engine::Clock;
use engine::store::postgres::{PgConfig, PgStore};
use std::sync::Arc;

pub use engine::testing::TestDb;

/// Connects the engine's store to a test database (creating it and applying migrations).
pub async fn store_of(db: &TestDb) -> PgStore {
    let mut cfg = PgConfig::new(&db.url);
    cfg.pool_size = 8;
    PgStore::connect(&cfg).await.expect("connect to the test database")
}

pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(engine::SystemClock)
}
