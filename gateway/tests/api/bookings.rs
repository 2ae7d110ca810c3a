//! Booking flows over HTTP: lifecycle, idempotency, waitlist, hotels and appointments.

use crate::helpers::{code, spawn_app};
use engine::domain::ids::UserId;
use reqwest::StatusCode;
use serde_json::json;

#[actix_web::test]
async fn hold_confirm_cancel_and_list() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let event = app.create_event(&owner, 5).await;
    let (st, b) = app.book(&client, &event, 2, false).await;
    assert_eq!((st, b["status"].as_str()), (StatusCode::CREATED, Some("held")), "{b}");
    assert!(b["hold_expires_at"].is_string());
    let id = b["id"].as_str().expect("id");
    let (st, v) =
        app.post(&format!("/api/v1/bookings/{id}/confirm"), Some(&client.token), json!({"payment_ref": "pay_1"})).await;
    assert_eq!((st, v["status"].as_str()), (StatusCode::OK, Some("confirmed")), "{v}");
    let (st, v) = app.post(&format!("/api/v1/bookings/{id}/confirm"), Some(&client.token), json!({})).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "already_confirmed"));
    // Cancel with an empty body (no reason).
    let res = app
        .http
        .post(format!("{}/api/v1/bookings/{id}/cancel", app.addr))
        .bearer_auth(&client.token)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::OK);
    let (_, v) = app.get(&format!("/api/v1/resources/{event}"), None).await;
    assert_eq!(v["availability"]["remaining"], 5, "cancelling gave the tickets back: {v}");
    let (st, v) = app.get("/api/v1/bookings?status=cancelled", Some(&client.token)).await;
    assert_eq!((st, v["items"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)));
    let (_, v) = app.get("/api/v1/bookings?status=held,confirmed", Some(&client.token)).await;
    assert_eq!(v["items"].as_array().map(Vec::len), Some(0));
}

#[actix_web::test]
async fn my_bookings_split_into_upcoming_and_past() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let (over, ahead) = (app.create_event(&owner, 5).await, app.create_event(&owner, 5).await);
    let (_, a) = app.book(&client, &over, 1, true).await;
    let (_, b) = app.book(&client, &ahead, 1, true).await;
    // The first event took place (only the listing reads these rows; the actor is not asked).
    let c = app.db.client().await;
    let moved = c
        .execute(
            "UPDATE events SET starts_at = now() - interval '3 hours', ends_at = now() - interval '1 hour'
             WHERE resource_id = $1::text::uuid",
            &[&over],
        )
        .await
        .expect("move the event");
    assert_eq!(moved, 1);
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["items"].as_array().expect("items").iter().filter_map(|b| b["id"].as_str().map(str::to_owned)).collect()
    };
    let (a, b) = (a["id"].as_str().expect("id").to_owned(), b["id"].as_str().expect("id").to_owned());
    let (st, v) = app.get("/api/v1/bookings?when=past", Some(&client.token)).await;
    assert_eq!((st, ids(&v)), (StatusCode::OK, vec![a.clone()]), "{v}");
    let (st, v) = app.get("/api/v1/bookings?when=upcoming&status=confirmed", Some(&client.token)).await;
    assert_eq!((st, ids(&v)), (StatusCode::OK, vec![b.clone()]), "{v}");
    let (_, v) = app.get("/api/v1/bookings", Some(&client.token)).await;
    assert_eq!(ids(&v), vec![b.clone(), a], "newest first, both");
    // The owner's listing takes the same filter.
    let (_, v) = app.get("/api/v1/bookings?when=upcoming", Some(&owner.token)).await;
    assert_eq!(ids(&v), vec![b]);
    let (st, v) = app.get("/api/v1/bookings?when=soon", Some(&client.token)).await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "invalid_query"), "{v}");
    assert!(v["detail"].as_str().is_some_and(|d| d.contains("upcoming")), "says what is allowed: {v}");
}

#[actix_web::test]
async fn pages_follow_the_cursor_without_gaps_or_repeats() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let event = app.create_event(&owner, 50).await;
    let mut made = Vec::new();
    for _ in 0..7 {
        let (_, b) = app.book(&client, &event, 1, true).await;
        made.push(b["id"].as_str().expect("id").to_owned());
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/bookings?limit=3".to_owned();
    loop {
        let (st, v) = app.get(&path, Some(&client.token)).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        for b in v["items"].as_array().expect("items") {
            seen.push(b["id"].as_str().expect("id").to_owned());
        }
        match v["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/bookings?limit=3&cursor={c}"),
            None => break,
        }
    }
    made.reverse();
    assert_eq!(seen, made, "newest first, each exactly once");
}

#[actix_web::test]
async fn idempotency_key_replays_the_first_answer_and_refuses_another_body() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let event = app.create_event(&owner, 5).await;
    let send = |q: u32| {
        app.http
            .post(format!("{}/api/v1/bookings", app.addr))
            .bearer_auth(&client.token)
            .header("idempotency-key", "order-42")
            .json(&json!({"resource_id": event, "request": {"kind": "tickets", "quantity": q}}))
            .send()
    };
    let first: serde_json::Value = send(2).await.expect("send").json().await.expect("json");
    let again = send(2).await.expect("send");
    assert_eq!(again.status(), StatusCode::CREATED);
    let again: serde_json::Value = again.json().await.expect("json");
    assert_eq!(first["id"], again["id"], "the replay names the same booking");
    let (_, v) = app.get(&format!("/api/v1/resources/{event}"), None).await;
    assert_eq!(v["availability"]["taken"], 2, "and takes nothing more");
    let other = send(3).await.expect("send");
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let other: serde_json::Value = other.json().await.expect("json");
    assert_eq!(code(&other), "idempotency_key_reused");
}

#[actix_web::test]
async fn sold_out_waitlist_offer_and_accept() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let first = app.register("client").await;
    let waiting = app.register("client").await;
    let event = app.create_event(&owner, 1).await;
    let (_, b) = app.book(&first, &event, 1, true).await;
    let booking = b["id"].as_str().expect("id").to_owned();
    let (st, v) = app.book(&waiting, &event, 1, false).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "sold_out"));
    let (st, entry) = app
        .post(
            "/api/v1/waitlist",
            Some(&waiting.token),
            json!({"resource_id": event, "wish": {"kind": "tickets", "quantity": 1}}),
        )
        .await;
    assert_eq!((st, entry["status"].as_str()), (StatusCode::CREATED, Some("waiting")), "{entry}");
    let entry_id = entry["id"].as_str().expect("id").to_owned();
    // The first client cancels: the ticket is offered to the waiting one, nobody else.
    let (st, _) =
        app.post(&format!("/api/v1/bookings/{booking}/cancel"), Some(&first.token), json!({"reason": "ill"})).await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = app.book(&first, &event, 1, false).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "sold_out"), "the offer holds the freed ticket");
    let (_, mine) = app.get("/api/v1/waitlist", Some(&waiting.token)).await;
    assert_eq!(mine["items"][0]["status"], "offered", "{mine}");
    let (st, v) = app.post(&format!("/api/v1/waitlist/{entry_id}/accept"), Some(&waiting.token), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["booking"]["status"], "confirmed");
    // Another client cannot touch someone else's entry.
    let (st, _) = app.post(&format!("/api/v1/waitlist/{entry_id}/decline"), Some(&first.token), json!({})).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn hotel_search_shows_free_rooms_and_prices_and_books_a_stay() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let spec = engine::fixtures::hotel(UserId::new_v7(), "Search", "Porto", 2, 1);
    let engine::domain::spec::KindSpec::Hotel(h) = &spec.kind else { unreachable!() };
    let double = h.room_types[0].id;
    let hotel = app.create_resource(&owner, "Ribeira Inn", serde_json::to_value(&spec.kind).expect("json")).await;
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::get("Europe/Berlin").expect("tz")).date();
    let ci = today.checked_add(jiff::Span::new().days(10)).expect("date");
    let co = today.checked_add(jiff::Span::new().days(13)).expect("date");
    let search = format!("/api/v1/hotels/search?city=PORTO&check_in={ci}&check_out={co}&guests=2");
    let (st, v) = app.get(&search, None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let doubles = &v["items"][0]["room_types"][0];
    assert_eq!(
        (doubles["free_rooms"].as_u64(), doubles["total_price"]["amount_minor"].as_i64()),
        (Some(2), Some(30_000)),
        "{v}"
    );
    let (st, b) = app
        .post(
            "/api/v1/bookings",
            Some(&client.token),
            json!({"resource_id": hotel, "request": {"kind": "stay", "room_type_id": double, "check_in": ci, "check_out": co, "guests": 2}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let (_, v) = app.get(&search, None).await;
    assert_eq!(v["items"][0]["room_types"][0]["free_rooms"], 1);
}

#[actix_web::test]
async fn provider_slots_and_appointments() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let kind = serde_json::to_value(engine::fixtures::provider(UserId::new_v7(), "x").kind).expect("json");
    let provider = app.create_resource(&owner, "Dr. Slot", kind).await;
    let tz = jiff::tz::TimeZone::get("Europe/Berlin").expect("tz");
    let mut day = jiff::Timestamp::now().to_zoned(tz).date().checked_add(jiff::Span::new().days(2)).expect("date");
    while matches!(day.weekday(), jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday) {
        day = day.tomorrow().expect("date");
    }
    let (st, v) = app.get(&format!("/api/v1/providers/{provider}/slots?date={day}"), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let slots = v["slots"].as_array().expect("slots");
    assert_eq!(slots.len(), 14, "09-12 and 13-17 in 30-minute slots: 6 + 8: {v}");
    assert!(
        slots[0]["local_start"]
            .as_str()
            .is_some_and(|s| s.ends_with("T09:00:00+01:00") || s.ends_with("T09:00:00+02:00"))
    );
    let start = slots[0]["starts_at"].clone();
    let (st, b) = app
        .post(
            "/api/v1/bookings",
            Some(&client.token),
            json!({"resource_id": provider, "request": {"kind": "appointment", "starts_at": start}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    // Off the grid: a clear code.
    let off = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).expect("ts");
    let (st, v) = app
        .post(
            "/api/v1/bookings",
            Some(&client.token),
            json!({"resource_id": provider, "request": {"kind": "appointment", "starts_at": off}}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
}

/// A priced booking is confirmed by a succeeded payment, by the resource's owner (a payment taken
/// on site) or by an admin; never by its client's own confirm, in any form.
#[actix_web::test]
async fn a_client_cannot_confirm_a_priced_booking_without_paying() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let other_owner = app.register("owner").await;
    let client = app.register("client").await;
    let event = app.create_priced_event(&owner, 5).await;
    let (st, b) = app.book(&client, &event, 1, false).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let id = b["id"].as_str().expect("id").to_owned();
    let confirm = format!("/api/v1/bookings/{id}/confirm");
    for body in [json!({}), json!({"payment_ref": "pay_12345"})] {
        let (st, v) = app.post(&confirm, Some(&client.token), body).await;
        assert_eq!((st, code(&v)), (StatusCode::PAYMENT_REQUIRED, "payment_required"), "{v}");
    }
    assert_eq!(app.get(&format!("/api/v1/bookings/{id}"), Some(&client.token)).await.1["status"], "held");
    // `confirm: true` is the same hole: refused, and nothing is written.
    let (st, v) = app.book(&client, &event, 1, true).await;
    assert_eq!((st, code(&v)), (StatusCode::PAYMENT_REQUIRED, "payment_required"), "{v}");
    let c = app.db.client().await;
    let rows: i64 = c.query_one("SELECT count(*) FROM bookings", &[]).await.expect("count").get(0);
    assert_eq!(rows, 1, "only the hold");
    // Another owner does not see it; the resource's owner records a payment at the desk.
    let (st, _) = app.post(&confirm, Some(&other_owner.token), json!({})).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, v) = app.post(&confirm, Some(&owner.token), json!({})).await;
    assert_eq!(
        (st, v["status"].as_str(), v["payment_ref"].as_str()),
        (StatusCode::OK, Some("confirmed"), Some("on_site")),
        "{v}"
    );
    let bid = uuid::Uuid::parse_str(&id).expect("uuid");
    let row = c
        .query_one(
            "SELECT status, payment_ref, (SELECT reason FROM booking_history WHERE booking_id = $1 ORDER BY at DESC LIMIT 1)
             FROM bookings WHERE id = $1",
            &[&bid],
        )
        .await
        .expect("row");
    let (status, pref, reason): (String, Option<String>, String) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((status.as_str(), pref.as_deref()), ("confirmed", Some("on_site")));
    assert_eq!(reason, "payment taken on site, confirmed by the owner");
}

#[actix_web::test]
async fn an_expired_priced_hold_cannot_be_confirmed_by_its_client_either() {
    let app = crate::helpers::spawn_with(|_| {}).await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let mut kind = serde_json::to_value(engine::fixtures::event(UserId::new_v7(), "x", 5, jiff::Timestamp::now()).kind)
        .expect("json");
    kind["max_per_booking"] = json!(5);
    let (st, v) = app
        .post("/api/v1/resources", Some(&owner.token), json!({"name": "Short holds", "hold_ttl_secs": 1, "kind": kind}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let event = v["id"].as_str().expect("id").to_owned();
    let (_, b) = app.book(&client, &event, 1, false).await;
    let id = b["id"].as_str().expect("id").to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let (st, v) = app.post(&format!("/api/v1/bookings/{id}/confirm"), Some(&client.token), json!({})).await;
    assert_eq!((st, code(&v)), (StatusCode::PAYMENT_REQUIRED, "payment_required"), "{v}");
    let (_, v) = app.get(&format!("/api/v1/bookings/{id}"), Some(&client.token)).await;
    assert_ne!(v["status"], "confirmed", "{v}");
}

#[actix_web::test]
async fn a_client_confirms_a_free_booking() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let event = app.create_event(&owner, 5).await;
    let (st, b) = app.book(&client, &event, 1, false).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let (st, v) = app
        .post(&format!("/api/v1/bookings/{}/confirm", b["id"].as_str().expect("id")), Some(&client.token), json!({}))
        .await;
    assert_eq!((st, v["status"].as_str()), (StatusCode::OK, Some("confirmed")), "{v}");
    let (st, v) = app.book(&client, &event, 1, true).await;
    assert_eq!((st, v["status"].as_str()), (StatusCode::CREATED, Some("confirmed")), "{v}");
}
