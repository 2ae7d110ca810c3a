//! Idempotency-Key on every state-changing request: replay, one effect, 422 on another body,
//! 409 while running, 5xx not kept, per-caller scope, key validation. On PostgreSQL and memory.

use crate::helpers::{TestApp, code, spawn_app, spawn_with};
use engine::domain::ids::UserId;
use futures::future::join_all;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn replayed(&self) -> bool {
        self.headers.get("idempotent-replayed").is_some_and(|v| v == "true")
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn send(app: &TestApp, method: Method, path: &str, token: Option<&str>, key: &str, body: &Value) -> Answer {
    let mut rb = app.http.request(method, format!("{}{path}", app.addr)).header("idempotency-key", key).json(body);
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    let res = rb.send().await.expect("request sent");
    let (status, headers) = (res.status(), res.headers().clone());
    Answer { status, headers, body: res.text().await.expect("body") }
}

fn registration(email: &str) -> Value {
    json!({"email": email, "password": "a long password", "name": "Idem User"})
}

fn unique_email() -> String {
    format!("idem-{}@example.com", uuid::Uuid::now_v7().simple())
}

async fn users_with_email(app: &TestApp, email: &str) -> i64 {
    let c = app.db.client().await;
    c.query_one("SELECT count(*) FROM users WHERE email = $1", &[&email]).await.expect("count").get(0)
}

/// Registers twice with one key: the second answer is the first 201 again, not 409 email_taken.
async fn check_register_replay(app: &TestApp) {
    let email = unique_email();
    let path = "/api/v1/auth/register";
    let first = send(app, Method::POST, path, None, "signup-1", &registration(&email)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert!(!first.replayed(), "a first answer is not a replay");
    let again = send(app, Method::POST, path, None, "signup-1", &registration(&email)).await;
    assert_eq!(again.status, StatusCode::CREATED, "the retry replays the 201, not 409: {}", again.body);
    assert!(again.replayed(), "Idempotent-Replayed: true");
    assert_eq!(again.body, first.body, "byte for byte the first answer");
    assert_eq!(again.header("content-type"), first.header("content-type"));
    // Without the key the same request runs again, and finds the account taken.
    let (st, v) = app.post(path, None, registration(&email)).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "email_taken"));
    let other = send(app, Method::POST, path, None, "signup-1", &registration(&unique_email())).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", other.body);
    assert_eq!(code(&other.json()), "idempotency_key_reused");
    assert_eq!(other.header("content-type"), Some("application/problem+json"));
}

#[actix_web::test]
async fn a_retried_registration_replays_the_first_201_and_another_body_gets_422() {
    let app = spawn_app().await;
    check_register_replay(&app).await;
    let c = app.db.client().await;
    let n: i64 = c.query_one("SELECT count(*) FROM users", &[]).await.expect("count").get(0);
    assert_eq!(n, 1, "one account, whatever was retried");
    let kept: i64 = c.query_one("SELECT count(*) FROM http_idempotency", &[]).await.expect("count").get(0);
    assert_eq!(kept, 1, "only the keyed request that ran is stored");
}

#[actix_web::test]
async fn without_a_database_the_memory_store_replays_too() {
    let app = spawn_with(|s| s.database_url = None).await;
    check_register_replay(&app).await;
}

#[actix_web::test]
async fn a_resource_created_twice_with_one_key_exists_once_and_keeps_its_location() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let kind = serde_json::to_value(engine::fixtures::event(UserId::new_v7(), "x", 10, jiff::Timestamp::now()).kind)
        .expect("json");
    let body = json!({"name": "Idempotent Gala", "kind": kind});
    let first = send(&app, Method::POST, "/api/v1/resources", Some(&owner.token), "gala", &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = send(&app, Method::POST, "/api/v1/resources", Some(&owner.token), "gala", &body).await;
    assert_eq!((again.status, again.replayed()), (StatusCode::CREATED, true));
    assert_eq!(again.json()["id"], first.json()["id"]);
    assert_eq!(again.header("location"), first.header("location"));
    let c = app.db.client().await;
    let n: i64 =
        c.query_one("SELECT count(*) FROM resources WHERE name = 'Idempotent Gala'", &[]).await.expect("count").get(0);
    assert_eq!(n, 1, "one resource");
    // PUT is covered as well: a changed body under the same key is refused.
    let id = first.json()["id"].as_str().expect("id").to_owned();
    let put = send(&app, Method::PUT, &format!("/api/v1/resources/{id}"), Some(&owner.token), "gala", &body).await;
    assert_eq!((put.status, code(&put.json())), (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"));
}

#[actix_web::test]
async fn concurrent_duplicates_have_one_effect() {
    let app = spawn_app().await;
    let email = unique_email();
    let body = registration(&email);
    let answers =
        join_all((0..20).map(|_| send(&app, Method::POST, "/api/v1/auth/register", None, "race-1", &body))).await;
    let fresh = answers.iter().filter(|a| a.status == StatusCode::CREATED && !a.replayed()).count();
    assert_eq!(fresh, 1, "exactly one request ran");
    for a in &answers {
        match a.status {
            StatusCode::CREATED => {}
            StatusCode::CONFLICT => {
                assert_eq!(code(&a.json()), "idempotency_key_in_use", "{}", a.body);
                assert_eq!(a.header("retry-after"), Some("1"));
            }
            other => panic!("unexpected {other}: {}", a.body),
        }
    }
    assert_eq!(users_with_email(&app, &email).await, 1);
    // Once the first finished, every retry gets its answer.
    let late = send(&app, Method::POST, "/api/v1/auth/register", None, "race-1", &body).await;
    assert_eq!((late.status, late.replayed()), (StatusCode::CREATED, true));
}

#[actix_web::test]
async fn a_server_error_is_not_stored_and_the_retry_runs_again() {
    let app = spawn_app().await;
    let c = app.db.client().await;
    c.batch_execute("ALTER TABLE users RENAME TO users_away").await.expect("rename");
    let email = unique_email();
    let path = "/api/v1/auth/register";
    let failed = send(&app, Method::POST, path, None, "retry-me", &registration(&email)).await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE, "{}", failed.body);
    let again = send(&app, Method::POST, path, None, "retry-me", &registration(&email)).await;
    assert_eq!(again.status, StatusCode::SERVICE_UNAVAILABLE, "still failing, and not replayed");
    assert!(!again.replayed());
    c.batch_execute("ALTER TABLE users_away RENAME TO users").await.expect("rename back");
    let ok = send(&app, Method::POST, path, None, "retry-me", &registration(&email)).await;
    assert_eq!((ok.status, ok.replayed()), (StatusCode::CREATED, false), "{}", ok.body);
    assert_eq!(users_with_email(&app, &email).await, 1);
}

#[actix_web::test]
async fn two_users_may_use_the_same_key_independently() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let (a, b) = (app.register("client").await, app.register("client").await);
    let event = app.create_event(&owner, 10).await;
    let body = json!({"resource_id": event, "request": {"kind": "tickets", "quantity": 1}});
    let ra = send(&app, Method::POST, "/api/v1/bookings", Some(&a.token), "same-key", &body).await;
    let rb = send(&app, Method::POST, "/api/v1/bookings", Some(&b.token), "same-key", &body).await;
    assert_eq!((ra.status, rb.status), (StatusCode::CREATED, StatusCode::CREATED), "{} / {}", ra.body, rb.body);
    assert!(!rb.replayed(), "b's request ran for b");
    assert_ne!(ra.json()["id"], rb.json()["id"]);
    assert_eq!(rb.json()["user_id"].as_str(), Some(b.user_id.as_str()));
    // And each user's retry replays their own booking.
    let again = send(&app, Method::POST, "/api/v1/bookings", Some(&a.token), "same-key", &body).await;
    assert_eq!((again.replayed(), again.json()["id"].clone()), (true, ra.json()["id"].clone()));
    let (_, v) = app.get(&format!("/api/v1/resources/{event}"), None).await;
    assert_eq!(v["availability"]["taken"], 2, "{v}");
}

#[actix_web::test]
async fn bad_keys_get_400_and_oversized_bodies_413() {
    let app = spawn_app().await;
    let body = registration(&unique_email());
    for key in ["k".repeat(201), "has space".to_owned(), String::new()] {
        let a = send(&app, Method::POST, "/api/v1/auth/register", None, &key, &body).await;
        assert_eq!((a.status, code(&a.json())), (StatusCode::BAD_REQUEST, "invalid_idempotency_key"), "key {key:?}");
    }
    let longest = send(&app, Method::POST, "/api/v1/auth/register", None, &"k".repeat(200), &body).await;
    assert_eq!(longest.status, StatusCode::CREATED, "200 characters are fine: {}", longest.body);
    let big = json!({"email": unique_email(), "password": "p".repeat(70_000), "name": "x"});
    let a = send(&app, Method::POST, "/api/v1/auth/register", None, "big", &big).await;
    assert_eq!((a.status, code(&a.json())), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    assert_eq!(a.header("content-type"), Some("application/problem+json"));
    // Reads are not idempotency-checked at all.
    let res = app
        .http
        .get(format!("{}/api/v1/events", app.addr))
        .header("idempotency-key", "k".repeat(300))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::OK);
}
