//! The delivery core against the real PostgreSQL (a fresh database per test) and a real SMTP
//! server on loopback (mailin-embedded, in process).
// A test's helpers unwrap like its #[test] fns (clippy.toml allows those): a failed
// expectation is the test's answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod email;
mod messages;
mod queue;
mod reminders;
