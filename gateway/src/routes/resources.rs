//! Hotels, events and providers: owners create and change theirs; everyone searches.

use crate::accounts::Role;
use crate::app::access::{owner_of, require_owner};
use crate::app::listings::{BookingListQuery, booking_page};
use crate::app::search::{
    EventResult, HotelResult, HotelSearch, PageQuery, SlotView, check_city, events_page, hotel_search, provider_slots,
};
use crate::auth::{AuthUser, Staff};
use crate::error::responses::*;
use crate::error::{ApiError, Problem};
use crate::extract::Json;
use crate::pagination::{self, Page, page_cut};
use crate::state::AppState;
use actix_web::{HttpResponse, get, post, put, web};
use engine::domain::booking::{Booking, Requester};
use engine::domain::command::Command;
use engine::domain::event::EventAvailability;
use engine::domain::ids::{ResourceId, UserId};
use engine::domain::spec::{KindSpec, ResourceKind, ResourceSpec};
use engine::domain::state::{ResourceState, ResourceStats};
use engine::store::{BookingFilter, ResourceFilter};
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

// The defaults are the domain's (`engine::domain::spec`); the OpenAPI `default` below says the
// same numbers, and gateway/tests/api/openapi.rs ties them to the constants.
fn default_hold_ttl() -> u32 {
    engine::domain::spec::DEFAULT_HOLD_TTL_SECS
}
fn default_offer_ttl() -> u32 {
    engine::domain::spec::DEFAULT_OFFER_TTL_SECS
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
