//! Email over a real SMTP server on loopback (mailin-embedded, in process): what arrives has
//! the right recipient, subject, plain and HTML parts (user strings escaped) and, for a
//! confirmation, a valid calendar attachment.

use crate::common::*;
use bots::delivery::{Channel, DeliveryConfig, Notifier};
use bots::email::{EmailChannel, SmtpConfig, TlsMode};
use engine::domain::booking::BookingRequest;
use engine::domain::ids::{RoomTypeId, UserId};
use engine::{Clock, ManualClock, fixtures};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use mail_parser::{MessageParser, MimeHeaders};
use mailin_embedded::{Handler, Response, Server, SslConfig, response};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One message as the SMTP server received it.
#[derive(Clone, Debug, Default)]
pub struct Received {
    pub rcpt: Vec<String>,
    pub data: Vec<u8>,
}

#[derive(Clone, Default)]
struct Inbox {
    mails: Arc<Mutex<Vec<Received>>>,
    current: Received,
}

impl Handler for Inbox {
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

/// Starts an SMTP server on 127.0.0.1 (any free port); returns its port and what it receives.
pub fn smtp_server() -> (u16, Arc<Mutex<Vec<Received>>>) {
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

pub fn smtp_config(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: TlsMode::None,
        username: None,
        password: None,
        from: "Reservations <bookings@example.com>".into(),
        timeout: Duration::from_secs(10),
    }
}

/// Checks a calendar the way a strict reader would: CRLF lines of at most 75 octets, balanced
/// components, the properties RFC 5545 requires of a VCALENDAR and a VEVENT.
pub fn check_rfc5545(ics: &str) {
    assert!(ics.ends_with("\r\n"), "ends with CRLF");
    assert!(!ics.replace("\r\n", "").contains('\n'), "bare LF in {ics:?}");
    let physical: Vec<&str> = ics.split("\r\n").filter(|l| !l.is_empty()).collect();
    for l in &physical {
        assert!(l.len() <= 75, "line longer than 75 octets: {l:?}");
    }
    let unfolded = ics.replace("\r\n ", "");
    let lines: Vec<&str> = unfolded.split("\r\n").filter(|l| !l.is_empty()).collect();
    let mut stack = Vec::new();
    for l in &lines {
        let (name, _) = l.split_once(':').unwrap_or_else(|| panic!("no ':' in {l:?}"));
        if let Some(c) = l.strip_prefix("BEGIN:") {
            stack.push(c);
        } else if let Some(c) = l.strip_prefix("END:") {
            assert_eq!(stack.pop(), Some(c), "unbalanced END:{c}");
        }
        assert!(!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-;=".contains(c)), "{l}");
    }
    assert!(stack.is_empty(), "unclosed {stack:?}");
    assert_eq!((lines.first(), lines.last()), (Some(&"BEGIN:VCALENDAR"), Some(&"END:VCALENDAR")));
    for prop in ["VERSION:2.0", "PRODID:", "BEGIN:VEVENT", "UID:", "DTSTAMP:", "DTSTART", "END:VEVENT"] {
        assert!(lines.iter().any(|l| l.starts_with(prop)), "missing {prop}");
    }
    let stamp = lines.iter().find_map(|l| l.strip_prefix("DTSTAMP:")).expect("DTSTAMP");
    assert!(stamp.len() == 16 && stamp.ends_with('Z'), "DTSTAMP is UTC date-time: {stamp}");
}

#[actix::test]
async fn confirmations_arrive_over_smtp_with_both_parts_and_a_calendar() {
    let (port, mails) = smtp_server();
    let db = TestDb::new();
    let start = Timestamp::now();
    let clock = Arc::new(ManualClock::new(start));
    let e = engine_of(&db, clock.clone()).await;
    let name = "Café <Script> & \"Co\", Lisbon";
    let hotel = e.create(fixtures::hotel(UserId::new_v7(), name, "Lisbon", 2, 1)).await.expect("create");
    let u = add_user(&db, "Ann <b>O'Neil</b>", "ann@example.com").await;
    let check_in =
        start.to_zoned(TimeZone::get("Europe/Berlin").expect("zone")).date().checked_add(20.days()).expect("d");
    let request = BookingRequest::Stay {
        room_type_id: RoomTypeId(fixtures::fixed_id(name, 1)),
        room_id: None,
        check_in,
        check_out: check_in.checked_add(2.days()).expect("d"),
        guests: 2,
    };
    let booking = book(&e, hotel, u, request.clone(), true).await;
    let hold = book(&e, hotel, u, request, false).await;

    let email = EmailChannel::smtp(&smtp_config(port)).expect("channel");
    let pg = store_of(&db).await;
    let n = Notifier::new(pg, clock.clone(), vec![Arc::new(email) as Arc<dyn Channel>], DeliveryConfig::default());
    let r = n.run_once().await.expect("pass");
    assert_eq!((r.fanned_out, r.sent, r.failed), (2, 2, 0), "{r:?}");

    let mails = mails.lock().expect("lock").clone();
    assert_eq!(mails.len(), 2);
    let parser = MessageParser::default();
    let msgs: Vec<_> = mails.iter().map(|m| parser.parse(&m.data).expect("a MIME message")).collect();
    let confirmed = msgs
        .iter()
        .position(|m| m.subject().is_some_and(|s| s.starts_with("Booking confirmed")))
        .expect("confirmation");
    let (raw, m) = (&mails[confirmed], &msgs[confirmed]);
    assert_eq!(raw.rcpt, ["ann@example.com"]);
    assert_eq!(m.to().and_then(|a| a.first()).and_then(|a| a.address()), Some("ann@example.com"));
    let reference = bots::render::reference(booking.0);
    assert_eq!(m.subject(), Some(format!("Booking confirmed: {name} ({reference})").as_str()));
    assert!(
        m.message_id().is_some_and(|id| id.ends_with("@example.com") && id.starts_with("outbox.")),
        "{:?}",
        m.message_id()
    );

    let text = m.body_text(0).expect("plain part");
    for want in [&reference, name, "EUR 200.00", "Double, room", "2 guests", "check-out", "by 11:00", "(2 nights)"] {
        assert!(text.contains(want), "plain text lacks {want:?}:\n{text}");
    }
    assert!(text.contains(&check_in.strftime("%a %d %b %Y").to_string()), "{text}");
    let html = m.body_html(0).expect("html part");
    assert!(html.contains("Caf\u{e9} &lt;Script&gt; &amp; &quot;Co&quot;, Lisbon"), "{html}");
    assert!(html.contains("Ann &lt;b&gt;O&#39;Neil&lt;/b&gt;"), "{html}");
    assert!(!html.contains("<Script>") && !html.contains("<b>O"), "unescaped user input:\n{html}");

    let ics = m.attachments().next().expect("an attachment");
    let ct = ics.content_type().expect("content type");
    assert_eq!((ct.ctype(), ct.subtype()), ("text", Some("calendar")));
    assert_eq!(ics.attachment_name(), Some("booking.ics"));
    let cal = std::str::from_utf8(ics.contents()).expect("utf-8");
    check_rfc5545(cal);
    let unfolded = cal.replace("\r\n ", "");
    assert!(unfolded.contains(&format!("UID:{booking}@reservation-engine")), "{cal}");
    assert!(unfolded.contains(&format!("DTSTART;VALUE=DATE:{}", check_in.strftime("%Y%m%d"))), "{cal}");
    assert!(unfolded.contains("SUMMARY:Café <Script> & \"Co\"\\, Lisbon"), "{cal}");

    // The hold: its own subject with the deadline, no attachment.
    let h = &msgs[1 - confirmed];
    let subject = h.subject().expect("subject");
    assert!(subject.starts_with("Held for you:") && subject.contains(&bots::render::reference(hold.0)), "{subject}");
    assert!(h.body_text(0).expect("text").contains("Pay or confirm by"));
    assert!(h.body_html(0).is_some());
    assert_eq!(h.attachments().count(), 0);
}

#[actix::test]
async fn an_unreachable_smtp_server_is_a_transient_failure() {
    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let db = TestDb::new();
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let e = engine_of(&db, clock.clone()).await;
    let event = e.create(fixtures::event(UserId::new_v7(), "Quiet", 5, clock.now())).await.expect("create");
    let u = add_user(&db, "Nia", "nia@example.com").await;
    book(&e, event, u, tickets(1), true).await;
    let email = EmailChannel::smtp(&smtp_config(port)).expect("channel");
    let n = Notifier::new(store_of(&db).await, clock.clone(), vec![Arc::new(email) as Arc<dyn Channel>], test_config());
    let r = n.run_once().await.expect("pass");
    assert_eq!((r.sent, r.failed), (0, 1));
    assert_eq!(count(&db, "SELECT count(*) FROM deliveries WHERE status = 'pending' AND attempts = 1").await, 1);
}
