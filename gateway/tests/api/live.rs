//! Live updates over WebSocket (`GET /api/v1/ws`): against the real app and PostgreSQL, with
//! awc's WebSocket client, and a raw socket that never reads for the slow-consumer test.

use crate::helpers::{Session, TestApp, spawn_app, spawn_with};
use awc::BoxedSocket;
use awc::ws::{Codec, Frame, Message};
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Ws = actix_codec::Framed<BoxedSocket, Codec>;

fn ws_url(app: &TestApp) -> String {
    format!("{}/api/v1/ws", app.addr.replacen("http://", "ws://", 1))
}

/// Connects with the token in the Authorization header and waits for the `hello`.
async fn connect(app: &TestApp, who: &Session) -> Ws {
    let (res, mut ws) = awc::Client::new()
        .ws(ws_url(app))
        .bearer_auth(&who.token)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    assert_eq!(res.status().as_u16(), 101);
    let hello = next_json(&mut ws).await.expect("hello");
    assert_eq!(hello["type"], "hello", "{hello}");
    assert_eq!(hello["user_id"], who.user_id.as_str());
    ws
}

/// The next JSON message, answering pings; None if nothing arrives within 3 s or it closed.
async fn next_json(ws: &mut Ws) -> Option<Value> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(3), ws.next()).await.ok()??;
        match frame.expect("a valid frame") {
            Frame::Text(t) => return Some(serde_json::from_slice(&t).expect("JSON message")),
            Frame::Ping(p) => ws.send(Message::Pong(p)).await.expect("pong"),
            Frame::Close(_) => return None,
            _ => {}
        }
    }
}

/// Every message that arrives within `quiet` of the previous one.
async fn collect(ws: &mut Ws, quiet: Duration) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(quiet, ws.next()).await {
        if let Frame::Text(t) = frame {
            out.push(serde_json::from_slice(&t).expect("JSON message"));
        }
    }
    out
}

#[actix_web::test]
async fn a_client_receives_its_own_booking_changes_with_their_status() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let event = app.create_event(&owner, 10).await;
    let mut ws = connect(&app, &client).await;

    let (st, b) = app.book(&client, &event, 2, false).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let m = next_json(&mut ws).await.expect("the hold's message");
    assert_eq!((m["type"].as_str(), m["event"].as_str()), (Some("booking"), Some("held")), "{m}");
    assert_eq!(m["booking"]["id"], b["id"]);
    assert_eq!(m["booking"]["status"], "held");
    assert_eq!(m["resource_id"], event.as_str());
    let held_version = m["version"].as_i64().expect("version");

    let (st, _) = app
        .post(&format!("/api/v1/bookings/{}/confirm", b["id"].as_str().expect("id")), Some(&client.token), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK);
    let m = next_json(&mut ws).await.expect("the confirmation's message");
    assert_eq!((m["event"].as_str(), m["booking"]["status"].as_str()), (Some("confirmed"), Some("confirmed")), "{m}");
    assert!(m["version"].as_i64().expect("version") > held_version);

    let (st, _) = app
        .post(
            &format!("/api/v1/bookings/{}/cancel", b["id"].as_str().expect("id")),
            Some(&client.token),
            json!({"reason": "plans changed"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let m = next_json(&mut ws).await.expect("the cancellation's message");
    assert_eq!((m["event"].as_str(), m["booking"]["status"].as_str()), (Some("cancelled"), Some("cancelled")), "{m}");
    assert_eq!(collect(&mut ws, Duration::from_millis(300)).await, Vec::<Value>::new(), "one message per change");
}

#[actix_web::test]
async fn a_client_never_receives_another_clients_booking() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let (alice, bob) = (app.register("client").await, app.register("client").await);
    let event = app.create_event(&owner, 10).await;
    let mut alice_ws = connect(&app, &alice).await;
    let mut bob_ws = connect(&app, &bob).await;

    let (st, b) = app.book(&bob, &event, 1, true).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let m = next_json(&mut bob_ws).await.expect("bob hears of his booking");
    assert_eq!((m["event"].as_str(), m["booking"]["id"].as_str()), (Some("confirmed"), b["id"].as_str()), "{m}");
    let (st, a) = app.book(&alice, &event, 1, true).await;
    assert_eq!(st, StatusCode::CREATED, "{a}");
    let got = collect(&mut alice_ws, Duration::from_millis(500)).await;
    assert_eq!(got.len(), 1, "alice hears of her booking only: {got:?}");
    assert_eq!(got[0]["booking"]["id"], a["id"]);
    assert_eq!(
        collect(&mut bob_ws, Duration::from_millis(300)).await,
        Vec::<Value>::new(),
        "bob must not hear of alice's"
    );
}

#[actix_web::test]
async fn an_owner_receives_availability_of_its_resources_only() {
    let app = spawn_app().await;
    let (owner, other_owner) = (app.register("owner").await, app.register("owner").await);
    let client = app.register("client").await;
    let mine = app.create_event(&owner, 10).await;
    let theirs = app.create_event(&other_owner, 10).await;
    let mut ws = connect(&app, &owner).await;

    let (st, b) = app.book(&client, &mine, 3, false).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let m = next_json(&mut ws).await.expect("availability of my event");
    assert_eq!((m["type"].as_str(), m["resource_id"].as_str()), (Some("availability"), Some(mine.as_str())), "{m}");
    assert_eq!(m["resource_kind"], "event");
    assert_eq!((m["held_units"].as_u64(), m["confirmed_units"].as_u64()), (Some(3), Some(0)), "{m}");
    assert_eq!(m["changes"][0]["booking_id"], b["id"]);
    assert_eq!(m["changes"][0]["event"], "held");
    assert_eq!(m["changes"][0]["item"]["quantity"], 3, "what changed: {m}");

    let (st, _) = app.book(&client, &theirs, 1, true).await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = app
        .post(&format!("/api/v1/bookings/{}/confirm", b["id"].as_str().expect("id")), Some(&client.token), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK);
    let got = collect(&mut ws, Duration::from_millis(500)).await;
    assert_eq!(got.len(), 1, "only my resource's change, not the other owner's: {got:?}");
    assert_eq!((got[0]["resource_id"].as_str(), got[0]["confirmed_units"].as_u64()), (Some(mine.as_str()), Some(3)));
    assert_eq!(got[0]["held_units"], 0);
}

#[actix_web::test]
async fn no_or_a_bad_token_is_refused_401_before_the_upgrade() {
    let app = spawn_app().await;
    let client = app.register("client").await;
    for token in [None, Some("not-a-jwt"), Some(&client.token[..client.token.len() - 2])] {
        let mut req = awc::Client::new().ws(ws_url(&app));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        match req.connect().await {
            Err(awc::error::WsClientError::InvalidResponseStatus(s)) => assert_eq!(s.as_u16(), 401, "{token:?}"),
            Err(e) => panic!("{token:?}: {e}"),
            Ok((res, _)) => panic!("{token:?}: upgraded with {}", res.status()),
        }
    }
    // The answer is problem+json, and the same with a bad token in the subprotocol.
    let res = app
        .http
        .get(format!("{}/api/v1/ws", app.addr))
        .header("sec-websocket-protocol", "reservations.v1, bearer.nope")
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let v: Value = res.json().await.expect("problem");
    assert_eq!(v["code"], "unauthorized");
}

#[actix_web::test]
async fn a_browser_may_send_its_token_as_a_subprotocol() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let event = app.create_event(&owner, 10).await;
    let (res, mut ws) = awc::Client::new()
        .ws(ws_url(&app))
        .protocols(["reservations.v1".to_owned(), format!("bearer.{}", client.token)])
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    assert_eq!(res.status().as_u16(), 101);
    let proto = res.headers().get("sec-websocket-protocol").and_then(|h| h.to_str().ok());
    assert_eq!(proto, Some("reservations.v1"), "the server answers the protocol, never the token");
    assert_eq!(next_json(&mut ws).await.expect("hello")["type"], "hello");
    let (st, b) = app.book(&client, &event, 1, true).await;
    assert_eq!(st, StatusCode::CREATED);
    let m = next_json(&mut ws).await.expect("booking");
    assert_eq!(m["booking"]["id"], b["id"]);
}

#[actix_web::test]
async fn connections_per_user_are_capped_and_big_frames_close_the_connection() {
    let app = spawn_with(|s| s.ws_max_connections_per_user = 2).await;
    let client = app.register("client").await;
    let mut first = connect(&app, &client).await;
    let _second = connect(&app, &client).await;
    match awc::Client::new().ws(ws_url(&app)).bearer_auth(&client.token).connect().await {
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) => assert_eq!(s.as_u16(), 429),
        other => panic!("a third connection must be refused: {:?}", other.map(|(r, _)| r.status())),
    }
    // 8 KiB of text from the client: more than the 4 KiB a client frame may have.
    first.send(Message::Text("x".repeat(8 * 1024).into())).await.expect("send");
    let mut code = None;
    while let Ok(Some(Ok(f))) = tokio::time::timeout(Duration::from_secs(3), first.next()).await {
        if let Frame::Close(r) = f {
            code = r.map(|r| u16::from(r.code));
            break;
        }
    }
    assert_eq!(code, Some(1009), "closed as too big");
    drop(first);
    // Its slot is given back once the connection is gone.
    let mut again = None;
    for _ in 0..50 {
        if let Ok(c) = awc::Client::new().ws(ws_url(&app)).bearer_auth(&client.token).connect().await {
            again = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "the closed connection's slot was never released");
}

#[actix_web::test]
async fn a_silent_client_is_pinged_and_closed_when_it_never_answers() {
    let app = spawn_with(|s| {
        s.ws_ping_interval_secs = 1;
        s.ws_client_timeout_secs = 2;
    })
    .await;
    let client = app.register("client").await;
    let mut ws = connect(&app, &client).await;
    // Read without ever answering a ping.
    let (mut pings, mut close) = (0, None);
    while let Ok(Some(Ok(f))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        match f {
            Frame::Ping(_) => pings += 1,
            Frame::Close(r) => {
                close = r;
                break;
            }
            _ => {}
        }
    }
    assert!(pings >= 1, "the server pings");
    let close = close.expect("closed for not answering");
    assert_eq!(u16::from(close.code), 1008);
    assert!(close.description.unwrap_or_default().contains("pong"));
}

// ---- a client that never reads ------------------------------------------------------------

/// The WebSocket handshake over a socket with a tiny receive buffer; then nobody reads.
async fn raw_connect(app: &TestApp, token: &str) -> tokio::net::TcpStream {
    let addr: std::net::SocketAddr = app.addr.trim_start_matches("http://").parse().expect("addr");
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut s = sock.connect(addr).await.expect("connect");
    let req = format!(
        "GET /api/v1/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("handshake");
    // Read the response head byte by byte, leaving every frame in the socket.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.expect("response head");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

/// Reads server frames until a close frame or the end: (text frames, close code and reason).
async fn read_frames(s: &mut tokio::net::TcpStream) -> (usize, Option<(u16, String)>) {
    let mut texts = 0;
    loop {
        let mut h = [0u8; 2];
        match tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut h)).await {
            Ok(Ok(_)) => {}
            _ => return (texts, None),
        }
        let mut len = u64::from(h[1] & 0x7f);
        if len == 126 {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).await.expect("length");
            len = u64::from(u16::from_be_bytes(l));
        } else if len == 127 {
            let mut l = [0u8; 8];
            s.read_exact(&mut l).await.expect("length");
            len = u64::from_be_bytes(l);
        }
        let mut payload = vec![0u8; usize::try_from(len).expect("size")];
        s.read_exact(&mut payload).await.expect("payload");
        match h[0] & 0x0f {
            0x1 => texts += 1,
            0x8 => {
                let code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]])).unwrap_or(0);
                let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default()).into_owned();
                return (texts, Some((code, reason)));
            }
            _ => {}
        }
    }
}

async fn dropped_too_slow(app: &TestApp) -> u64 {
    let text = app.http.get(format!("{}/metrics", app.addr)).send().await.expect("metrics").text().await.expect("text");
    text.lines()
        .find(|l| l.starts_with("ws_dropped_total{") && l.contains("reason=\"too_slow\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or(0)
}

#[actix_web::test]
async fn a_client_that_does_not_read_is_dropped_and_the_server_stays_healthy() {
    let app = spawn_with(|s| s.ws_queue_capacity = 2).await;
    let owner = app.register("owner").await;
    let client = app.register("client").await;
    let event = app.create_event(&owner, 100_000).await;
    let before = dropped_too_slow(&app).await;
    let mut slow = raw_connect(&app, &client.token).await;

    // Every confirmed booking is one message for the client, who never reads. Bursts of 20
    // concurrent bookings (group-committed together) outrun the 2 places of its queue as soon
    // as the socket does not take them fast enough (a loopback socket buffers megabytes, so a
    // client that never reads would otherwise take thousands of messages to notice).
    let mut sent = 0usize;
    let mut dropped = false;
    while sent < 6_000 {
        let books = (0..20).map(|_| app.book(&client, &event, 1, true));
        for (st, b) in futures::future::join_all(books).await {
            assert_eq!(st, StatusCode::CREATED, "{b}");
            sent += 1;
        }
        if dropped_too_slow(&app).await > before {
            dropped = true;
            break;
        }
    }
    if !dropped {
        let text = app.http.get(format!("{}/metrics", app.addr)).send().await.expect("m").text().await.expect("t");
        let ws: Vec<&str> = text.lines().filter(|l| l.contains("ws_")).collect();
        panic!("after {sent} unread messages the client was never dropped: {ws:?}");
    }
    // Now read: what the buffers held, then the close frame; far fewer than were sent.
    let (texts, close) = read_frames(&mut slow).await;
    let (code, reason) = close.expect("a close frame after the buffered messages");
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("too slow"), "{reason}");
    assert!(texts < sent, "{texts} of {sent} messages delivered: nothing is buffered without bound");
    // The end of the connection follows the close frame.
    let mut rest = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut rest)).await;
    assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "the server closed the socket: {n:?}");

    // The server is healthy: HTTP answers, and the same client connects again and hears.
    let (st, _) = app.get("/health", None).await;
    assert_eq!(st, StatusCode::OK);
    let mut ws = connect(&app, &client).await;
    let (st, b) = app.book(&client, &event, 1, true).await;
    assert_eq!(st, StatusCode::CREATED);
    let m = next_json(&mut ws).await.expect("the new connection hears");
    assert_eq!(m["booking"]["id"], b["id"]);
}

#[actix_web::test]
async fn a_waiting_client_hears_of_its_offer_and_the_owner_of_the_freed_ticket() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let (first, waiting) = (app.register("client").await, app.register("client").await);
    let event = app.create_event(&owner, 1).await;
    let (st, b) = app.book(&first, &event, 1, true).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let (st, entry) = app
        .post(
            "/api/v1/waitlist",
            Some(&waiting.token),
            json!({"resource_id": event, "wish": {"kind": "tickets", "quantity": 1}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{entry}");
    let mut ws = connect(&app, &waiting).await;
    let mut owner_ws = connect(&app, &owner).await;

    let cancel = format!("/api/v1/bookings/{}/cancel", b["id"].as_str().expect("id"));
    let (st, _) = app.post(&cancel, Some(&first.token), json!({"reason": "ill"})).await;
    assert_eq!(st, StatusCode::OK);
    let got = collect(&mut ws, Duration::from_millis(700)).await;
    let offer = got.iter().find(|m| m["type"] == "booking").unwrap_or_else(|| panic!("no offer: {got:?}"));
    assert_eq!(offer["event"], "offer_made", "{offer}");
    assert_eq!(offer["booking"]["status"], "held");
    assert_eq!(offer["booking"]["waitlist_entry_id"], entry["id"]);
    assert!(
        got.iter().any(|m| m["type"] == "waitlist" && m["event"] == "offered" && m["entry"]["id"] == entry["id"]),
        "{got:?}"
    );
    assert!(got.iter().all(|m| m["booking"]["user_id"] != first.user_id.as_str()), "not the other client's: {got:?}");
    // The owner: the cancellation and the offer, held units back to 1 (the offer holds it).
    let m = next_json(&mut owner_ws).await.expect("availability");
    let events: Vec<&str> =
        m["changes"].as_array().expect("changes").iter().filter_map(|c| c["event"].as_str()).collect();
    assert_eq!(events, ["cancelled", "offer_made"], "{m}");
    assert_eq!((m["held_units"].as_u64(), m["confirmed_units"].as_u64()), (Some(1), Some(0)), "{m}");
}

#[actix_web::test]
async fn an_admin_receives_availability_of_every_resource() {
    let app = spawn_with(|s| {
        s.admin_email = Some("root@example.com".into());
        s.admin_password = Some(gateway::configuration::Secret::new("admin password 123"));
    })
    .await;
    let (st, v) = app
        .post("/api/v1/auth/login", None, json!({"email": "root@example.com", "password": "admin password 123"}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let admin = crate::helpers::session(&v);
    let (a, b) = (app.register("owner").await, app.register("owner").await);
    let client = app.register("client").await;
    let (ea, eb) = (app.create_event(&a, 5).await, app.create_event(&b, 5).await);
    let mut ws = connect(&app, &admin).await;
    for e in [&ea, &eb] {
        let (st, _) = app.book(&client, e, 1, true).await;
        assert_eq!(st, StatusCode::CREATED);
    }
    let got = collect(&mut ws, Duration::from_millis(700)).await;
    let mut seen: Vec<&str> =
        got.iter().filter(|m| m["type"] == "availability").filter_map(|m| m["resource_id"].as_str()).collect();
    seen.sort_unstable();
    let mut want = vec![ea.as_str(), eb.as_str()];
    want.sort_unstable();
    assert_eq!(seen, want, "{got:?}");
    assert!(got.iter().all(|m| m["type"] != "booking"), "the client's bookings are not the admin's: {got:?}");
}

#[actix_web::test]
async fn the_connection_closes_when_its_access_token_expires() {
    let app = spawn_app().await;
    let client = app.register("client").await;
    // A token of this user that expires in 2 s, signed with the test settings' key.
    let now = jiff::Timestamp::now().as_second();
    let claims = json!({"sub": client.user_id, "role": "client", "iat": now, "exp": now + 2});
    let secret = gateway::configuration::Settings::local().jwt_secret.expect("test secret");
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.expose().as_bytes()),
    )
    .expect("token");
    let short = Session { token, refresh: String::new(), user_id: client.user_id.clone() };
    let mut ws = connect(&app, &short).await;
    let mut close = None;
    while let Ok(Some(Ok(f))) = tokio::time::timeout(Duration::from_secs(6), ws.next()).await {
        match f {
            Frame::Close(r) => {
                close = r;
                break;
            }
            Frame::Ping(p) => ws.send(Message::Pong(p)).await.expect("pong"),
            _ => {}
        }
    }
    let close = close.expect("closed when the token expired");
    assert_eq!(u16::from(close.code), 1008);
    assert!(close.description.unwrap_or_default().contains("expired"));
}

#[actix_web::test]
async fn sigterm_closes_open_websockets_so_the_server_stops_without_waiting_for_them() {
    let db = engine::testing::TestDb::new();
    let port = crate::helpers::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env_clear()
        .env("APP_PORT", port.to_string())
        .env("DATABASE_URL", &db.url)
        .env("ADMIN_EMAIL", "admin@example.com")
        .env("ADMIN_PASSWORD", "admin password 123")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the gateway binary starts");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let started = std::time::Instant::now();
    while http.get(format!("{base}/ready")).send().await.map(|r| r.status() != StatusCode::OK).unwrap_or(true) {
        assert!(started.elapsed() < Duration::from_secs(30), "the server did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let res = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": "admin@example.com", "password": "admin password 123"}))
        .send()
        .await
        .expect("login");
    let token = res.json::<Value>().await.expect("tokens")["access_token"].as_str().expect("token").to_owned();
    let (_, mut ws) = awc::Client::new()
        .ws(format!("ws://127.0.0.1:{port}/api/v1/ws"))
        .bearer_auth(&token)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let t0 = std::time::Instant::now();
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "could not send SIGTERM");
    let mut code = None;
    while let Ok(Some(Ok(f))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        if let Frame::Close(r) = f {
            code = r.map(|r| u16::from(r.code));
            let _ = ws.send(Message::Close(None)).await;
            break;
        }
    }
    assert_eq!(code, Some(1001), "the client is told the server is going away");
    // Without the close the server would wait out its 30 s shutdown timeout for the socket.
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "the open WebSocket held the shutdown");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "clean exit after SIGTERM, got {status}");
}
