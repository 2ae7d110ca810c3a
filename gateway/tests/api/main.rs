//! The gateway's integration tests: the real app on port 0, a fresh database per test.

mod admin;
mod auth;
mod bad_input;
mod bookings;
mod deliveries;
mod flash_sale;
mod health;
mod helpers;
mod idempotency;
mod observability;
mod openapi;
mod payments;
mod rate_limits;
mod roles;
mod shutdown;
