//! The queue: two notifiers share one database without sending anything twice; failures back
//! off, then dead-letter; admins retry; a worker that dies mid-send is covered by its lease.

use crate::common::*;
use bots::delivery::store::{self, RetryOutcome};
use engine::domain::booking::BookingRequest;
use engine::domain::ids::{CategoryId, RoomTypeId, UserId};
use engine::{Clock, ManualClock, SystemClock, fixtures};
use jiff::{SignedDuration, Timestamp, ToSpan};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[actix::test]
async fn two_notifiers_on_one_database_deliver_each_notification_once() {
    let db = TestDb::new();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let e = engine_of(&db, clock.clone()).await;
    let event = e.create(fixtures::event(UserId::new_v7(), "Busy night", 1_000, clock.now())).await.expect("create");
    for i in 0..40 {
        let u = add_user(&db, &format!("User {i}"), &format!("u{i}@example.com")).await;
        book(&e, event, u, tickets(1), true).await;
        book(&e, event, u, tickets(2), false).await;
    }
    // A notification for someone without an account is consumed but goes nowhere.
    book(&e, event, UserId::new_v7(), tickets(1), true).await;
    let expected = count(&db, "SELECT count(*) FROM outbox").await;
    assert_eq!(expected, 81);

    // Two "processes": separate pools, the same channel counting what reaches it.
    let rec = Recorder::default();
    let a = notifier(&db, clock.clone(), Arc::new(rec.clone()), test_config()).await.spawn();
    let b = notifier(&db, clock.clone(), Arc::new(rec.clone()), test_config()).await.spawn();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = count(
            &db,
            "SELECT (SELECT count(*) FROM outbox) + (SELECT count(*) FROM deliveries WHERE status <> 'delivered')",
        )
        .await;
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{left} notifications still undelivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.shutdown().await;
    b.shutdown().await;

    let seen = rec.seen();
    assert_eq!(seen.len() as i64, expected - 1, "one delivery per notification with a recipient");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM deliveries WHERE status = 'delivered'").await, expected - 1);
    assert_eq!(count(&db, "SELECT count(*) FROM deliveries WHERE attempts <> 1").await, 0);
}

async fn delivery_row(db: &TestDb) -> (i64, String, i32, Timestamp, Option<String>) {
    let r = db
        .client()
        .await
        .query_one(
            "SELECT id, status, attempts, next_attempt_at, last_error FROM deliveries ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .expect("a delivery");
    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
}

#[actix::test]
async fn failures_back_off_with_jitter_then_dead_letter_and_an_admin_retry_delivers() {
    let db = TestDb::new();
    let start = Timestamp::now();
    let clock = Arc::new(ManualClock::new(start));
    let e = engine_of(&db, clock.clone()).await;
    let event = e.create(fixtures::event(UserId::new_v7(), "Flaky", 10, start)).await.expect("create");
    let u = add_user(&db, "Flo", "flo@example.com").await;
    book(&e, event, u, tickets(1), true).await;

    let rec = Recorder::default();
    rec.set(TRANSIENT);
    let n = notifier(&db, clock.clone(), Arc::new(rec.clone()), test_config()).await;
    let pool = engine::store::postgres::PgStore::pool(&store_of(&db).await).clone();

    let r = n.run_once().await.expect("pass");
    assert_eq!((r.fanned_out, r.sent, r.failed), (1, 0, 1));
    let (id, status, attempts, next, err) = delivery_row(&db).await;
    assert_eq!((status.as_str(), attempts), ("pending", 1));
    assert!(next >= start + SignedDuration::from_secs(5) && next <= start + SignedDuration::from_secs(10), "{next}");
    assert!(err.is_some_and(|e| e.contains("try later")));
    // Not due yet: nothing happens.
    assert_eq!(n.run_once().await.expect("pass").failed, 0);

    clock.set(next);
    assert_eq!(n.run_once().await.expect("pass").failed, 1);
    let (_, status, attempts, next2, _) = delivery_row(&db).await;
    assert_eq!((status.as_str(), attempts), ("pending", 2));
    let waited = next2.duration_since(next);
    assert!(waited >= SignedDuration::from_secs(10) && waited <= SignedDuration::from_secs(20), "{waited:?}");

    clock.set(next2);
    assert_eq!(n.run_once().await.expect("pass").failed, 1);
    let (_, status, attempts, _, _) = delivery_row(&db).await;
    assert_eq!((status.as_str(), attempts), ("dead", 3), "dead after max_attempts");
    clock.advance(SignedDuration::from_hours(10));
    assert_eq!(n.run_once().await.expect("pass").failed, 0, "dead letters are not retried by themselves");

    // An admin retries once the far side works again.
    rec.set(OK);
    match store::retry_delivery(&pool, id, clock.now()).await.expect("retry") {
        RetryOutcome::Retried(d) => assert_eq!((d.status.as_str(), d.attempts), ("pending", 0)),
        _ => panic!("not retried"),
    }
    assert_eq!(n.run_once().await.expect("pass").sent, 1);
    let (_, status, attempts, _, err) = delivery_row(&db).await;
    assert_eq!((status.as_str(), attempts, err), ("delivered", 1, None));
    assert!(matches!(store::retry_delivery(&pool, id, clock.now()).await.expect("retry"), RetryOutcome::NotDead(_)));
    assert!(matches!(
        store::retry_delivery(&pool, id + 1000, clock.now()).await.expect("retry"),
        RetryOutcome::NotFound
    ));
    assert_eq!(rec.seen().len(), 1);

    // A permanent refusal is dead at once.
    rec.set(PERMANENT);
    book(&e, event, u, tickets(1), true).await;
    let r = n.run_once().await.expect("pass");
    assert_eq!((r.fanned_out, r.failed), (1, 1));
    let (_, status, attempts, _, err) = delivery_row(&db).await;
    assert_eq!((status.as_str(), attempts), ("dead", 1));
    assert!(err.is_some_and(|e| e.contains("no such mailbox")));
    let dead = store::list_deliveries(&pool, Some("dead"), None, 10).await.expect("list");
    assert_eq!(dead.len(), 1);
}

#[actix::test]
async fn a_claim_whose_worker_died_comes_due_again_when_its_lease_ends() {
    let db = TestDb::new();
    let start = Timestamp::now();
    let clock = Arc::new(ManualClock::new(start));
    let e = engine_of(&db, clock.clone()).await;
    let event = e.create(fixtures::event(UserId::new_v7(), "Crashy", 10, start)).await.expect("create");
    let u = add_user(&db, "Cy", "cy@example.com").await;
    book(&e, event, u, tickets(1), true).await;
    let rec = Recorder::default();
    let cfg = test_config();
    let n = notifier(&db, clock.clone(), Arc::new(rec.clone()), cfg.clone()).await;
    let pool = engine::store::postgres::PgStore::pool(&store_of(&db).await).clone();
    // A notifier without channels leaves the outbox alone rather than lose notifications.
    assert_eq!(store::fan_out(&pool, &[], &cfg, clock.now()).await.expect("fan out"), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM outbox").await, 1);
    store::fan_out(&pool, &[Arc::new(rec.clone()) as _], &cfg, clock.now()).await.expect("fan out");
    // A worker claims it and dies before sending.
    let claimed = store::claim_due(&pool, &["test".to_owned()], &cfg, clock.now()).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(n.run_once().await.expect("pass").sent, 0, "still leased to the dead worker");
    clock.advance(SignedDuration::from_secs(61));
    assert_eq!(n.run_once().await.expect("pass").sent, 1);
    let (_, status, attempts, _, _) = delivery_row(&db).await;
    assert_eq!((status.as_str(), attempts), ("delivered", 2));
    // The dead worker's late result cannot overwrite the later attempt's.
    let late = store::Attempted {
        id: claimed[0].id,
        attempts: claimed[0].attempts,
        outcome: store::Outcome::Dead { error: "late".into() },
    };
    assert_eq!(store::record_attempts(&pool, &[late], clock.now()).await.expect("record"), 0);
    assert_eq!(delivery_row(&db).await.1, "delivered");
    // Old delivered records are pruned; younger ones stay.
    assert_eq!(store::prune_delivered(&pool, clock.now(), 100).await.expect("prune"), 0);
    let later = clock.now() + SignedDuration::from_secs(1);
    assert_eq!(store::prune_delivered(&pool, later, 100).await.expect("prune"), 1);
    assert_eq!(count(&db, "SELECT count(*) FROM deliveries").await, 0);
}

#[actix::test]
async fn one_pass_reads_and_records_a_batch_each_delivery_with_its_own_booking_place_and_fate() {
    let db = TestDb::new();
    // Whole microseconds, as PostgreSQL keeps them.
    let start = Timestamp::from_microsecond(Timestamp::now().as_microsecond()).expect("a timestamp");
    let clock = Arc::new(ManualClock::new(start));
    let e = engine_of(&db, clock.clone()).await;
    let (concert, fair) = ("Concert", "Fair");
    let concert_id =
        e.create(fixtures::event_with_categories(UserId::new_v7(), concert, 10, 10, start)).await.expect("create");
    let fair_id = e.create(fixtures::event(UserId::new_v7(), fair, 10, start)).await.expect("create");
    let hotel_id = e.create(fixtures::hotel(UserId::new_v7(), "Seaside", "Lisbon", 1, 1)).await.expect("create");
    let (ann, bob, cy, dee) = (
        add_user(&db, "Ann", "ann@example.com").await,
        add_user(&db, "Bob", "bob@example.com").await,
        add_user(&db, "Cy", "cy@example.com").await,
        add_user(&db, "Dee", "dee@example.com").await,
    );
    let balcony =
        BookingRequest::Tickets { category_id: Some(CategoryId(fixtures::fixed_id(concert, 2))), quantity: 2 };
    let ann_booking = book(&e, concert_id, ann, balcony, true).await;
    // Bob's mailbox is full: both his deliveries (a hold, then a confirmed booking) back off.
    book(&e, fair_id, bob, tickets(1), false).await;
    book(&e, fair_id, bob, tickets(1), true).await;
    let check_in = start.to_zoned(jiff::tz::TimeZone::UTC).date().checked_add(40.days()).expect("date");
    let suite = BookingRequest::Stay {
        room_type_id: RoomTypeId(fixtures::fixed_id("Seaside", 2)),
        room_id: None,
        check_in,
        check_out: check_in.checked_add(2.days()).expect("date"),
        guests: 3,
    };
    let cy_booking = book(&e, hotel_id, cy, suite, true).await;
    book(&e, fair_id, dee, tickets(1), true).await;

    let rec = Recorder::default();
    rec.failing.lock().expect("lock").insert(bob);
    let cfg = test_config();
    let pool = engine::store::postgres::PgStore::pool(&store_of(&db).await).clone();
    assert_eq!(store::fan_out(&pool, &[Arc::new(rec.clone()) as _], &cfg, clock.now()).await.expect("fan out"), 5);
    // Dee's account is deleted between fan-out and send: her delivery has no recipient.
    db.client().await.execute("DELETE FROM users WHERE id = $1", &[&dee.0]).await.expect("delete");

    let n = notifier(&db, clock.clone(), Arc::new(rec.clone()), cfg).await;
    assert_eq!(n.send_due().await.expect("send"), (2, 3));

    let notices = rec.notices.lock().expect("lock").clone();
    assert_eq!(notices.len(), 2);
    let ann_notice = notices.iter().find(|x| x.recipient.user_id == ann.0).expect("Ann's notice");
    assert_eq!((ann_notice.booking.id, ann_notice.resource.id), (ann_booking, concert_id.0));
    assert_eq!(
        (ann_notice.resource.name.as_str(), ann_notice.resource.item_label.as_deref()),
        (concert, Some("Balcony"))
    );
    let cy_notice = notices.iter().find(|x| x.recipient.user_id == cy.0).expect("Cy's notice");
    assert_eq!((cy_notice.booking.id, cy_notice.resource.id), (cy_booking, hotel_id.0));
    assert_eq!(cy_notice.resource.item_label.as_deref(), Some("Suite, room 201"));
    assert_eq!(cy_notice.resource.city.as_deref(), Some("Lisbon"));

    let rows = db
        .client()
        .await
        .query(
            "SELECT user_id, status, attempts, next_attempt_at, last_error, delivered_at FROM deliveries ORDER BY id",
            &[],
        )
        .await
        .expect("deliveries");
    assert_eq!(rows.len(), 5);
    for r in &rows {
        let (user, status, attempts): (uuid::Uuid, String, i32) = (r.get(0), r.get(1), r.get(2));
        let (next, error, delivered): (Timestamp, Option<String>, Option<Timestamp>) = (r.get(3), r.get(4), r.get(5));
        assert_eq!(attempts, 1, "one attempt each");
        if user == bob.0 {
            assert_eq!(status, "pending");
            assert!(
                next >= start + SignedDuration::from_secs(5) && next <= start + SignedDuration::from_secs(10),
                "{next}"
            );
            assert!(error.is_some_and(|e| e.contains("mailbox full")));
            assert_eq!(delivered, None);
        } else if user == dee.0 {
            assert_eq!(status, "dead");
            assert!(error.is_some_and(|e| e.contains("no longer exists")));
            assert_eq!(delivered, None);
        } else {
            assert_eq!((status.as_str(), error, delivered), ("delivered", None, Some(start)));
        }
    }
}
