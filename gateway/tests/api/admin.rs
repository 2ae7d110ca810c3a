//! The admin API: only admins (403 for everyone else, before the body), force-confirm, refunds
//! of cancelled paid bookings, and an overview whose numbers match what was created.

use crate::helpers::{Session, TestApp, code, session, spawn_with};
use engine::domain::ids::UserId;
use gateway::configuration::Secret;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

async fn with_admin() -> (TestApp, Session) {
    let app = spawn_with(|s| {
        s.admin_email = Some("root@example.com".into());
        s.admin_password = Some(Secret::new("admin password 123"));
    })
    .await;
    let (st, v) = app
        .post("/api/v1/auth/login", None, json!({"email": "root@example.com", "password": "admin password 123"}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    (app, session(&v))
}

async fn raw_post(app: &TestApp, path: &str, token: Option<&str>, body: &'static str) -> (StatusCode, Value) {
    let mut rb = app.http.post(format!("{}{path}", app.addr)).header("content-type", "application/json").body(body);
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    let res = rb.send().await.expect("sent");
    let st = res.status();
    (st, res.json().await.unwrap_or(Value::Null))
}

#[actix_web::test]
async fn only_admins_reach_the_admin_api() {
    let (app, admin) = with_admin().await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let event = app.create_event(&owner, 5).await;
    let (_, b) = app.book(&client, &event, 1, false).await;
    let id = b["id"].as_str().expect("id");
    let confirm = format!("/api/v1/admin/bookings/{id}/confirm");
    let refund = format!("/api/v1/admin/bookings/{id}/refund");

    for who in [&client, &owner] {
        // Refused before the (malformed) body is read.
        for path in [&confirm, &refund] {
            let (st, v) = raw_post(&app, path, Some(&who.token), "{not json").await;
            assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{path}: {v}");
        }
        let (st, v) = app.get("/api/v1/admin/overview", Some(&who.token)).await;
        assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    }
    let (st, _) = app.get("/api/v1/admin/overview", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get(&format!("/api/v1/bookings/{id}"), Some(&client.token)).await.1["status"], "held");
    assert_eq!(app.get("/api/v1/admin/overview", Some(&admin.token)).await.0, StatusCode::OK);
}

#[actix_web::test]
async fn admins_force_confirm_a_hold() {
    let (app, admin) = with_admin().await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let event = app.create_event(&owner, 5).await;
    let (_, b) = app.book(&client, &event, 2, false).await;
    let path = format!("/api/v1/admin/bookings/{}/confirm", b["id"].as_str().expect("id"));
    // No body at all is fine.
    let res = app.http.post(format!("{}{path}", app.addr)).bearer_auth(&admin.token).send().await.expect("sent");
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.expect("json");
    assert_eq!((v["status"].as_str(), v["payment_ref"].as_str()), (Some("confirmed"), None), "{v}");
    let (st, v) = app.post(&path, Some(&admin.token), json!({})).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "already_confirmed"));
    let (st, v) = app.get(&format!("/api/v1/bookings/{}", b["id"].as_str().expect("id")), Some(&client.token)).await;
    assert_eq!((st, v["status"].as_str()), (StatusCode::OK, Some("confirmed")));
    let (st, v) = app
        .post(&format!("/api/v1/admin/bookings/{}/confirm", uuid::Uuid::now_v7()), Some(&admin.token), json!({}))
        .await;
    assert_eq!((st, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
}

#[actix_web::test]
async fn refunds_only_for_cancelled_paid_bookings() {
    let (app, admin) = with_admin().await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let event = app.create_priced_event(&owner, 5).await;
    let refund = |b: &Value| format!("/api/v1/admin/bookings/{}/refund", b["id"].as_str().expect("id"));
    let cancel = |b: &Value| format!("/api/v1/bookings/{}/cancel", b["id"].as_str().expect("id"));

    // Paid through the simulated provider.
    let (_, paid) = app.book(&client, &event, 2, false).await;
    let (st, p) = app.post("/api/v1/payments", Some(&client.token), json!({"booking_id": paid["id"]})).await;
    assert_eq!(st, StatusCode::CREATED, "{p}");
    let payment = format!("/api/v1/payments/{}", p["id"].as_str().expect("id"));
    let mut confirmed = false;
    for _ in 0..100 {
        let (_, b) =
            app.get(&format!("/api/v1/bookings/{}", paid["id"].as_str().expect("id")), Some(&client.token)).await;
        if b["status"] == "confirmed" {
            confirmed = true;
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(confirmed, "the payment confirmed the booking within 5 s");
    let amount = paid["amount"]["amount_minor"].as_i64().expect("amount");
    assert!(amount > 1, "{paid}");

    // Confirmed, not cancelled: not refundable.
    let (st, v) = app.post(&refund(&paid), Some(&admin.token), json!({"amount_minor": 1})).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "not_refundable"), "{v}");
    assert_eq!(app.post(&cancel(&paid), Some(&client.token), json!({"reason": "ill"})).await.0, StatusCode::OK);
    let (st, v) = app.post(&refund(&paid), Some(&admin.token), json!({"amount_minor": amount + 1})).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "refund_too_large"), "{v}");
    let (st, v) = app.post(&refund(&paid), Some(&admin.token), json!({"amount_minor": 0})).await;
    assert_eq!((st, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{v}");
    let (st, v) = app.post(&refund(&paid), Some(&admin.token), json!({"amount_minor": 1})).await;
    assert_eq!((st, v["refunded_minor"].as_i64()), (StatusCode::OK, Some(1)), "{v}");
    assert_eq!(app.get(&payment, Some(&client.token)).await.1["status"], "succeeded", "refunded in part only");
    let (st, v) = app.post(&refund(&paid), Some(&admin.token), json!({"amount_minor": amount - 1})).await;
    assert_eq!((st, v["refunded_minor"].as_i64()), (StatusCode::OK, Some(amount)), "{v}");
    let (_, p) = app.get(&payment, Some(&client.token)).await;
    assert_eq!(p["status"], "refunded", "refunded in full: {p}");
    let (st, v) = app.post(&refund(&paid), Some(&admin.token), json!({"amount_minor": 1})).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "refund_too_large"), "{v}");

    // Cancelled but never paid: nothing to refund.
    let (_, unpaid) = app.book(&client, &event, 1, false).await;
    let force = format!("/api/v1/admin/bookings/{}/confirm", unpaid["id"].as_str().expect("id"));
    assert_eq!(app.post(&force, Some(&admin.token), json!({})).await.0, StatusCode::OK);
    assert_eq!(app.post(&cancel(&unpaid), Some(&client.token), json!({})).await.0, StatusCode::OK);
    let (st, v) = app.post(&refund(&unpaid), Some(&admin.token), json!({"amount_minor": 1})).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "not_refundable"), "{v}");
}

#[actix_web::test]
async fn the_overview_counts_what_was_created() {
    let (app, admin) = with_admin().await;
    let owner = app.register("owner").await;
    let clients = [
        app.register("client").await,
        app.register("client").await,
        app.register("client").await,
        app.register("client").await,
    ];
    let five = app.create_event(&owner, 5).await;
    let three = app.create_event(&owner, 3).await;
    let kind = serde_json::to_value(engine::fixtures::provider(UserId::new_v7(), "x").kind).expect("json");
    app.create_resource(&owner, "Dr. Overview", kind).await;

    assert_eq!(app.book(&clients[0], &five, 2, false).await.0, StatusCode::CREATED);
    assert_eq!(app.book(&clients[1], &three, 3, true).await.0, StatusCode::CREATED);
    let (_, gone) = app.book(&clients[3], &five, 1, false).await;
    let release = format!("/api/v1/bookings/{}/release", gone["id"].as_str().expect("id"));
    assert_eq!(app.post(&release, Some(&clients[3].token), json!({})).await.0, StatusCode::OK);
    let (st, v) = app
        .post(
            "/api/v1/waitlist",
            Some(&clients[2].token),
            json!({"resource_id": three, "wish": {"kind": "tickets", "quantity": 1}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");

    let (st, v) = app.get("/api/v1/admin/overview", Some(&admin.token)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({
            "resources": {"hotel": 0, "event": 2, "provider": 1, "total": 3},
            "active_resources": 3,
            "bookings": {"held": {"bookings": 1, "units": 2}, "confirmed": {"bookings": 1, "units": 3}},
            "waitlist": {"waiting": 1, "offered": 0},
        })
    );
}
