//! Hotels, events and providers: owners create and change theirs; everyone searches.

use crate::accounts::Role;
use crate::auth::{AuthUser, Staff};
use crate::error::responses::*;
use crate::error::{ApiError, Problem};
use crate::extract::Json;
use crate::pagination::{self, Page};
use crate::state::AppState;
use actix_web::{HttpResponse, get, post, put, web};
use engine::domain::booking::{Booking, BookingStatus, Requester};
use engine::domain::command::Command;
use engine::domain::event::EventAvailability;
use engine::domain::hotel::RoomTypeAvailability;
use engine::domain::ids::{ResourceId, UserId};
use engine::domain::provider::Slot;
use engine::domain::spec::{KindSpec, ResourceKind, ResourceSpec};
use engine::domain::state::{ResourceState, ResourceStats};
use engine::store::{BookingFilter, ResourceFilter};
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(search_hotels)
        .service(list_events)
        .service(slots)
        .service(get_one)
        .service(update)
        .service(resource_bookings);
}

fn default_hold_ttl() -> u32 {
    900
}
fn default_offer_ttl() -> u32 {
    3_600
}

/// What an owner declares. `kind` holds the hotel, event or provider specification, tagged by
/// `type`; ids inside it (room types, rooms, categories) are chosen by the client.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"name": "Rust Conf 2030", "hold_ttl_secs": 900, "offer_ttl_secs": 3600, "kind": {"type": "event", "starts_at": "2030-05-01T09:00:00Z", "ends_at": "2030-05-01T18:00:00Z", "capacity": 500, "max_per_booking": 6, "currency": "EUR", "price_minor": 4900, "categories": []}}))]
#[serde(deny_unknown_fields)]
pub struct ResourceInput {
    /// 1 to 200 characters, not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    #[serde(default = "default_hold_ttl")]
    #[schema(default = 900, minimum = 1, maximum = 86_400)]
    pub hold_ttl_secs: u32,
    #[serde(default = "default_offer_ttl")]
    #[schema(default = 3600, minimum = 1, maximum = 604_800)]
    pub offer_ttl_secs: u32,
    /// Admins may create a resource for an owner; owners always own what they create.
    #[serde(default)]
    pub owner_id: Option<Uuid>,
    /// The owner's own name for it ("0", "berlin-1"), unique among the owner's resources:
    /// the feed (`hotel_id`) and `GET /dashboard` (`hotel_id`) accept it in place of the id.
    /// Letters, digits, `.`, `_`, `-`; not a UUID. Omitted on update: the resource has none.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", max_length = 64, example = "berlin-1")]
    pub reference: Option<String>,
    pub kind: KindSpec,
}

impl ResourceInput {
    fn into_spec(self, owner: UserId) -> ResourceSpec {
        ResourceSpec {
            name: self.name,
            owner_id: owner,
            reference: self.reference,
            hold_ttl_secs: self.hold_ttl_secs,
            offer_ttl_secs: self.offer_ttl_secs,
            kind: self.kind,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ResourceView {
    pub id: ResourceId,
    pub kind: ResourceKind,
    pub name: String,
    pub owner_id: UserId,
    /// The owner's reference, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub hold_ttl_secs: u32,
    pub offer_ttl_secs: u32,
    pub spec: KindSpec,
    pub stats: ResourceStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability: Option<EventAvailability>,
}

fn view(s: &ResourceState) -> ResourceView {
    let spec = s.spec();
    ResourceView {
        id: s.id(),
        kind: s.kind().kind(),
        name: spec.name,
        owner_id: spec.owner_id,
        reference: spec.reference,
        hold_ttl_secs: spec.hold_ttl_secs,
        offer_ttl_secs: spec.offer_ttl_secs,
        spec: spec.kind,
        stats: s.stats(),
        availability: s.event_availability(),
    }
}

/// The owner of a resource (404 if there is no such resource).
pub async fn owner_of(state: &AppState, id: ResourceId) -> Result<UserId, ApiError> {
    Ok(state.engine.read(id, |s, _| s.owner_id()).await?)
}

/// Owners see and change only their own resources; to anyone else's the answer is 404, as if
/// it did not exist. Admins act on all that exist (a resource that does not is 404 for them
/// too, not an empty answer).
pub async fn require_owner(state: &AppState, user: &AuthUser, id: ResourceId) -> Result<(), ApiError> {
    if user.role == Role::Client {
        return Err(ApiError::not_found("resource"));
    }
    let owner = owner_of(state, id).await?;
    if user.is_admin() || owner == user.id {
        return Ok(());
    }
    Err(ApiError::not_found("resource"))
}

/// Validation errors of a specification: common fields stay as they are, the kind's fields
/// (rooms, categories, schedule...) are reported under `kind`.
fn spec_error(e: engine::EngineError) -> ApiError {
    const TOP: [&str; 6] = ["name", "reference", "hold_ttl_secs", "offer_ttl_secs", "owner_id", "by"];
    match e {
        engine::EngineError::Domain(engine::domain::error::DomainError::Validation(mut v)) => {
            for f in &mut v.errors {
                if !TOP.contains(&f.field.as_str()) && !f.field.starts_with("kind") {
                    f.field = format!("kind.{}", f.field);
                }
            }
            ApiError::validation(v.errors)
        }
        other => other.into(),
    }
}

/// A resource as a client names it: its id, or its owner's reference (`0`, `berlin-1`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceRef {
    Id(ResourceId),
    Reference(String),
}

impl ResourceRef {
    /// A UUID is an id (a reference is never one); anything else must be a valid reference.
    pub fn parse(s: &str) -> Result<ResourceRef, String> {
        let s = s.trim();
        if let Ok(id) = Uuid::parse_str(s) {
            return Ok(ResourceRef::Id(ResourceId(id)));
        }
        engine::domain::spec::check_reference(s).map_err(|e| format!("a resource id or reference: {e}"))?;
        Ok(ResourceRef::Reference(s.to_owned()))
    }
}

/// The resource `r` names for `user`: an id as it is (the caller still checks access); a
/// reference among the caller's own resources (owners), or among everyone's when it names
/// exactly one (admins). Clients own nothing. Not found is 404, as for an id.
pub async fn resolve(
    state: &AppState,
    user: &AuthUser,
    r: &ResourceRef,
    kind: Option<ResourceKind>,
) -> Result<ResourceId, ApiError> {
    let reference = match r {
        ResourceRef::Id(id) => return Ok(*id),
        ResourceRef::Reference(s) => s,
    };
    if user.role == Role::Client {
        return Err(ApiError::not_found("resource"));
    }
    let filter = ResourceFilter {
        kind,
        owner_id: (!user.is_admin()).then_some(user.id),
        reference: Some(reference.clone()),
        limit: 2,
        ..ResourceFilter::default()
    };
    let found = state.engine.store().list_resources(filter).await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    match found.as_slice() {
        [one] => Ok(one.id),
        [] => Err(ApiError::not_found("resource")),
        _ => Err(ApiError::new(
            actix_web::http::StatusCode::CONFLICT,
            "reference_ambiguous",
            format!("resources of several owners are called {reference:?}; name the resource by its id"),
        )),
    }
}

/// A reference names one resource of its owner: 409 `reference_taken` if another of the
/// owner's resources has it. (Two creates racing past this check: the store's unique index
/// refuses the second, answered 503 "retry", and the retry gets this 409.)
async fn check_reference_free(
    state: &AppState,
    owner: UserId,
    reference: Option<&str>,
    this: Option<ResourceId>,
) -> Result<(), ApiError> {
    let Some(reference) = reference else { return Ok(()) };
    let filter = ResourceFilter {
        owner_id: Some(owner),
        reference: Some(reference.to_owned()),
        limit: 2,
        ..ResourceFilter::default()
    };
    let found = state.engine.store().list_resources(filter).await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    if found.iter().any(|r| Some(r.id) != this) {
        let mut e = ApiError::new(
            actix_web::http::StatusCode::CONFLICT,
            "reference_taken",
            format!("another of the owner's resources is called {reference:?}"),
        );
        e.errors.push(engine::domain::error::FieldError {
            field: "reference".into(),
            message: "already names another of the owner's resources".into(),
        });
        return Err(e);
    }
    Ok(())
}

#[utoipa::path(
    tag = "resources",
    operation_id = "create_resource",
    summary = "Declare a resource",
    description = "An owner (or an admin, for an owner) declares a hotel, event or provider.",
    request_body(content = ResourceInput, example = json!({"name": "Rust Conf 2030", "hold_ttl_secs": 900, "offer_ttl_secs": 3600, "kind": {"type": "event", "starts_at": "2030-05-01T09:00:00Z", "ends_at": "2030-05-01T18:00:00Z", "capacity": 500, "max_per_booking": 6, "currency": "EUR", "price_minor": 4900, "categories": []}})),
    responses(
        (status = 201, description = "Created", body = ResourceView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, description = "The owner already has a resource with this `reference` (`reference_taken`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[post("/resources")]
async fn create(
    state: web::Data<AppState>,
    caller: Staff,
    body: Json<ResourceInput>,
) -> Result<HttpResponse, ApiError> {
    let Staff(user) = caller;
    let input = body.0;
    let owner = match (user.role, input.owner_id) {
        (Role::Admin, Some(o)) => UserId(o),
        (_, Some(_)) => {
            return Err(ApiError::field("owner_id", "only an admin can create a resource for someone else"));
        }
        (_, None) => user.id,
    };
    // The spec's own fields are top level, its kind's fields under `kind`. A bad reference is
    // reported by the spec's validation; only a well-formed one is looked up.
    let spec = input.into_spec(owner);
    if spec.validate_common().is_ok() {
        check_reference_free(&state, owner, spec.reference.as_deref(), None).await?;
    }
    let id = state.engine.create(spec).await.map_err(spec_error)?;
    let v = state.engine.read(id, |s, _| view(s)).await?;
    Ok(HttpResponse::Created().insert_header(("Location", format!("/api/v1/resources/{id}"))).json(v))
}

#[utoipa::path(
    tag = "resources",
    operation_id = "get_resource",
    summary = "Get a resource",
    description = "A resource with its specification, counters and (events) availability.",
    params(("id" = Uuid, Path, description = "The resource id")),
    responses(
        (status = 200, description = "The resource", body = ResourceView),
        (status = 400, response = BadRequest),
        (status = 404, description = "No such resource visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)
    )
)]
#[get("/resources/{id}")]
async fn get_one(state: web::Data<AppState>, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let v = state.engine.read(ResourceId(*id), |s, _| view(s)).await?;
    Ok(HttpResponse::Ok().json(v))
}

#[utoipa::path(
    tag = "resources",
    operation_id = "update_resource",
    summary = "Change a resource",
    description = "Replaces the specification; refused if it would strand existing bookings.",
    params(("id" = Uuid, Path, description = "The resource id")),
    request_body(content = ResourceInput, example = json!({"name": "Rust Conf 2030", "hold_ttl_secs": 900, "offer_ttl_secs": 3600, "kind": {"type": "event", "starts_at": "2030-05-01T09:00:00Z", "ends_at": "2030-05-01T18:00:00Z", "capacity": 500, "max_per_booking": 6, "currency": "EUR", "price_minor": 4900, "categories": []}})),
    responses(
        (status = 200, description = "The resource", body = ResourceView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such resource visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Conflicts with existing bookings, or the owner already has a resource with this `reference` (`reference_taken`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[put("/resources/{id}")]
async fn update(
    state: web::Data<AppState>,
    caller: Staff,
    id: web::Path<Uuid>,
    body: Json<ResourceInput>,
) -> Result<HttpResponse, ApiError> {
    let Staff(user) = caller;
    let id = ResourceId(*id);
    require_owner(&state, &user, id).await?;
    let input = body.0;
    let owner = match input.owner_id {
        Some(o) if user.is_admin() => UserId(o),
        Some(o) if UserId(o) != user.id => {
            return Err(ApiError::field("owner_id", "only an admin can hand a resource to another owner"));
        }
        _ => owner_of(&state, id).await?,
    };
    let spec = input.into_spec(owner);
    if spec.validate_common().is_ok() {
        check_reference_free(&state, owner, spec.reference.as_deref(), Some(id)).await?;
    }
    let cmd = Command::UpdateSpec { spec, by: user.requester() };
    state.engine.execute(id, cmd, None).await.map_err(spec_error)?;
    Ok(HttpResponse::Ok().json(state.engine.read(id, |s, _| view(s)).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub kind: Option<ResourceKind>,
    #[param(max_length = 200)]
    pub city: Option<String>,
    /// Only the caller's own resources (owners).
    #[serde(default)]
    pub mine: bool,
    /// Only resources with this owner's reference (with `mine=true`, at most one).
    #[param(max_length = 64)]
    pub reference: Option<String>,
    pub cursor: Option<String>,
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ResourceSummaryView {
    pub id: ResourceId,
    pub kind: ResourceKind,
    pub name: String,
    pub owner_id: UserId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
}

fn check_city(city: &Option<String>) -> Result<(), ApiError> {
    match city {
        Some(c) if c.chars().count() > 200 => Err(ApiError::field("city", "at most 200 characters")),
        _ => Ok(()),
    }
}

#[utoipa::path(
    tag = "resources",
    operation_id = "list_resources",
    summary = "List resources",
    description = "Resources by kind and city; `mine=true` lists the caller's own (token needed).",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of resources", body = Page<ResourceSummaryView>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable)
    ),
    security((), ("bearer" = []))
)]
#[get("/resources")]
async fn list(
    state: web::Data<AppState>,
    q: web::Query<ListQuery>,
    user: Option<AuthUser>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    check_city(&q.city)?;
    if q.reference.as_ref().is_some_and(|r| r.chars().count() > engine::domain::spec::MAX_REFERENCE_CHARS) {
        return Err(ApiError::field(
            "reference",
            format!("at most {} characters", engine::domain::spec::MAX_REFERENCE_CHARS),
        ));
    }
    let limit = pagination::limit(q.limit)?;
    let owner_id = if q.mine {
        Some(user.ok_or_else(|| ApiError::unauthorized("mine=true needs a signed-in owner"))?.id)
    } else {
        None
    };
    let filter = ResourceFilter {
        kind: q.kind,
        owner_id,
        city: q.city,
        reference: q.reference,
        after: q.cursor.as_deref().map(pagination::parse_resource_cursor).transpose()?,
        limit: limit + 1,
    };
    let mut rows =
        state.engine.store().list_resources(filter).await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    let next = page_cut(&mut rows, limit).map(|r| r.id.to_string());
    let items = rows
        .into_iter()
        .map(|r| ResourceSummaryView {
            id: r.id,
            kind: r.kind,
            name: r.name,
            owner_id: r.owner_id,
            reference: r.reference,
            city: r.city,
        })
        .collect();
    Ok(HttpResponse::Ok().json(Page { items, next_cursor: next }))
}

/// Keeps `limit` rows; returns the last kept row if more exist (the next page's cursor).
pub(crate) fn page_cut<T: Clone>(rows: &mut Vec<T>, limit: i64) -> Option<T> {
    let limit = usize::try_from(limit).unwrap_or(0);
    if rows.len() > limit {
        rows.truncate(limit);
        rows.last().cloned()
    } else {
        None
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

/// Checks a searched stay before asking any hotel: the range, its length and the guests. Each
/// hotel then applies its own today and horizon.
fn check_stay_dates(check_in: Date, check_out: Date, guests: Option<u16>) -> Result<(), ApiError> {
    let mut p = engine::domain::error::Problems::default();
    let nights = check_in.until(check_out).map(|s| s.get_days()).unwrap_or(0);
    p.check(check_out > check_in, "check_out", "must be after check_in");
    p.check(
        nights <= engine::domain::hotel::MAX_STAY_NIGHTS,
        "check_out",
        format!("a stay is at most {} nights", engine::domain::hotel::MAX_STAY_NIGHTS),
    );
    p.check(guests != Some(0), "guests", "must be at least 1");
    p.check(
        guests.is_none_or(|g| g <= engine::domain::hotel::MAX_GUESTS),
        "guests",
        format!("at most {}", engine::domain::hotel::MAX_GUESTS),
    );
    p.into_result(()).map_err(|e| ApiError::validation(e.errors))
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

/// Hotels (optionally in a city) with, per room type, the rooms free for the whole stay and
/// the stay's total price.
#[utoipa::path(
    tag = "resources",
    summary = "Search hotels",
    description = "Hotels (optionally in a city) with the rooms free for the whole stay and its price.",
    params(HotelSearch),
    responses(
        (status = 200, description = "One page of hotels with availability", body = Page<HotelResult>),
        (status = 400, response = BadRequest),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable)
    )
)]
#[get("/hotels/search")]
async fn search_hotels(state: web::Data<AppState>, q: web::Query<HotelSearch>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(hotel_search(&state, q.into_inner()).await?))
}

/// The hotel search of `GET /hotels/search` (also the Telegram bot's).
pub async fn hotel_search(state: &AppState, q: HotelSearch) -> Result<Page<HotelResult>, ApiError> {
    check_city(&q.city)?;
    check_stay_dates(q.check_in, q.check_out, q.guests)?;
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
        state.engine.store().list_resources(filter).await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    let next = page_cut(&mut rows, limit).map(|r| r.id.to_string());
    let (ci, co, guests) = (q.check_in, q.check_out, q.guests);
    let ids: Vec<ResourceId> = rows.iter().map(|r| r.id).collect();
    let avails = state.engine.read_many(&ids, move |s, now| s.hotel_availability(ci, co, guests, now)).await;
    let mut items = Vec::with_capacity(rows.len());
    for (r, avail) in rows.iter().zip(avails) {
        // The dates are checked by each hotel (its own today and horizon): the first
        // refusal is the answer for all.
        let room_types = avail?.map_err(|e| ApiError::from(engine::EngineError::Domain(e)))?;
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

/// Events with their remaining capacity (per category too).
#[utoipa::path(
    tag = "resources",
    summary = "List events",
    description = "Events with their remaining capacity (per category too).",
    params(PageQuery),
    responses(
        (status = 200, description = "One page of events", body = Page<EventResult>),
        (status = 400, response = BadRequest),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable)
    )
)]
#[get("/events")]
async fn list_events(state: web::Data<AppState>, q: web::Query<PageQuery>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(events_page(&state, &q).await?))
}

/// One page of events with their availability (`GET /events`, and the Telegram bot's list).
pub async fn events_page(state: &AppState, q: &PageQuery) -> Result<Page<EventResult>, ApiError> {
    let limit = pagination::limit(q.limit)?;
    let filter = ResourceFilter {
        kind: Some(ResourceKind::Event),
        after: q.cursor.as_deref().map(pagination::parse_resource_cursor).transpose()?,
        limit: limit + 1,
        ..ResourceFilter::default()
    };
    let mut rows =
        state.engine.store().list_resources(filter).await.map_err(|e| ApiError::unavailable(e.to_string()))?;
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SlotQuery {
    pub date: Date,
}

/// The free slots of a provider on a date.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SlotsView {
    pub date: Date,
    pub slots: Vec<SlotView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SlotView {
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    /// Local start in the provider's zone, with its offset (tells apart the two 02:30 of a
    /// fall-back night).
    pub local_start: String,
}

/// Free appointment slots of a provider on a local date.
#[utoipa::path(
    tag = "resources",
    summary = "Free slots of a provider",
    description = "Free appointment slots of a provider on a local date.",
    params(("id" = Uuid, Path, description = "The provider id"), SlotQuery),
    responses(
        (status = 200, description = "The free slots", body = SlotsView),
        (status = 400, response = BadRequest),
        (status = 404, description = "No such resource visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable)
    )
)]
#[get("/providers/{id}/slots")]
async fn slots(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    q: web::Query<SlotQuery>,
) -> Result<HttpResponse, ApiError> {
    let date = q.date;
    let free = provider_slots(&state, ResourceId(*id), date).await?;
    Ok(HttpResponse::Ok().json(SlotsView { date, slots: free }))
}

/// The free slots of a provider on a local date (`GET /providers/{id}/slots`, and the bot's).
pub async fn provider_slots(state: &AppState, id: ResourceId, date: Date) -> Result<Vec<SlotView>, ApiError> {
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
        .map_err(|e| ApiError::from(engine::EngineError::Domain(e)))?;
    Ok(out)
}

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

pub fn parse_statuses(s: &Option<String>) -> Result<Vec<BookingStatus>, ApiError> {
    let Some(s) = s else { return Ok(Vec::new()) };
    s.split(',')
        .filter(|x| !x.trim().is_empty())
        .map(|x| {
            BookingStatus::parse(x.trim()).ok_or_else(|| {
                ApiError::field("status", "one or more of held, confirmed, completed, released, expired, cancelled")
            })
        })
        .collect()
}

/// One page of bookings under `filter` (limit and cursor from the query).
pub async fn booking_page(
    state: &AppState,
    mut filter: BookingFilter,
    q: &BookingListQuery,
) -> Result<Page<Booking>, ApiError> {
    let limit = pagination::limit(q.limit)?;
    if let (Some(f), Some(t)) = (q.from, q.to)
        && f >= t
    {
        return Err(ApiError::field("to", "must be after from"));
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
        state.engine.store().list_bookings(filter).await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    let next = page_cut(&mut rows, limit).map(|b| pagination::booking_cursor(b.created_at, b.id));
    Ok(Page { items: rows, next_cursor: next })
}

/// The bookings of one resource, for its owner (or an admin).
#[utoipa::path(
    tag = "resources",
    summary = "A resource's bookings",
    description = "The bookings of one resource, for its owner or an admin.",
    params(("id" = Uuid, Path, description = "The resource id"), BookingListQuery),
    responses(
        (status = 200, description = "One page of bookings", body = Page<Booking>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such resource visible to the caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[get("/resources/{id}/bookings")]
async fn resource_bookings(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    q: web::Query<BookingListQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = ResourceId(*id);
    if user.role == Role::Client {
        return Err(ApiError::not_found("resource"));
    }
    require_owner(&state, &user, id).await?;
    let filter = BookingFilter { resource_id: Some(id), ..BookingFilter::default() };
    Ok(HttpResponse::Ok().json(booking_page(&state, filter, &q).await?))
}

/// Requester for commands an owner or admin issues on a resource they may manage.
pub fn staff_requester(user: &AuthUser) -> Requester {
    user.requester()
}
