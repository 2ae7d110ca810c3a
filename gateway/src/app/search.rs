//! Searches both faces answer: hotels with their free rooms for a stay, events with their
//! remaining capacity, a provider's free slots. Each hotel, event or provider answers for
//! itself (its actor, its clock); this layer pages over the store's list and asks them.

use crate::app::AppError;
use crate::pagination::{self, Page, page_cut};
use crate::state::AppState;
use engine::domain::event::EventAvailability;
use engine::domain::hotel::RoomTypeAvailability;
use engine::domain::ids::ResourceId;
use engine::domain::provider::Slot;
use engine::domain::spec::{KindSpec, ResourceKind};
use engine::store::ResourceFilter;
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

/// The longest city name a search takes.
pub const MAX_CITY_CHARS: usize = 200;

pub fn check_city(city: &Option<String>) -> Result<(), AppError> {
    match city {
        Some(c) if c.chars().count() > MAX_CITY_CHARS => {
            Err(AppError::field("city", format!("at most {MAX_CITY_CHARS} characters")))
        }
        _ => Ok(()),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HotelSearch {
    #[param(max_length = 200)]
    pub city: Option<String>,
    pub check_in: Date,
    pub check_out: Date,
    #[param(minimum = 1, maximum = 50)]
    pub guests: Option<u16>,
    pub cursor: Option<String>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct HotelResult {
    pub id: ResourceId,
    pub name: String,
    /// The owner's reference, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub city: Option<String>,
    pub room_types: Vec<RoomTypeAvailability>,
}

/// The hotel search of `GET /hotels/search` (also the Telegram bot's).
pub async fn hotel_search(state: &AppState, q: HotelSearch) -> Result<Page<HotelResult>, AppError> {
    check_city(&q.city)?;
    // The domain's one check of a stay query, once before asking any hotel (each then applies
    // its own today and horizon).
    engine::domain::hotel::check_stay_query(q.check_in, q.check_out, q.guests)?;
    let limit = pagination::limit(q.limit)?;
    let filter = ResourceFilter {
        kind: Some(ResourceKind::Hotel),
        owner_id: None,
        city: q.city,
        reference: None,
        after: q.cursor.as_deref().map(pagination::parse_resource_cursor).transpose()?,
        limit: limit + 1,
    };
    let mut rows =
        state.engine.store().list_resources(filter).await.map_err(|e| AppError::unavailable(e.to_string()))?;
    let next = page_cut(&mut rows, limit).map(|r| r.id.to_string());
    let (ci, co, guests) = (q.check_in, q.check_out, q.guests);
    let ids: Vec<ResourceId> = rows.iter().map(|r| r.id).collect();
    let avails = state.engine.read_many(&ids, move |s, now| s.hotel_availability(ci, co, guests, now)).await;
    let mut items = Vec::with_capacity(rows.len());
    for (r, avail) in rows.iter().zip(avails) {
        // The dates are checked by each hotel (its own today and horizon): the first
        // refusal is the answer for all.
        let room_types = avail?.map_err(|e| AppError::from(engine::EngineError::Domain(e)))?;
        items.push(HotelResult {
            id: r.id,
            name: r.name.clone(),
            reference: r.reference.clone(),
            city: r.city.clone(),
            room_types,
        });
    }
    Ok(Page { items, next_cursor: next })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub cursor: Option<String>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventResult {
    pub id: ResourceId,
    pub name: String,
    /// The owner's reference, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub starts_at: Option<Timestamp>,
    pub ends_at: Option<Timestamp>,
    pub availability: Option<EventAvailability>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SlotView {
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    /// Local start in the provider's zone, with its offset (tells apart the two 02:30 of a
    /// fall-back night).
    pub local_start: String,
}

/// One page of events with their availability (`GET /events`, and the Telegram bot's list).
pub async fn events_page(state: &AppState, q: &PageQuery) -> Result<Page<EventResult>, AppError> {
    let limit = pagination::limit(q.limit)?;
    let filter = ResourceFilter {
        kind: Some(ResourceKind::Event),
        after: q.cursor.as_deref().map(pagination::parse_resource_cursor).transpose()?,
        limit: limit + 1,
        ..ResourceFilter::default()
    };
    let mut rows =
        state.engine.store().list_resources(filter).await.map_err(|e| AppError::unavailable(e.to_string()))?;
    let next = page_cut(&mut rows, limit).map(|r| r.id.to_string());
    let ids: Vec<ResourceId> = rows.iter().map(|r| r.id).collect();
    let reads = state
        .engine
        .read_many(&ids, |s, _| {
            let times = match s.spec().kind {
                KindSpec::Event(e) => (Some(e.starts_at), Some(e.ends_at)),
                _ => (None, None),
            };
            (times, s.event_availability())
        })
        .await;
    let mut items = Vec::with_capacity(rows.len());
    for (r, res) in rows.iter().zip(reads) {
        let ((starts_at, ends_at), availability) = res?;
        items.push(EventResult {
            id: r.id,
            name: r.name.clone(),
            reference: r.reference.clone(),
            starts_at,
            ends_at,
            availability,
        });
    }
    Ok(Page { items, next_cursor: next })
}

/// The free slots of a provider on a local date (`GET /providers/{id}/slots`, and the bot's).
pub async fn provider_slots(state: &AppState, id: ResourceId, date: Date) -> Result<Vec<SlotView>, AppError> {
    let out = state
        .engine
        .read(id, move |s, now| -> Result<Vec<SlotView>, engine::domain::error::DomainError> {
            let free: Vec<Slot> = s.provider_free_slots(date, now)?;
            let tz = match &s.kind() {
                engine::domain::state::Kind::Provider(p) => p.time_zone().clone(),
                _ => jiff::tz::TimeZone::UTC,
            };
            Ok(free
                .into_iter()
                .map(|sl| SlotView {
                    starts_at: sl.starts_at,
                    ends_at: sl.ends_at,
                    local_start: sl.starts_at.to_zoned(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
                })
                .collect())
        })
        .await?
        .map_err(|e| AppError::from(engine::EngineError::Domain(e)))?;
    Ok(out)
}
