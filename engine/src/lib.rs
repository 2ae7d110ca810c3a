//! The reservation engine: pure booking state machines (`domain`), one actix actor per
//! resource that decides (`actor`, `engine`), shard committers that merge many resources'
//! batches into one transaction (`committer`), and the stores behind them (`store`). See ARCHITECTURE.md for the map and the invariants.

pub mod actor;
pub mod clock;
pub mod committer;
pub mod config;
pub mod domain;
pub mod engine;
pub mod error;
pub mod fixtures;
pub mod live;
pub mod store;
#[cfg(feature = "test-support")]
pub mod testing;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::EngineConfig;
pub use engine::Engine;
pub use error::EngineError;
