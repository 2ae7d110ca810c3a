//! Owners' dashboards (seed 000): per resource and year, by day or by month.
//!
//! `GET /dashboard?hotel_id=0&period=month&year=2027` is seed 000's own route: `hotel_id` is
//! the resource's id or its owner's reference, looked up among the caller's resources.
//!
//! `GET /resources/{id}/dashboard` answers seed 000's JSON exactly: one key per day of the year
//! (`YYYY-MM-DD`, zero-filled: 365 or 366 keys) or per month (`YYYY-MM-01`, 12 keys), and the
//! booked units as values: room-nights for a hotel, tickets by day of sale for an event,
//! appointments for a provider. `series=cancelled` gives the units that were booked and then
//! cancelled, in the same shape. `GET /resources/{id}/dashboard/summary` adds revenue and how
//! much of the capacity was used (hotel occupancy, event capacity sold, provider utilisation
//! of its working hours).
//!
//! The figures come from the `daily_stats` counters the engine writes with every commit
//! (`engine/src/domain/stats.rs`: "booked" is confirmed or completed; a stay counts on each of
//! its nights in the hotel's local dates), so a year costs one index range read of at most 366
//! rows, whatever the number of bookings.

use crate::accounts::Role;
use crate::app::access::{ResourceRef, require_owner, resolve};
use crate::auth::AuthUser;
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use actix_web::{HttpResponse, get, web};
use engine::domain::error::FieldError;
use engine::domain::ids::ResourceId;
use engine::domain::spec::ResourceKind;
use engine::domain::state::Kind;
use engine::domain::stats::DayStats;
use jiff::civil::{Date, date};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

pub const MIN_YEAR: i16 = 2000;
pub const MAX_YEAR: i16 = 2100;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(summary).service(seed_series).service(seed_route);
}

/// Query of both dashboard routes. Values are checked by hand so that every bad one is a 422
/// naming its parameter (never a 500, never a bare 400).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DashboardQuery {
    /// The calendar year, 2000..=2100 (required).
    #[param(value_type = i32, minimum = 2000, maximum = 2100, example = 2028)]
    pub year: Option<String>,
    /// `day` (default: every day of the year) or `month` (the first of each month).
    #[param(value_type = Option<String>, pattern = "^(day|month)$", example = "month")]
    pub period: Option<String>,
    /// `booked` (default) or `cancelled` (only for the seed-shaped route).
    #[param(value_type = Option<String>, pattern = "^(booked|cancelled)$", example = "booked")]
    pub series: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Day,
    Month,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Series {
    Booked,
    Cancelled,
}

struct Checked {
    year: i16,
    period: Period,
    series: Series,
}

fn check(q: &DashboardQuery) -> Result<Checked, ApiError> {
    let mut errors = Vec::new();
    let mut bad = |field: &str, message: String| errors.push(FieldError { field: field.into(), message });
    let year = match q.year.as_deref().map(str::trim) {
        None | Some("") => {
            bad("year", "required".into());
            None
        }
        Some(y) => match y.parse::<i16>() {
            Ok(y) if (MIN_YEAR..=MAX_YEAR).contains(&y) => Some(y),
            _ => {
                bad("year", format!("must be a year from {MIN_YEAR} to {MAX_YEAR}"));
                None
            }
        },
    };
    let period = match q.period.as_deref() {
        None | Some("day") => Some(Period::Day),
        Some("month") => Some(Period::Month),
        Some(_) => {
            bad("period", "must be day or month".into());
            None
        }
    };
    let series = match q.series.as_deref() {
        None | Some("booked") => Some(Series::Booked),
        Some("cancelled") => Some(Series::Cancelled),
        Some(_) => {
            bad("series", "must be booked or cancelled".into());
            None
        }
    };
    match (year, period, series) {
        (Some(year), Some(period), Some(series)) if errors.is_empty() => Ok(Checked { year, period, series }),
        _ => Err(ApiError::validation(errors)),
    }
}

/// Seed 000's dashboard query: the resource in the query, by id or owner's reference.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SeedDashboardQuery {
    /// The resource's id or its owner's reference (`0`, `berlin-1`), required.
    #[param(value_type = String, min_length = 1, max_length = 64, example = "0")]
    pub hotel_id: Option<String>,
    /// The calendar year, 2000..=2100 (required).
    #[param(value_type = i32, minimum = 2000, maximum = 2100, example = 2028)]
    pub year: Option<String>,
    /// `day` (default: every day of the year) or `month` (the first of each month).
    #[param(value_type = Option<String>, pattern = "^(day|month)$", example = "month")]
    pub period: Option<String>,
    /// `booked` (default) or `cancelled`.
    #[param(value_type = Option<String>, pattern = "^(booked|cancelled)$", example = "booked")]
    pub series: Option<String>,
}

/// The first day of every bucket of the year (366, 365 or 12 of them), each with the first day
/// of the next bucket.
fn buckets(year: i16, period: Period) -> Vec<(Date, Date)> {
    let mut out = Vec::new();
    let start = date(year, 1, 1);
    let Ok(end) = start.checked_add(jiff::Span::new().years(1)) else { return out };
    let mut d = start;
    while d < end {
        let next = match period {
            Period::Day => d.tomorrow(),
            Period::Month => d.checked_add(jiff::Span::new().months(1)),
        };
        let Ok(next) = next else { break };
        out.push((d, next));
        d = next;
    }
    out
}

/// Owners read their own resources' dashboards, admins all; anyone else gets 404.
async fn authorize(state: &AppState, user: &AuthUser, id: ResourceId) -> Result<(), ApiError> {
    if user.role == Role::Client {
        return Err(ApiError::not_found("resource"));
    }
    Ok(require_owner(state, user, id).await?)
}

async fn year_stats(state: &AppState, id: ResourceId, year: i16) -> Result<Vec<DayStats>, ApiError> {
    let (from, to) = (date(year, 1, 1), date(year + 1, 1, 1));
    state.engine.store().daily_stats(id, from, to).await.map_err(|e| ApiError::unavailable(e.to_string()))
}

/// Sums the day rows into the buckets (both sorted by day).
fn bucketed(stats: &[DayStats], buckets: &[(Date, Date)]) -> Vec<DayStats> {
    let mut out: Vec<DayStats> = buckets.iter().map(|(d, _)| DayStats::zero(*d)).collect();
    let mut b = 0;
    for s in stats {
        while buckets.get(b).is_some_and(|(_, next)| s.day >= *next) {
            b += 1;
        }
        match (buckets.get(b), out.get_mut(b)) {
            (Some((first, _)), Some(acc)) if s.day >= *first => acc.add(s),
            _ => {}
        }
    }
    out
}

#[utoipa::path(
    tag = "dashboard",
    operation_id = "dashboard_series",
    summary = "A year of bookings, seed 000's shape",
    description = "One key per day (`YYYY-MM-DD`, every day of the year, zero-filled: 365 or 366 keys) or per month (`YYYY-MM-01`, 12 keys); values are booked units (hotel: room-nights, by night; event: tickets, by day of sale; provider: appointments, by local day). Booked means confirmed or completed. `series=cancelled`: units booked and then cancelled. Only the resource's owner and admins.",
    params(("id" = Uuid, Path, description = "The resource id"), DashboardQuery),
    responses(
        (status = 200, description = "Date → units", body = BTreeMap<String, i64>, example = json!({"2028-01-01": 4, "2028-02-01": 7, "2028-03-01": 0})),
        (status = 400, description = "Malformed query or path", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad year, period or series", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable; retry", body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
#[get("/resources/{id}/dashboard")]
async fn seed_series(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    q: web::Query<DashboardQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = ResourceId(*id);
    authorize(&state, &user, id).await?;
    let c = check(&q)?;
    Ok(HttpResponse::Ok().json(series_of(&state, id, &c).await?))
}

#[utoipa::path(
    tag = "dashboard",
    operation_id = "dashboard_by_hotel_id",
    summary = "A year of bookings, seed 000's route",
    description = "Seed 000's `GET /dashboard?hotel_id=0&period=month&year=2027`, with the answer of `GET /api/v1/resources/{id}/dashboard`. `hotel_id` is the resource's id or its owner's reference, looked up among the caller's own resources (admins: everyone's; a reference several owners use is `reference_ambiguous`). Only the resource's owner and admins.",
    params(SeedDashboardQuery),
    responses(
        (status = 200, description = "Date → units", body = BTreeMap<String, i64>, example = json!({"2028-01-01": 4, "2028-02-01": 7, "2028-03-01": 0})),
        (status = 400, description = "Malformed query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An admin named a reference several owners use (`reference_ambiguous`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad hotel_id, year, period or series", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable; retry", body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
#[get("/dashboard")]
async fn seed_route(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<SeedDashboardQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let rest = DashboardQuery { year: q.year, period: q.period, series: q.series };
    // Every bad parameter at once, the resource's among them.
    let named = match q.hotel_id.as_deref().map(str::trim) {
        None | Some("") => Err("required".to_owned()),
        Some(h) => ResourceRef::parse(h),
    };
    let c = match (named.as_ref(), check(&rest)) {
        (Ok(_), Ok(c)) => c,
        (named, checked) => {
            let mut errors = checked.err().map(|e| e.errors).unwrap_or_default();
            if let Err(m) = named {
                errors.insert(0, FieldError { field: "hotel_id".into(), message: m.clone() });
            }
            return Err(ApiError::validation(errors));
        }
    };
    let named = named.map_err(|m| ApiError::field("hotel_id", m))?;
    let id = resolve(&state, &user, &named, None).await?;
    authorize(&state, &user, id).await?;
    Ok(HttpResponse::Ok().json(series_of(&state, id, &c).await?))
}

/// The seed-shaped answer: bucket day → units.
async fn series_of(state: &AppState, id: ResourceId, c: &Checked) -> Result<BTreeMap<String, i64>, ApiError> {
    let stats = year_stats(state, id, c.year).await?;
    let b = buckets(c.year, c.period);
    let out: BTreeMap<String, i64> = bucketed(&stats, &b)
        .iter()
        .map(|s| {
            let v = match c.series {
                Series::Booked => s.booked_units,
                Series::Cancelled => s.cancelled_units,
            };
            (s.day.to_string(), v)
        })
        .collect();
    Ok(out)
}

/// One bucket (day or month) of the summary.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SummaryPoint {
    /// First day of the bucket.
    #[schema(value_type = String, example = "2028-02-01")]
    pub date: Date,
    /// Units booked (confirmed or completed): room-nights, tickets, appointments.
    pub booked: i64,
    /// Units booked and then cancelled.
    pub cancelled: i64,
    /// Value of the booked units, minor units of `currency` (a stay's price spread evenly over
    /// its nights).
    pub revenue_minor: i64,
    pub cancelled_revenue_minor: i64,
    /// Hotel: room-nights available (rooms × days). Event: its capacity. Provider: minutes of
    /// working hours.
    pub capacity: i64,
    /// Hotel: occupancy (booked / capacity). Event: share of the capacity sold up to the end
    /// of this bucket. Provider: utilisation (booked minutes / working minutes). Percent, two
    /// decimals; 0 when there is no capacity.
    pub used_pct: f64,
    /// Providers: minutes of the booked appointments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booked_minutes: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DashboardSummary {
    pub resource_id: ResourceId,
    pub kind: ResourceKind,
    pub name: String,
    pub year: i16,
    pub period: Period,
    /// `room_nights`, `tickets` or `appointments`.
    pub unit: &'static str,
    pub currency: String,
    /// The whole year (for an event, `used_pct` is the share sold by the year's end).
    pub totals: SummaryPoint,
    pub points: Vec<SummaryPoint>,
}

/// What the capacity figures need from the resource's current specification.
enum Capacity {
    Rooms(i64),
    Tickets(i64),
    /// Working minutes per day of the year, in order.
    Minutes(Vec<i64>),
}

fn pct(used: i64, capacity: i64) -> f64 {
    if capacity <= 0 {
        return 0.0;
    }
    (used as f64 * 10_000.0 / capacity as f64).round() / 100.0
}

#[utoipa::path(
    tag = "dashboard",
    operation_id = "dashboard_summary",
    summary = "A year of bookings with revenue and capacity used",
    description = "Per day or month of the year: booked and cancelled units, their value, the capacity and how much of it was used (hotel occupancy, event capacity sold so far, provider utilisation of working hours), with totals. Capacity comes from the resource's current specification. Only the resource's owner and admins.",
    params(("id" = Uuid, Path, description = "The resource id"), DashboardQuery),
    responses(
        (status = 200, description = "The year", body = DashboardSummary),
        (status = 400, description = "Malformed query or path", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad year or period", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable; retry", body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = []))
)]
#[get("/resources/{id}/dashboard/summary")]
async fn summary(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    q: web::Query<DashboardQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = ResourceId(*id);
    authorize(&state, &user, id).await?;
    let c = check(&q)?;
    let days = buckets(c.year, Period::Day);
    let day_list: Vec<Date> = days.iter().map(|(d, _)| *d).collect();
    let (kind, name, currency, capacity) = state
        .engine
        .read(id, move |s, _| {
            let spec = s.spec();
            let (currency, cap) = match s.kind() {
                Kind::Hotel(h) => (h.spec().currency.to_string(), Capacity::Rooms(h.spec().rooms.len() as i64)),
                Kind::Event(e) => (e.spec().currency.to_string(), Capacity::Tickets(i64::from(e.spec().capacity))),
                Kind::Provider(p) => (
                    p.spec().currency.to_string(),
                    Capacity::Minutes(day_list.iter().map(|d| p.scheduled_minutes(*d)).collect()),
                ),
            };
            (s.kind().kind(), spec.name, currency, cap)
        })
        .await?;
    let stats = year_stats(&state, id, c.year).await?;
    // An event's share sold counts what was sold before this year too.
    let sold_before = if kind == ResourceKind::Event {
        let earlier = state
            .engine
            .store()
            .daily_stats(id, date(1970, 1, 1), date(c.year, 1, 1))
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        earlier.iter().map(|s| s.booked_units).sum()
    } else {
        0
    };
    let b = buckets(c.year, c.period);
    let sums = bucketed(&stats, &b);
    let day_index = |d: Date| days.iter().position(|(x, _)| *x == d).unwrap_or(0);
    let mut cumulative = sold_before;
    let mut points = Vec::with_capacity(sums.len());
    for (s, (first, next)) in sums.iter().zip(&b) {
        let n_days = first.until(*next).map(|sp| i64::from(sp.get_days())).unwrap_or(1);
        let n_days = if c.period == Period::Day { 1 } else { n_days.max(1) };
        cumulative += s.booked_units;
        let (cap, used_pct, minutes) = match &capacity {
            Capacity::Rooms(r) => (r * n_days, pct(s.booked_units, r * n_days), None),
            Capacity::Tickets(t) => (*t, pct(cumulative, *t), None),
            Capacity::Minutes(per_day) => {
                let from = day_index(*first);
                let cap: i64 = per_day.iter().skip(from).take(usize::try_from(n_days).unwrap_or(1)).sum();
                (cap, pct(s.booked_minutes, cap), Some(s.booked_minutes))
            }
        };
        points.push(SummaryPoint {
            date: *first,
            booked: s.booked_units,
            cancelled: s.cancelled_units,
            revenue_minor: s.booked_minor,
            cancelled_revenue_minor: s.cancelled_minor,
            capacity: cap,
            used_pct,
            booked_minutes: minutes,
        });
    }
    let sum = |f: fn(&SummaryPoint) -> i64| points.iter().map(f).sum::<i64>();
    let booked = sum(|p| p.booked);
    let booked_minutes: i64 = points.iter().filter_map(|p| p.booked_minutes).sum();
    let (total_cap, total_pct) = match &capacity {
        Capacity::Rooms(_) => {
            let cap = sum(|p| p.capacity);
            (cap, pct(booked, cap))
        }
        Capacity::Tickets(t) => (*t, pct(cumulative, *t)),
        Capacity::Minutes(_) => {
            let cap = sum(|p| p.capacity);
            (cap, pct(booked_minutes, cap))
        }
    };
    let totals = SummaryPoint {
        date: date(c.year, 1, 1),
        booked,
        cancelled: sum(|p| p.cancelled),
        revenue_minor: sum(|p| p.revenue_minor),
        cancelled_revenue_minor: sum(|p| p.cancelled_revenue_minor),
        capacity: total_cap,
        used_pct: total_pct,
        booked_minutes: matches!(capacity, Capacity::Minutes(_)).then_some(booked_minutes),
    };
    let unit = match kind {
        ResourceKind::Hotel => "room_nights",
        ResourceKind::Event => "tickets",
        ResourceKind::Provider => "appointments",
    };
    Ok(HttpResponse::Ok().json(DashboardSummary {
        resource_id: id,
        kind,
        name,
        year: c.year,
        period: c.period,
        unit,
        currency,
        totals,
        points,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_the_year_exactly() {
        assert_eq!(buckets(2028, Period::Day).len(), 366);
        assert_eq!(buckets(2027, Period::Day).len(), 365);
        let m = buckets(2028, Period::Month);
        assert_eq!(m.len(), 12);
        assert_eq!(m[1], (date(2028, 2, 1), date(2028, 3, 1)));
        assert_eq!(m[11].1, date(2029, 1, 1));
    }

    #[test]
    fn day_rows_land_in_their_bucket() {
        let s = |d: Date, n: i64| DayStats { booked_units: n, ..DayStats::zero(d) };
        let rows = [s(date(2028, 1, 31), 1), s(date(2028, 2, 1), 2), s(date(2028, 2, 29), 4), s(date(2028, 12, 31), 8)];
        let m = bucketed(&rows, &buckets(2028, Period::Month));
        let v: Vec<i64> = m.iter().map(|x| x.booked_units).collect();
        assert_eq!(v, [1, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8]);
    }
}
