//! Owners' dashboards (seed 000's shape and the richer summary): exact counts on hand-made
//! data, zero-filling, 365 vs 366 keys, cancellations as their own series, hotels that must not
//! mix, the role rules and bad parameters.

use crate::helpers::{Session, TestApp, code, spawn_app, spawn_app_with_admin};
use engine::domain::ids::UserId;
use engine::fixtures;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A hotel (rooms 101, 102 "Double" at 100.00; 201 "Suite" at 250.00) bookable through 2029.
pub async fn hotel(app: &TestApp, owner: &Session, name: &str) -> (String, Value) {
    let mut kind = serde_json::to_value(fixtures::hotel(UserId::new_v7(), name, "Berlin", 2, 1).kind).expect("json");
    kind["booking_horizon_days"] = json!(1100);
    let id = app.create_resource(owner, name, kind.clone()).await;
    (id, kind)
}

/// Holds a stay in the hotel's first room type for `client`; with `confirm`, the hotel's owner
/// then confirms it (a payment taken on site: the stay has a price).
async fn stay(
    app: &TestApp,
    owner: &Session,
    client: &Session,
    hotel: &str,
    kind: &Value,
    nights: (&str, &str),
    confirm: bool,
) -> String {
    let request = json!({"kind": "stay", "room_type_id": kind["room_types"][0]["id"], "check_in": nights.0,
        "check_out": nights.1, "guests": 1});
    let (st, v) =
        app.post("/api/v1/bookings", Some(&client.token), json!({"resource_id": hotel, "request": request})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().expect("id").to_owned();
    if confirm {
        let (st, v) = app.post(&format!("/api/v1/bookings/{id}/confirm"), Some(&owner.token), json!({})).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    id
}

async fn dash(app: &TestApp, who: &Session, id: &str, query: &str) -> Value {
    let (st, v) = app.get(&format!("/api/v1/resources/{id}/dashboard?{query}"), Some(&who.token)).await;
    assert_eq!(st, StatusCode::OK, "{query}: {v}");
    v
}

fn nonzero(v: &Value) -> Vec<(String, i64)> {
    v.as_object()
        .expect("object")
        .iter()
        .filter(|(_, n)| n.as_i64() != Some(0))
        .map(|(k, n)| (k.clone(), n.as_i64().expect("integer")))
        .collect()
}

fn pairs(v: &[(&str, i64)]) -> Vec<(String, i64)> {
    v.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

#[actix_web::test]
async fn a_hotel_year_counts_room_nights_by_night_and_month_with_cancellations_apart() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let (a, kind_a) = hotel(&app, &owner, "Dash A").await;
    let (b, kind_b) = hotel(&app, &owner, "Dash B").await;

    // Hotel A: over a month end, over the leap day, a stay booked then cancelled, a hold
    // (not a booking yet) and the last night of the year.
    stay(&app, &owner, &client, &a, &kind_a, ("2028-01-30", "2028-02-01"), true).await;
    stay(&app, &owner, &client, &a, &kind_a, ("2028-02-27", "2028-03-02"), true).await;
    let cancelled = stay(&app, &owner, &client, &a, &kind_a, ("2028-04-29", "2028-05-02"), true).await;
    stay(&app, &owner, &client, &a, &kind_a, ("2028-06-10", "2028-06-11"), false).await;
    stay(&app, &owner, &client, &a, &kind_a, ("2028-12-31", "2029-01-02"), true).await;
    let (st, v) = app.post(&format!("/api/v1/bookings/{cancelled}/cancel"), Some(&client.token), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // Hotel B books the same nights: nothing of it may show in A.
    stay(&app, &owner, &client, &b, &kind_b, ("2028-01-30", "2028-02-01"), true).await;
    stay(&app, &owner, &client, &b, &kind_b, ("2028-01-30", "2028-02-01"), true).await;

    let day = dash(&app, &owner, &a, "year=2028&period=day").await;
    let keys: Vec<&String> = day.as_object().expect("object").keys().collect();
    assert_eq!(keys.len(), 366, "every day of a leap year");
    assert_eq!((keys[0].as_str(), keys[59].as_str(), keys[365].as_str()), ("2028-01-01", "2028-02-29", "2028-12-31"));
    assert_eq!(
        nonzero(&day),
        pairs(&[
            ("2028-01-30", 1),
            ("2028-01-31", 1),
            ("2028-02-27", 1),
            ("2028-02-28", 1),
            ("2028-02-29", 1),
            ("2028-03-01", 1),
            ("2028-12-31", 1),
        ])
    );
    // The default is the day series (seed 000 always sends `period`; we default it).
    assert_eq!(dash(&app, &owner, &a, "year=2028").await, day);

    let month = dash(&app, &owner, &a, "year=2028&period=month").await;
    let months: Vec<&String> = month.as_object().expect("object").keys().collect();
    assert_eq!(months.len(), 12);
    assert_eq!((months[0].as_str(), months[11].as_str()), ("2028-01-01", "2028-12-01"));
    assert_eq!(nonzero(&month), pairs(&[("2028-01-01", 2), ("2028-02-01", 3), ("2028-03-01", 1), ("2028-12-01", 1)]));

    let gone = dash(&app, &owner, &a, "year=2028&period=day&series=cancelled").await;
    assert_eq!(gone.as_object().map(|o| o.len()), Some(366));
    assert_eq!(nonzero(&gone), pairs(&[("2028-04-29", 1), ("2028-04-30", 1), ("2028-05-01", 1)]));
    let gone = dash(&app, &owner, &a, "year=2028&period=month&series=cancelled").await;
    assert_eq!(nonzero(&gone), pairs(&[("2028-04-01", 2), ("2028-05-01", 1)]));

    // The stay over the new year goes on in 2029; 2027 is all zeros, 365 keys.
    assert_eq!(nonzero(&dash(&app, &owner, &a, "year=2029").await), pairs(&[("2029-01-01", 1)]));
    let empty = dash(&app, &owner, &a, "year=2027").await;
    assert_eq!(empty.as_object().map(|o| o.len()), Some(365));
    assert!(nonzero(&empty).is_empty());

    // Hotel B: two rooms on the same two nights, nothing else.
    let month_b = dash(&app, &owner, &b, "year=2028&period=month").await;
    assert_eq!(nonzero(&month_b), pairs(&[("2028-01-01", 4)]));

    // The summary: occupancy over 3 rooms, revenue at 100.00 a night.
    let (st, s) =
        app.get(&format!("/api/v1/resources/{a}/dashboard/summary?year=2028&period=month"), Some(&owner.token)).await;
    assert_eq!(st, StatusCode::OK, "{s}");
    assert_eq!(
        (s["unit"].as_str(), s["currency"].as_str(), s["kind"].as_str()),
        (Some("room_nights"), Some("EUR"), Some("hotel"))
    );
    let feb = &s["points"][1];
    assert_eq!(feb["date"], "2028-02-01");
    assert_eq!((feb["booked"].as_i64(), feb["capacity"].as_i64()), (Some(3), Some(3 * 29)));
    assert_eq!(feb["revenue_minor"].as_i64(), Some(30_000));
    assert_eq!(feb["used_pct"].as_f64(), Some(3.45));
    let apr = &s["points"][3];
    assert_eq!(
        (apr["booked"].as_i64(), apr["cancelled"].as_i64(), apr["cancelled_revenue_minor"].as_i64()),
        (Some(0), Some(2), Some(20_000))
    );
    let t = &s["totals"];
    assert_eq!(
        (t["booked"].as_i64(), t["cancelled"].as_i64(), t["capacity"].as_i64()),
        (Some(7), Some(3), Some(3 * 366))
    );
    assert_eq!(t["revenue_minor"].as_i64(), Some(70_000));
    let (_, days) =
        app.get(&format!("/api/v1/resources/{a}/dashboard/summary?year=2028&period=day"), Some(&owner.token)).await;
    assert_eq!(days["points"].as_array().map(Vec::len), Some(366));
    assert_eq!(days["points"][59]["used_pct"].as_f64(), Some(33.33));
}

#[actix_web::test]
async fn events_count_tickets_by_day_of_sale_and_providers_their_working_hours() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let event = app.create_event(&owner, 10).await;
    let (st, v) = app.book(&client, &event, 3, true).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = app.book(&client, &event, 2, false).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let y = today.year();
    let d = dash(&app, &owner, &event, &format!("year={y}")).await;
    assert_eq!(nonzero(&d), pairs(&[(&today.to_string(), 3)]), "held tickets are not sold yet");
    let (_, s) = app.get(&format!("/api/v1/resources/{event}/dashboard/summary?year={y}"), Some(&owner.token)).await;
    assert_eq!((s["unit"].as_str(), s["totals"]["capacity"].as_i64()), (Some("tickets"), Some(10)));
    assert_eq!(s["totals"]["used_pct"].as_f64(), Some(30.0));

    // A provider: one 30-minute appointment on a working day of 7 hours.
    // Free, so that the client books and confirms at once.
    let kind = serde_json::to_value(fixtures::free(fixtures::provider(UserId::new_v7(), "Clinic")).kind).expect("json");
    let provider = app.create_resource(&owner, "Clinic", kind).await;
    let mut day = today.checked_add(jiff::Span::new().days(7)).expect("date");
    while day.weekday().to_monday_one_offset() > 5 {
        day = day.tomorrow().expect("date");
    }
    let (st, slots) = app.get(&format!("/api/v1/providers/{provider}/slots?date={day}"), None).await;
    assert_eq!(st, StatusCode::OK, "{slots}");
    let start = slots["slots"][0]["starts_at"].clone();
    let (st, v) = app
        .post(
            "/api/v1/bookings",
            Some(&client.token),
            json!({"resource_id": provider, "request": {"kind": "appointment", "starts_at": start}, "confirm": true}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (_, s) = app
        .get(
            &format!("/api/v1/resources/{provider}/dashboard/summary?year={}&period=day", day.year()),
            Some(&owner.token),
        )
        .await;
    let p =
        s["points"].as_array().expect("points").iter().find(|p| p["date"] == day.to_string()).expect("the day").clone();
    assert_eq!(
        (p["booked"].as_i64(), p["booked_minutes"].as_i64(), p["capacity"].as_i64()),
        (Some(1), Some(30), Some(420))
    );
    assert_eq!(p["used_pct"].as_f64(), Some(7.14));
    assert_eq!(s["unit"], "appointments");
}

#[actix_web::test]
async fn only_the_owner_and_admins_read_a_dashboard_and_bad_parameters_are_named() {
    let (app, admin) = spawn_app_with_admin().await;
    let owner = app.register("owner").await;
    let other = app.register("owner").await;
    let client = app.register("client").await;
    let (id, _) = hotel(&app, &owner, "Private").await;

    for path in ["dashboard", "dashboard/summary"] {
        let url = format!("/api/v1/resources/{id}/{path}?year=2028&period=month");
        for (who, expected) in [
            (Some(&owner), StatusCode::OK),
            (Some(&admin), StatusCode::OK),
            (Some(&other), StatusCode::NOT_FOUND),
            (Some(&client), StatusCode::NOT_FOUND),
            (None, StatusCode::UNAUTHORIZED),
        ] {
            let (st, v) = app.get(&url, who.map(|s| s.token.as_str())).await;
            assert_eq!(st, expected, "{path}: {v}");
        }
        // A resource that does not exist is 404 for everyone, admins too (not a year of zeros).
        let missing = uuid::Uuid::now_v7();
        for who in [&owner, &admin] {
            let (st, v) = app.get(&format!("/api/v1/resources/{missing}/{path}?year=2028"), Some(&who.token)).await;
            assert_eq!((st, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{path}: {v}");
        }
    }

    for (query, field) in [
        ("year=1999", "year"),
        ("year=2101", "year"),
        ("year=abc", "year"),
        ("period=day", "year"),
        ("year=2028&period=week", "period"),
        ("year=2028&series=held", "series"),
    ] {
        let (st, v) = app.get(&format!("/api/v1/resources/{id}/dashboard?{query}"), Some(&owner.token)).await;
        assert_eq!((st, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{query}: {v}");
        assert_eq!(v["errors"][0]["field"], field, "{query}: {v}");
    }
    let (st, v) = app.get(&format!("/api/v1/resources/{id}/dashboard?year=2028&colour=red"), Some(&owner.token)).await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "invalid_query"), "{v}");
    let (st, v) = app.get("/api/v1/resources/not-a-uuid/dashboard?year=2028", Some(&owner.token)).await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "invalid_path"), "{v}");
}
