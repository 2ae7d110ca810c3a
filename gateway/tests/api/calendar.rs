//! iCal feeds through the whole server: feed URLs created over HTTP, fetched without a token
//! header, parsed with an RFC 5545 parser; times of a stay in a non-UTC hotel; rotation,
//! revocation and unknown tokens answer 404.

use crate::helpers::{Session, TestApp, code, spawn_app};
use engine::domain::ids::UserId;
use engine::domain::spec::KindSpec;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;

/// One parsed VEVENT: property name → value.
type Event = HashMap<String, String>;

/// Fetches a feed URL; on 200 checks the RFC 5545 framing (CRLF, folding at 75 octets) and
/// parses it with the `ical` crate.
async fn fetch(app: &TestApp, url: &str) -> (StatusCode, Vec<Event>) {
    let res = app.http.get(url).send().await.expect("sent");
    let status = res.status();
    if status != StatusCode::OK {
        return (status, Vec::new());
    }
    let ct = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(ct.starts_with("text/calendar"), "{ct}");
    let text = res.text().await.expect("body");
    assert!(text.starts_with("BEGIN:VCALENDAR\r\n") && text.ends_with("END:VCALENDAR\r\n"), "{text}");
    for line in text.split("\r\n") {
        assert!(line.len() <= 75, "a line longer than 75 octets: {line:?}");
        assert!(!line.contains('\n') && !line.contains('\r'), "bare line break in {line:?}");
    }
    let mut parser = ical::IcalParser::new(std::io::BufReader::new(text.as_bytes()));
    let cal = parser.next().expect("one calendar").expect("valid iCalendar");
    assert!(parser.next().is_none(), "exactly one calendar");
    let props = |ps: &[ical::property::Property]| -> HashMap<String, String> {
        ps.iter().map(|p| (p.name.clone(), unescape(p.value.as_deref().unwrap_or_default()))).collect()
    };
    let top = props(&cal.properties);
    assert_eq!(top.get("VERSION").map(String::as_str), Some("2.0"));
    assert!(top.contains_key("PRODID"), "{top:?}");
    let events: Vec<Event> = cal.events.iter().map(|e| props(&e.properties)).collect();
    for e in &events {
        for required in ["UID", "DTSTAMP", "DTSTART", "DTEND", "SUMMARY", "STATUS"] {
            assert!(e.contains_key(required), "{required} missing: {e:?}");
        }
    }
    (status, events)
}

/// TEXT values as written (RFC 5545 3.3.11): the parser leaves the escapes in.
fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
        } else if let Some(e) = chars.next() {
            out.push(if e == 'n' || e == 'N' { '\n' } else { e });
        }
    }
    out
}

async fn new_feed(app: &TestApp, who: &Session, body: Value) -> Value {
    let (st, v) = app.post("/api/v1/calendar/feeds", Some(&who.token), body).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert!(v["url"].as_str().is_some_and(|u| u.ends_with(".ics")), "{v}");
    v
}

fn url(v: &Value) -> String {
    v["url"].as_str().expect("url").to_owned()
}

fn uid_of(booking: &str) -> String {
    format!("{booking}@reservation-engine")
}

fn find<'a>(events: &'a [Event], booking: &str) -> Option<&'a Event> {
    events.iter().find(|e| e.get("UID") == Some(&uid_of(booking)))
}

fn utc(date: Date, time: Time, zone: &str) -> String {
    let tz = TimeZone::get(zone).expect("zone");
    date.to_datetime(time).to_zoned(tz).expect("local time").timestamp().strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// A hotel in New York (UTC-5/-4) with check-out at 11:00, owned by `owner`.
async fn new_york_hotel(app: &TestApp, owner: &Session) -> (String, String) {
    // Free rooms: the client books and confirms at once.
    let mut spec = engine::fixtures::free(engine::fixtures::hotel(UserId::new_v7(), "Hudson", "New York", 2, 0));
    let KindSpec::Hotel(h) = &mut spec.kind else { unreachable!("a hotel fixture") };
    h.time_zone = "America/New_York".into();
    let double = h.room_types[0].id.0.to_string();
    let hotel = app.create_resource(owner, "Hudson Hotel", serde_json::to_value(&spec.kind).expect("json")).await;
    (hotel, double)
}

async fn book_stay(app: &TestApp, client: &Session, hotel: &str, room_type: &str, ci: Date, co: Date) -> String {
    let (st, b) = app
        .post(
            "/api/v1/bookings",
            Some(&client.token),
            json!({"resource_id": hotel, "request": {"kind": "stay", "room_type_id": room_type, "check_in": ci,
                   "check_out": co, "guests": 2}, "confirm": true}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    b["id"].as_str().expect("id").to_owned()
}

#[actix_web::test]
async fn a_users_feed_has_their_bookings_with_the_right_times_and_nobody_elses() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let stranger = app.register("client").await;
    let (hotel, double) = new_york_hotel(&app, &owner).await;
    let created = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).expect("now");
    let spec = engine::fixtures::free(engine::fixtures::event(UserId::new_v7(), "x", 10, created));
    let KindSpec::Event(e) = &spec.kind else { unreachable!("an event fixture") };
    let (event_start, event_end) = (e.starts_at, e.ends_at);
    let event = app.create_resource(&owner, "Concert", serde_json::to_value(&spec.kind).expect("json")).await;
    let today = jiff::Timestamp::now().to_zoned(TimeZone::get("America/New_York").expect("tz")).date();
    let ci = today.checked_add(jiff::Span::new().days(20)).expect("date");
    let co = today.checked_add(jiff::Span::new().days(23)).expect("date");
    let stay = book_stay(&app, &client, &hotel, &double, ci, co).await;
    let (st, t) = app.book(&client, &event, 2, true).await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let tickets = t["id"].as_str().expect("id").to_owned();
    let (st, c) = app.book(&client, &event, 1, true).await;
    assert_eq!(st, StatusCode::CREATED, "{c}");
    let cancelled = c["id"].as_str().expect("id").to_owned();
    let (st, v) = app.post(&format!("/api/v1/bookings/{cancelled}/cancel"), Some(&client.token), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, h) = app.book(&client, &event, 1, false).await;
    assert_eq!(st, StatusCode::CREATED, "{h}");
    let held = h["id"].as_str().expect("id").to_owned();
    let (st, o) = app.book(&stranger, &event, 1, true).await;
    assert_eq!(st, StatusCode::CREATED, "{o}");
    let strangers = o["id"].as_str().expect("id").to_owned();

    let feed = new_feed(&app, &client, json!({})).await;
    assert_eq!(feed["scope"], "user");
    let (st, events) = fetch(&app, &url(&feed)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(events.len(), 3, "the stay, the tickets and the cancelled booking: {events:?}");

    // The stay: 15:00 New York time on the check-in date to 11:00 on the check-out date.
    let s = find(&events, &stay).expect("the stay");
    assert_eq!(s["DTSTART"], utc(ci, Time::constant(15, 0, 0, 0), "America/New_York"), "{s:?}");
    assert_eq!(s["DTEND"], utc(co, Time::constant(11, 0, 0, 0), "America/New_York"), "{s:?}");
    assert!(s["DTSTART"].ends_with('Z') && !s["DTSTART"].contains("T150000"), "UTC, not local: {s:?}");
    assert_eq!((s["SUMMARY"].as_str(), s["STATUS"].as_str()), ("Hudson Hotel", "CONFIRMED"));
    assert_eq!(s["LOCATION"], "New York");

    // The event's tickets at the event's instants; the cancelled booking says so.
    let t = find(&events, &tickets).expect("the tickets");
    assert_eq!(t["DTSTART"], event_start.strftime("%Y%m%dT%H%M%SZ").to_string(), "{t:?}");
    assert_eq!(t["DTEND"], event_end.strftime("%Y%m%dT%H%M%SZ").to_string(), "{t:?}");
    assert_eq!((t["SUMMARY"].as_str(), t["STATUS"].as_str()), ("Concert", "CONFIRMED"));
    assert_eq!(find(&events, &cancelled).expect("the cancelled one")["STATUS"], "CANCELLED");
    assert!(find(&events, &held).is_none(), "an unpaid hold is not in the calendar");
    assert!(find(&events, &strangers).is_none(), "someone else's booking leaked into the feed");

    // Fetching again: same UIDs (stable per booking).
    let (_, again) = fetch(&app, &url(&feed)).await;
    let uids = |es: &[Event]| {
        let mut u: Vec<String> = es.iter().map(|e| e["UID"].clone()).collect();
        u.sort();
        u
    };
    assert_eq!(uids(&events), uids(&again));
}

#[actix_web::test]
async fn an_owners_feed_shows_one_resources_schedule() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let other_owner = app.register("owner").await;
    let client = app.register("client").await;
    let (hotel, double) = new_york_hotel(&app, &owner).await;
    let event = app.create_event(&owner, 10).await;
    let today = jiff::Timestamp::now().to_zoned(TimeZone::get("America/New_York").expect("tz")).date();
    let ci = today.checked_add(jiff::Span::new().days(5)).expect("date");
    let co = today.checked_add(jiff::Span::new().days(6)).expect("date");
    let stay = book_stay(&app, &client, &hotel, &double, ci, co).await;
    let (st, t) = app.book(&client, &event, 1, true).await;
    assert_eq!(st, StatusCode::CREATED, "{t}");

    let feed = new_feed(&app, &owner, json!({"resource_id": hotel})).await;
    assert_eq!((feed["scope"].as_str(), feed["resource_id"].as_str()), (Some("resource"), Some(hotel.as_str())));
    let (st, events) = fetch(&app, &url(&feed)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(events.len(), 1, "only the hotel's booking: {events:?}");
    let s = find(&events, &stay).expect("the stay");
    assert!(s["SUMMARY"].contains("Double, room 10"), "{s:?}");
    assert_eq!(s["DTSTART"], utc(ci, Time::constant(15, 0, 0, 0), "America/New_York"));

    // Someone else's resource, or a client asking for a resource feed: not found.
    let (st, v) = app.post("/api/v1/calendar/feeds", Some(&other_owner.token), json!({"resource_id": hotel})).await;
    assert_eq!((st, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{v}");
    let (st, v) = app.post("/api/v1/calendar/feeds", Some(&client.token), json!({"resource_id": hotel})).await;
    assert_eq!((st, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{v}");
    let (st, v) = app.post("/api/v1/calendar/feeds", Some(&client.token), json!({"resource_id": "nope"})).await;
    assert_eq!((st, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{v}");
    assert_eq!(v["errors"][0]["field"], "resource_id");
    assert_eq!(app.post("/api/v1/calendar/feeds", None, json!({})).await.0, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn rotated_revoked_and_unknown_tokens_answer_404() {
    let app = spawn_app().await;
    let client = app.register("client").await;
    let stranger = app.register("client").await;
    let feed = new_feed(&app, &client, json!({})).await;
    let feed_id = feed["id"].as_str().expect("id").to_owned();
    let old = url(&feed);
    assert_eq!(fetch(&app, &old).await.0, StatusCode::OK);

    // The list shows the feed without its URL.
    let (st, v) = app.get("/api/v1/calendar/feeds", Some(&client.token)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["items"][0]["id"].as_str(), Some(feed_id.as_str()));
    assert!(v["items"][0].get("url").is_none() && v["items"][0].get("token").is_none(), "{v}");
    let (_, v) = app.get("/api/v1/calendar/feeds", Some(&stranger.token)).await;
    assert_eq!(v["items"].as_array().map(Vec::len), Some(0), "{v}");

    // Nobody else can rotate or revoke it.
    let (st, _) = app.post(&format!("/api/v1/calendar/feeds/{feed_id}/rotate"), Some(&stranger.token), json!({})).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let path = format!("/api/v1/calendar/feeds/{feed_id}");
    assert_eq!(app.send(reqwest::Method::DELETE, &path, Some(&stranger.token), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(fetch(&app, &old).await.0, StatusCode::OK);

    // Rotation: the old URL is dead at once, the new one works.
    let (st, rotated) =
        app.post(&format!("/api/v1/calendar/feeds/{feed_id}/rotate"), Some(&client.token), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{rotated}");
    let new = url(&rotated);
    assert_ne!(new, old);
    assert_eq!(fetch(&app, &old).await.0, StatusCode::NOT_FOUND);
    assert_eq!(fetch(&app, &new).await.0, StatusCode::OK);

    // Revocation: 404 from then on, and it cannot be rotated back to life.
    assert_eq!(app.send(reqwest::Method::DELETE, &path, Some(&client.token), None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(fetch(&app, &new).await.0, StatusCode::NOT_FOUND);
    let (st, _) = app.post(&format!("/api/v1/calendar/feeds/{feed_id}/rotate"), Some(&client.token), json!({})).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Unknown and malformed tokens.
    let res = app.http.get(format!("{}/api/v1/calendar/{}.ics", app.addr, "ab".repeat(32))).send().await.expect("sent");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let v: Value = res.json().await.expect("problem+json");
    assert_eq!(code(&v), "not_found");
    for bad in ["x", "..%2F..%2Fetc", &"z".repeat(64), &"a".repeat(5000)] {
        let res = app.http.get(format!("{}/api/v1/calendar/{bad}.ics", app.addr)).send().await.expect("sent");
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{bad}");
    }
}
