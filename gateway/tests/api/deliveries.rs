//! Notification delivery through the whole server: a booking made over HTTP arrives as an
//! email at a real SMTP server on loopback; admins list deliveries and retry dead letters.

use crate::helpers::{Session, TestApp, code, session, spawn_memory_with_admin, spawn_with};
use gateway::configuration::{Secret, Settings};
use gateway::startup::Application;
use mail_parser::{MessageParser, MimeHeaders};
use mailin_embedded::{Handler, Response, Server, SslConfig, response};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Default)]
struct Received {
    rcpt: Vec<String>,
    data: Vec<u8>,
}

/// An SMTP server that keeps what it receives and refuses mailboxes starting with "reject".
#[derive(Clone, Default)]
struct Inbox {
    mails: Arc<Mutex<Vec<Received>>>,
    current: Received,
}

impl Handler for Inbox {
    fn rcpt(&mut self, to: &str) -> Response {
        if to.trim_start_matches('<').starts_with("reject") { response::NO_MAILBOX } else { response::OK }
    }
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.current = Received { rcpt: to.to_vec(), data: Vec::new() };
        response::OK
    }
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.data.extend_from_slice(buf);
        Ok(())
    }
    fn data_end(&mut self) -> Response {
        self.mails.lock().expect("lock").push(std::mem::take(&mut self.current));
        response::OK
    }
}

fn smtp_server() -> (u16, Arc<Mutex<Vec<Received>>>) {
    let inbox = Inbox::default();
    let mails = inbox.mails.clone();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut server = Server::new(inbox);
    server.with_name("localhost").with_ssl(SslConfig::None).expect("no tls").with_tcp_listener(listener);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    (port, mails)
}

fn with_smtp(s: &mut Settings, port: u16) {
    s.smtp_host = Some("127.0.0.1".into());
    s.smtp_port = port;
    s.smtp_tls = bots::email::TlsMode::None;
    s.smtp_from = "Bookings <bookings@example.com>".into();
    s.delivery_poll_ms = 20;
    s.admin_email = Some("root@example.com".into());
    s.admin_password = Some(Secret::new("admin password 123"));
}

async fn login(app: &TestApp, email: &str, password: &str) -> Session {
    let (st, v) = app.post("/api/v1/auth/login", None, json!({"email": email, "password": password})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    session(&v)
}

async fn register_as(app: &TestApp, email: &str, name: &str) -> Session {
    let (st, v) = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": email, "password": "a long password", "name": name, "role": "client"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "register: {v}");
    session(&v)
}

/// Waits (bounded) until `done` holds; the notifier polls every 20 ms in these tests.
async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[actix_web::test]
async fn a_booking_made_over_http_arrives_as_an_email_with_its_calendar() {
    let (port, mails) = smtp_server();
    let app = spawn_with(|s| with_smtp(s, port)).await;
    let owner = app.register("owner").await;
    let email = format!("guest-{}@example.com", uuid::Uuid::now_v7().simple());
    let client = register_as(&app, &email, "Gus <Guest>").await;
    let event = app.create_priced_event(&owner, 10).await;
    let (st, b) = app.book(&client, &event, 2, false).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let booking_id = b["id"].as_str().expect("id").to_owned();
    // Paid at the desk: the owner confirms.
    let (st, v) = app.post(&format!("/api/v1/bookings/{booking_id}/confirm"), Some(&owner.token), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{v}");

    // The hold's email comes first; the confirmation is the one this test reads.
    let mail = eventually("the confirmation email", async || {
        mails
            .lock()
            .expect("lock")
            .iter()
            .find(|m| {
                MessageParser::default()
                    .parse(&m.data)
                    .and_then(|p| p.subject().map(|s| s.starts_with("Booking confirmed")))
                    == Some(true)
            })
            .cloned()
    })
    .await;
    assert_eq!(mail.rcpt, std::slice::from_ref(&email));
    let m = MessageParser::default().parse(&mail.data).expect("a MIME message");
    let reference = bots::render::reference(uuid::Uuid::parse_str(&booking_id).expect("uuid"));
    assert_eq!(m.subject(), Some(format!("Booking confirmed: Priced Event ({reference})").as_str()));
    assert_eq!(m.to().and_then(|a| a.first()).and_then(|a| a.address()), Some(email.as_str()));
    let text = m.body_text(0).expect("plain part");
    assert!(text.contains("2 tickets") && text.contains("EUR 50.00") && text.contains("UTC"), "{text}");
    let html = m.body_html(0).expect("html part");
    assert!(html.contains("Gus &lt;Guest&gt;") && !html.contains("<Guest>"), "{html}");
    let ics = m.attachments().next().expect("calendar attached");
    assert_eq!(ics.content_type().map(|c| (c.ctype(), c.subtype())), Some(("text", Some("calendar"))));
    let cal = String::from_utf8_lossy(ics.contents());
    assert!(cal.starts_with("BEGIN:VCALENDAR\r\n") && cal.contains(&format!("UID:{booking_id}@")), "{cal}");

    // The admin sees it delivered.
    let admin = login(&app, "root@example.com", "admin password 123").await;
    let (st, v) = app.get("/api/v1/admin/deliveries?status=delivered", Some(&admin.token)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["items"][0]["booking_id"].as_str(), Some(booking_id.as_str()), "{v}");
    assert_eq!((v["items"][0]["kind"].as_str(), v["items"][0]["channel"].as_str()), (Some("confirmed"), Some("email")));
}

async fn dead_letters(app: &TestApp, admin: &Session) -> Vec<Value> {
    let (st, v) = app.get("/api/v1/admin/deliveries?status=dead", Some(&admin.token)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["items"].as_array().cloned().unwrap_or_default()
}

#[actix_web::test]
async fn admins_see_dead_letters_and_retry_them_and_nobody_else_can() {
    let (port, mails) = smtp_server();
    let app = spawn_with(|s| with_smtp(s, port)).await;
    let admin = login(&app, "root@example.com", "admin password 123").await;
    let owner = app.register("owner").await;
    let good = register_as(&app, &format!("good-{}@example.com", uuid::Uuid::now_v7().simple()), "Good").await;
    let bad = register_as(&app, &format!("reject-{}@example.com", uuid::Uuid::now_v7().simple()), "Bad").await;
    let event = app.create_event(&owner, 10).await;
    assert_eq!(app.book(&good, &event, 1, true).await.0, StatusCode::CREATED);
    assert_eq!(app.book(&bad, &event, 1, true).await.0, StatusCode::CREATED);

    // The server refuses one mailbox for good (550): dead at once, no retries.
    let dead = eventually("a dead letter", async || {
        let d = dead_letters(&app, &admin).await;
        (!d.is_empty()).then_some(d)
    })
    .await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["user_id"].as_str(), Some(bad.user_id.as_str()));
    assert!(dead[0]["last_error"].as_str().is_some_and(|e| e.contains("550")), "{}", dead[0]);
    let dead_id = dead[0]["id"].as_i64().expect("id");
    eventually("the good email", async || (!mails.lock().expect("lock").is_empty()).then_some(())).await;

    // Clients and owners are refused; anonymous callers must sign in.
    for who in [&good, &owner] {
        let (st, v) = app.get("/api/v1/admin/deliveries", Some(&who.token)).await;
        assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
        let (st, v) = app.post(&format!("/api/v1/admin/deliveries/{dead_id}/retry"), Some(&who.token), json!({})).await;
        assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    }
    assert_eq!(app.get("/api/v1/admin/deliveries", None).await.0, StatusCode::UNAUTHORIZED);

    // Bad queries name their field.
    for (q, field) in
        [("status=lost", "status"), ("limit=0", "limit"), ("limit=101", "limit"), ("cursor=abc", "cursor")]
    {
        let (st, v) = app.get(&format!("/api/v1/admin/deliveries?{q}"), Some(&admin.token)).await;
        assert_eq!((st, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{q}: {v}");
        assert_eq!(v["errors"][0]["field"].as_str(), Some(field), "{q}: {v}");
    }
    let (st, v) = app.get("/api/v1/admin/deliveries?colour=red", Some(&admin.token)).await;
    assert!(st.is_client_error() && v["code"].is_string(), "{st} {v}");
    let (st, v) = app.get("/api/v1/admin/deliveries/notanumber", Some(&admin.token)).await;
    assert!(st.is_client_error() && v["code"].is_string(), "{st} {v}");

    // Paging: one at a time, newest first, then the cursor's page.
    let (_, p1) = app.get("/api/v1/admin/deliveries?limit=1", Some(&admin.token)).await;
    let cursor = p1["next_cursor"].as_str().expect("a next page");
    let (_, p2) = app.get(&format!("/api/v1/admin/deliveries?limit=1&cursor={cursor}"), Some(&admin.token)).await;
    assert!(p1["items"][0]["id"].as_i64() > p2["items"][0]["id"].as_i64(), "{p1} {p2}");

    // The delivered one cannot be retried; an unknown one is 404; the dead one goes back in line.
    let (_, delivered) = app.get("/api/v1/admin/deliveries?status=delivered", Some(&admin.token)).await;
    let done_id = delivered["items"][0]["id"].as_i64().expect("a delivered one");
    let (st, v) = app.post(&format!("/api/v1/admin/deliveries/{done_id}/retry"), Some(&admin.token), json!({})).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "delivery_not_dead"), "{v}");
    let (st, v) = app.post("/api/v1/admin/deliveries/999999/retry", Some(&admin.token), json!({})).await;
    assert_eq!((st, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (st, v) = app.post(&format!("/api/v1/admin/deliveries/{dead_id}/retry"), Some(&admin.token), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!((v["status"].as_str(), v["attempts"].as_i64()), (Some("pending"), Some(0)));
    // It is tried again (and refused again: that mailbox does not exist).
    eventually("the retried attempt", async || {
        let (_, v) = app.get(&format!("/api/v1/admin/deliveries/{dead_id}"), Some(&admin.token)).await;
        (v["status"] == "dead" && v["attempts"] == 1).then_some(())
    })
    .await;
}

#[actix_web::test]
async fn without_postgres_the_delivery_api_says_it_is_off() {
    let (addr, token) = spawn_memory_with_admin().await;
    let http = reqwest::Client::new();
    let res = http.get(format!("{addr}/api/v1/admin/deliveries")).bearer_auth(token).send().await.expect("sent");
    assert_eq!(res.status(), StatusCode::NOT_IMPLEMENTED);
    let v: Value = res.json().await.expect("problem");
    assert_eq!(code(&v), "delivery_disabled");
}

#[actix_web::test]
async fn two_gateways_on_one_database_send_each_email_once() {
    let (port, mails) = smtp_server();
    let first = spawn_with(|s| with_smtp(s, port)).await;
    // A second server process on the same database, with its own notifier.
    let mut s = Settings::local();
    s.database_url = Some(Secret::new(&first.db.url));
    s.db_pool_size = 8;
    with_smtp(&mut s, port);
    let second = Application::build(s).await.expect("the second gateway starts");
    let second_addr = format!("http://127.0.0.1:{}", second.port());
    actix_web::rt::spawn(second.run_until_stopped());

    let owner = first.register("owner").await;
    // One event per gateway: each resource has one deciding engine (two engines deciding for
    // one resource fence each other off with 503s; that is the engine's business, not ours).
    let event_a = first.create_event(&owner, 100).await;
    let kind = serde_json::to_value(
        engine::fixtures::free(engine::fixtures::event(
            engine::domain::ids::UserId::new_v7(),
            "x",
            100,
            jiff::Timestamp::now(),
        ))
        .kind,
    )
    .expect("json");
    let res = first
        .http
        .post(format!("{second_addr}/api/v1/resources"))
        .bearer_auth(&owner.token)
        .json(&json!({"name": "Second Event", "kind": kind}))
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), StatusCode::CREATED);
    let event_b = res.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_owned();
    let mut booked = 0;
    for i in 0..12 {
        let client = first.register("client").await;
        // Half of the bookings go through each gateway.
        let (base, event) = if i % 2 == 0 { (first.addr.clone(), &event_a) } else { (second_addr.clone(), &event_b) };
        let res = first
            .http
            .post(format!("{base}/api/v1/bookings"))
            .bearer_auth(&client.token)
            .json(&json!({"resource_id": event, "request": {"kind": "tickets", "quantity": 1}, "confirm": true}))
            .send()
            .await
            .expect("sent");
        assert_eq!(res.status(), StatusCode::CREATED);
        booked += 1;
    }
    let db = first.db.client().await;
    eventually("every notification delivered", async || {
        let left: i64 = db
            .query_one(
                "SELECT (SELECT count(*) FROM outbox) + (SELECT count(*) FROM deliveries WHERE status <> 'delivered')",
                &[],
            )
            .await
            .expect("count")
            .get(0);
        (left == 0).then_some(())
    })
    .await;
    // Delivered means sent: nothing can be sent after this point.
    let mails = mails.lock().expect("lock").clone();
    let parser = MessageParser::default();
    let mut ids: Vec<String> = mails
        .iter()
        .map(|m| parser.parse(&m.data).and_then(|p| p.message_id().map(str::to_owned)).expect("message id"))
        .collect();
    assert_eq!(ids.len(), booked, "one email per booking");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), booked, "no email sent twice");
}
