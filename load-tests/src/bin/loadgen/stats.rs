//! What a run measured: latencies (from the scheduled send time in open loop), outcomes by
//! HTTP status and problem code, and the bookings the server acknowledged.

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

/// One request's result as the client saw it.
pub enum Outcome {
    /// A 2xx with a booking: its id and the status the response gave.
    Booked { id: Uuid, status: String },
    /// Any other answer: the HTTP status and the problem `code` (or a transport error).
    Refused { status: u16, code: String },
    /// A cancellation the server acknowledged (the booking is now `cancelled`).
    Cancelled { id: Uuid },
    /// A read that answered 2xx (searches).
    Answered { status: u16 },
}

pub struct Recorder {
    latency_us: Histogram<u64>,
    by_outcome: BTreeMap<String, u64>,
    /// Every acknowledged state, in the order this client saw them: a booking and, later, its
    /// cancellation are two entries (the checker holds the database to each).
    pub acked: Vec<(Uuid, String)>,
    bookings: u64,
    /// Open loop: sends the generator could not start because too many were in flight.
    pub not_sent: u64,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            // 1 µs to 10 min, 3 significant digits.
            latency_us: Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| {
                Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits are valid"))
            }),
            by_outcome: BTreeMap::new(),
            acked: Vec::new(),
            bookings: 0,
            not_sent: 0,
        }
    }

    pub fn record(&mut self, latency: Duration, outcome: Outcome) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
        let _ = self.latency_us.record(us.min(self.latency_us.high()));
        let key = match outcome {
            Outcome::Booked { id, status } => {
                let key = format!("201 {status}");
                self.acked.push((id, status));
                self.bookings += 1;
                key
            }
            Outcome::Cancelled { id } => {
                self.acked.push((id, "cancelled".into()));
                "200 cancelled".into()
            }
            Outcome::Refused { status, code } => format!("{status} {code}"),
            Outcome::Answered { status } => format!("{status} ok"),
        };
        *self.by_outcome.entry(key).or_default() += 1;
    }

    pub fn merge(&mut self, other: Recorder) {
        let _ = self.latency_us.add(&other.latency_us);
        for (k, v) in other.by_outcome {
            *self.by_outcome.entry(k).or_default() += v;
        }
        self.acked.extend(other.acked);
        self.bookings += other.bookings;
        self.not_sent += other.not_sent;
    }

    /// Bookings acknowledged (not counting cancellations).
    pub fn bookings(&self) -> u64 {
        self.bookings
    }

    pub fn requests(&self) -> u64 {
        self.latency_us.len()
    }

    /// Requests answered with a problem code the scenario does not expect (5xx, 4xx other
    /// than the listed codes, transport errors).
    pub fn unexpected(&self, expected_codes: &[&str]) -> u64 {
        self.by_outcome
            .iter()
            .filter(|(k, _)| {
                !k.starts_with("201 ")
                    && k.as_str() != "200 cancelled"
                    && !expected_codes.iter().any(|c| k.ends_with(&format!(" {c}")))
            })
            .map(|(_, v)| v)
            .sum()
    }

    fn ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn report(&self, label: &str, elapsed: Duration, booking_window: Duration) -> Value {
        let secs = elapsed.as_secs_f64().max(1e-9);
        json!({
            "scenario": label,
            "seconds": secs,
            "requests": self.requests(),
            "requests_per_sec": self.requests() as f64 / secs,
            "bookings": self.bookings,
            // Over the time bookings were being made (to the last ack), not the tail of refusals.
            "bookings_per_sec": self.bookings as f64 / booking_window.as_secs_f64().max(1e-9),
            "latency_ms_p50": self.ms(0.50),
            "latency_ms_p95": self.ms(0.95),
            "latency_ms_p99": self.ms(0.99),
            "latency_ms_max": self.latency_us.max() as f64 / 1000.0,
            "outcomes": self.by_outcome,
            "not_sent_generator_saturated": self.not_sent,
        })
    }
}

pub fn print_human(v: &Value) {
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
    println!("{}: {:.1} s", v["scenario"].as_str().unwrap_or("?"), f("seconds"));
    println!("  requests          {} ({:.0}/s)", v["requests"], f("requests_per_sec"));
    println!("  bookings          {} ({:.0}/s while selling)", v["bookings"], f("bookings_per_sec"));
    println!(
        "  latency ms        p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
        f("latency_ms_p50"),
        f("latency_ms_p95"),
        f("latency_ms_p99"),
        f("latency_ms_max")
    );
    if let Some(o) = v["outcomes"].as_object() {
        let parts: Vec<String> = o.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        println!("  outcomes          {}", parts.join(", "));
    }
    if f("not_sent_generator_saturated") > 0.0 {
        println!(
            "  NOT SENT          {} (the generator had too many requests in flight)",
            v["not_sent_generator_saturated"]
        );
    }
}
