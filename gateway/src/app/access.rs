//! Who may see and act on what. Existence stays private: what a caller may not see is "not
//! found", never "forbidden". The roles' rule for booking lives here once for both faces.

use crate::accounts::Role;
use crate::app::AppError;
use crate::auth::AuthUser;
use crate::state::AppState;
use engine::domain::booking::Booking;
use engine::domain::ids::{BookingId, ResourceId, UserId};
use engine::domain::spec::ResourceKind;
use engine::store::ResourceFilter;
use uuid::Uuid;

/// Who manages resources: their owners and admins.
pub const STAFF_ROLES: [Role; 2] = [Role::Owner, Role::Admin];

/// Refuses (forbidden) a caller who may not book or change bookings: the domain's rule
/// (`Requester::may_book`, which the resource also applies to every customer command), asked
/// here first so HTTP refuses before reading a body and the bot before asking anything.
/// `what` names the act in the refusal ("an owner cannot join a waitlist").
pub fn require_customer(user: &AuthUser, what: &str) -> Result<(), AppError> {
    if user.requester().may_book() {
        Ok(())
    } else {
        Err(AppError::forbidden(format!("a {} cannot {what}", user.role.as_str())))
    }
}

/// The owner of a resource (not found if there is no such resource).
pub async fn owner_of(state: &AppState, id: ResourceId) -> Result<UserId, AppError> {
    Ok(state.engine.read(id, |s, _| s.owner_id()).await?)
}

/// Owners see and change only their own resources; to anyone else's the answer is not found,
/// as if it did not exist. Admins act on all that exist (a resource that does not is not found
/// for them too, not an empty answer).
pub async fn require_owner(state: &AppState, user: &AuthUser, id: ResourceId) -> Result<(), AppError> {
    if user.role == Role::Client {
        return Err(AppError::not_found("resource"));
    }
    let owner = owner_of(state, id).await?;
    if user.is_admin() || owner == user.id {
        return Ok(());
    }
    Err(AppError::not_found("resource"))
}

/// The resource of a booking the caller may see, and the booking; else not found.
pub async fn visible_booking(
    state: &AppState,
    user: &AuthUser,
    id: BookingId,
) -> Result<(ResourceId, Booking), AppError> {
    let store = state.engine.store();
    let not_found = || AppError::not_found("booking");
    let resource =
        store.locate_booking(id).await.map_err(|e| AppError::unavailable(e.to_string()))?.ok_or_else(not_found)?;
    let booking = store
        .load_booking(resource, id)
        .await
        .map_err(|e| AppError::unavailable(e.to_string()))?
        .ok_or_else(not_found)?;
    let allowed = match user.role {
        Role::Admin => true,
        Role::Client => booking.user_id == user.id,
        Role::Owner => owner_of(state, resource).await? == user.id,
    };
    if allowed { Ok((resource, booking)) } else { Err(not_found()) }
}

/// A resource as a caller names it: its id, or its owner's reference (`0`, `berlin-1`).
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
/// exactly one (admins). Clients own nothing. Not found is not found, as for an id.
pub async fn resolve(
    state: &AppState,
    user: &AuthUser,
    r: &ResourceRef,
    kind: Option<ResourceKind>,
) -> Result<ResourceId, AppError> {
    let reference = match r {
        ResourceRef::Id(id) => return Ok(*id),
        ResourceRef::Reference(s) => s,
    };
    if user.role == Role::Client {
        return Err(AppError::not_found("resource"));
    }
    let filter = ResourceFilter {
        kind,
        owner_id: (!user.is_admin()).then_some(user.id),
        reference: Some(reference.clone()),
        limit: 2,
        ..ResourceFilter::default()
    };
    let found = state.engine.store().list_resources(filter).await.map_err(|e| AppError::unavailable(e.to_string()))?;
    match found.as_slice() {
        [one] => Ok(one.id),
        [] => Err(AppError::not_found("resource")),
        _ => Err(AppError::conflict(
            "reference_ambiguous",
            format!("resources of several owners are called {reference:?}; name the resource by its id"),
        )),
    }
}
