//! Integration tests of the engine against the real PostgreSQL (and the in-memory store).
//! One test binary: every module below shares `common`.

mod common;
mod conformance;
mod db_guards;
mod live;
mod races;
mod restart;
mod shell;
mod simulation;
