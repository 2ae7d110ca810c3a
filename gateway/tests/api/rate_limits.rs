//! Rate limits: /auth per client IP, booking commands per user; 429 `rate_limited` with
//! Retry-After beyond them.

use crate::helpers::{code, spawn_with};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

fn retry_after(res: &reqwest::Response) -> u64 {
    res.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds")
}

#[actix_web::test]
async fn logins_over_the_limit_get_429_with_retry_after() {
    let app = spawn_with(|s| s.rate_limit_auth_per_min = 4).await;
    let client = app.register("client").await;
    let email = app.get("/api/v1/auth/me", Some(&client.token)).await.1["email"].as_str().expect("email").to_owned();
    let login = json!({"email": email, "password": "a long password"});
    // register + me + two logins use the four of this minute.
    for _ in 0..2 {
        let (st, v) = app.post("/api/v1/auth/login", None, login.clone()).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let res = app.http.post(format!("{}/api/v1/auth/login", app.addr)).json(&login).send().await.expect("send");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&res);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert_eq!(res.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/problem+json"));
    let v: serde_json::Value = res.json().await.expect("json");
    assert_eq!(code(&v), "rate_limited");
    // Other routes are not limited by it.
    let (st, _) = app.get("/api/v1/events", None).await;
    assert_eq!(st, StatusCode::OK);
}

#[actix_web::test]
async fn booking_over_the_per_user_limit_gets_429_and_another_user_is_unaffected() {
    let app = spawn_with(|s| s.rate_limit_bookings_per_sec = 1).await;
    let owner = app.register("owner").await;
    let (eager, other) = (app.register("client").await, app.register("client").await);
    let event = app.create_event(&owner, 100).await;
    // 1 a second with bursts of 2: eight at once cannot all pass.
    let answers = join_all((0..8).map(|_| {
        app.http
            .post(format!("{}/api/v1/bookings", app.addr))
            .bearer_auth(&eager.token)
            .json(&json!({"resource_id": event, "request": {"kind": "tickets", "quantity": 1}}))
            .send()
    }))
    .await;
    let mut created = 0;
    let mut limited = 0;
    for res in answers {
        let res = res.expect("send");
        match res.status() {
            StatusCode::CREATED => created += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(retry_after(&res) >= 1);
                let v: serde_json::Value = res.json().await.expect("json");
                assert_eq!(code(&v), "rate_limited");
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!((2..=4).contains(&created), "the burst passes, little more: {created} created");
    assert_eq!(created + limited, 8);
    let (st, v) = app.book(&other, &event, 1, false).await;
    assert_eq!(st, StatusCode::CREATED, "another user has their own allowance: {v}");
    // Reads are not limited.
    let (st, _) = app.get("/api/v1/bookings", Some(&eager.token)).await;
    assert_eq!(st, StatusCode::OK);
}
