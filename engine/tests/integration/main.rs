//! Integration tests of the engine against the real PostgreSQL (and the in-memory store).
//! One test binary: every module below shares `common`.
// A test's helpers unwrap like its #[test] fns (clippy.toml allows those): a failed
// expectation is the test's answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod conformance;
mod db_guards;
mod live;
mod races;
mod restart;
mod shell;
mod simulation;
