//! The HTTP gateway of the reservation engine. `startup` builds the app; `routes` holds the
//! API; `auth` and `accounts` the users; `error` and `extract` turn every failure into
//! problem+json. See ARCHITECTURE.md.

pub mod accounts;
pub mod app;
pub mod auth;
pub mod calendar;
pub mod configuration;
pub mod demo;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod integration_keys;
pub mod live;
pub mod metrics;
pub mod notify;
pub mod openapi;
pub mod pagination;
pub mod payments;
pub mod rate_limit;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telegram;
pub mod telemetry;
