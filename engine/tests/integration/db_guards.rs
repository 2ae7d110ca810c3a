//! The database's own guard against double-booked room-nights (`room_nights`, migration V10),
//! exercised behind the engine's back with plain SQL: it must hold whoever writes `bookings`.

use crate::common::{TestDb, store_of, system_clock};
use engine::domain::booking::{BookingRequest, Requester};
use engine::domain::command::Command;
use engine::domain::ids::{BookingId, ResourceId, UserId};
use engine::domain::spec::KindSpec;
use engine::{Engine, EngineConfig, fixtures};
use jiff::ToSpan;
use jiff::civil::Date;
use std::sync::Arc;
use tokio_postgres::Client;
use uuid::Uuid;

struct Hotel {
    id: ResourceId,
    room_type: Uuid,
    rooms: [Uuid; 2],
}

async fn hotel(engine: &Engine) -> Hotel {
    let spec = fixtures::hotel(UserId::new_v7(), "Guarded Inn", "Porto", 2, 0);
    let KindSpec::Hotel(h) = &spec.kind else { unreachable!() };
    let (room_type, rooms) = (h.room_types[0].id.0, [h.rooms[0].id.0, h.rooms[1].id.0]);
    let id = engine.create(spec).await.expect("create");
    Hotel { id, room_type, rooms }
}

/// A stay written with SQL alone, as an operator's script would.
async fn insert_stay(
    c: &Client,
    h: &Hotel,
    room: Uuid,
    check_in: Date,
    check_out: Date,
    status: &str,
) -> Result<Uuid, tokio_postgres::Error> {
    let id = Uuid::now_v7();
    c.execute(
        "INSERT INTO bookings (id, resource_id, item_kind, user_id, status, room_type_id, room_id, check_in,
            check_out, guests, amount_minor, currency, created_at, updated_at)
         VALUES ($1, $2, 'stay', $3, $4, $5, $6, $7, $8, 1, 0, 'EUR', now(), now())",
        &[&id, &h.id.0, &Uuid::now_v7(), &status, &h.room_type, &room, &check_in, &check_out],
    )
    .await
    .map(|_| id)
}

fn day(d: i64) -> Date {
    jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date().checked_add(d.days()).expect("date")
}

/// The guard's rows against what they must be: one per night of every active stay.
async fn nights_match_stays(c: &Client) {
    let (expected, actual): (i64, i64) = {
        let r = c
            .query_one(
                "SELECT (SELECT coalesce(sum(check_out - check_in), 0) FROM bookings
                         WHERE item_kind = 'stay' AND status IN ('held', 'confirmed'))::bigint,
                        (SELECT count(*) FROM room_nights r JOIN bookings b ON b.id = r.booking_id
                         WHERE b.room_id = r.room_id AND r.night >= b.check_in AND r.night < b.check_out
                           AND b.status IN ('held', 'confirmed'))",
                &[],
            )
            .await
            .expect("count");
        (r.get(0), r.get(1))
    };
    let all: i64 = c.query_one("SELECT count(*) FROM room_nights", &[]).await.expect("count").get(0);
    assert_eq!((actual, all), (expected, expected), "room_nights holds exactly the active stays' nights");
}

#[actix::test]
async fn the_database_refuses_a_second_active_stay_on_a_room_night_whoever_writes_it() {
    let db = TestDb::new();
    let engine = Engine::new(Arc::new(store_of(&db).await), system_clock(), EngineConfig::default());
    let h = hotel(&engine).await;
    let user = UserId::new_v7();
    // The engine books room 0 for nights 10..13.
    let booking_id = BookingId::new_v7();
    let request = BookingRequest::Stay {
        room_type_id: engine::domain::ids::RoomTypeId(h.room_type),
        room_id: Some(engine::domain::ids::RoomId(h.rooms[0])),
        check_in: day(10),
        check_out: day(13),
        guests: 1,
    };
    engine
        .execute(h.id, Command::Hold { booking_id, user_id: user, request, confirm: true, by: Requester::System }, None)
        .await
        .expect("booked");
    let c = db.client().await;
    nights_match_stays(&c).await;

    // Behind the engine's back: an active stay sharing one night is refused (SQLSTATE 23505)...
    let err = insert_stay(&c, &h, h.rooms[0], day(12), day(14), "confirmed").await.expect_err("overlap refused");
    assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION), "{err}");
    // ...while touching stays, another room, and inactive stays are not.
    insert_stay(&c, &h, h.rooms[0], day(13), day(15), "confirmed").await.expect("check-out day is free");
    insert_stay(&c, &h, h.rooms[1], day(10), day(13), "confirmed").await.expect("another room");
    let cancelled = insert_stay(&c, &h, h.rooms[0], day(11), day(12), "cancelled").await.expect("inactive");
    nights_match_stays(&c).await;

    // Re-activating the cancelled stay collides with the engine's booking.
    let err = c
        .execute("UPDATE bookings SET status = 'confirmed' WHERE id = $1", &[&cancelled])
        .await
        .expect_err("re-activation refused");
    assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION), "{err}");

    // In one transaction, in either order: cancel the engine's stay, then let its night again.
    c.batch_execute(&format!(
        "BEGIN;
         UPDATE bookings SET status = 'confirmed' WHERE id = '{cancelled}';
         UPDATE bookings SET status = 'cancelled' WHERE id = '{}';
         COMMIT;",
        booking_id.0
    ))
    .await
    .expect("a freed night is let again in the same transaction");
    nights_match_stays(&c).await;

    // A stay moved to another room gives back its old nights and takes the new ones.
    let moved = insert_stay(&c, &h, h.rooms[1], day(20), day(22), "confirmed").await.expect("free");
    c.execute("UPDATE bookings SET room_id = $2 WHERE id = $1", &[&moved, &h.rooms[0]]).await.expect("moved");
    c.execute(
        "INSERT INTO bookings (id, resource_id, item_kind, user_id, status, room_type_id, room_id, check_in,
            check_out, guests, amount_minor, currency, hold_expires_at, created_at, updated_at)
         VALUES ($1, $2, 'stay', $3, 'held', $4, $5, $6, $7, 1, 0, 'EUR', now(), now(), now())",
        &[&Uuid::now_v7(), &h.id.0, &Uuid::now_v7(), &h.room_type, &h.rooms[1], &day(20), &day(22)],
    )
    .await
    .expect("the old room's nights are free again");
    let err =
        insert_stay(&c, &h, h.rooms[0], day(21), day(23), "confirmed").await.expect_err("moved stay holds room 0");
    assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION), "{err}");
    nights_match_stays(&c).await;

    // Deleting a stay (an operator's clean-up) frees its nights too.
    c.execute("DELETE FROM bookings WHERE id = $1", &[&moved]).await.expect("deleted");
    insert_stay(&c, &h, h.rooms[0], day(21), day(23), "confirmed").await.expect("free after the delete");
    nights_match_stays(&c).await;
}

/// Statements that change many stays at once (a group commit's upsert, an operator's bulk
/// fix) give back exactly the nights that stopped being held, whatever size the connection's
/// first such statement had: the trigger's plan must not be one made for a single row.
#[actix::test]
async fn bulk_updates_and_deletes_keep_exactly_the_active_nights() {
    let db = TestDb::new();
    let engine = Engine::new(Arc::new(store_of(&db).await), system_clock(), EngineConfig::default());
    let h = hotel(&engine).await;
    let c = db.client().await;
    // 600 stays of one to three nights over both rooms, back to back.
    let mut ids = Vec::new();
    for (i, room) in h.rooms.iter().enumerate() {
        let mut at = 2 + i64::try_from(i).expect("small");
        for n in 0..300_i64 {
            let len = 1 + n % 3;
            ids.push(insert_stay(&c, &h, *room, day(at), day(at + len), "confirmed").await.expect("free"));
            at += len;
        }
    }
    nights_match_stays(&c).await;
    // First on this connection: one row. Then 400 rows of every kind at once: cancelled,
    // confirmed again (active -> active: nights kept), and moved a night later.
    c.execute("UPDATE bookings SET status = 'cancelled' WHERE id = $1", &[&ids[0]]).await.expect("one");
    c.execute(
        "UPDATE bookings SET status = CASE WHEN n % 2 = 0 THEN 'cancelled' ELSE status END,
                             updated_at = now()
         FROM unnest($1::uuid[]) WITH ORDINALITY AS u(id, n) WHERE bookings.id = u.id",
        &[&ids[1..401].to_vec()],
    )
    .await
    .expect("bulk cancel");
    nights_match_stays(&c).await;
    let freed: i64 = c
        .query_one(
            "SELECT count(*) FROM bookings b WHERE b.status = 'cancelled'
               AND NOT EXISTS (SELECT 1 FROM room_nights r WHERE r.booking_id = b.id)",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(freed, 201, "every cancelled stay gave back all its nights");
    // The last stay of each room moves one night on (its next night is free): nights follow.
    c.execute(
        "UPDATE bookings SET check_in = check_in + 1, check_out = check_out + 1
         WHERE id = ANY($1)",
        &[&vec![ids[299], ids[599]]],
    )
    .await
    .expect("moved");
    nights_match_stays(&c).await;
    c.execute("DELETE FROM bookings WHERE id = ANY($1)", &[&ids[401..].to_vec()]).await.expect("bulk delete");
    nights_match_stays(&c).await;
    let left: i64 = c.query_one("SELECT count(*) FROM room_nights", &[]).await.expect("count").get(0);
    assert!(left > 0, "the stays kept still hold their nights");
}

#[actix::test]
async fn a_booking_needs_its_resource_and_a_resource_with_bookings_is_not_deleted() {
    let db = TestDb::new();
    let engine = Engine::new(Arc::new(store_of(&db).await), system_clock(), EngineConfig::default());
    let h = hotel(&engine).await;
    let c = db.client().await;
    let fk = Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION);

    let ghost = Hotel { id: ResourceId(Uuid::now_v7()), room_type: h.room_type, rooms: h.rooms };
    let err = insert_stay(&c, &ghost, h.rooms[0], day(3), day(4), "confirmed").await.expect_err("no such resource");
    assert_eq!(err.code(), fk, "{err}");
    let stay = insert_stay(&c, &h, h.rooms[0], day(3), day(4), "confirmed").await.expect("an existing resource");
    let err = c
        .execute("UPDATE bookings SET resource_id = $2 WHERE id = $1", &[&stay, &ghost.id.0])
        .await
        .expect_err("moved to no resource");
    assert_eq!(err.code(), fk, "{err}");

    let err = c.execute("DELETE FROM resources WHERE id = $1", &[&h.id.0]).await.expect_err("it has a booking");
    assert_eq!(err.code(), fk, "{err}");
    // Without bookings it may go (its specification rows cascade).
    c.execute("DELETE FROM bookings WHERE resource_id = $1", &[&h.id.0]).await.expect("bookings removed");
    c.execute("DELETE FROM resources WHERE id = $1", &[&h.id.0]).await.expect("an empty resource is deleted");
}
