//! What an owner declares about a resource. `ResourceSpec::validate` is the single place that
//! decides whether a specification is acceptable; the kind modules hold their own rules.

use super::error::{Problems, SpecError};
use super::event::EventSpec;
use super::hotel::HotelSpec;
use super::ids::UserId;
use super::provider::ProviderSpec;
use serde::{Deserialize, Serialize};

pub const MAX_NAME_CHARS: usize = 200;
/// Holds longer than a day are reservations in disguise; offers get up to a week.
pub const MAX_HOLD_TTL_SECS: u32 = 86_400;
pub const MAX_OFFER_TTL_SECS: u32 = 7 * 86_400;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    pub name: String,
    pub owner_id: UserId,
    /// How long a hold keeps capacity before it expires unless confirmed.
    pub hold_ttl_secs: u32,
    /// How long a waitlist offer keeps the freed capacity for the offered client.
    pub offer_ttl_secs: u32,
    pub kind: KindSpec,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KindSpec {
    Hotel(HotelSpec),
    Event(EventSpec),
    Provider(ProviderSpec),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Hotel,
    Event,
    Provider,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Hotel => "hotel",
            ResourceKind::Event => "event",
            ResourceKind::Provider => "provider",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hotel" => Some(ResourceKind::Hotel),
            "event" => Some(ResourceKind::Event),
            "provider" => Some(ResourceKind::Provider),
            _ => None,
        }
    }
}

impl KindSpec {
    pub fn kind(&self) -> ResourceKind {
        match self {
            KindSpec::Hotel(_) => ResourceKind::Hotel,
            KindSpec::Event(_) => ResourceKind::Event,
            KindSpec::Provider(_) => ResourceKind::Provider,
        }
    }
}

impl ResourceSpec {
    /// Checks the common fields; the kind's own rules are checked when its inventory is built.
    pub fn validate_common(&self) -> Result<(), SpecError> {
        let mut p = Problems::default();
        if let Err(e) = check_name(&self.name) {
            p.push("name", e);
        }
        p.check(
            (1..=MAX_HOLD_TTL_SECS).contains(&self.hold_ttl_secs),
            "hold_ttl_secs",
            format!("must be between 1 and {MAX_HOLD_TTL_SECS}"),
        );
        p.check(
            (1..=MAX_OFFER_TTL_SECS).contains(&self.offer_ttl_secs),
            "offer_ttl_secs",
            format!("must be between 1 and {MAX_OFFER_TTL_SECS}"),
        );
        p.into_result(())
    }
}

/// A display name: 1..=200 characters, not blank, no control characters.
pub fn check_name(name: &str) -> Result<(), String> {
    let n = name.chars().count();
    if name.trim().is_empty() {
        Err("must not be blank".into())
    } else if n > MAX_NAME_CHARS {
        Err(format!("must be at most {MAX_NAME_CHARS} characters"))
    } else if name.chars().any(char::is_control) {
        Err("must not contain control characters".into())
    } else {
        Ok(())
    }
}
