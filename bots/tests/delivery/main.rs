//! The delivery core against the real PostgreSQL (a fresh database per test) and a real SMTP
//! server on loopback (mailin-embedded, in process).

mod common;
mod email;
mod messages;
mod queue;
mod reminders;
