//! Reminders: scheduled when a booking is confirmed, moved when it is rescheduled, cancelled
//! when it is cancelled, kept in the database across a restart of the notifier.

use crate::common::*;
use bots::delivery::store::STAY_CHECK_IN;
use engine::domain::booking::{BookingRequest, Requester};
use engine::domain::command::Command;
use engine::domain::ids::{BookingId, RoomTypeId, UserId};
use engine::{ManualClock, fixtures};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use std::sync::Arc;

fn stay(check_in: Date, nights: i32) -> BookingRequest {
    BookingRequest::Stay {
        room_type_id: RoomTypeId(fixtures::fixed_id("Seaside", 1)),
        room_id: None,
        check_in,
        check_out: check_in.checked_add(nights.days()).expect("date"),
        guests: 2,
    }
}

fn berlin_start(d: Date) -> Timestamp {
    d.to_datetime(STAY_CHECK_IN).to_zoned(TimeZone::get("Europe/Berlin").expect("zone")).expect("zoned").timestamp()
}

async fn reminders_of(db: &TestDb, b: BookingId) -> Vec<(i32, String, Timestamp)> {
    db.client()
        .await
        .query(
            "SELECT offset_minutes, status, due_at FROM reminders WHERE booking_id = $1 ORDER BY offset_minutes",
            &[&b.0],
        )
        .await
        .expect("reminders")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[actix::test]
async fn reminders_follow_the_booking_and_survive_a_restart() {
    let db = TestDb::new();
    let start = Timestamp::now();
    let clock = Arc::new(ManualClock::new(start));
    let e = engine_of(&db, clock.clone()).await;
    let hotel = e.create(fixtures::hotel(UserId::new_v7(), "Seaside", "Lisbon", 3, 1)).await.expect("create");
    let u = add_user(&db, "Rita", "rita@example.com").await;
    let today = start.to_zoned(TimeZone::get("Europe/Berlin").expect("zone")).date();
    let first_day = today.checked_add(10.days()).expect("date");
    let kept = book(&e, hotel, u, stay(first_day, 2), true).await;
    let dropped = book(&e, hotel, u, stay(first_day, 1), true).await;
    let held = book(&e, hotel, u, stay(first_day, 3), false).await;

    let rec = Recorder::default();
    let n = notifier(&db, clock.clone(), Arc::new(rec.clone()), test_config()).await;
    n.run_once().await.expect("pass");
    let s = berlin_start(first_day);
    let expected = |s: Timestamp| {
        vec![
            (60, "scheduled".to_owned(), s - SignedDuration::from_hours(1)),
            (1440, "scheduled".to_owned(), s - SignedDuration::from_hours(24)),
        ]
    };
    assert_eq!(reminders_of(&db, kept).await, expected(s));
    assert_eq!(reminders_of(&db, dropped).await, expected(s));
    assert!(reminders_of(&db, held).await.is_empty(), "holds get no reminders");

    // Moved by five days: the reminders move with it. The other one is cancelled.
    let moved_day = first_day.checked_add(5.days()).expect("date");
    e.execute(
        hotel,
        Command::Reschedule { booking_id: kept, request: stay(moved_day, 2), by: Requester::Client(u) },
        None,
    )
    .await
    .expect("rescheduled");
    e.execute(
        hotel,
        Command::Cancel { booking_id: dropped, reason: "plans changed".into(), by: Requester::Client(u) },
        None,
    )
    .await
    .expect("cancelled");
    n.run_once().await.expect("pass");
    let s2 = berlin_start(moved_day);
    assert_eq!(reminders_of(&db, kept).await, expected(s2));
    assert!(reminders_of(&db, dropped).await.iter().all(|r| r.1 == "cancelled"));
    drop(n);

    // A new notifier (a restart) finds them in the database and fires each when due.
    let n = notifier(&db, clock.clone(), Arc::new(rec.clone()), test_config()).await;
    let before = rec.kinds().len();
    clock.set(s - SignedDuration::from_hours(24) + SignedDuration::from_secs(1));
    assert_eq!(n.run_once().await.expect("pass").reminders_fired, 0, "the old time passed, but it moved");
    clock.set(s2 - SignedDuration::from_hours(24) + SignedDuration::from_secs(1));
    let r = n.run_once().await.expect("pass");
    assert_eq!((r.reminders_fired, r.sent), (1, 1));
    assert_eq!(n.run_once().await.expect("pass").reminders_fired, 0, "fired once");
    clock.set(s2 - SignedDuration::from_mins(30));
    assert_eq!(n.run_once().await.expect("pass").reminders_fired, 1);
    let kinds = rec.kinds();
    assert_eq!(kinds[before..], ["reminder".to_owned(), "reminder".to_owned()]);
    let notices = rec.notices.lock().expect("lock").clone();
    let reminders: Vec<_> = notices.iter().filter(|n| n.kind.as_str() == "reminder").collect();
    assert!(reminders.iter().all(|n| n.booking.id == kept), "only the booking still confirmed is reminded");
    let subjects: Vec<String> = reminders.iter().map(|n| bots::render::render(n).subject).collect();
    assert!(subjects[0].starts_with("Reminder: Seaside in 24 hours (BK-"), "{subjects:?}");
    assert!(subjects[1].starts_with("Reminder: Seaside in 1 hour (BK-"), "{subjects:?}");
    let text = bots::render::render(reminders[1]).text;
    let moved = moved_day.strftime("%a %d %b %Y").to_string();
    assert!(text.contains(&format!("check-in {moved}")), "{text}");
    assert_eq!(reminders_of(&db, kept).await.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(), ["sent", "sent"]);
}

#[actix::test]
async fn a_reminder_already_past_is_skipped_and_one_for_a_booking_cancelled_meanwhile_never_fires() {
    let db = TestDb::new();
    let start = Timestamp::now();
    let clock = Arc::new(ManualClock::new(start));
    let e = engine_of(&db, clock.clone()).await;
    // Tickets for an event 30 days ahead.
    let event = e.create(fixtures::event(UserId::new_v7(), "Gala", 10, start)).await.expect("create");
    let u = add_user(&db, "Gil", "gil@example.com").await;
    let b = book(&e, event, u, tickets(1), true).await;
    let rec = Recorder::default();
    let cfg = bots::delivery::DeliveryConfig { reminder_offsets_minutes: vec![60, 31 * 24 * 60], ..test_config() };
    let n = notifier(&db, clock.clone(), Arc::new(rec.clone()), cfg).await;
    n.run_once().await.expect("pass");
    let rs = reminders_of(&db, b).await;
    assert_eq!(rs.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(), ["scheduled", "skipped"]);
    // Cancelled after the reminder was scheduled, but before the notifier saw the cancellation.
    e.execute(event, Command::Cancel { booking_id: b, reason: String::new(), by: Requester::Client(u) }, None)
        .await
        .expect("cancel");
    clock.set(rs[0].2 + SignedDuration::from_secs(1));
    db.client().await.execute("DELETE FROM outbox", &[]).await.expect("hide the cancellation");
    let r = n.run_once().await.expect("pass");
    assert_eq!(r.reminders_fired, 0);
    assert_eq!(reminders_of(&db, b).await[0].1, "cancelled");
    assert!(!rec.kinds().contains(&"reminder".to_owned()));
}
