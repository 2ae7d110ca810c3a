//! loadgen's scenarios against the real gateway on a fresh PostgreSQL database: each runs
//! briefly as a user would run it (the binary, `--json`), must book what the scenario books,
//! and must end with the invariant check's PASS. And the check must be able to say FAIL.
//! ingest-gen (seed 000's feed generator) runs here too, against the same kind of server.
// A test's helpers unwrap like its #[test] fns (clippy.toml allows those): a failed
// expectation is the test's answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use engine::testing::TestDb;
use gateway::configuration::{Secret, Settings};
use gateway::startup::Application;
use serde_json::Value;
use std::process::Command;

struct Server {
    url: String,
    db: TestDb,
    secret: String,
}

async fn server() -> Server {
    let db = TestDb::new();
    let mut s = Settings::local();
    s.database_url = Some(Secret::new(&db.url));
    s.db_pool_size = 8;
    let secret = "loadgen-test-secret-0123456789-abcdefghij".to_owned();
    s.jwt_secret = Some(Secret::new(&secret));
    let app = Application::build(s).await.expect("the app starts");
    let url = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    Server { url, db, secret }
}

/// Runs loadgen with `args` after the scenario name; its exit success and its JSON report.
async fn loadgen(srv: &Server, args: &[&str]) -> (bool, Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loadgen"));
    cmd.args(["--json", "--base-url", &srv.url])
        .args(args)
        .env("JWT_SECRET", &srv.secret)
        .env("DATABASE_URL", &srv.db.url);
    // The server runs on this thread's actix system: wait for the child elsewhere.
    let out = actix_web::rt::task::spawn_blocking(move || cmd.output()).await.expect("joined").expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report =
        stdout.lines().rev().find_map(|l| serde_json::from_str::<Value>(l).ok()).unwrap_or_else(|| {
            panic!("no JSON report; stdout {stdout}, stderr {}", String::from_utf8_lossy(&out.stderr))
        });
    (out.status.success(), report)
}

fn outcome(report: &Value, key: &str) -> u64 {
    report["outcomes"][key].as_u64().unwrap_or(0)
}

async fn db_count(srv: &Server, sql: &str) -> i64 {
    let (db, conn) = tokio_postgres::connect(&srv.db.url, tokio_postgres::NoTls).await.expect("connect");
    actix_web::rt::spawn(conn);
    db.query_one(sql, &[]).await.expect("query").get(0)
}

#[actix_web::test]
async fn flash_sale_sells_out_exactly_and_passes() {
    let srv = server().await;
    let (ok, r) = loadgen(&srv, &["flash-sale", "--capacity", "150", "--clients", "20", "--users", "10"]).await;
    assert!(ok, "{r}");
    assert_eq!(r["bookings"], 150, "{r}");
    assert!(outcome(&r, "409 sold_out") >= 1, "{r}");
    assert_eq!(r["invariants_pass"], true, "{r}");
    assert_eq!(db_count(&srv, "SELECT count(*) FROM bookings WHERE status = 'confirmed'").await, 150);
}

#[actix_web::test]
async fn open_loop_keeps_its_schedule() {
    let srv = server().await;
    let (ok, r) = loadgen(
        &srv,
        &["flash-sale", "--capacity", "100000", "--rate", "200", "--duration-secs", "2", "--users", "10"],
    )
    .await;
    assert!(ok, "{r}");
    // 200/s for 2 s: every request left (none refused for lack of room) and was booked.
    assert_eq!(r["requests"], 400, "{r}");
    assert_eq!(r["bookings"], 400, "{r}");
    assert_eq!(r["invariants_pass"], true, "{r}");
}

#[actix_web::test]
async fn hotel_rush_books_and_cancels_and_passes() {
    let srv = server().await;
    let (ok, r) = loadgen(
        &srv,
        &[
            "hotel-rush",
            "--hotels",
            "4",
            "--cities",
            "2",
            "--stays",
            "20",
            "--users",
            "8",
            "--cancel-pct",
            "40",
            "--clients",
            "8",
            "--duration-secs",
            "3",
        ],
    )
    .await;
    assert!(ok, "{r}");
    let cancelled = outcome(&r, "200 cancelled");
    assert!(r["bookings"].as_u64().unwrap_or(0) > 10 && cancelled > 0, "{r}");
    assert_eq!(r["invariants_pass"], true, "{r}");
    // Every acknowledged cancellation is a cancelled row.
    let rows = db_count(&srv, "SELECT count(*) FROM bookings WHERE status = 'cancelled'").await;
    assert_eq!(rows as u64, cancelled, "{r}");
}

#[actix_web::test]
async fn appointments_race_takes_each_slot_once() {
    let srv = server().await;
    let (ok, r) = loadgen(
        &srv,
        &["appointments", "--providers", "2", "--users", "30", "--clients", "30", "--duration-secs", "20"],
    )
    .await;
    assert!(ok, "{r}");
    // The race ran until the day was full, well before its time limit.
    assert_eq!(r["day_full"], true, "{r}");
    assert!(r["seconds"].as_f64().unwrap_or(99.0) < 15.0, "{r}");
    let booked = r["bookings"].as_u64().unwrap_or(0);
    assert!(booked > 0 && booked <= r["slots"].as_u64().unwrap_or(0), "{r}");
    assert!(outcome(&r, "409 slot_unavailable") > 0, "{r}");
    assert_eq!(r["invariants_pass"], true, "{r}");
    let rows = db_count(&srv, "SELECT count(*) FROM bookings WHERE item_kind = 'appointment'").await;
    assert_eq!(rows as u64, booked, "{r}");
    // And the server agrees: no free slot is left on that day at either provider.
    let http = reqwest::Client::new();
    for p in r["providers"].as_array().expect("providers") {
        let url = format!(
            "{}/api/v1/providers/{}/slots?date={}",
            srv.url,
            p.as_str().expect("id"),
            r["day"].as_str().expect("day")
        );
        let v: Value = http.get(url).send().await.expect("sent").json().await.expect("json");
        assert_eq!(v["slots"].as_array().map(Vec::len), Some(0), "{v}");
    }
}

#[actix_web::test]
async fn mixed_load_searches_and_books() {
    let srv = server().await;
    let (ok, r) = loadgen(
        &srv,
        &[
            "mixed",
            "--hotels",
            "4",
            "--cities",
            "2",
            "--stays",
            "10",
            "--users",
            "8",
            "--capacity",
            "1000",
            "--clients",
            "8",
            "--duration-secs",
            "3",
        ],
    )
    .await;
    assert!(ok, "{r}");
    assert!(outcome(&r, "200 ok") > 0, "searches: {r}");
    assert!(outcome(&r, "201 confirmed") > 0, "bookings: {r}");
    assert_eq!(r["invariants_pass"], true, "{r}");
}

#[actix_web::test]
async fn the_check_fails_when_the_database_disagrees() {
    let srv = server().await;
    let (ok, r) = loadgen(&srv, &["flash-sale", "--capacity", "5", "--clients", "2", "--users", "2"]).await;
    assert!(ok, "{r}");
    // Break the promise behind the engine's back: the checker must see it.
    let (db, conn) = tokio_postgres::connect(&srv.db.url, tokio_postgres::NoTls).await.expect("connect");
    actix_web::rt::spawn(conn);
    db.execute("UPDATE events SET taken = taken - 1", &[]).await.expect("update");
    let (ok, r) = loadgen(&srv, &["check"]).await;
    assert!(!ok, "the check passed a count that is off by one: {r}");
    assert_eq!(r["invariants_pass"], false, "{r}");
}

#[actix_web::test]
async fn the_check_finds_overlapping_stays_and_appointments() {
    let srv = server().await;
    let (ok, r) = loadgen(
        &srv,
        &[
            "hotel-rush",
            "--hotels",
            "2",
            "--cities",
            "1",
            "--stays",
            "10",
            "--users",
            "4",
            "--clients",
            "4",
            "--duration-secs",
            "1",
        ],
    )
    .await;
    assert!(ok, "{r}");
    let (ok, r) =
        loadgen(&srv, &["appointments", "--providers", "1", "--users", "4", "--clients", "4", "--duration-secs", "10"])
            .await;
    assert!(ok, "{r}");
    // Behind the engine's back, without the database's own guards: move one active stay onto
    // another's room and nights, and one appointment onto another's time.
    let (db, conn) = tokio_postgres::connect(&srv.db.url, tokio_postgres::NoTls).await.expect("connect");
    actix_web::rt::spawn(conn);
    db.batch_execute(
        "ALTER TABLE bookings DISABLE TRIGGER room_nights_update;
         ALTER TABLE bookings DROP CONSTRAINT no_overlapping_appointments;
         WITH two AS (SELECT id, room_id, check_in, check_out FROM bookings
                      WHERE item_kind = 'stay' AND status = 'confirmed' ORDER BY id LIMIT 2)
         UPDATE bookings b SET room_id = f.room_id, check_in = f.check_in, check_out = f.check_out
         FROM (SELECT * FROM two ORDER BY id LIMIT 1) f
         WHERE b.id = (SELECT id FROM two ORDER BY id DESC LIMIT 1);
         WITH two AS (SELECT id, starts_at, ends_at FROM bookings
                      WHERE item_kind = 'appointment' AND status = 'confirmed' ORDER BY id LIMIT 2)
         UPDATE bookings b SET starts_at = f.starts_at, ends_at = f.ends_at
         FROM (SELECT * FROM two ORDER BY id LIMIT 1) f
         WHERE b.id = (SELECT id FROM two ORDER BY id DESC LIMIT 1);",
    )
    .await
    .expect("overlaps made");
    let (ok, r) = loadgen(&srv, &["check"]).await;
    assert!(!ok, "the check passed overlapping bookings: {r}");
    let broken: Vec<&str> = r["invariants"]
        .as_array()
        .expect("invariants")
        .iter()
        .filter(|c| !c["violations"].as_array().is_none_or(Vec::is_empty))
        .filter_map(|c| c["check"].as_str())
        .collect();
    assert_eq!(
        broken,
        ["no overlapping active stays on a room", "no overlapping active appointments of a provider"],
        "{r}"
    );
}

/// ingest-gen as seed 000's `send_random_data.sh` is used: it signs up an owner, makes the
/// hotels and (here) an integration key for them, and sends random bookings and cancellations;
/// what it reports is what PostgreSQL holds.
#[actix_web::test]
async fn ingest_gen_feeds_bookings_and_cancellations_that_are_all_stored() {
    let srv = server().await;
    let year = (jiff::Zoned::now().year() + 1).to_string();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ingest-gen"));
    cmd.args(["--url", &srv.url, "--email", "gen-owner@example.com", "--hotels", "2", "--rooms", "5"])
        .args(["--year", &year, "--rate", "0", "--batch", "50", "--concurrency", "2", "--seconds", "60"])
        .args(["--events", "400", "--cancel-ratio", "0.25", "--use-key", "--seed", "3"]);
    let out =
        actix_web::rt::task::spawn_blocking(move || cmd.output()).await.expect("joined").expect("ingest-gen runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let count = |label: &str| -> u64 {
        stdout.lines().find_map(|l| l.trim().strip_prefix(label).and_then(|n| n.trim().parse().ok())).unwrap_or(0)
    };
    assert!(stdout.contains("400 events answered"), "{stdout}");
    assert!(stdout.contains("failed requests 0"), "{stdout}");
    let (booked, cancelled) = (count("booked:"), count("cancelled:"));
    assert!(booked > 100 && cancelled > 20, "{stdout}");
    // Every booked event is a feed stay in PostgreSQL, and every cancelled one is cancelled.
    let stays = db_count(&srv, "SELECT count(*) FROM bookings WHERE idempotency_key LIKE 'ingest:%'").await;
    let gone = db_count(&srv, "SELECT count(*) FROM bookings WHERE status = 'cancelled'").await;
    assert_eq!((stays as u64, gone as u64), (booked, cancelled), "{stdout}");
    // Sent with the key it made, not the owner's token.
    let used = db_count(&srv, "SELECT count(*) FROM integration_keys WHERE last_used_at IS NOT NULL").await;
    assert_eq!(used, 1);
}
