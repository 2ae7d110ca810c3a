//! Payments through the simulated provider and its signed webhook: success confirms, failure
//! releases, signatures and replays are checked, late payments never oversell.

use crate::helpers::{Session, TestApp, code, spawn_app, spawn_with};
use engine::domain::ids::UserId;
use gateway::configuration::Secret;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::Duration;

const SECRET: &str = "whsec_test_payments_0123456789";
/// Long enough that the simulator never fires while a test sends its own webhooks.
const NEVER_MS: u64 = 600_000;

/// The header a provider sends: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>.
fn signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Posts `body` to the webhook with `header` as its signature (none if `None`).
async fn deliver(app: &TestApp, body: &str, header: Option<String>) -> (StatusCode, Value) {
    let mut rb = app
        .http
        .post(format!("{}/api/v1/payments/webhook", app.addr))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(h) = header {
        rb = rb.header("x-payment-signature", h);
    }
    let res = rb.send().await.expect("webhook sent");
    let st = res.status();
    let text = res.text().await.expect("body");
    (st, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// A correctly signed delivery of `status` for `payment`.
async fn signed(app: &TestApp, event_id: &str, payment: &str, status: &str) -> (StatusCode, Value) {
    let body = json!({"event_id": event_id, "payment_id": payment, "status": status}).to_string();
    deliver(app, &body, Some(signature(SECRET, now_secs(), &body))).await
}

/// An owner, a client, an event of `capacity` and a held booking of `quantity` tickets.
async fn held(app: &TestApp, capacity: u32, quantity: u32) -> (Session, Session, String, Value) {
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let event = app.create_priced_event(&owner, capacity).await;
    let (st, b) = app.book(&client, &event, quantity, false).await;
    assert_eq!((st, b["status"].as_str()), (StatusCode::CREATED, Some("held")), "{b}");
    (owner, client, event, b)
}

async fn pay(app: &TestApp, who: &Session, booking: &Value) -> Value {
    let (st, p) = app.post("/api/v1/payments", Some(&who.token), json!({"booking_id": booking["id"]})).await;
    assert_eq!((st, p["status"].as_str()), (StatusCode::CREATED, Some("pending")), "{p}");
    p
}

/// Polls the payment until it leaves `pending` (at most 5 s).
async fn settled(app: &TestApp, who: &Session, payment: &Value) -> Value {
    let path = format!("/api/v1/payments/{}", payment["id"].as_str().expect("id"));
    for _ in 0..100 {
        let (st, p) = app.get(&path, Some(&who.token)).await;
        assert_eq!(st, StatusCode::OK, "{p}");
        if p["status"] != "pending" {
            return p;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the payment was still pending after 5 s");
}

async fn booking(app: &TestApp, who: &Session, b: &Value) -> Value {
    let (st, v) = app.get(&format!("/api/v1/bookings/{}", b["id"].as_str().expect("id")), Some(&who.token)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v
}

async fn availability(app: &TestApp, event: &str) -> (i64, i64) {
    let (_, v) = app.get(&format!("/api/v1/resources/{event}"), None).await;
    (v["availability"]["taken"].as_i64().expect("taken"), v["availability"]["remaining"].as_i64().expect("remaining"))
}

/// Rows of `booking_history` that moved the booking to `to`.
async fn transitions(app: &TestApp, booking: &Value, to: &str) -> Vec<String> {
    let id: uuid::Uuid = booking["id"].as_str().expect("id").parse().expect("uuid");
    let c = app.db.client().await;
    let rows = c
        .query("SELECT reason FROM booking_history WHERE booking_id = $1 AND to_status = $2", &[&id, &to])
        .await
        .expect("history");
    rows.iter().map(|r| r.get(0)).collect()
}

#[actix_web::test]
async fn paying_a_hold_confirms_it_through_the_webhook() {
    let app = spawn_app().await;
    let (owner, client, event, b) = held(&app, 5, 2).await;
    let p = pay(&app, &client, &b).await;
    assert_eq!(p["amount"], b["amount"], "the payment is for the booking's price");
    assert_eq!((p["booking_id"].clone(), p["user_id"].clone()), (b["id"].clone(), json!(client.user_id)));

    let done = settled(&app, &client, &p).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let after = booking(&app, &client, &b).await;
    assert_eq!((after["status"].as_str(), after["payment_ref"].clone()), (Some("confirmed"), p["id"].clone()));
    assert_eq!(availability(&app, &event).await, (2, 3));

    // The resource's owner sees the payment; another client or owner does not.
    let path = format!("/api/v1/payments/{}", p["id"].as_str().expect("id"));
    assert_eq!(app.get(&path, Some(&owner.token)).await.0, StatusCode::OK);
    for stranger in [app.register("client").await, app.register("owner").await] {
        let (st, v) = app.get(&path, Some(&stranger.token)).await;
        assert_eq!((st, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    }
    // Paid and confirmed: neither payable again nor can its outcome be chosen any more.
    let (st, v) = app.post("/api/v1/payments", Some(&client.token), json!({"booking_id": b["id"]})).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "booking_not_held"), "{v}");
    let (st, v) = app.post(&format!("{path}/outcome"), Some(&client.token), json!({"outcome": "fail"})).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "payment_not_pending"), "{v}");
    // Owners do not pay; nobody pays for someone else's booking.
    let (st, _) = app.post("/api/v1/payments", Some(&owner.token), json!({"booking_id": b["id"]})).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (_, _, _, other) = held(&app, 5, 1).await;
    let (st, _) = app.post("/api/v1/payments", Some(&client.token), json!({"booking_id": other["id"]})).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn a_failed_payment_releases_the_hold_and_gives_the_capacity_back() {
    let app = spawn_with(|s| s.payment_simulator_delay_ms = 1_000).await;
    let (_, client, event, b) = held(&app, 2, 2).await;
    assert_eq!(availability(&app, &event).await, (2, 0));
    let p = pay(&app, &client, &b).await;
    let path = format!("/api/v1/payments/{}/outcome", p["id"].as_str().expect("id"));
    let (st, v) = app.post(&path, Some(&client.token), json!({"outcome": "fail"})).await;
    assert_eq!((st, v["chosen_outcome"].as_str()), (StatusCode::OK, Some("fail")), "{v}");
    let (st, v) = app.post(&path, Some(&client.token), json!({"outcome": "maybe"})).await;
    assert_eq!((st, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{v}");
    // One pending payment per booking.
    let (st, v) = app.post("/api/v1/payments", Some(&client.token), json!({"booking_id": b["id"]})).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "payment_pending"), "{v}");

    let done = settled(&app, &client, &p).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(done["failure_reason"].is_string(), "{done}");
    assert_eq!(booking(&app, &client, &b).await["status"], "released");
    assert_eq!(availability(&app, &event).await, (0, 2), "the tickets are free again");
}

#[actix_web::test]
async fn webhooks_need_a_valid_fresh_signature() {
    let app = spawn_with(|s| {
        s.payment_webhook_secret = Some(Secret::new(SECRET));
        s.payment_simulator_delay_ms = NEVER_MS;
    })
    .await;
    let (_, client, _, b) = held(&app, 5, 1).await;
    let p = pay(&app, &client, &b).await;
    let pid = p["id"].as_str().expect("id");
    let body = json!({"event_id": "evt_sig", "payment_id": pid, "status": "succeeded"}).to_string();
    let t = now_secs();

    let refused = [
        (None, "invalid_signature"),
        (Some("garbage".to_owned()), "invalid_signature"),
        (Some(signature("another secret", t, &body)), "invalid_signature"),
        // Signed for another body.
        (Some(signature(SECRET, t, &body.replace("succeeded", "failed"))), "invalid_signature"),
        // Authentic but 10 minutes old (or ahead).
        (Some(signature(SECRET, t - 600, &body)), "stale_signature"),
        (Some(signature(SECRET, t + 600, &body)), "stale_signature"),
    ];
    for (header, expected) in refused {
        let (st, v) = deliver(&app, &body, header.clone()).await;
        assert_eq!((st, code(&v)), (StatusCode::UNAUTHORIZED, expected), "{header:?}: {v}");
    }
    assert_eq!(booking(&app, &client, &b).await["status"], "held", "nothing refused had an effect");

    // Signed but about a payment that does not exist, or malformed.
    let (st, _) = signed(&app, "evt_ghost", &uuid::Uuid::now_v7().to_string(), "succeeded").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let bad = json!({"event_id": "evt_bad", "payment_id": pid, "status": "paid"}).to_string();
    let (st, v) = deliver(&app, &bad, Some(signature(SECRET, t, &bad))).await;
    assert_eq!((st, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{v}");

    let (st, v) = deliver(&app, &body, Some(signature(SECRET, t - 60, &body))).await;
    assert_eq!((st, v["result"].as_str(), v["replayed"].as_bool()), (StatusCode::OK, Some("succeeded"), Some(false)));
    let after = booking(&app, &client, &b).await;
    assert_eq!((after["status"].as_str(), after["payment_ref"].as_str()), (Some("confirmed"), Some(pid)));
}

#[actix_web::test]
async fn a_replayed_event_answers_its_first_result_and_changes_nothing() {
    let app = spawn_with(|s| {
        s.payment_webhook_secret = Some(Secret::new(SECRET));
        s.payment_simulator_delay_ms = NEVER_MS;
    })
    .await;
    let (_, client, event, b) = held(&app, 5, 2).await;
    let p = pay(&app, &client, &b).await;
    let pid = p["id"].as_str().expect("id");
    let (st, v) = signed(&app, "evt_1", pid, "succeeded").await;
    assert_eq!((st, v["result"].as_str()), (StatusCode::OK, Some("succeeded")), "{v}");
    let payment_then = settled(&app, &client, &p).await;
    let booking_then = booking(&app, &client, &b).await;

    // The same event again (the provider retries): the stored answer, nothing done.
    for _ in 0..3 {
        let (st, v) = signed(&app, "evt_1", pid, "succeeded").await;
        assert_eq!(
            (st, v["result"].as_str(), v["replayed"].as_bool()),
            (StatusCode::OK, Some("succeeded"), Some(true))
        );
    }
    // Another event contradicting it: the payment is settled, it stays as it is.
    let (st, v) = signed(&app, "evt_2", pid, "failed").await;
    assert_eq!((st, v["result"].as_str(), v["replayed"].as_bool()), (StatusCode::OK, Some("succeeded"), Some(false)));
    assert_eq!(settled(&app, &client, &p).await, payment_then);
    assert_eq!(booking(&app, &client, &b).await, booking_then);
    assert_eq!(transitions(&app, &b, "confirmed").await.len(), 1);
    assert_eq!(availability(&app, &event).await, (2, 3));

    // Concurrent deliveries of one event for another payment: one effect, one answer.
    let b2 = app.book(&client, &event, 1, false).await.1;
    let p2 = pay(&app, &client, &b2).await;
    let pid2 = p2["id"].as_str().expect("id");
    let answers = futures::future::join_all((0..5).map(|_| signed(&app, "evt_3", pid2, "succeeded"))).await;
    for (st, v) in &answers {
        assert_eq!((*st, v["result"].as_str()), (StatusCode::OK, Some("succeeded")), "{v}");
    }
    assert_eq!(transitions(&app, &b2, "confirmed").await.len(), 1);
    let c = app.db.client().await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM payment_webhook_events WHERE event_id = 'evt_3'", &[])
        .await
        .expect("events")
        .get(0);
    assert_eq!(n, 1);
    assert_eq!(availability(&app, &event).await, (3, 2));
}

/// An event of one ticket whose holds last one second.
async fn short_hold_event(app: &TestApp, owner: &Session) -> String {
    let kind = serde_json::to_value(engine::fixtures::event(UserId::new_v7(), "x", 1, jiff::Timestamp::now()).kind)
        .expect("json");
    let (st, v) = app
        .post("/api/v1/resources", Some(&owner.token), json!({"name": "Quick", "hold_ttl_secs": 1, "kind": kind}))
        .await;
    assert_eq!((st, v["hold_ttl_secs"].as_u64()), (StatusCode::CREATED, Some(1)), "{v}");
    v["id"].as_str().expect("id").to_owned()
}

#[actix_web::test]
async fn a_late_payment_after_the_ticket_was_taken_is_refunded_and_nothing_oversold() {
    let app = spawn_with(|s| s.payment_simulator_delay_ms = 2_500).await;
    let owner = app.register("owner").await;
    let (late, quick) = (app.register("client").await, app.register("client").await);
    let event = short_hold_event(&app, &owner).await;
    let (_, b) = app.book(&late, &event, 1, false).await;
    let p = pay(&app, &late, &b).await;
    let path = format!("/api/v1/payments/{}/outcome", p["id"].as_str().expect("id"));
    let (st, _) = app.post(&path, Some(&late.token), json!({"outcome": "succeed"})).await;
    assert_eq!(st, StatusCode::OK);
    // The hold lapses after 1 s; someone else takes the ticket before the payment arrives.
    actix_web::rt::time::sleep(Duration::from_millis(1_200)).await;
    // Paid at the desk: the owner confirms it.
    let (st, other) = app.book(&quick, &event, 1, false).await;
    assert_eq!(st, StatusCode::CREATED, "{other}");
    let desk = format!("/api/v1/bookings/{}/confirm", other["id"].as_str().expect("id"));
    let (st, other) = app.post(&desk, Some(&owner.token), json!({})).await;
    assert_eq!((st, other["status"].as_str()), (StatusCode::OK, Some("confirmed")), "{other}");

    let done = settled(&app, &late, &p).await;
    assert_eq!(
        (done["status"].as_str(), done["failure_reason"].as_str()),
        (Some("refunded"), Some("capacity gone after the hold expired")),
        "{done}"
    );
    let after = booking(&app, &late, &b).await;
    assert_eq!((after["status"].as_str(), after["payment_ref"].as_str()), (Some("expired"), None), "{after}");
    assert_eq!(availability(&app, &event).await, (1, 0), "one ticket, sold once");
    assert_eq!(booking(&app, &quick, &other).await["status"], "confirmed");
}

#[actix_web::test]
async fn a_late_payment_with_the_ticket_still_free_confirms() {
    let app = spawn_with(|s| s.payment_simulator_delay_ms = 1_500).await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let event = short_hold_event(&app, &owner).await;
    let (_, b) = app.book(&client, &event, 1, false).await;
    let p = pay(&app, &client, &b).await;
    let path = format!("/api/v1/payments/{}/outcome", p["id"].as_str().expect("id"));
    assert_eq!(app.post(&path, Some(&client.token), json!({"outcome": "succeed"})).await.0, StatusCode::OK);

    let done = settled(&app, &client, &p).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let after = booking(&app, &client, &b).await;
    assert_eq!((after["status"].as_str(), after["payment_ref"].clone()), (Some("confirmed"), p["id"].clone()));
    assert_eq!(
        transitions(&app, &b, "confirmed").await,
        vec!["late confirmation after the hold expired".to_owned()],
        "confirmed after the hold had lapsed"
    );
    assert_eq!(availability(&app, &event).await, (1, 0));
}
