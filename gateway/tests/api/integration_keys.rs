//! Integration keys: a channel manager sends a hotel's feed with a long-lived key instead of a
//! person's access token. Made by staff for their own hotels, shown once, limited to the hotels
//! it names, good for the feed only, and dead once revoked or once its owner is not staff.

use crate::dashboard::hotel;
use crate::helpers::{Session, TestApp, code, spawn_app, spawn_memory_with_admin};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn event(hotel: &str, ts: &str, night: &str) -> Value {
    json!({"hotel_id": hotel, "timestamp": ts, "rpg_status": 1, "room_id": 101, "night_of_stay": night})
}

fn statuses(v: &Value) -> Vec<String> {
    v["results"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| match r["status"].as_str() {
                    Some("rejected") => r["code"].as_str().unwrap_or("?").to_owned(),
                    other => other.unwrap_or("?").to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Makes a key; returns its id and secret.
async fn make_key(app: &TestApp, who: &Session, body: Value) -> (String, String) {
    let (st, v) = app.post("/api/v1/me/integration-keys", Some(&who.token), body).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let secret = v["key"].as_str().expect("the secret is shown once").to_owned();
    (v["id"].as_str().expect("id").to_owned(), secret)
}

#[actix_web::test]
async fn a_key_feeds_the_hotels_it_names_and_nothing_else_until_revoked() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let other = app.register("owner").await;
    let (a, _) = hotel(&app, &owner, "Keyed A").await;
    let (b, _) = hotel(&app, &owner, "Keyed B").await;
    let (foreign, _) = hotel(&app, &other, "Someone else's").await;

    let (only_a_id, only_a) = make_key(&app, &owner, json!({"name": "Channel manager A", "hotel_ids": [a]})).await;
    let (_, every) = make_key(&app, &owner, json!({"name": "All my hotels"})).await;
    assert!(only_a.starts_with("ik_") && only_a.len() == 67, "{only_a}");

    // The limited key feeds hotel A; B (the owner's, not named) and a stranger's hotel are
    // refused per event, as if they did not exist.
    let batch = json!([
        event(&a, "2028-01-01T10:00:00Z", "2028-03-01"),
        event(&b, "2028-01-01T10:00:01Z", "2028-03-01"),
        event(&foreign, "2028-01-01T10:00:02Z", "2028-03-01"),
    ]);
    let (st, v) = app.post("/api/v1/ingest", Some(&only_a), batch.clone()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(statuses(&v), ["booked", "resource_not_found", "resource_not_found"]);
    // The key without a list feeds every hotel of its owner's, and still no one else's (new
    // events: the same ones again would be replays, answered as before).
    let later = json!([
        event(&a, "2028-01-01T11:00:00Z", "2028-03-01"),
        event(&b, "2028-01-01T11:00:01Z", "2028-03-01"),
        event(&foreign, "2028-01-01T11:00:02Z", "2028-03-01"),
    ]);
    let (_, v) = app.post("/api/v1/ingest", Some(&every), later).await;
    assert_eq!(statuses(&v), ["room_night_taken", "booked", "resource_not_found"]);
    let (_, v) = app.post("/api/v1/ingest", Some(&every), batch).await;
    // A's event is a replay, answered as the first time; B's was never decided (the first key
    // could not reach B) and now meets the room-night the later batch took.
    assert_eq!(statuses(&v), ["booked", "room_night_taken", "resource_not_found"]);
    // The bookings are the owner's, as if the owner had sent them.
    let c = app.db.client().await;
    let owners: Vec<String> = c
        .query("SELECT DISTINCT user_id::text FROM bookings", &[])
        .await
        .expect("bookings")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(owners, std::slice::from_ref(&owner.user_id));

    // A key is for the feed only.
    let (st, v) = app.get(&format!("/api/v1/resources/{a}/dashboard?year=2028"), Some(&every)).await;
    assert_eq!((st, code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"), "{v}");
    let (st, _) = app.get("/api/v1/me/integration-keys", Some(&every)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // The list names both keys, never their secrets, and says when each was last used.
    let (st, v) = app.get("/api/v1/me/integration-keys", Some(&owner.token)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let items = v["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|k| k.get("key").is_none() && !k["last_used_at"].is_null()), "{v}");
    let listed_a = items.iter().find(|k| k["id"] == json!(only_a_id)).expect("key A listed");
    assert_eq!(listed_a["hotel_ids"], json!([a]));
    assert!(only_a.starts_with(listed_a["key_prefix"].as_str().expect("prefix")));
    let (_, theirs) = app.get("/api/v1/me/integration-keys", Some(&other.token)).await;
    assert_eq!(theirs["items"], json!([]), "another owner sees none of them");

    // Revoked: refused at once. Only its owner may revoke it, and only once.
    let path = format!("/api/v1/me/integration-keys/{only_a_id}");
    let (st, _) = app.send(reqwest::Method::DELETE, &path, Some(&other.token), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app.send(reqwest::Method::DELETE, &path, Some(&owner.token), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = app.send(reqwest::Method::DELETE, &path, Some(&owner.token), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, v) = app.post("/api/v1/ingest", Some(&only_a), event(&a, "2028-01-02T10:00:00Z", "2028-03-02")).await;
    assert_eq!((st, code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"), "{v}");
    // A key that looks right but was never made, or is malformed, is refused the same way.
    let forged = format!("ik_{}", "0".repeat(64));
    for k in [forged.as_str(), "ik_short"] {
        let (st, _) = app.post("/api/v1/ingest", Some(k), event(&a, "2028-01-02T10:00:00Z", "2028-03-02")).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }

    // An owner who is no longer staff: their keys stop working.
    c.execute("UPDATE users SET role = 'client' WHERE id = $1::text::uuid", &[&owner.user_id]).await.expect("demoted");
    let (st, _) = app.post("/api/v1/ingest", Some(&every), event(&b, "2028-01-02T10:00:00Z", "2028-03-02")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let stored: i64 = c.query_one("SELECT count(*) FROM bookings", &[]).await.expect("count").get(0);
    assert_eq!(stored, 2, "nothing was booked with a dead key");
}

#[actix_web::test]
async fn keys_are_made_only_by_staff_for_their_own_hotels_and_within_limits() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let other = app.register("owner").await;
    let client = app.register("client").await;
    let (mine, _) = hotel(&app, &owner, "Mine").await;
    let (theirs, _) = hotel(&app, &other, "Theirs").await;
    let event_id = app.create_event(&owner, 10).await;

    let (st, v) = app.post("/api/v1/me/integration-keys", Some(&client.token), json!({"name": "x"})).await;
    assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{v}");
    let (st, _) = app.post("/api/v1/me/integration-keys", None, json!({"name": "x"})).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // Every bad field is named: the name, and each hotel that is not a hotel of the caller's.
    let missing = uuid::Uuid::now_v7().to_string();
    let (st, v) = app
        .post(
            "/api/v1/me/integration-keys",
            Some(&owner.token),
            json!({"name": " ", "hotel_ids": [mine, theirs, event_id, missing]}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let mut fields: Vec<&str> =
        v["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
    fields.sort();
    assert_eq!(fields, ["hotel_ids[1]", "hotel_ids[2]", "hotel_ids[3]", "name"], "{v}");
    for (body, field) in [
        (json!({"name": "x", "hotel_ids": []}), "hotel_ids"),
        (json!({"name": "x".repeat(101)}), "name"),
        (json!({"name": "x", "scopes": ["all"]}), "scopes"),
    ] {
        let (st, v) = app.post("/api/v1/me/integration-keys", Some(&owner.token), body).await;
        assert!(st == StatusCode::UNPROCESSABLE_ENTITY || st == StatusCode::BAD_REQUEST, "{st} {v}");
        assert!(v.to_string().contains(field), "{field}: {v}");
    }
    let keys: i64 =
        app.db.client().await.query_one("SELECT count(*) FROM integration_keys", &[]).await.expect("n").get(0);
    assert_eq!(keys, 0, "no key from a refused request");

    // At most 20 active keys per user; revoking one makes room.
    let mut first = String::new();
    for i in 0..20 {
        let (id, _) = make_key(&app, &owner, json!({"name": format!("key {i}"), "hotel_ids": [mine]})).await;
        if i == 0 {
            first = id;
        }
    }
    let (st, v) = app.post("/api/v1/me/integration-keys", Some(&owner.token), json!({"name": "one more"})).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "too_many_keys"), "{v}");
    let (st, _) = app
        .send(reqwest::Method::DELETE, &format!("/api/v1/me/integration-keys/{first}"), Some(&owner.token), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    make_key(&app, &owner, json!({"name": "one more"})).await;
}

/// An Idempotency-Key is scoped to the credential that sent it: two channel managers that
/// happen to pick the same key never get each other's answers.
#[actix_web::test]
async fn two_keys_never_share_idempotent_replays() {
    let app = spawn_app().await;
    let (alice, bob) = (app.register("owner").await, app.register("owner").await);
    let (h, _) = hotel(&app, &alice, "Alice's").await;
    let (_, alice_key) = make_key(&app, &alice, json!({"name": "cm"})).await;
    let (_, bob_key) = make_key(&app, &bob, json!({"name": "cm"})).await;
    let send = |key: String| {
        let app = &app;
        let body = event(&h, "2028-01-05T10:00:00Z", "2028-04-01");
        async move {
            let res = app
                .http
                .post(format!("{}/api/v1/ingest", app.addr))
                .bearer_auth(key)
                .header("Idempotency-Key", "batch-1")
                .json(&body)
                .send()
                .await
                .expect("sent");
            let replayed = res.headers().contains_key("idempotent-replayed");
            (replayed, res.json::<Value>().await.expect("json"))
        }
    };
    let (replayed, v) = send(alice_key.clone()).await;
    assert_eq!((replayed, statuses(&v)), (false, vec!["booked".to_owned()]));
    let (replayed, v) = send(bob_key).await;
    assert_eq!((replayed, statuses(&v)), (false, vec!["resource_not_found".to_owned()]), "{v}");
    let (replayed, v) = send(alice_key).await;
    assert_eq!((replayed, statuses(&v)), (true, vec!["booked".to_owned()]));
}

/// Keys live in PostgreSQL: a server on the memory store says so (501) instead of pretending,
/// and refuses a key on the feed.
#[actix_web::test]
async fn without_postgres_keys_are_off_and_refused() {
    let (addr, token) = spawn_memory_with_admin().await;
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{addr}/api/v1/me/integration-keys"))
        .bearer_auth(&token)
        .json(&json!({"name": "cm"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::NOT_IMPLEMENTED);
    let v: Value = res.json().await.expect("problem");
    assert_eq!(code(&v), "integration_keys_disabled");
    let res = http
        .post(format!("{addr}/api/v1/ingest"))
        .bearer_auth(format!("ik_{}", "a".repeat(64)))
        .json(&json!([]))
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}
