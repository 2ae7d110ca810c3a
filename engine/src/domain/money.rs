//! Money in minor units (cents) with an ISO 4217 currency code. Never floats.

use super::error::SpecError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Three upper-case ASCII letters, e.g. `EUR`. Built only by [`Currency::parse`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, example = "EUR"))]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn parse(s: &str) -> Result<Self, SpecError> {
        let b = s.as_bytes();
        if b.len() == 3 && b.iter().all(u8::is_ascii_uppercase) {
            Ok(Currency([b[0], b[1], b[2]]))
        } else {
            Err(SpecError::new("currency", "must be a three-letter upper-case ISO 4217 code"))
        }
    }
    pub fn as_str(&self) -> &str {
        // Only ever built from ASCII upper-case letters.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl TryFrom<String> for Currency {
    type Error = SpecError;
    fn try_from(s: String) -> Result<Self, SpecError> {
        Currency::parse(&s)
    }
}
impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_owned()
    }
}
impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Money {
    pub amount_minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(amount_minor: i64, currency: Currency) -> Self {
        Money { amount_minor, currency }
    }
    /// `None` on overflow: prices are bounded by spec validation, so overflow means a bug
    /// or absurd input, and the caller turns it into an error instead of wrapping.
    pub fn checked_mul(self, n: i64) -> Option<Money> {
        self.amount_minor.checked_mul(n).map(|a| Money::new(a, self.currency))
    }
}

/// Largest price of one unit (night, ticket, appointment) we accept: 10^10 minor units.
/// Keeps every total of a bounded booking far from i64 overflow.
pub const MAX_UNIT_PRICE_MINOR: i64 = 10_000_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_parse_rejects_bad_codes() {
        assert!(Currency::parse("EUR").is_ok());
        for bad in ["eur", "EU", "EURO", "E1R", ""] {
            assert!(Currency::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
