//! What each kind of notification says, from a real run of the engine: a hold that expires, a
//! paid booking cancelled and refunded, a waitlist offer that lapses, a release, a move.

use crate::common::*;
use crate::email::{check_rfc5545, smtp_config};
use bots::delivery::Notice;
use bots::email::EmailChannel;
use bots::render::{reference, render};
use engine::domain::booking::{Requester, Wish};
use engine::domain::command::Command;
use engine::domain::ids::{UserId, WaitlistEntryId};
use engine::{Clock, ManualClock, fixtures};
use jiff::{SignedDuration, Timestamp};
use std::collections::HashMap;
use std::sync::Arc;

#[actix::test]
async fn every_kind_of_notification_says_what_happened_and_what_to_do() {
    let db = TestDb::new();
    let start = Timestamp::now();
    let clock = Arc::new(ManualClock::new(start));
    let e = engine_of(&db, clock.clone()).await;
    let event = e.create(fixtures::event(UserId::new_v7(), "Gala & <Friends>", 1, start)).await.expect("create");
    let a = add_user(&db, "Ada", "ada@example.com").await;
    let b = add_user(&db, "Bo", "bo@example.com").await;
    let run = |cmd: Command| {
        let e = e.clone();
        async move { e.execute(event, cmd, None).await.expect("command") }
    };

    // A hold that lapses.
    book(&e, event, a, tickets(1), false).await;
    clock.advance(SignedDuration::from_secs(601));
    run(Command::Tick).await;
    // A paid booking; Bo waits; the booking is cancelled (Bo gets the offer) and refunded.
    let paid = book(&e, event, a, tickets(1), false).await;
    // The payment succeeded: the payment webhook confirms as the system.
    run(Command::Confirm { booking_id: paid, payment_ref: Some("pay-1".into()), by: Requester::System }).await;
    let entry = WaitlistEntryId::new_v7();
    let wish = Wish::Tickets { category_id: None, quantity: 1 };
    run(Command::JoinWaitlist { entry_id: entry, user_id: b, wish, by: Requester::Client(b) }).await;
    run(Command::Cancel { booking_id: paid, reason: "ill".into(), by: Requester::Client(a) }).await;
    run(Command::RecordRefund { booking_id: paid, amount_minor: 2_500, by: Requester::System }).await;
    // The offer lapses (offer TTL one hour).
    clock.advance(SignedDuration::from_secs(3_601));
    run(Command::Tick).await;
    // A hold released, and a booking moved (one ticket to one ticket: a new placement).
    let released = book(&e, event, a, tickets(1), false).await;
    run(Command::Release { booking_id: released, by: Requester::Client(a) }).await;
    let moved = book(&e, event, b, tickets(1), true).await;
    run(Command::Reschedule { booking_id: moved, request: tickets(1), by: Requester::Client(b) }).await;

    let rec = Recorder::default();
    let n = notifier(&db, clock.clone(), Arc::new(rec.clone()), test_config()).await;
    while n.run_once().await.expect("pass").did_work() {}
    let notices: Vec<Notice> = rec.notices.lock().expect("lock").clone();
    let by_kind: HashMap<String, &Notice> = notices.iter().map(|n| (n.kind.as_str().to_owned(), n)).collect();
    let mut kinds: Vec<&str> = by_kind.keys().map(String::as_str).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "cancelled",
            "confirmed",
            "expired",
            "hold_created",
            "offer_expired",
            "offer_made",
            "refunded",
            "released",
            "rescheduled"
        ]
    );

    let expect = |kind: &str, subject: &str, text: &[&str]| {
        let n = by_kind[kind];
        let r = render(n);
        assert!(r.subject.starts_with(subject), "{kind}: subject {:?}", r.subject);
        assert!(r.subject.contains("Gala & <Friends>"), "{kind}: {:?}", r.subject);
        for t in text {
            assert!(r.text.contains(t), "{kind}: plain text lacks {t:?}:\n{}", r.text);
        }
        assert!(r.text.contains(&reference(n.booking.id.0)) && r.text.contains("EUR 25.00"), "{}", r.text);
        assert!(r.text.contains(" UTC"), "event times are in UTC: {}", r.text);
        assert!(r.html.contains("Gala &amp; &lt;Friends&gt;") && !r.html.contains("<Friends>"), "{}", r.html);
        r
    };
    expect("hold_created", "Held for you", &["Pay or confirm by"]);
    expect("expired", "Hold expired", &["not paid or confirmed in time"]);
    expect("confirmed", "Booking confirmed", &["calendar file"]);
    expect("cancelled", "Booking cancelled", &["was cancelled"]);
    expect("refunded", "Refund of EUR 25.00", &["Refunded: EUR 25.00"]);
    expect("released", "Hold released", &["released"]);
    expect("rescheduled", "Booking moved", &["was moved"]);
    expect("offer_expired", "Waitlist offer expired", &["not accepted in time"]);
    let offer = by_kind["offer_made"];
    let expiry = bots::render::local_time(
        start + SignedDuration::from_secs(601) + SignedDuration::from_secs(3_600),
        &jiff::tz::TimeZone::UTC,
    );
    assert_eq!(
        offer.booking.hold_expires_at.map(|t| bots::render::local_time(t, &jiff::tz::TimeZone::UTC)),
        Some(expiry.clone())
    );
    let r = expect(
        "offer_made",
        "A place is free for you",
        &[&expiry, &format!("/api/v1/waitlist/{entry}/accept"), "/decline"],
    );
    assert!(r.subject.contains(&expiry), "{}", r.subject);
    assert_eq!(offer.recipient.email.as_deref(), Some("bo@example.com"));

    // Only a confirmation (or a move of a live booking) carries a calendar; both are valid.
    let email = EmailChannel::smtp(&smtp_config(25)).expect("channel");
    for (kind, attached) in [("confirmed", true), ("rescheduled", true), ("cancelled", false), ("offer_made", false)] {
        let raw = email.message(by_kind[kind]).expect("message").formatted();
        let text = String::from_utf8_lossy(&raw);
        assert_eq!(text.contains("text/calendar"), attached, "{kind}");
        if attached {
            let m = mail_parser::MessageParser::default().parse(&raw).expect("mime");
            let ics = m.attachments().next().expect("attachment");
            check_rfc5545(std::str::from_utf8(ics.contents()).expect("utf-8"));
        }
    }
    assert!(clock.now() > start);
}
