use crate::helpers::spawn_app;
use reqwest::StatusCode;

#[actix_web::test]
async fn health_ready_and_metrics_answer() {
    let app = spawn_app().await;
    let (st, v) = app.get("/health", None).await;
    assert_eq!((st, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (st, v) = app.get("/ready", None).await;
    assert_eq!((st, v["store"].as_str()), (StatusCode::OK, Some("postgres")));
    let res = app.http.get(format!("{}/metrics", app.addr)).send().await.expect("metrics");
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.expect("text");
    assert!(text.contains("# HELP http_requests_total"), "metrics must be described:\n{text}");
    assert!(text.contains("http_request_duration_seconds_bucket"), "latency must be a histogram:\n{text}");
    // The outbox gauges are refreshed from Postgres in the background (first read at start).
    let mut found = false;
    for _ in 0..50 {
        let text =
            app.http.get(format!("{}/metrics", app.addr)).send().await.expect("metrics").text().await.expect("text");
        if text.contains("\noutbox_backlog ") && text.contains("# HELP outbox_oldest_pending_seconds") {
            found = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(found, "outbox_backlog and outbox_oldest_pending_seconds are exported");
}

#[actix_web::test]
async fn every_response_carries_a_request_id_and_keeps_the_callers() {
    let app = spawn_app().await;
    let res =
        app.http.get(format!("{}/health", app.addr)).header("x-request-id", "abc-123").send().await.expect("send");
    assert_eq!(res.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("abc-123"));
    let res = app.http.get(format!("{}/health", app.addr)).send().await.expect("send");
    assert!(res.headers().get("x-request-id").is_some_and(|v| v.len() >= 32));
    let res = app.http.get(format!("{}/nowhere", app.addr)).send().await.expect("send");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/problem+json"));
}

#[actix_web::test]
async fn a_w3c_traceparent_is_continued_and_one_is_started_otherwise() {
    let app = spawn_app().await;
    let theirs = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let res = app.http.get(format!("{}/health", app.addr)).header("traceparent", theirs).send().await.expect("send");
    let back = res.headers().get("traceparent").and_then(|v| v.to_str().ok()).expect("traceparent").to_owned();
    let parts: Vec<&str> = back.split('-').collect();
    assert_eq!(parts.len(), 4, "{back}");
    assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "same trace");
    assert_ne!(parts[2], "00f067aa0ba902b7", "our own span");
    // Garbage is not continued; no header starts a fresh trace.
    for sent in [Some("00-zz-yy-01"), None] {
        let mut rb = app.http.get(format!("{}/health", app.addr));
        if let Some(h) = sent {
            rb = rb.header("traceparent", h);
        }
        let res = rb.send().await.expect("send");
        let back = res.headers().get("traceparent").and_then(|v| v.to_str().ok()).expect("traceparent").to_owned();
        assert!(gateway::telemetry::trace_id_of(&back).is_some(), "a valid traceparent: {back}");
        assert!(!back.contains("zz"));
    }
}
