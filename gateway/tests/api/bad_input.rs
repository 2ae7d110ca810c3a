//! Bad input is a 4xx problem+json with a clear message (and a field where there is one),
//! never a 500.

use crate::helpers::{TestApp, code, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn raw(app: &TestApp, token: &str, content_type: Option<&str>, body: Vec<u8>) -> (StatusCode, Value) {
    let mut rb = app.http.post(format!("{}/api/v1/bookings", app.addr)).bearer_auth(token).body(body);
    if let Some(ct) = content_type {
        rb = rb.header("content-type", ct);
    }
    let res = rb.send().await.expect("send");
    let st = res.status();
    assert_eq!(
        res.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "errors are problem+json"
    );
    (st, res.json().await.expect("json"))
}

fn fields(v: &Value) -> Vec<String> {
    v["errors"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["field"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[actix_web::test]
async fn malformed_wrong_typed_oversized_and_absurd_requests_are_4xx() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let event = app.create_event(&owner, 10).await;
    let t = client.token.as_str();

    let (st, v) = raw(&app, t, Some("application/json"), b"{not json".to_vec()).await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "malformed_json"));
    let (st, v) = raw(&app, t, Some("text/plain"), b"{}".to_vec()).await;
    assert_eq!((st, code(&v)), (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"));
    let (st, v) = raw(&app, t, Some("application/json"), vec![b' '; 200_000]).await;
    assert_eq!((st, code(&v)), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    let (st, v) = raw(
        &app,
        t,
        Some("application/json"),
        br#"{"resource_id": 5, "request": {"kind": "tickets", "quantity": 1}}"#.to_vec(),
    )
    .await;
    assert_eq!((st, fields(&v)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["resource_id".to_owned()]));
    let (st, v) = raw(
        &app,
        t,
        Some("application/json"),
        br#"{"resource_id": "not-a-uuid", "request": {"kind": "tickets", "quantity": 1}}"#.to_vec(),
    )
    .await;
    assert_eq!((st, fields(&v)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["resource_id".to_owned()]));

    for (quantity, why) in
        [(json!(-1), "negative"), (json!(0), "zero"), (json!(1_000_000), "absurd"), (json!("two"), "a string")]
    {
        let (st, v) = app
            .post(
                "/api/v1/bookings",
                Some(t),
                json!({"resource_id": event, "request": {"kind": "tickets", "quantity": quantity}}),
            )
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{why} quantity: {v}");
        assert!(fields(&v).iter().any(|f| f.starts_with("request")), "{why}: {v}");
    }
    // A stay request sent to an event: a clear refusal, not a 500.
    let (st, v) = app
        .post(
            "/api/v1/bookings",
            Some(t),
            json!({"resource_id": event, "request": {"kind": "appointment", "starts_at": "2030-01-01T10:00:00Z"}}),
        )
        .await;
    assert_eq!((st, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "wrong_resource_kind"), "{v}");
    // An unknown resource is 404, a bad id in the path 400.
    let (st, v) = app
        .post(
            "/api/v1/bookings",
            Some(t),
            json!({"resource_id": uuid::Uuid::now_v7(), "request": {"kind": "tickets", "quantity": 1}}),
        )
        .await;
    assert_eq!((st, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (st, v) = app.get("/api/v1/bookings/12345", Some(t)).await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "invalid_path"));
    let (st, v) = app.get("/api/v1/bookings?limit=1000", Some(t)).await;
    assert_eq!((st, fields(&v)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["limit".to_owned()]));
    let (st, v) = app.get("/api/v1/bookings?status=lost", Some(t)).await;
    assert_eq!((st, fields(&v)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["status".to_owned()]));
    let (st, v) = app.get("/api/v1/bookings?cursor=xyz", Some(t)).await;
    assert_eq!((st, fields(&v)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["cursor".to_owned()]));
    let (st, v) = app.get("/api/v1/bookings?surprise=1", Some(t)).await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "invalid_query"));
}

#[actix_web::test]
async fn bad_dates_zones_and_specs_are_refused_field_by_field() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    // Inverted and far-future stays.
    let (st, v) = app.get("/api/v1/hotels/search?check_in=2030-05-10&check_out=2030-05-01", None).await;
    assert_eq!((st, fields(&v)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["check_out".to_owned()]), "{v}");
    let (st, v) = app.get("/api/v1/hotels/search?check_in=2030-05-10&check_out=2032-05-01&guests=0", None).await;
    assert_eq!(
        (st, fields(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, vec!["check_out".to_owned(), "guests".to_owned()]),
        "{v}"
    );
    let kind =
        serde_json::to_value(engine::fixtures::hotel(engine::domain::ids::UserId::new_v7(), "H", "Oslo", 1, 0).kind)
            .expect("json");
    let hotel = app.create_resource(&owner, "Fjord Inn", kind).await;
    let (st, v) = app.get("/api/v1/hotels/search?city=oslo&check_in=2030-05-10&check_out=2030-05-01", None).await;
    assert_eq!((st, fields(&v)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["check_out".to_owned()]), "{v}");
    let (st, v) = app.get("/api/v1/hotels/search?city=oslo&check_in=2099-05-10&check_out=2099-05-12", None).await;
    assert_eq!((st, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "too_far_ahead"), "{v}");
    let (st, v) = app.get("/api/v1/hotels/search?city=oslo&check_in=not-a-date&check_out=2030-05-12", None).await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "invalid_query"), "{v}");
    let _ = hotel;

    // A provider with a bad time zone and an impossible interval: both fields named.
    let mut kind = serde_json::to_value(engine::fixtures::provider(engine::domain::ids::UserId::new_v7(), "P").kind)
        .expect("json");
    kind["time_zone"] = json!("Mars/Olympus_Mons");
    kind["weekly"][0]["intervals"][0]["end_minute"] = json!(2000);
    let (st, v) = app.post("/api/v1/resources", Some(&owner.token), json!({"name": "Dr. Nowhere", "kind": kind})).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let f = fields(&v);
    assert!(f.contains(&"kind.time_zone".to_owned()), "{f:?}");
    assert!(f.iter().any(|x| x.starts_with("kind.weekly[0].intervals[0]")), "{f:?}");
    // An event whose categories exceed its capacity; an unknown field in the spec.
    let mut kind = serde_json::to_value(
        engine::fixtures::event_with_categories(
            engine::domain::ids::UserId::new_v7(),
            "E",
            10,
            5,
            jiff::Timestamp::now(),
        )
        .kind,
    )
    .expect("json");
    kind["capacity"] = json!(12);
    let (st, v) =
        app.post("/api/v1/resources", Some(&owner.token), json!({"name": "Over", "kind": kind.clone()})).await;
    assert_eq!((st, fields(&v)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["kind.categories".to_owned()]), "{v}");
    kind["capacity"] = json!(15);
    kind["vip_lounge"] = json!(true);
    let (st, v) = app.post("/api/v1/resources", Some(&owner.token), json!({"name": "Over", "kind": kind})).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"].as_str().is_some_and(|d| d.contains("vip_lounge")), "{v}");
}
