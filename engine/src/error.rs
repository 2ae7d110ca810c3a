//! Errors the engine's callers see: a domain decision, or a reason the decision was not made.

use crate::domain::error::DomainError;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The command was decided and refused (sold out, hold expired, ...). Final.
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("resource not found")]
    ResourceNotFound,
    /// Too many commands queued for this resource. Nothing was decided: retry shortly.
    #[error("busy: too many commands queued for this resource, retry shortly")]
    Busy,
    /// The store failed or refused the commit (or the outcome is unknown). Retryable; send
    /// an idempotency key to make the retry safe.
    #[error("store unavailable: {0}")]
    StoreUnavailable(String),
    #[error("the engine is shutting down")]
    ShuttingDown,
}

impl EngineError {
    /// Stable machine code, as for `DomainError::code`.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Domain(e) => e.code(),
            EngineError::ResourceNotFound => "resource_not_found",
            EngineError::Busy => "busy",
            EngineError::StoreUnavailable(_) => "store_unavailable",
            EngineError::ShuttingDown => "shutting_down",
        }
    }
    /// Whether the same request may succeed if sent again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, EngineError::Busy | EngineError::StoreUnavailable(_) | EngineError::ShuttingDown)
    }
}
