//! Booking listings both faces page through: filters from the query, keyset cursors.

use crate::app::AppError;
use crate::pagination::{self, Page, page_cut};
use crate::state::AppState;
use engine::domain::booking::{Booking, BookingStatus};
use engine::store::BookingFilter;
use jiff::Timestamp;
use serde::Deserialize;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BookingListQuery {
    /// Comma-separated statuses, e.g. `held,confirmed`.
    #[param(
        pattern = "^ *(held|confirmed|completed|released|expired|cancelled) *(, *(held|confirmed|completed|released|expired|cancelled) *)*$"
    )]
    pub status: Option<String>,
    /// Created at or after.
    pub from: Option<Timestamp>,
    /// Created before.
    pub to: Option<Timestamp>,
    /// `upcoming`: the stay (until check-out time), event or appointment has not ended yet;
    /// `past`: it has.
    #[param(inline)]
    pub when: Option<When>,
    pub cursor: Option<String>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
}

#[derive(Clone, Copy, Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum When {
    Upcoming,
    Past,
}

pub fn parse_statuses(s: &Option<String>) -> Result<Vec<BookingStatus>, AppError> {
    let Some(s) = s else { return Ok(Vec::new()) };
    s.split(',')
        .filter(|x| !x.trim().is_empty())
        .map(|x| {
            BookingStatus::parse(x.trim()).ok_or_else(|| {
                AppError::field("status", "one or more of held, confirmed, completed, released, expired, cancelled")
            })
        })
        .collect()
}

/// One page of bookings under `filter` (limit and cursor from the query).
pub async fn booking_page(
    state: &AppState,
    mut filter: BookingFilter,
    q: &BookingListQuery,
) -> Result<Page<Booking>, AppError> {
    let limit = pagination::limit(q.limit)?;
    if let (Some(f), Some(t)) = (q.from, q.to)
        && f >= t
    {
        return Err(AppError::field("to", "must be after from"));
    }
    filter.statuses = parse_statuses(&q.status)?;
    filter.created_from = q.from;
    filter.created_to = q.to;
    match q.when {
        Some(When::Upcoming) => filter.ends_after = Some(state.engine.now()),
        Some(When::Past) => filter.ended_by = Some(state.engine.now()),
        None => {}
    }
    filter.before = q.cursor.as_deref().map(pagination::parse_booking_cursor).transpose()?;
    filter.limit = limit + 1;
    let mut rows =
        state.engine.store().list_bookings(filter).await.map_err(|e| AppError::unavailable(e.to_string()))?;
    let next = page_cut(&mut rows, limit).map(|b| pagination::booking_cursor(b.created_at, b.id));
    Ok(Page { items: rows, next_cursor: next })
}
