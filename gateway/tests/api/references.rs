//! Owners' references (issue 15, item 11): a channel manager moving from seed 000 keeps
//! sending `{"hotel_id": 0, ...}` and reading `GET /dashboard?hotel_id=0`. A reference is
//! unique per owner, shown wherever the resource is, and resolved only among the caller's
//! own resources (admins: when it names one owner's).

use crate::helpers::{Session, TestApp, code, spawn_app_with_admin};
use engine::domain::ids::UserId;
use engine::fixtures;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A hotel (rooms 101, 102, 201) bookable through 2029, with `reference` if given.
fn hotel_body(name: &str, reference: Option<&str>) -> Value {
    let mut kind = serde_json::to_value(fixtures::hotel(UserId::new_v7(), name, "Berlin", 2, 1).kind).expect("json");
    kind["booking_horizon_days"] = json!(1100);
    let mut body = json!({"name": name, "kind": kind});
    if let Some(r) = reference {
        body["reference"] = json!(r);
    }
    body
}

async fn create(app: &TestApp, who: &Session, body: Value) -> String {
    let (st, v) = app.post("/api/v1/resources", Some(&who.token), body).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v["id"].as_str().expect("id").to_owned()
}

fn feed(hotel: Value, ts: &str, room: u32, night: &str) -> Value {
    json!({"hotel_id": hotel, "timestamp": ts, "rpg_status": 1, "room_id": room, "night_of_stay": night})
}

fn first_result(v: &Value) -> (String, Value) {
    let r = &v["results"][0];
    let status = match r["status"].as_str() {
        Some("rejected") => r["code"].as_str().unwrap_or("?").to_owned(),
        other => other.unwrap_or("?").to_owned(),
    };
    (status, r["booking_id"].clone())
}

async fn resources_of(app: &TestApp, owner: &Session) -> Vec<Value> {
    let (st, v) = app.get("/api/v1/resources?mine=true&limit=100", Some(&owner.token)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["items"].as_array().expect("items").clone()
}

#[actix_web::test]
async fn a_reference_is_unique_per_owner_shown_everywhere_and_stored() {
    let (app, admin) = spawn_app_with_admin().await;
    let owner = app.register("owner").await;
    let other = app.register("owner").await;

    let (st, v) = app.post("/api/v1/resources", Some(&owner.token), hotel_body("Ref Zero", Some("0"))).await;
    assert_eq!((st, v["reference"].as_str()), (StatusCode::CREATED, Some("0")), "{v}");
    let h = v["id"].as_str().expect("id").to_owned();

    // Shown on the resource, in listings (and found by it), in the hotel search.
    let (_, one) = app.get(&format!("/api/v1/resources/{h}"), None).await;
    assert_eq!(one["reference"], "0");
    let mine = resources_of(&app, &owner).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["reference"], "0");
    let (_, found) = app.get("/api/v1/resources?mine=true&reference=0", Some(&owner.token)).await;
    assert_eq!(found["items"].as_array().map(Vec::len), Some(1), "{found}");
    let (_, search) = app.get("/api/v1/hotels/search?city=Berlin&check_in=2028-03-01&check_out=2028-03-02", None).await;
    let hit = search["items"].as_array().expect("items").iter().find(|i| i["id"] == h.as_str()).cloned();
    assert_eq!(hit.map(|i| i["reference"].clone()), Some(json!("0")), "{search}");
    let stored: Option<String> = app
        .db
        .client()
        .await
        .query_one("SELECT reference FROM resources WHERE id = $1", &[&uuid::Uuid::parse_str(&h).expect("uuid")])
        .await
        .expect("row")
        .get(0);
    assert_eq!(stored.as_deref(), Some("0"));

    // The same owner cannot give it to a second resource (create or update); nothing is made.
    let (st, v) = app.post("/api/v1/resources", Some(&owner.token), hotel_body("Ref Zero Again", Some("0"))).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "reference_taken"), "{v}");
    assert_eq!(v["errors"][0]["field"], "reference");
    assert_eq!(resources_of(&app, &owner).await.len(), 1, "a refused create made nothing");
    let second = create(&app, &owner, hotel_body("Ref One", Some("1"))).await;
    let (st, v) =
        app.put(&format!("/api/v1/resources/{second}"), Some(&owner.token), hotel_body("Ref One", Some("0"))).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "reference_taken"), "{v}");
    let (_, still) = app.get(&format!("/api/v1/resources/{second}"), None).await;
    assert_eq!(still["reference"], "1", "a refused update changed nothing");
    // Keeping its own reference on update is no conflict; a PUT without one clears it.
    let (st, v) =
        app.put(&format!("/api/v1/resources/{h}"), Some(&owner.token), hotel_body("Ref Zero", Some("0"))).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) =
        app.put(&format!("/api/v1/resources/{second}"), Some(&owner.token), hotel_body("Ref One", None)).await;
    assert_eq!((st, v.get("reference")), (StatusCode::OK, None), "{v}");

    // Another owner may use it; an admin creating for that owner is checked against theirs.
    create(&app, &other, hotel_body("Their Zero", Some("0"))).await;
    let mut for_other = hotel_body("Admin-made", Some("0"));
    for_other["owner_id"] = json!(other.user_id);
    let (st, v) = app.post("/api/v1/resources", Some(&admin.token), for_other).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "reference_taken"), "{v}");

    // Bad references are named, never stored.
    for bad in [json!(""), json!("a b"), json!("-1"), json!("x".repeat(65)), json!(h), json!(7)] {
        let mut body = hotel_body("Bad Ref", None);
        body["reference"] = bad.clone();
        let (st, v) = app.post("/api/v1/resources", Some(&owner.token), body).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
        assert!(v["detail"].as_str().unwrap_or("").contains("reference"), "{bad}: {v}");
    }
    assert_eq!(resources_of(&app, &owner).await.len(), 2);
}

#[actix_web::test]
async fn the_feed_and_the_dashboard_take_a_reference_among_the_callers_own_hotels() {
    let (app, admin) = spawn_app_with_admin().await;
    let owner = app.register("owner").await;
    let other = app.register("owner").await;
    let client = app.register("client").await;
    let mine = create(&app, &owner, hotel_body("Seed Hotel", Some("0"))).await;
    let theirs = create(&app, &other, hotel_body("Their Hotel", Some("0"))).await;
    create(&app, &other, hotel_body("Unique", Some("berlin-1"))).await;

    // Seed 000's event, hotel_id an integer: books the owner's "0", not the other owner's.
    let (st, v) =
        app.post("/api/v1/ingest", Some(&owner.token), feed(json!(0), "2028-01-10 09:00:00", 101, "2028-02-29")).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (status, booking) = first_result(&v);
    assert_eq!(status, "booked", "{v}");
    let (_, b) = app.get(&format!("/api/v1/bookings/{}", booking.as_str().expect("id")), Some(&owner.token)).await;
    assert_eq!(b["resource_id"], mine.as_str(), "{b}");
    // The same event with the hotel as a string or as its id is the same event: a replay.
    for same in [json!("0"), json!(mine)] {
        let (_, v) = app
            .post("/api/v1/ingest", Some(&owner.token), feed(same.clone(), "2028-01-10 09:00:00", 101, "2028-02-29"))
            .await;
        assert_eq!(first_result(&v), ("booked".to_owned(), booking.clone()), "{same}: {v}");
    }
    // A reference the sender has no hotel under is an unknown hotel.
    let (_, v) = app
        .post("/api/v1/ingest", Some(&owner.token), feed(json!("berlin-1"), "2028-01-10 09:00:01", 101, "2028-03-01"))
        .await;
    assert_eq!(first_result(&v).0, "resource_not_found", "{v}");
    // An integration key acts as its owner: its "0" is the owner's.
    let (st, v) =
        app.post("/api/v1/me/integration-keys", Some(&owner.token), json!({"name": "CM", "hotel_ids": [mine]})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let key = v["key"].as_str().expect("key").to_owned();
    let (_, v) =
        app.post("/api/v1/ingest", Some(&key), feed(json!(0), "2028-01-11T09:00:00Z", 102, "2028-03-01")).await;
    assert_eq!(first_result(&v).0, "booked", "{v}");
    // The other owner's "0" is theirs.
    let (_, v) =
        app.post("/api/v1/ingest", Some(&other.token), feed(json!(0), "2028-01-12T09:00:00Z", 201, "2028-04-01")).await;
    assert_eq!(first_result(&v).0, "booked", "{v}");
    // An admin's reference must name one owner's hotel.
    let (_, v) =
        app.post("/api/v1/ingest", Some(&admin.token), feed(json!(0), "2028-01-13T09:00:00Z", 201, "2028-05-01")).await;
    assert_eq!(first_result(&v).0, "reference_ambiguous", "{v}");
    let (_, v) = app
        .post("/api/v1/ingest", Some(&admin.token), feed(json!("berlin-1"), "2028-01-13T09:00:00Z", 201, "2028-05-01"))
        .await;
    assert_eq!(first_result(&v).0, "booked", "{v}");

    // Seed 000's dashboard route, by reference or by id: the caller's own hotel's figures.
    let dash = |who: &Session, q: String| {
        let token = who.token.clone();
        let app = &app;
        async move { app.get(&format!("/api/v1/dashboard?{q}"), Some(&token)).await }
    };
    let (st, by_ref) = dash(&owner, "hotel_id=0&period=month&year=2028".into()).await;
    assert_eq!(st, StatusCode::OK, "{by_ref}");
    assert_eq!((by_ref["2028-02-01"].as_i64(), by_ref["2028-03-01"].as_i64()), (Some(1), Some(1)), "{by_ref}");
    assert_eq!(by_ref.as_object().map(|o| o.len()), Some(12));
    let (_, by_id) = dash(&owner, format!("hotel_id={mine}&period=month&year=2028")).await;
    assert_eq!(by_id, by_ref);
    let (_, seeded) =
        app.get(&format!("/api/v1/resources/{mine}/dashboard?period=month&year=2028"), Some(&owner.token)).await;
    assert_eq!(seeded, by_ref, "the same answer as the per-resource route");
    let (_, days) = dash(&owner, "hotel_id=0&year=2028".into()).await;
    assert_eq!((days.as_object().map(|o| o.len()), days["2028-02-29"].as_i64()), (Some(366), Some(1)));
    let (_, theirs_by_ref) = dash(&other, "hotel_id=0&period=month&year=2028".into()).await;
    assert_eq!((theirs_by_ref["2028-02-01"].as_i64(), theirs_by_ref["2028-04-01"].as_i64()), (Some(0), Some(1)));
    // Someone else's hotel by id is not found; so is a reference the caller does not use.
    for (who, q) in [
        (&owner, format!("hotel_id={theirs}&year=2028")),
        (&owner, "hotel_id=berlin-1&year=2028".to_owned()),
        (&client, "hotel_id=0&year=2028".to_owned()),
        (&admin, format!("hotel_id={}&year=2028", uuid::Uuid::now_v7())),
    ] {
        let (st, v) = dash(who, q.clone()).await;
        assert_eq!((st, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{q}: {v}");
    }
    let (st, v) = dash(&admin, "hotel_id=0&year=2028".into()).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "reference_ambiguous"), "{v}");
    let (st, v) = dash(&admin, format!("hotel_id={theirs}&year=2028&period=month")).await;
    assert_eq!((st, v["2028-04-01"].as_i64()), (StatusCode::OK, Some(1)), "{v}");
    let (st, _) = app.get("/api/v1/dashboard?hotel_id=0&year=2028", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // Every bad parameter is named at once.
    let (st, v) = dash(&owner, "hotel_id=a%20b&year=1999&period=week".into()).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let fields: Vec<&str> =
        v["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
    assert_eq!(fields, ["hotel_id", "year", "period"], "{v}");
    let (st, v) = dash(&owner, "year=2028".into()).await;
    assert_eq!((st, v["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("hotel_id")), "{v}");
}
