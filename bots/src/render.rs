//! What a notice says, for any channel: a subject, plain text and HTML (every user-controlled
//! string escaped), with the resource's name, times in the resource's time zone, amounts with
//! their currency and a booking reference. Channels pick the parts they can show.

use crate::delivery::{Notice, NoticeKind};
use engine::domain::booking::BookingItem;
use engine::domain::money::Money;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// A short reference a person can read out: `BK-` and the last eight hex digits of the id
/// (the random part of a UUIDv7).
pub fn reference(booking_id: uuid::Uuid) -> String {
    let hex = booking_id.simple().to_string();
    format!("BK-{}", hex[hex.len() - 8..].to_uppercase())
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Minor units per major unit of ISO 4217 currencies that do not use two decimals.
fn decimals(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI" | "VND"
        | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// `EUR 49.00`, `JPY 5000`, `-EUR 1.50`.
pub fn money(amount_minor: i64, currency: &str) -> String {
    let d = decimals(currency);
    let sign = if amount_minor < 0 { "-" } else { "" };
    let abs = amount_minor.unsigned_abs();
    if d == 0 {
        return format!("{sign}{currency} {abs}");
    }
    let unit = 10u64.pow(d);
    format!("{sign}{currency} {}.{:0width$}", abs / unit, abs % unit, width = d as usize)
}

fn fmt_money(m: &Money) -> String {
    money(m.amount_minor, m.currency.as_str())
}

/// The zone messages about this resource speak in (UTC for events, which declare none).
pub fn zone(n: &Notice) -> TimeZone {
    n.resource.time_zone.as_deref().and_then(|z| TimeZone::get(z).ok()).unwrap_or(TimeZone::UTC)
}

/// `Mon 07 Jan 2030 10:00 CET`.
pub fn local_time(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone()).strftime("%a %d %b %Y %H:%M %Z").to_string()
}

fn local_date(d: Date) -> String {
    d.strftime("%a %d %b %Y").to_string()
}

/// What was booked: the room, the tickets, the appointment.
pub fn what(n: &Notice) -> String {
    let label = n.resource.item_label.clone();
    match &n.booking.item {
        BookingItem::Stay { guests, .. } => {
            let who = if *guests == 1 { "1 guest".to_owned() } else { format!("{guests} guests") };
            match label {
                Some(l) => format!("{l}, {who}"),
                None => who,
            }
        }
        BookingItem::Tickets { quantity, .. } => {
            let t = if *quantity == 1 { "1 ticket".to_owned() } else { format!("{quantity} tickets") };
            match label {
                Some(l) => format!("{t} ({l})"),
                None => t,
            }
        }
        BookingItem::Appointment { .. } => "Appointment".to_owned(),
    }
}

/// When it is, in the resource's zone.
pub fn when(n: &Notice) -> String {
    let tz = zone(n);
    match &n.booking.item {
        BookingItem::Stay { check_in, check_out, .. } => {
            let nights = (*check_out - *check_in).get_days();
            let by = n.resource.check_out_time.map(|t| format!(" by {}", t.strftime("%H:%M"))).unwrap_or_default();
            let nights = if nights == 1 { "1 night".to_owned() } else { format!("{nights} nights") };
            format!("check-in {}, check-out {}{by} ({nights})", local_date(*check_in), local_date(*check_out))
        }
        BookingItem::Tickets { .. } => match (n.resource.event_starts_at, n.resource.event_ends_at) {
            (Some(s), Some(e)) => format!("{} until {}", local_time(s, &tz), local_time(e, &tz)),
            _ => "see the event".to_owned(),
        },
        BookingItem::Appointment { starts_at, ends_at } => {
            format!("{} until {}", local_time(*starts_at, &tz), ends_at.to_zoned(tz.clone()).strftime("%H:%M"))
        }
    }
}

fn in_words(offset_minutes: i32) -> String {
    match offset_minutes {
        m if m >= 2 * 1440 && m % 1440 == 0 => format!("in {} days", m / 1440),
        m if m >= 60 && m % 60 == 0 && m / 60 == 1 => "in 1 hour".to_owned(),
        m if m >= 60 && m % 60 == 0 => format!("in {} hours", m / 60),
        1 => "in 1 minute".to_owned(),
        m => format!("in {m} minutes"),
    }
}

/// The subject, the opening sentence and what the recipient should do next.
fn wording(n: &Notice) -> (String, String, Option<String>) {
    let name = &n.resource.name;
    let r = reference(n.booking.id.0);
    let tz = zone(n);
    let expiry = n.booking.hold_expires_at.map(|t| local_time(t, &tz)).unwrap_or_else(|| "soon".into());
    match &n.kind {
        NoticeKind::Reminder { offset_minutes } => {
            let w = in_words(*offset_minutes);
            (format!("Reminder: {name} {w} ({r})"), format!("A reminder: your booking at {name} starts {w}."), None)
        }
        NoticeKind::Notification(k) => match k.as_str() {
            "hold_created" => (
                format!("Held for you: {name} ({r}), confirm by {expiry}"),
                format!("Your booking at {name} is held for you."),
                Some(format!(
                    "Pay or confirm by {expiry} (POST /api/v1/payments with booking_id {}); after that the hold \
                     lapses and the place goes to others.",
                    n.booking.id
                )),
            ),
            "confirmed" => (
                format!("Booking confirmed: {name} ({r})"),
                format!("Your booking at {name} is confirmed."),
                Some("The attached calendar file (booking.ics) adds it to your calendar.".into()),
            ),
            "released" => (format!("Hold released: {name} ({r})"), format!("Your hold at {name} was released."), None),
            "cancelled" => (
                format!("Booking cancelled: {name} ({r})"),
                format!("Your booking at {name} was cancelled."),
                Some("If you paid, any refund is confirmed in a separate message.".into()),
            ),
            "expired" => (
                format!("Hold expired: {name} ({r})"),
                format!("Your hold at {name} expired: it was not paid or confirmed in time."),
                None,
            ),
            "refunded" => {
                let amt = money(n.booking.refunded_minor, n.booking.amount.currency.as_str());
                (
                    format!("Refund of {amt}: {name} ({r})"),
                    format!("A refund of {amt} for your booking at {name} was recorded."),
                    None,
                )
            }
            "rescheduled" => (
                format!("Booking moved: {name} ({r})"),
                format!("Your booking at {name} was moved. Its new time is below."),
                None,
            ),
            "offer_made" => {
                let entry = n.entry_id.map(|e| e.to_string()).unwrap_or_else(|| "<entry>".into());
                (
                    format!("A place is free for you: {name}, accept by {expiry}"),
                    format!("A place you were waiting for at {name} became free and is held for you until {expiry}."),
                    Some(format!(
                        "To take it, accept before {expiry}: POST /api/v1/waitlist/{entry}/accept (accepting confirms \
                         the booking). To let the next person have it: POST /api/v1/waitlist/{entry}/decline."
                    )),
                )
            }
            "offer_expired" => (
                format!("Waitlist offer expired: {name}"),
                format!("The place offered to you at {name} was not accepted in time and went to the next person."),
                None,
            ),
            _ => (format!("Update on your booking: {name} ({r})"), format!("Your booking at {name} changed."), None),
        },
    }
}

/// The notice as subject, plain text and HTML.
pub fn render(n: &Notice) -> Rendered {
    let (subject, lead, action) = wording(n);
    let mut facts: Vec<(&str, String)> = vec![("Booking reference", reference(n.booking.id.0))];
    let place = match &n.resource.city {
        Some(city) => format!("{}, {city}", n.resource.name),
        None => n.resource.name.clone(),
    };
    facts.push(("Where", place));
    facts.push(("What", what(n)));
    facts.push(("When", when(n)));
    facts.push(("Amount", fmt_money(&n.booking.amount)));
    if n.booking.refunded_minor > 0 {
        facts.push(("Refunded", money(n.booking.refunded_minor, n.booking.amount.currency.as_str())));
    }
    facts.push(("Status", n.booking.status.as_str().to_owned()));

    let greeting = format!("Hello {},", n.recipient.name);
    let mut text = format!("{greeting}\n\n{lead}\n\n");
    for (k, v) in &facts {
        text.push_str(&format!("{k}: {v}\n"));
    }
    if let Some(a) = &action {
        text.push_str(&format!("\n{a}\n"));
    }
    text.push_str(&format!("\nBooking id: {}\n", n.booking.id));

    let mut html = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\n<body style=\"font-family: sans-serif\">\n",
    );
    html.push_str(&format!("<p>{}</p>\n<p>{}</p>\n<table>\n", escape_html(&greeting), escape_html(&lead)));
    for (k, v) in &facts {
        html.push_str(&format!("<tr><th align=\"left\">{}</th><td>{}</td></tr>\n", escape_html(k), escape_html(v)));
    }
    html.push_str("</table>\n");
    if let Some(a) = &action {
        html.push_str(&format!("<p>{}</p>\n", escape_html(a)));
    }
    html.push_str(&format!("<p style=\"color: #666\">Booking id: {}</p>\n</body></html>\n", n.booking.id));
    Rendered { subject, text, html }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_uses_the_currency_s_decimals() {
        assert_eq!(money(4900, "EUR"), "EUR 49.00");
        assert_eq!(money(5, "USD"), "USD 0.05");
        assert_eq!(money(5000, "JPY"), "JPY 5000");
        assert_eq!(money(1234, "KWD"), "KWD 1.234");
        assert_eq!(money(-150, "EUR"), "-EUR 1.50");
    }

    #[test]
    fn html_escaping_covers_markup_and_quotes() {
        assert_eq!(escape_html("<b>\"Tom\" & 'Jerry'</b>"), "&lt;b&gt;&quot;Tom&quot; &amp; &#39;Jerry&#39;&lt;/b&gt;");
    }

    #[test]
    fn references_are_short_and_stable() {
        let id = uuid::Uuid::parse_str("0190c3f2-0000-7000-8000-00000000abcd").expect("uuid");
        assert_eq!(reference(id), "BK-0000ABCD");
    }

    #[test]
    fn offsets_read_as_words() {
        assert_eq!(in_words(1440), "in 24 hours");
        assert_eq!(in_words(60), "in 1 hour");
        assert_eq!(in_words(2880), "in 2 days");
        assert_eq!(in_words(90), "in 90 minutes");
    }
}
