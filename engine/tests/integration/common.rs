//! Shared test plumbing: a fresh Postgres database per test, engines over either store.

use engine::Clock;
use engine::store::postgres::{PgConfig, PgStore};
use std::sync::Arc;

/// Base URL of the test server (no database name). Tests use the machine's real Postgres.
pub fn pg_base() -> String {
    std::env::var("TEST_PG_BASE").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A database of its own for one test, dropped (with its connections) when the test ends,
/// whether it passed or panicked.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn new() -> TestDb {
        let name = format!("engine_test_{}", uuid::Uuid::now_v7().simple());
        let url = format!("{}/{}", pg_base(), name);
        TestDb { name, url }
    }

    /// Connects (creating the database and applying migrations on first use).
    pub async fn store(&self) -> PgStore {
        let mut cfg = PgConfig::new(&self.url);
        cfg.pool_size = 8;
        PgStore::connect(&cfg).await.expect("connect to the test database")
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let (c, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(conn);
        c
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let base = pg_base();
        // Drop runs inside the test's runtime; do the async clean-up on a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                let url = format!("{base}/postgres");
                if let Ok((c, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                    tokio::spawn(conn);
                    let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
                }
            });
        })
        .join();
    }
}

pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(engine::SystemClock)
}
