//! The application layer: what both faces of the service do, with no transport in it. HTTP
//! routes (`routes/`) and the Telegram bot's backend (`telegram/`) extract their input, call
//! a function here and render its answer; neither holds a rule of its own.
//!
//! Owns: who may see and act on what (`access`), holds and actions on bookings (`bookings`),
//! the waitlist (`waitlist`), starting a payment (`payments`), searches (`search`), booking
//! listings (`listings`), accounts (`accounts`), and the one error type ([`AppError`]).
//! Must never: read or build an HTTP request, response or status code; talk to Telegram; hold
//! a reservation rule (those live in `engine::domain`).

pub mod access;
pub mod accounts;
pub mod bookings;
mod error;
pub mod listings;
pub mod payments;
pub mod search;
pub mod waitlist;

pub use error::{AppError, ErrorKind, in_request};
