//! The pure booking domain: state machines that take commands and the current time and return
//! decisions and changes. No I/O, no async, no system clock, no randomness in here: the shell
//! (actors, store) mints ids, reads the clock and persists the changes.

pub mod booking;
pub mod command;
pub mod error;
pub mod event;
pub mod hotel;
pub mod ids;
pub mod ingest;
pub mod inventory;
pub mod money;
pub mod provider;
pub mod spec;
pub mod state;
pub mod stats;
pub mod waitlist;
