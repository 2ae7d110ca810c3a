//! An RFC 5545 calendar (one VEVENT) for a booking: all-day dates for a stay, UTC times for
//! tickets and appointments. CRLF line ends, lines folded at 75 octets, text values escaped.

use crate::delivery::Notice;
use crate::render::reference;
use engine::domain::booking::BookingItem;
use jiff::Timestamp;

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

/// The calendar for the notice's booking; `None` if the booking has no time (an event with no
/// known start).
pub fn booking_calendar(n: &Notice) -> Option<String> {
    let (start, end) = match &n.booking.item {
        BookingItem::Stay { check_in, check_out, .. } => (
            format!("DTSTART;VALUE=DATE:{}", check_in.strftime("%Y%m%d")),
            format!("DTEND;VALUE=DATE:{}", check_out.strftime("%Y%m%d")),
        ),
        BookingItem::Tickets { .. } => (
            format!("DTSTART:{}", utc(n.resource.event_starts_at?)),
            format!("DTEND:{}", utc(n.resource.event_ends_at?)),
        ),
        BookingItem::Appointment { starts_at, ends_at } => {
            (format!("DTSTART:{}", utc(*starts_at)), format!("DTEND:{}", utc(*ends_at)))
        }
    };
    let location = n.resource.city.clone().unwrap_or_else(|| n.resource.name.clone());
    // Later versions of the same booking (a reschedule) must carry a higher SEQUENCE.
    let sequence = n.booking.updated_at.duration_since(n.booking.created_at).as_secs().max(0);
    let description = format!("Booking reference {}\nBooking id {}", reference(n.booking.id.0), n.booking.id);
    let status = if n.booking.status.is_active() { "CONFIRMED" } else { "CANCELLED" };
    let lines = [
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//Reservation engine//Bookings//EN".to_owned(),
        "CALSCALE:GREGORIAN".to_owned(),
        "METHOD:PUBLISH".to_owned(),
        "BEGIN:VEVENT".to_owned(),
        format!("UID:{}@reservation-engine", n.booking.id),
        format!("DTSTAMP:{}", utc(n.now)),
        start,
        end,
        format!("SEQUENCE:{sequence}"),
        format!("SUMMARY:{}", escape_text(&n.resource.name)),
        format!("LOCATION:{}", escape_text(&location)),
        format!("DESCRIPTION:{}", escape_text(&description)),
        format!("STATUS:{status}"),
        "TRANSP:OPAQUE".to_owned(),
        "END:VEVENT".to_owned(),
        "END:VCALENDAR".to_owned(),
    ];
    Some(lines.iter().map(|l| fold(l)).collect())
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
    fn text_values_are_escaped() {
        assert_eq!(escape_text("a,b;c\\d\ne"), "a\\,b\\;c\\\\d\\ne");
    }
}
