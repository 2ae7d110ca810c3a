//! The role rules (seed 003): owners act only on their own resources, clients only on their
//! own bookings, owners cannot book, clients cannot change resources. Someone else's booking
//! or resource answers 404, never 403, so existence does not leak.

use crate::helpers::{code, spawn_app_with_admin};
use reqwest::StatusCode;
use serde_json::json;

#[actix_web::test]
async fn owners_clients_and_admins_each_see_and_change_only_what_they_may() {
    let (app, admin) = spawn_app_with_admin().await;
    let owner_a = app.register("owner").await;
    let owner_b = app.register("owner").await;
    let alice = app.register("client").await;
    let bob = app.register("client").await;
    let event = app.create_event(&owner_a, 10).await;

    // A client cannot change resources.
    let kind = json!({"type": "event"});
    let (st, v) = app.post("/api/v1/resources", Some(&alice.token), json!({"name": "Mine", "kind": kind})).await;
    assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    // An owner cannot create bookings, nor join waitlists: refused for the role, before the
    // body is even looked at.
    let (st, v) = app.book(&owner_a, &event, 1, false).await;
    assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    let (st, v) = app.post("/api/v1/waitlist", Some(&owner_a.token), json!({"not": "a wish"})).await;
    assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{v}");
    // A client cannot book for someone else: there is no way to say so.
    let (st, v) = app
        .post(
            "/api/v1/bookings",
            Some(&alice.token),
            json!({"resource_id": event, "user_id": bob.user_id, "request": {"kind": "tickets", "quantity": 1}}),
        )
        .await;
    assert_eq!((st, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{v}");

    let (st, v) = app.book(&alice, &event, 2, false).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let booking = v["id"].as_str().expect("id").to_owned();
    assert_eq!(v["user_id"].as_str(), Some(alice.user_id.as_str()));

    // The booking: its client, its resource's owner and admins see it; nobody else.
    for (who, expected) in [
        (&alice, StatusCode::OK),
        (&owner_a, StatusCode::OK),
        (&admin, StatusCode::OK),
        (&bob, StatusCode::NOT_FOUND),
        (&owner_b, StatusCode::NOT_FOUND),
    ] {
        let (st, v) = app.get(&format!("/api/v1/bookings/{booking}"), Some(&who.token)).await;
        assert_eq!(st, expected, "{v}");
    }
    // Bob cannot cancel it either (and learns nothing about it).
    let (st, _) = app.post(&format!("/api/v1/bookings/{booking}/cancel"), Some(&bob.token), json!({})).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // The resource's bookings: its owner and admins; another owner gets 404, a client too.
    for (who, expected) in [
        (&owner_a, StatusCode::OK),
        (&admin, StatusCode::OK),
        (&owner_b, StatusCode::NOT_FOUND),
        (&alice, StatusCode::NOT_FOUND),
    ] {
        let (st, v) = app.get(&format!("/api/v1/resources/{event}/bookings"), Some(&who.token)).await;
        assert_eq!(st, expected, "{v}");
        if st == StatusCode::OK {
            assert_eq!(v["items"].as_array().map(Vec::len), Some(1));
        }
    }
    // Only the owner (or an admin) changes the resource; another owner gets 404.
    let (_, current) = app.get(&format!("/api/v1/resources/{event}"), None).await;
    let update = json!({"name": "Renamed", "kind": current["spec"]});
    let (st, _) = app.put(&format!("/api/v1/resources/{event}"), Some(&owner_b.token), update.clone()).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app.put(&format!("/api/v1/resources/{event}"), Some(&alice.token), update.clone()).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, v) = app.put(&format!("/api/v1/resources/{event}"), Some(&owner_a.token), update).await;
    assert_eq!((st, v["name"].as_str()), (StatusCode::OK, Some("Renamed")), "{v}");

    // Lists are scoped the same way: each client sees their own, an owner their resources'.
    let (_, v) = app.get("/api/v1/bookings", Some(&bob.token)).await;
    assert_eq!(v["items"].as_array().map(Vec::len), Some(0));
    let (_, v) = app.get("/api/v1/bookings", Some(&alice.token)).await;
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1));
    let (_, v) = app.get("/api/v1/bookings", Some(&owner_b.token)).await;
    assert_eq!(v["items"].as_array().map(Vec::len), Some(0));
    let (_, v) = app.get("/api/v1/bookings", Some(&owner_a.token)).await;
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1));
}
