//! The gateway's integration tests: the real app on port 0, a fresh database per test.

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
mod roles;
mod shutdown;
mod telegram;
mod tracing_export;
mod web_page;
mod webhooks;
