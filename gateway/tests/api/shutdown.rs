//! SIGTERM: the real binary stops accepting, finishes what is in flight, drains the engine and
//! exits cleanly.

use crate::helpers::free_port;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[actix_web::test]
async fn sigterm_finishes_in_flight_requests_then_exits_cleanly() {
    let db = engine::testing::TestDb::new();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env_clear()
        .env("APP_PORT", port.to_string())
        .env("DATABASE_URL", &db.url)
        .env("ADMIN_EMAIL", "admin@example.com")
        .env("ADMIN_PASSWORD", "admin password 123")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the gateway binary starts");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let started = Instant::now();
    while http.get(format!("{base}/ready")).send().await.map(|r| r.status() != StatusCode::OK).unwrap_or(true) {
        assert!(started.elapsed() < Duration::from_secs(30), "the server did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Logins are slow on purpose (argon2id): many are in flight when the signal arrives.
    let login = || {
        http.post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": "admin@example.com", "password": "admin password 123"}))
            .send()
    };
    let t0 = Instant::now();
    let in_flight = join_all((0..20).map(|_| async { (login().await, t0.elapsed()) }));
    let signal = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let pid = child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().map(|s| s.success()).unwrap_or(false);
        assert!(ok, "could not send SIGTERM");
        t0.elapsed()
    };
    let (answers, signalled) = futures::join!(in_flight, signal);
    let mut after = 0;
    for (a, at) in answers {
        let res = a.expect("a request in flight when SIGTERM arrived is still answered");
        assert_eq!(res.status(), StatusCode::OK);
        after += usize::from(at > signalled);
    }
    assert!(after > 0, "no request was still in flight at SIGTERM: the test proves nothing");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "the server did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "clean exit after SIGTERM, got {status}");
    assert!(http.get(format!("{base}/health")).send().await.is_err(), "nothing listens any more");
}
