//! RFC 5545 calendars: one VEVENT for a booking's email (all-day dates for a stay, UTC times
//! for tickets and appointments) and the iCal feeds of many bookings (`calendar`). CRLF line
//! ends, lines folded at 75 octets, text values escaped.

use crate::delivery::Notice;
use crate::render::reference;
use engine::domain::booking::BookingItem;
use jiff::Timestamp;
use jiff::civil::Date;

/// Escapes a TEXT value (RFC 5545 3.3.11).
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Folds a content line into lines of at most 75 octets (continuations start with a space),
/// never splitting a UTF-8 character (RFC 5545 3.1).
pub fn fold(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    let mut len = 0;
    for c in line.chars() {
        let w = c.len_utf8();
        if len + w > 75 {
            out.push_str("\r\n ");
            len = 1;
        }
        out.push(c);
        len += w;
    }
    out.push_str("\r\n");
    out
}

fn utc(t: Timestamp) -> String {
    t.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// When an event starts or ends: a whole day (stays in the email attachment) or an instant,
/// written in UTC (valid without a VTIMEZONE; clients show it in their own zone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum When {
    Date(Date),
    Instant(Timestamp),
}

impl When {
    fn property(&self, name: &str) -> String {
        match self {
            When::Date(d) => format!("{name};VALUE=DATE:{}", d.strftime("%Y%m%d")),
            When::Instant(t) => format!("{name}:{}", utc(*t)),
        }
    }
}

/// One VEVENT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalEvent {
    /// Globally unique and stable: the same booking is the same event in every calendar.
    pub uid: String,
    pub start: When,
    pub end: When,
    /// Higher for each later version of the event.
    pub sequence: i64,
    pub summary: String,
    pub location: String,
    pub description: String,
    /// `CONFIRMED`, `TENTATIVE` or `CANCELLED`.
    pub status: &'static str,
    pub last_modified: Option<Timestamp>,
}

impl CalEvent {
    fn lines(&self, now: Timestamp, out: &mut Vec<String>) {
        out.push("BEGIN:VEVENT".to_owned());
        out.push(format!("UID:{}", escape_text(&self.uid)));
        out.push(format!("DTSTAMP:{}", utc(now)));
        out.push(self.start.property("DTSTART"));
        out.push(self.end.property("DTEND"));
        out.push(format!("SEQUENCE:{}", self.sequence.max(0)));
        if let Some(t) = self.last_modified {
            out.push(format!("LAST-MODIFIED:{}", utc(t)));
        }
        out.push(format!("SUMMARY:{}", escape_text(&self.summary)));
        out.push(format!("LOCATION:{}", escape_text(&self.location)));
        out.push(format!("DESCRIPTION:{}", escape_text(&self.description)));
        out.push(format!("STATUS:{}", self.status));
        out.push("TRANSP:OPAQUE".to_owned());
        out.push("END:VEVENT".to_owned());
    }
}

/// A whole calendar (CRLF line ends, folded lines): the email attachment's one event, or a feed
/// (`name` becomes X-WR-CALNAME, which calendar apps show as the subscription's title).
pub fn calendar(name: Option<&str>, events: &[CalEvent], now: Timestamp) -> String {
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//Reservation engine//Bookings//EN".to_owned(),
        "CALSCALE:GREGORIAN".to_owned(),
        "METHOD:PUBLISH".to_owned(),
    ];
    if let Some(name) = name {
        lines.push(format!("X-WR-CALNAME:{}", escape_text(name)));
    }
    for e in events {
        e.lines(now, &mut lines);
    }
    lines.push("END:VCALENDAR".to_owned());
    lines.iter().map(|l| fold(l)).collect()
}

/// The UID of a booking's event.
pub fn booking_uid(booking_id: uuid::Uuid) -> String {
    format!("{booking_id}@reservation-engine")
}

/// What calendars say about a booking's lifecycle: SEQUENCE grows with every change.
pub fn booking_sequence(created_at: Timestamp, updated_at: Timestamp) -> i64 {
    updated_at.duration_since(created_at).as_secs().max(0)
}

/// The calendar for the notice's booking; `None` if the booking has no time (an event with no
/// known start).
pub fn booking_calendar(n: &Notice) -> Option<String> {
    let (start, end) = match &n.booking.item {
        BookingItem::Stay { check_in, check_out, .. } => (When::Date(*check_in), When::Date(*check_out)),
        BookingItem::Tickets { .. } => {
            (When::Instant(n.resource.event_starts_at?), When::Instant(n.resource.event_ends_at?))
        }
        BookingItem::Appointment { starts_at, ends_at } => (When::Instant(*starts_at), When::Instant(*ends_at)),
    };
    let location = n.resource.city.clone().unwrap_or_else(|| n.resource.name.clone());
    let description = format!("Booking reference {}\nBooking id {}", reference(n.booking.id.0), n.booking.id);
    let event = CalEvent {
        uid: booking_uid(n.booking.id.0),
        start,
        end,
        // Later versions of the same booking (a reschedule) must carry a higher SEQUENCE.
        sequence: booking_sequence(n.booking.created_at, n.booking.updated_at),
        summary: n.resource.name.clone(),
        location,
        description,
        status: if n.booking.status.is_active() { "CONFIRMED" } else { "CANCELLED" },
        last_modified: None,
    };
    Some(calendar(None, &[event], n.now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_fold_at_75_octets_without_splitting_characters() {
        let line = format!("SUMMARY:{}", "é".repeat(100));
        let folded = fold(&line);
        for l in folded.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(l.len() <= 75, "{} octets: {l}", l.len());
        }
        let unfolded = folded.replace("\r\n ", "");
        assert_eq!(unfolded, format!("{line}\r\n"));
    }

    #[test]
    fn a_feed_calendar_has_one_event_per_booking_with_dates_or_instants() {
        let at: Timestamp = "2030-01-07T10:00:00Z".parse().expect("ts");
        let event = |uid: &str, start: When, end: When, status| CalEvent {
            uid: uid.into(),
            start,
            end,
            sequence: 2,
            summary: "Hotel, Lisbon; river view".into(),
            location: "Lisbon".into(),
            description: "line one\nline two".into(),
            status,
            last_modified: Some(at),
        };
        let day = |s: &str| When::Date(s.parse().expect("date"));
        let events = [
            event("a@x", day("2030-02-01"), day("2030-02-03"), "CONFIRMED"),
            event("b@x", When::Instant(at), When::Instant(at + jiff::SignedDuration::from_hours(1)), "CANCELLED"),
        ];
        let cal = calendar(Some("My bookings"), &events, at);
        assert!(cal.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n") && cal.ends_with("END:VCALENDAR\r\n"));
        assert_eq!(cal.matches("BEGIN:VEVENT\r\n").count(), 2);
        assert!(cal.contains("X-WR-CALNAME:My bookings\r\n"));
        assert!(cal.contains("DTSTART;VALUE=DATE:20300201\r\n") && cal.contains("DTEND;VALUE=DATE:20300203\r\n"));
        assert!(cal.contains("DTSTART:20300107T100000Z\r\nDTEND:20300107T110000Z\r\n"));
        assert!(cal.contains("SUMMARY:Hotel\\, Lisbon\\; river view\r\n") && cal.contains("STATUS:CANCELLED\r\n"));
        assert!(cal.contains("LAST-MODIFIED:20300107T100000Z\r\n") && cal.contains("UID:b@x\r\n"));
        assert!(!cal.replace("\r\n", "").contains('\n'), "no bare line feeds");
    }

    #[test]
    fn text_values_are_escaped() {
        assert_eq!(escape_text("a,b;c\\d\ne"), "a\\,b\\;c\\\\d\\ne");
    }
}
