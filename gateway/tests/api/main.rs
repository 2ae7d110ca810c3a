//! The gateway's integration tests: the real app on port 0, a fresh database per test.
// A test's helpers unwrap like its #[test] fns (clippy.toml allows those): a failed
// expectation is the test's answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod auth;
mod bad_input;
mod bookings;
mod calendar;
mod dashboard;
mod deliveries;
mod drills;
mod flash_sale;
mod health;
mod helpers;
mod idempotency;
mod ingest;
mod integration_keys;
mod live;
mod observability;
mod openapi;
mod payments;
mod rate_limits;
mod readme;
mod references;
mod roles;
mod shutdown;
mod telegram;
mod tracing_export;
mod web_page;
mod webhooks;
