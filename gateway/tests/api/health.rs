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
