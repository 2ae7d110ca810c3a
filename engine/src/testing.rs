//! Test support (feature `test-support`): a fresh PostgreSQL database per test.
// Test support: a database that cannot be created is the test's failure, said at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Base URL of the test server (no database name). Tests use the machine's real Postgres.
pub fn pg_base() -> String {
    std::env::var("TEST_PG_BASE").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A database of its own for one test, dropped (with its connections) when the value is
/// dropped, whether the test passed or panicked. It is created on first connection.
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

    /// A plain connection for checks made directly in SQL (the database must exist).
    pub async fn client(&self) -> tokio_postgres::Client {
        let (c, conn) =
            tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.expect("connect to the test database");
        tokio::spawn(conn);
        c
    }
}

impl Default for TestDb {
    fn default() -> Self {
        TestDb::new()
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
