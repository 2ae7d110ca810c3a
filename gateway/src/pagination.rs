//! Page size limits and opaque keyset cursors.

use crate::app::AppError;
use engine::domain::ids::{BookingId, ResourceId};
use jiff::Timestamp;
use serde::Serialize;

pub const DEFAULT_PAGE: i64 = 20;
pub const MAX_PAGE: i64 = 100;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

pub fn limit(requested: Option<i64>) -> Result<i64, AppError> {
    match requested {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(AppError::field("limit", format!("must be between 1 and {MAX_PAGE}"))),
    }
}

/// Bookings page by (created_at, id), newest first: the cursor is `<micros>.<uuid>`.
pub fn booking_cursor(at: Timestamp, id: BookingId) -> String {
    format!("{}.{}", at.as_microsecond(), id.0.simple())
}

pub fn parse_booking_cursor(c: &str) -> Result<(Timestamp, BookingId), AppError> {
    let bad = || AppError::field("cursor", "not a cursor this API issued");
    let (micros, id) = c.split_once('.').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = Timestamp::from_microsecond(micros).map_err(|_| bad())?;
    let id = uuid::Uuid::parse_str(id).map_err(|_| bad())?;
    Ok((at, BookingId(id)))
}

/// Keeps `limit` rows; returns the last kept row if more exist (the next page's cursor).
pub fn page_cut<T: Clone>(rows: &mut Vec<T>, limit: i64) -> Option<T> {
    let limit = usize::try_from(limit).unwrap_or(0);
    if rows.len() > limit {
        rows.truncate(limit);
        rows.last().cloned()
    } else {
        None
    }
}

pub fn parse_resource_cursor(c: &str) -> Result<ResourceId, AppError> {
    uuid::Uuid::parse_str(c).map(ResourceId).map_err(|_| AppError::field("cursor", "not a cursor this API issued"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_a_field_error() {
        let at = Timestamp::now();
        let id = BookingId::new_v7();
        let (t, i) = parse_booking_cursor(&booking_cursor(at, id)).expect("parse");
        assert_eq!((t.as_microsecond(), i), (at.as_microsecond(), id));
        for bad in ["", "x", "1.notauuid", "a.0190c3f2-0000-7000-8000-000000000000"] {
            assert_eq!(parse_booking_cursor(bad).expect_err(bad).errors[0].field, "cursor");
        }
        assert!(limit(Some(0)).is_err() && limit(Some(101)).is_err());
        assert_eq!(limit(None).expect("default"), 20);
    }
}
