//! /metrics is valid Prometheus exposition: `promtool check metrics` finds nothing to report.

use crate::helpers::spawn_with;
use reqwest::StatusCode;
use std::io::Write;
use std::process::{Command, Stdio};

#[actix_web::test]
async fn metrics_pass_promtool_check_metrics() {
    let app = spawn_with(|s| s.delivery_poll_ms = 20).await;
    // Traffic through the HTTP layer and the engine (commands, commits, an error, a 404).
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let event = app.create_event(&owner, 2).await;
    for _ in 0..3 {
        app.book(&client, &event, 1, true).await;
    }
    let (st, _) = app.get("/api/v1/no-such-route", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // The notifications of those bookings are delivered (to the log: no SMTP here) and counted.
    let mut text = String::new();
    for _ in 0..300 {
        let res = app.http.get(format!("{}/metrics", app.addr)).send().await.expect("GET /metrics");
        assert_eq!(res.status(), StatusCode::OK);
        text = res.text().await.expect("body");
        if text.contains("deliveries_total{") && text.contains("\ndelivery_backlog ") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for name in [
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "engine_commands_total",
        "deliveries_total{",
        "delivery_backlog",
        "delivery_oldest_pending_seconds",
        "notifications_fanned_out_total",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}:\n{text}");
    }

    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is not on PATH, and CI is set: install it (Debian package `prometheus`; .ci/run does)"
            );
            eprintln!("note: promtool is not on PATH; skipping `promtool check metrics` (CI would fail here)");
            return;
        }
        Err(e) => panic!("could not run promtool: {e}"),
    };
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write to promtool");
    let out = child.wait_with_output().expect("promtool finishes");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "promtool check metrics: {}\n{report}", out.status);
}
