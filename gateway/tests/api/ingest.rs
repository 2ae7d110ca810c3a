//! The channel-manager feed (seed 000's events): per-event results in order, refusals that do
//! not refuse the batch, cancellations of unknown bookings reported, replays that answer the
//! same and write nothing, limits, roles, and concurrent batches that never double-book.

use crate::dashboard::hotel;
use crate::helpers::{TestApp, code, spawn_app};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn event(hotel: &str, ts: &str, status: u8, room: Value, night: &str) -> Value {
    json!({"hotel_id": hotel, "timestamp": ts, "rpg_status": status, "room_id": room, "night_of_stay": night})
}

fn statuses(v: &Value) -> Vec<String> {
    v["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| match r["status"].as_str() {
            Some("rejected") => r["code"].as_str().unwrap_or("?").to_owned(),
            other => other.unwrap_or("?").to_owned(),
        })
        .collect()
}

async fn rows(app: &TestApp) -> (i64, i64, i64) {
    let c = app.db.client().await;
    let r = c
        .query_one(
            "SELECT (SELECT count(*) FROM bookings), (SELECT count(*) FROM booking_history),
                    (SELECT count(*) FROM idempotency_keys)",
            &[],
        )
        .await
        .expect("count");
    (r.get(0), r.get(1), r.get(2))
}

#[actix_web::test]
async fn events_book_refuse_and_cancel_one_by_one_and_replays_answer_the_same() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let other = app.register("owner").await;
    let (h, _) = hotel(&app, &owner, "Feed A").await;
    let (foreign, _) = hotel(&app, &other, "Feed B").await;

    // One event, as seed 000 sends it (room by number, a timestamp without offset).
    let one = event(&h, "2028-01-10 09:00:00", 1, json!(101), "2028-02-29");
    let (st, v) = app.post("/api/v1/ingest", Some(&owner.token), one.clone()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(statuses(&v), ["booked"]);
    let first_id = v["results"][0]["booking_id"].clone();

    let batch = json!([
        event(&h, "2028-01-10T10:00:00Z", 1, json!("101"), "2028-02-29"),
        event(&h, "2028-01-10T10:00:01Z", 2, json!(102), "2028-02-29"),
        event(&h, "2028-01-10T10:00:02Z", 1, json!(999), "2028-02-29"),
        event(&h, "2028-01-10T10:00:03Z", 1, json!(102), "2028-02-28"),
        event(&h, "2028-01-10T10:00:04Z", 2, json!(101), "2028-02-29"),
        event(&h, "2028-01-10T10:00:05Z", 1, json!("101"), "2028-02-29"),
        event(&foreign, "2028-01-10T10:00:06Z", 1, json!(101), "2028-02-29"),
        event(&h, "2028-01-10T10:00:07Z", 1, json!(201), "2020-02-29"),
    ]);
    let (st, v) = app.post("/api/v1/ingest", Some(&owner.token), batch.clone()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        statuses(&v),
        [
            "room_night_taken",
            "booking_not_found",
            "room_not_found",
            "booked",
            "cancelled",
            "booked",
            "resource_not_found",
            "too_soon"
        ]
    );
    assert_eq!((v["booked"].as_u64(), v["cancelled"].as_u64(), v["rejected"].as_u64()), (Some(2), Some(1), Some(5)));
    let idx: Vec<u64> = v["results"].as_array().expect("results").iter().filter_map(|r| r["index"].as_u64()).collect();
    assert_eq!(idx, (0..8).collect::<Vec<u64>>());
    assert_eq!(v["results"][4]["booking_id"], first_id, "the cancellation names the booking it cancelled");
    let first_answer = v.clone();

    // The dashboard: the leap night was booked, cancelled and booked again; the 28th booked.
    let (_, d) = app.get(&format!("/api/v1/resources/{h}/dashboard?year=2028&period=month"), Some(&owner.token)).await;
    assert_eq!(d["2028-02-01"], 2);
    let (_, c) = app
        .get(&format!("/api/v1/resources/{h}/dashboard?year=2028&period=day&series=cancelled"), Some(&owner.token))
        .await;
    assert_eq!(c["2028-02-29"], 1);

    // Replays: the same answers, not a row more (the first event's booking is cancelled and
    // out of the actor's memory by now: it is found in the store).
    let before = rows(&app).await;
    let (_, v) = app.post("/api/v1/ingest", Some(&owner.token), one).await;
    assert_eq!((statuses(&v), v["results"][0]["booking_id"].clone()), (vec!["booked".to_owned()], first_id));
    let (_, v) = app.post("/api/v1/ingest", Some(&owner.token), batch).await;
    assert_eq!(v, first_answer);
    assert_eq!(rows(&app).await, before, "a replay writes nothing");
    let (_, d2) = app.get(&format!("/api/v1/resources/{h}/dashboard?year=2028&period=month"), Some(&owner.token)).await;
    assert_eq!(d2, d);
}

#[actix_web::test]
async fn bad_feeds_are_refused_whole_with_the_field_named() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let (h, _) = hotel(&app, &owner, "Feed C").await;
    let good = event(&h, "2028-01-10T10:00:00Z", 1, json!(101), "2028-03-01");

    let (st, v) = app.post("/api/v1/ingest", Some(&client.token), good.clone()).await;
    assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    let (st, _) = app.post("/api/v1/ingest", None, good.clone()).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    let too_many: Vec<Value> = (0..1001)
        .map(|i| event(&h, &format!("2028-01-10T10:00:{:02}Z", i % 60), 1, json!(101), "2028-03-01"))
        .collect();
    let (st, v) = app.post("/api/v1/ingest", Some(&owner.token), json!(too_many)).await;
    assert_eq!((st, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{v}");
    let (st, v) = app.post("/api/v1/ingest", Some(&owner.token), json!([])).await;
    assert_eq!((st, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{v}");

    let mut bad = good.clone();
    bad["rpg_status"] = json!(3);
    bad["timestamp"] = json!("yesterday");
    let (st, v) = app.post("/api/v1/ingest", Some(&owner.token), json!([good.clone(), bad])).await;
    assert_eq!((st, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{v}");
    let fields: Vec<&str> =
        v["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
    assert_eq!(fields, ["[1].rpg_status", "[1].timestamp"]);
    let mut bad = good.clone();
    bad["night_of_stay"] = json!("2028-02-30");
    let (st, v) = app.post("/api/v1/ingest", Some(&owner.token), bad).await;
    assert_eq!(
        (st, v["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("night_of_stay")),
        "{v}"
    );
    let (st, v) = app.post("/api/v1/ingest", Some(&owner.token), json!("text")).await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "malformed_json"), "{v}");
    let res = app
        .http
        .post(format!("{}/api/v1/ingest", app.addr))
        .bearer_auth(&owner.token)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Nothing of the refused requests was written.
    let (_, d) = app.get(&format!("/api/v1/resources/{h}/dashboard?year=2028&period=month"), Some(&owner.token)).await;
    assert_eq!(d["2028-03-01"], 0);
}

#[actix_web::test]
async fn concurrent_batches_on_the_same_room_nights_never_double_book() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let (h, _) = hotel(&app, &owner, "Feed Race").await;
    let nights: Vec<String> = (1..=20).map(|d| format!("2028-07-{d:02}")).collect();
    // 8 senders, each booking every room-night (3 rooms × 20 nights) as its own events, in
    // its own order, in batches of 30.
    let senders = (0..8).map(|s| {
        let mut evs = Vec::new();
        for n in &nights {
            for room in [101, 102, 201] {
                evs.push(event(&h, &format!("2028-01-01T00:00:{s:02}Z"), 1, json!(room), n));
            }
        }
        if s % 2 == 1 {
            evs.reverse();
        }
        evs
    });
    let posts = senders.flat_map(|evs| {
        evs.chunks(30)
            .map(|c| {
                let body = json!(c);
                let (app, token) = (&app, owner.token.clone());
                async move { app.post("/api/v1/ingest", Some(&token), body).await }
            })
            .collect::<Vec<_>>()
    });
    let answers = join_all(posts).await;
    let mut booked = 0;
    for (st, v) in &answers {
        assert_eq!(*st, StatusCode::OK, "{v}");
        for s in statuses(v) {
            match s.as_str() {
                "booked" => booked += 1,
                "room_night_taken" => {}
                other => panic!("unexpected result {other}"),
            }
        }
    }
    assert_eq!(booked, 60, "each room-night is booked exactly once");
    let c = app.db.client().await;
    let r = c
        .query_one(
            "SELECT count(*), count(DISTINCT (room_id, check_in)) FROM bookings
             WHERE resource_id = $1::text::uuid AND status IN ('held', 'confirmed')",
            &[&h],
        )
        .await
        .expect("count");
    let (active, distinct): (i64, i64) = (r.get(0), r.get(1));
    assert_eq!((active, distinct), (60, 60), "never two active bookings on one room-night");
    let (_, d) = app.get(&format!("/api/v1/resources/{h}/dashboard?year=2028&period=month"), Some(&owner.token)).await;
    assert_eq!(d["2028-07-01"], 60);
}
