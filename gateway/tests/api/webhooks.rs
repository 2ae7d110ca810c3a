//! Owners' outbound webhooks through the whole server: endpoints registered over HTTP, a
//! booking's notifications POSTed to a real HTTP receiver on loopback, signed, retried after a
//! failure with the same Webhook-Id, filtered by event type, and kept per owner.

use crate::helpers::{Session, TestApp, code, spawn_with};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use gateway::configuration::Settings;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Hit {
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

impl Hit {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct ReceiverState {
    hits: Mutex<Vec<Hit>>,
    /// Statuses to answer, in order; 200 once they run out.
    script: Mutex<VecDeque<u16>>,
}

struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
}

impl Receiver {
    fn hits(&self) -> Vec<Hit> {
        self.state.hits.lock().expect("lock").clone()
    }
}

async fn receive(req: HttpRequest, body: web::Bytes, state: web::Data<Arc<ReceiverState>>) -> HttpResponse {
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    state.hits.lock().expect("lock").push(Hit {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: body.to_vec(),
    });
    let status = state.script.lock().expect("lock").pop_front().unwrap_or(200);
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status")).body("receiver says hi")
}

/// A tiny HTTP server on 127.0.0.1:0 that records every request.
fn receiver(script: &[u16]) -> Receiver {
    let state = Arc::new(ReceiverState { script: Mutex::new(script.iter().copied().collect()), ..Default::default() });
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let data = web::Data::new(state.clone());
    let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(receive)))
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
    actix_web::rt::spawn(server);
    Receiver { url: format!("http://127.0.0.1:{port}/hooks"), state }
}

fn fast_delivery(s: &mut Settings) {
    s.webhook_allow_private_targets = true;
    s.delivery_poll_ms = 20;
    s.delivery_backoff_base_ms = 50;
    s.delivery_backoff_max_ms = 200;
}

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn verify(hit: &Hit, secret: &str) {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{}.", hit.timestamp).as_bytes());
    mac.update(&hit.body);
    let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(hit.signature, expected, "the signature verifies with the endpoint's secret");
    let ts: i64 = hit.timestamp.parse().expect("unix seconds");
    assert!((jiff::Timestamp::now().as_second() - ts).abs() < 120, "a fresh timestamp: {ts}");
}

async fn register(app: &TestApp, owner: &Session, body: Value) -> Value {
    let (st, v) = app.post("/api/v1/webhooks", Some(&owner.token), body).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v
}

async fn log(app: &TestApp, owner: &Session, endpoint: &str) -> Vec<Value> {
    let (st, v) = app.get(&format!("/api/v1/webhooks/{endpoint}/deliveries"), Some(&owner.token)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["items"].as_array().cloned().unwrap_or_default()
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

#[actix_web::test]
async fn a_booking_reaches_its_owners_endpoints_signed_and_filtered_by_type() {
    let app = spawn_with(fast_delivery).await;
    let owner = app.register("owner").await;
    let other_owner = app.register("owner").await;
    let client = app.register("client").await;
    let event = app.create_event(&owner, 10).await;
    let (confirmed_rx, cancelled_rx, other_rx) = (receiver(&[]), receiver(&[]), receiver(&[]));
    let on_confirm = register(&app, &owner, json!({"url": confirmed_rx.url, "event_types": ["confirmed"]})).await;
    let secret = on_confirm["secret"].as_str().expect("the secret, once").to_owned();
    assert!(secret.starts_with("whsec_") && secret.len() >= 38, "{secret}");
    let on_cancel = register(
        &app,
        &owner,
        json!({"url": cancelled_rx.url, "event_types": ["cancelled"], "resource_id": event, "description": "desk"}),
    )
    .await;
    // Another owner listening to everything hears nothing of this owner's resource.
    let all: Vec<&str> = bots::webhook::EVENT_TYPES.to_vec();
    let others = register(&app, &other_owner, json!({"url": other_rx.url, "event_types": all})).await;

    let (st, b) = app.book(&client, &event, 2, true).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let booking_id = id(&b);
    let hit = eventually("the confirmed webhook", async || confirmed_rx.hits().first().cloned()).await;
    verify(&hit, &secret);
    let body = hit.json();
    assert_eq!(body["type"], "confirmed", "{body}");
    assert_eq!(body["id"].as_str(), Some(hit.id.as_str()), "the body's id is the Webhook-Id");
    assert!(hit.id.starts_with("outbox:") && hit.id.ends_with(&format!(":webhook:{}", id(&on_confirm))), "{}", hit.id);
    assert_eq!(body["resource_id"].as_str(), Some(event.as_str()));
    assert_eq!(body["resource"]["name"], "Test Event");
    assert_eq!(body["booking"]["id"].as_str(), Some(booking_id.as_str()));
    assert_eq!(body["booking"]["status"], "confirmed");
    assert_eq!(body["booking"]["item"]["quantity"], 2, "{body}");
    assert!(body["booking"].get("idempotency_key").is_none(), "{body}");
    assert!(body["occurred_at"].as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()).is_some(), "{body}");

    // Cancelled: only the endpoint that asked for cancellations hears of it.
    let (st, v) = app.post(&format!("/api/v1/bookings/{booking_id}/cancel"), Some(&client.token), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let hit = eventually("the cancelled webhook", async || cancelled_rx.hits().first().cloned()).await;
    assert_eq!(hit.json()["type"], "cancelled");
    assert_eq!(hit.json()["booking"]["status"], "cancelled");
    assert_ne!(hit.signature, "", "signed");

    // The logs say what was decided at fan-out: one delivery each, of the right type.
    let confirmed_log = log(&app, &owner, &id(&on_confirm)).await;
    assert_eq!(confirmed_log.len(), 1, "{confirmed_log:?}");
    let entry = &confirmed_log[0];
    assert_eq!((entry["type"].as_str(), entry["status"].as_str()), (Some("confirmed"), Some("delivered")), "{entry}");
    assert_eq!((entry["attempts"].as_i64(), entry["response_code"].as_i64()), (Some(1), Some(200)), "{entry}");
    assert_eq!(entry["event_id"].as_str(), Some(confirmed_rx.hits()[0].id.as_str()));
    assert_eq!(entry["booking_id"].as_str(), Some(booking_id.as_str()));
    let cancel_log = eventually("the cancellation delivered", async || {
        let l = log(&app, &owner, &id(&on_cancel)).await;
        (l.len() == 1 && l[0]["status"] == "delivered").then_some(l)
    })
    .await;
    assert_eq!(cancel_log[0]["type"], "cancelled");
    assert_eq!(confirmed_rx.hits().len(), 1, "no cancellation to the confirmed-only endpoint");
    assert!(log(&app, &other_owner, &id(&others)).await.is_empty(), "another owner's endpoint got a delivery");
    assert!(other_rx.hits().is_empty());
}

#[actix_web::test]
async fn a_failed_delivery_is_retried_with_the_same_id_and_the_log_shows_it() {
    let app = spawn_with(fast_delivery).await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let event = app.create_event(&owner, 10).await;
    // Fails twice (a 500, then a 429), then accepts.
    let rx = receiver(&[500, 429]);
    let ep = register(&app, &owner, json!({"url": rx.url, "event_types": ["confirmed"]})).await;
    let secret = ep["secret"].as_str().expect("secret").to_owned();
    assert_eq!(app.book(&client, &event, 1, true).await.0, StatusCode::CREATED);

    let entry = eventually("the delivery after two failures", async || {
        let l = log(&app, &owner, &id(&ep)).await;
        l.first().filter(|e| e["status"] == "delivered").cloned()
    })
    .await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 3, "{hits:?}");
    assert!(hits.iter().all(|h| h.id == hits[0].id), "every retry carries the same Webhook-Id");
    for h in &hits {
        verify(h, &secret);
    }
    assert_eq!((entry["attempts"].as_i64(), entry["response_code"].as_i64()), (Some(3), Some(200)), "{entry}");
}

#[actix_web::test]
async fn a_receiver_that_stays_down_is_dead_lettered_and_gone_is_permanent() {
    let app = spawn_with(|s| {
        fast_delivery(s);
        s.delivery_max_attempts = 2;
    })
    .await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let event = app.create_event(&owner, 10).await;
    let (down, gone) = (receiver(&[503, 503, 503]), receiver(&[410]));
    let ep_down = register(&app, &owner, json!({"url": down.url, "event_types": ["confirmed"]})).await;
    let ep_gone = register(&app, &owner, json!({"url": gone.url, "event_types": ["confirmed"]})).await;
    assert_eq!(app.book(&client, &event, 1, true).await.0, StatusCode::CREATED);
    for (ep, attempts, code) in [(&ep_down, 2, 503), (&ep_gone, 1, 410)] {
        let entry = eventually("a dead letter", async || {
            let l = log(&app, &owner, &id(ep)).await;
            l.first().filter(|e| e["status"] == "dead").cloned()
        })
        .await;
        assert_eq!((entry["attempts"].as_i64(), entry["response_code"].as_i64()), (Some(attempts), Some(code)));
        let err = entry["last_error"].as_str().unwrap_or_default();
        assert!(err.contains(&format!("HTTP {code}")) && err.contains("receiver says hi"), "{entry}");
    }
    assert_eq!((down.hits().len(), gone.hits().len()), (2, 1));
}

#[actix_web::test]
async fn bad_endpoints_are_refused_with_the_field_named() {
    // Private targets are refused by default (SSRF): this app does not allow them.
    let app = spawn_with(|s| s.delivery_poll_ms = 20).await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let cases = [
        (json!({"url": "ftp://example.com/x", "event_types": ["confirmed"]}), "url"),
        (json!({"url": "not a url", "event_types": ["confirmed"]}), "url"),
        (json!({"url": "http://127.0.0.1:9/hook", "event_types": ["confirmed"]}), "url"),
        (json!({"url": "http://169.254.169.254/latest", "event_types": ["confirmed"]}), "url"),
        (json!({"url": "http://localhost/hook", "event_types": ["confirmed"]}), "url"),
        (json!({"url": format!("https://example.com/{}", "a".repeat(2100)), "event_types": ["confirmed"]}), "url"),
        (json!({"url": "https://example.com/hook", "event_types": []}), "event_types"),
        (json!({"url": "https://example.com/hook", "event_types": ["confirmed", "exploded"]}), "event_types[1]"),
        (json!({"url": "https://example.com/hook", "event_types": "confirmed"}), "event_types"),
        (json!({"url": "https://example.com/hook", "event_types": ["confirmed"], "colour": 1}), "colour"),
        (
            json!({"url": "https://example.com/hook", "event_types": ["confirmed"], "description": "d".repeat(201)}),
            "description",
        ),
        (json!({"event_types": ["confirmed"]}), "body"),
    ];
    for (body, field) in cases {
        let (st, v) = app.post("/api/v1/webhooks", Some(&owner.token), body.clone()).await;
        assert_eq!((st, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{body}: {v}");
        let fields: Vec<&str> =
            v["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
        assert!(fields.contains(&field), "{body}: {v}");
    }
    let res = app
        .http
        .post(format!("{}/api/v1/webhooks", app.addr))
        .bearer_auth(&owner.token)
        .header("content-type", "application/json")
        .body("{\"url\": ")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/problem+json"));

    // Clients cannot register; anonymous callers must sign in.
    let ok = json!({"url": "https://example.com/hook", "event_types": ["confirmed"]});
    let (st, v) = app.post("/api/v1/webhooks", Some(&client.token), ok.clone()).await;
    assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    assert_eq!(app.post("/api/v1/webhooks", None, ok.clone()).await.0, StatusCode::UNAUTHORIZED);

    // Another owner's resource is not found; the limit per owner holds.
    let other = app.register("owner").await;
    let theirs = app.create_event(&other, 5).await;
    let (st, v) = app
        .post(
            "/api/v1/webhooks",
            Some(&owner.token),
            json!({"url": "https://example.com/hook", "event_types": ["confirmed"], "resource_id": theirs}),
        )
        .await;
    assert_eq!((st, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{v}");
    for _ in 0..gateway::routes::webhooks::MAX_ENDPOINTS_PER_OWNER {
        register(&app, &owner, ok.clone()).await;
    }
    let (st, v) = app.post("/api/v1/webhooks", Some(&owner.token), ok.clone()).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "too_many_webhooks"), "{v}");
}

#[actix_web::test]
async fn owners_see_only_their_own_endpoints_and_logs() {
    let app = spawn_with(fast_delivery).await;
    let alice = app.register("owner").await;
    let bob = app.register("owner").await;
    let a = register(&app, &alice, json!({"url": "https://a.example.com/h", "event_types": ["confirmed"]})).await;
    let b = register(&app, &bob, json!({"url": "https://b.example.com/h", "event_types": ["cancelled"]})).await;

    let (st, v) = app.get("/api/v1/webhooks", Some(&alice.token)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let ids: Vec<&str> = v["items"].as_array().expect("items").iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids, vec![id(&a).as_str()]);
    assert!(v["items"][0].get("secret").is_none(), "the secret is shown only once: {v}");
    let (st, v) = app.get(&format!("/api/v1/webhooks/{}", id(&a)), Some(&alice.token)).await;
    assert_eq!((st, v["url"].as_str()), (StatusCode::OK, Some("https://a.example.com/h")));
    assert!(v.get("secret").is_none(), "{v}");

    for path in [format!("/api/v1/webhooks/{}", id(&b)), format!("/api/v1/webhooks/{}/deliveries", id(&b))] {
        let (st, v) = app.get(&path, Some(&alice.token)).await;
        assert_eq!((st, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{path}: {v}");
    }
    let (st, _) =
        app.send(reqwest::Method::DELETE, &format!("/api/v1/webhooks/{}", id(&b)), Some(&alice.token), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app.get(&format!("/api/v1/webhooks/{}", id(&b)), Some(&bob.token)).await;
    assert_eq!(st, StatusCode::OK, "Bob's endpoint survived Alice's attempt");
    let (st, v) = app.get("/api/v1/webhooks/not-a-uuid", Some(&alice.token)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (st, v) = app.get(&format!("/api/v1/webhooks/{}/deliveries?limit=0", id(&a)), Some(&alice.token)).await;
    assert_eq!((st, v["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("limit")));

    // Bob deletes his own; then it is gone.
    let (st, _) =
        app.send(reqwest::Method::DELETE, &format!("/api/v1/webhooks/{}", id(&b)), Some(&bob.token), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = app.get(&format!("/api/v1/webhooks/{}", id(&b)), Some(&bob.token)).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn the_delivery_log_pages_newest_first() {
    let app = spawn_with(fast_delivery).await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let event = app.create_event(&owner, 10).await;
    let rx = receiver(&[]);
    let ep = register(&app, &owner, json!({"url": rx.url, "event_types": ["confirmed"]})).await;
    for _ in 0..3 {
        assert_eq!(app.book(&client, &event, 1, true).await.0, StatusCode::CREATED);
    }
    eventually("three deliveries", async || (rx.hits().len() == 3).then_some(())).await;
    let path = format!("/api/v1/webhooks/{}/deliveries?limit=2", id(&ep));
    let (_, p1) = app.get(&path, Some(&owner.token)).await;
    let cursor = p1["next_cursor"].as_str().expect("a second page");
    let (_, p2) = app.get(&format!("{path}&cursor={cursor}"), Some(&owner.token)).await;
    assert_eq!((p1["items"].as_array().map(Vec::len), p2["items"].as_array().map(Vec::len)), (Some(2), Some(1)));
    assert!(p1["items"][1]["id"].as_i64() > p2["items"][0]["id"].as_i64(), "{p1} {p2}");
    assert!(p2.get("next_cursor").is_none(), "{p2}");
}
