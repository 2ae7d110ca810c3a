//! Idempotency-Key on every state-changing request: replay, one effect, 422 on another body,
//! 409 while running, 5xx not kept, per-caller scope, authentication before the key, secrets
//! never at rest, reservations of dead processes freed. On PostgreSQL and memory.

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

/// The same body for the same name (a fixed date, so that a retry is byte for byte the same).
fn event_body(name: &str) -> Value {
    let at: jiff::Timestamp = "2030-01-01T00:00:00Z".parse().expect("timestamp");
    let kind =
        serde_json::to_value(engine::fixtures::event(UserId(uuid::Uuid::nil()), "x", 10, at).kind).expect("json");
    json!({"name": name, "kind": kind})
}

/// Creates a resource twice with one key: the second answer is the first 201 again, and the
/// key with another body is refused.
async fn check_replay(app: &TestApp) {
    let owner = app.register("owner").await;
    let path = "/api/v1/resources";
    let first = send(app, Method::POST, path, Some(&owner.token), "create-1", &event_body("Replayed Gala")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert!(!first.replayed(), "a first answer is not a replay");
    let again = send(app, Method::POST, path, Some(&owner.token), "create-1", &event_body("Replayed Gala")).await;
    assert_eq!(again.status, StatusCode::CREATED, "the retry replays the 201: {}", again.body);
    assert!(again.replayed(), "Idempotent-Replayed: true");
    assert_eq!(again.body, first.body, "byte for byte the first answer");
    assert_eq!(again.header("content-type"), first.header("content-type"));
    let other = send(app, Method::POST, path, Some(&owner.token), "create-1", &event_body("Another Gala")).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", other.body);
    assert_eq!(code(&other.json()), "idempotency_key_reused");
    assert_eq!(other.header("content-type"), Some("application/problem+json"));
}

#[actix_web::test]
async fn a_retried_request_replays_the_first_201_and_another_body_gets_422() {
    let app = spawn_app().await;
    check_replay(&app).await;
    let c = app.db.client().await;
    let n: i64 =
        c.query_one("SELECT count(*) FROM resources WHERE name = 'Replayed Gala'", &[]).await.expect("count").get(0);
    assert_eq!(n, 1, "one resource, whatever was retried");
    let kept: i64 = c.query_one("SELECT count(*) FROM http_idempotency", &[]).await.expect("count").get(0);
    assert_eq!(kept, 1, "only the keyed request that ran is stored");
}

#[actix_web::test]
async fn without_a_database_the_memory_store_replays_too() {
    let app = spawn_with(|s| s.database_url = None).await;
    check_replay(&app).await;
}

/// Requests without a token share no key space: two people registering with one key both get
/// their accounts (nothing is stored for them), instead of the second getting 422.
#[actix_web::test]
async fn callers_without_a_token_never_share_a_key_space() {
    let app = spawn_app().await;
    let path = "/api/v1/auth/register";
    let (ea, eb) = (unique_email(), unique_email());
    let a = send(&app, Method::POST, path, None, "signup", &registration(&ea)).await;
    let b = send(&app, Method::POST, path, None, "signup", &registration(&eb)).await;
    assert_eq!((a.status, b.status), (StatusCode::CREATED, StatusCode::CREATED), "{} / {}", a.body, b.body);
    assert!(!b.replayed());
    assert_eq!((users_with_email(&app, &ea).await, users_with_email(&app, &eb).await), (1, 1));
    // A retry runs again (the account is taken by then): no record was ever written.
    let again = send(&app, Method::POST, path, None, "signup", &registration(&ea)).await;
    assert_eq!((again.status, code(&again.json())), (StatusCode::CONFLICT, "email_taken"), "{}", again.body);
    let c = app.db.client().await;
    let kept: i64 = c.query_one("SELECT count(*) FROM http_idempotency", &[]).await.expect("count").get(0);
    assert_eq!(kept, 0, "no record for callers who proved no one");
}

/// Authentication comes before the key: every state-changing route that needs a token answers
/// 401 without one (or with a forged one), whatever key was used before, never 422 or a replay.
#[actix_web::test]
async fn every_protected_route_answers_401_before_looking_at_the_key() {
    let app = spawn_app().await;
    let doc: Value =
        app.http.get(format!("{}/openapi.json", app.addr)).send().await.expect("spec").json().await.expect("json");
    let id = uuid::Uuid::now_v7().to_string();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let m = match method.as_str() {
                "post" => Method::POST,
                "put" => Method::PUT,
                "patch" => Method::PATCH,
                "delete" => Method::DELETE,
                _ => continue,
            };
            if op["security"].as_array().is_none_or(|s| s.is_empty()) {
                continue;
            }
            let concrete = path.replace("{id}", &id);
            for token in [None, Some("not-a-token"), Some("ik_forged")] {
                // One key for every route: before the fix the first answer was stored under
                // "anonymous" and every later route answered 422 idempotency_key_reused.
                let a = send(&app, m.clone(), &concrete, token, "shared-key", &json!({})).await;
                assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{method} {path} with {token:?}: {}", a.body);
                assert!(!a.replayed(), "{method} {path}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} protected state-changing routes found");
}

#[actix_web::test]
async fn a_resource_created_twice_with_one_key_exists_once_and_keeps_its_location() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let body = event_body("Idempotent Gala");
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
    let owner = app.register("owner").await;
    let body = event_body("Raced Gala");
    let answers =
        join_all((0..20).map(|_| send(&app, Method::POST, "/api/v1/resources", Some(&owner.token), "race-1", &body)))
            .await;
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
    let c = app.db.client().await;
    let n: i64 =
        c.query_one("SELECT count(*) FROM resources WHERE name = 'Raced Gala'", &[]).await.expect("count").get(0);
    assert_eq!(n, 1);
    // Once the first finished, every retry gets its answer.
    let late = send(&app, Method::POST, "/api/v1/resources", Some(&owner.token), "race-1", &body).await;
    assert_eq!((late.status, late.replayed()), (StatusCode::CREATED, true));
}

#[actix_web::test]
async fn a_server_error_is_not_stored_and_the_retry_runs_again() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let event = app.create_event(&owner, 10).await;
    let (st, held) = app.book(&client, &event, 1, false).await;
    assert_eq!(st, StatusCode::CREATED, "{held}");
    let body = json!({"booking_id": held["id"]});
    let c = app.db.client().await;
    c.batch_execute("ALTER TABLE payments RENAME TO payments_away").await.expect("rename");
    let failed = send(&app, Method::POST, "/api/v1/payments", Some(&client.token), "retry-me", &body).await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE, "{}", failed.body);
    let again = send(&app, Method::POST, "/api/v1/payments", Some(&client.token), "retry-me", &body).await;
    assert_eq!(again.status, StatusCode::SERVICE_UNAVAILABLE, "still failing, and not replayed");
    assert!(!again.replayed());
    c.batch_execute("ALTER TABLE payments_away RENAME TO payments").await.expect("rename back");
    let ok = send(&app, Method::POST, "/api/v1/payments", Some(&client.token), "retry-me", &body).await;
    assert_eq!((ok.status, ok.replayed()), (StatusCode::CREATED, false), "{}", ok.body);
    let n: i64 = c.query_one("SELECT count(*) FROM payments", &[]).await.expect("count").get(0);
    assert_eq!(n, 1);
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
    let owner = app.register("owner").await;
    let path = "/api/v1/resources";
    for key in ["k".repeat(201), "has space".to_owned(), String::new()] {
        let a = send(&app, Method::POST, path, Some(&owner.token), &key, &event_body("Keyed")).await;
        assert_eq!((a.status, code(&a.json())), (StatusCode::BAD_REQUEST, "invalid_idempotency_key"), "key {key:?}");
    }
    let longest = send(&app, Method::POST, path, Some(&owner.token), &"k".repeat(200), &event_body("Keyed")).await;
    assert_eq!(longest.status, StatusCode::CREATED, "200 characters are fine: {}", longest.body);
    let big = json!({"name": "n".repeat(70_000), "kind": event_body("x")["kind"]});
    let a = send(&app, Method::POST, path, Some(&owner.token), "big", &big).await;
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

/// A refresh token replayed with the Idempotency-Key of its first use must not get tokens
/// again: it is a reuse, which signs the whole login out.
#[actix_web::test]
async fn a_replayed_refresh_with_its_first_key_is_a_reuse_not_a_replay() {
    let app = spawn_app().await;
    let s = app.register("client").await;
    let path = "/api/v1/auth/refresh";
    let body = json!({"refresh_token": s.refresh});
    let first = send(&app, Method::POST, path, None, "refresh-1", &body).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let rotated = first.json()["refresh_token"].as_str().expect("a new refresh token").to_owned();
    // Also with the access token, which gives the caller a key space of their own.
    for token in [None, Some(s.token.as_str())] {
        let again = send(&app, Method::POST, path, token, "refresh-1", &body).await;
        assert_eq!(again.status, StatusCode::UNAUTHORIZED, "{}", again.body);
        assert_eq!(code(&again.json()), "refresh_token_reused");
        assert!(again.json().get("access_token").is_none());
    }
    // The reuse revoked the family: the rotated token is dead too.
    let (st, v) = app.post(path, None, json!({"refresh_token": rotated})).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
}

/// What `http_idempotency` holds after keyed requests whose answers carry a secret: no token,
/// no key, no webhook secret, no feed URL, no link code. A retry learns the request was done.
#[actix_web::test]
async fn answers_that_carry_a_secret_are_never_stored() {
    let app = spawn_app().await;
    let email = unique_email();
    let (st, v) = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": email, "password": "a long password", "name": "O", "role": "owner"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let owner = crate::helpers::session(&v);
    let event = app.create_event(&owner, 10).await;
    let t = Some(owner.token.as_str());
    let calls: Vec<(&str, Value, &str)> = vec![
        ("/api/v1/me/integration-keys", json!({"name": "Channel manager"}), "key"),
        ("/api/v1/webhooks", json!({"url": "https://example.com/hook", "event_types": ["confirmed"]}), "secret"),
        ("/api/v1/calendar/feeds", json!({"resource_id": event}), "url"),
        ("/api/v1/me/telegram/link-code", json!({}), "code"),
    ];
    let mut secrets = vec![owner.token.clone(), owner.refresh.clone()];
    for (i, (path, body, field)) in calls.iter().enumerate() {
        let key = format!("secret-{i}");
        let first = send(&app, Method::POST, path, t, &key, body).await;
        assert!(first.status.is_success(), "{path}: {}", first.body);
        assert_eq!(first.header("cache-control"), Some("no-store"), "{path}");
        let secret = first.json()[*field].as_str().expect("the secret is shown once").to_owned();
        secrets.push(secret);
        let again = send(&app, Method::POST, path, t, &key, body).await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{path}: {}", again.body);
        assert_eq!(code(&again.json()), "idempotent_answer_withheld", "{path}");
        assert!(again.replayed(), "{path}");
        assert!(!again.body.contains(&secrets[secrets.len() - 1]), "{path} shows its secret again");
        assert_eq!(again.header("location"), first.header("location"), "{path}");
    }
    // The token routes take no key at all, even from a signed-in caller: each login runs.
    for _ in 0..2 {
        let login = json!({"email": email, "password": "a long password"});
        let a = send(&app, Method::POST, "/api/v1/auth/login", t, "login-key", &login).await;
        assert_eq!((a.status, a.replayed()), (StatusCode::OK, false), "{}", a.body);
        assert_eq!(a.header("cache-control"), Some("no-store"));
        secrets.push(a.json()["refresh_token"].as_str().expect("refresh token").to_owned());
    }
    let c = app.db.client().await;
    let rows = c.query("SELECT convert_from(body, 'UTF8') FROM http_idempotency", &[]).await.expect("rows");
    assert_eq!(rows.len(), calls.len(), "one marker record per keyed request");
    for row in rows {
        let body: String = row.get(0);
        for secret in &secrets {
            assert!(!body.contains(secret.as_str()), "a secret at rest: {body}");
        }
        assert!(!body.contains("ik_"), "an integration key at rest: {body}");
        assert!(!body.contains(".ics"), "a feed URL at rest: {body}");
    }
}

/// A reservation left "in progress" by a process that died (no heartbeat any more) is taken
/// over at once by a retry; one held by a live process still answers 409.
#[actix_web::test]
async fn a_dead_process_reservation_is_taken_over_at_once() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let c = app.db.client().await;
    let dead = uuid::Uuid::now_v7();
    let alive = uuid::Uuid::now_v7();
    c.execute("INSERT INTO gateway_instances (id, heartbeat_at) VALUES ($1, now() - interval '1 minute')", &[&dead])
        .await
        .expect("a dead process");
    c.execute("INSERT INTO gateway_instances (id) VALUES ($1)", &[&alive]).await.expect("a live process");
    for (key, instance) in [("crashed", dead), ("running", alive)] {
        c.execute(
            "INSERT INTO http_idempotency (scope, key, fingerprint, state, lock_id, created_at, instance_id)
             VALUES ($1, $2, 'x', 'in_progress', $3, now(), $4)",
            &[&owner.user_id, &key, &uuid::Uuid::now_v7(), &instance],
        )
        .await
        .expect("a reservation");
    }
    let retried =
        send(&app, Method::POST, "/api/v1/resources", Some(&owner.token), "crashed", &event_body("Retried")).await;
    assert_eq!(retried.status, StatusCode::CREATED, "the dead process's reservation is free: {}", retried.body);
    // (Its fingerprint is another request's, so the answer is 422; what matters is that the
    // live process keeps its reservation.)
    let waiting =
        send(&app, Method::POST, "/api/v1/resources", Some(&owner.token), "running", &event_body("Waits")).await;
    assert_ne!(waiting.status, StatusCode::CREATED, "{}", waiting.body);
    let kept: i64 = c
        .query_one("SELECT count(*) FROM http_idempotency WHERE key = 'running' AND instance_id = $1", &[&alive])
        .await
        .expect("count")
        .get(0);
    assert_eq!(kept, 1, "the live process's reservation stays");
    // This process beats: its own row is fresh.
    let fresh: i64 = c
        .query_one("SELECT count(*) FROM gateway_instances WHERE heartbeat_at > now() - interval '5 seconds'", &[])
        .await
        .expect("count")
        .get(0);
    assert!(fresh >= 2, "the app and the fake live process: {fresh}");
}

/// A second process starting on the database frees the reservations of stopped ones.
#[actix_web::test]
async fn a_starting_process_frees_the_reservations_of_stopped_ones() {
    let app = spawn_app().await;
    let c = app.db.client().await;
    let dead = uuid::Uuid::now_v7();
    c.execute(
        "INSERT INTO http_idempotency (scope, key, fingerprint, state, lock_id, created_at, instance_id)
         VALUES ('someone', 'k', 'x', 'in_progress', $1, now(), $2)",
        &[&uuid::Uuid::now_v7(), &dead],
    )
    .await
    .expect("an orphan reservation");
    let mut s = gateway::configuration::Settings::local();
    s.database_url = Some(gateway::configuration::Secret::new(&app.db.url));
    s.db_pool_size = 2;
    let _second = gateway::startup::Application::build(s).await.expect("a second process starts");
    let left: i64 = c
        .query_one("SELECT count(*) FROM http_idempotency WHERE instance_id = $1", &[&dead])
        .await
        .expect("count")
        .get(0);
    assert_eq!(left, 0, "freed at start");
}
