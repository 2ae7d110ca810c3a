//! Integration keys for the channel feed: owners and admins make, list and revoke them; a
//! channel manager sends `POST /api/v1/ingest` with `Authorization: Bearer ik_...`. The key
//! itself is shown once, in the answer that made it. PostgreSQL only (501 otherwise).

use crate::auth::Staff;
use crate::error::responses::*;
use crate::error::{ApiError, Problem};
use crate::extract::Json;
use crate::integration_keys::{self, Key, MAX_HOTELS_PER_KEY, MAX_KEYS_PER_USER, MAX_NAME_CHARS};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, delete, get, post, web};
use deadpool_postgres::Pool;
use engine::EngineError;
use engine::domain::error::FieldError;
use engine::domain::ids::ResourceId;
use engine::domain::state::Kind;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(create).service(list).service(revoke);
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyInput {
    /// What the key is for, e.g. the channel manager's name (1 to 100 characters).
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// Limit the key to these hotels of the caller's (1 to 100); every hotel of the caller's,
    /// now and later, if absent.
    #[serde(default)]
    #[schema(min_items = 1, max_items = 100)]
    pub hotel_ids: Option<Vec<Uuid>>,
}

/// An integration key. `key` is present only in the answer that made it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IntegrationKey {
    id: Uuid,
    name: String,
    /// The key's first characters, to tell keys apart.
    key_prefix: String,
    /// The hotels it may feed; absent: every hotel of its owner's.
    #[serde(skip_serializing_if = "Option::is_none")]
    hotel_ids: Option<Vec<Uuid>>,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    last_used_at: Option<Timestamp>,
    /// The secret, `ik_` and 64 hex digits: send it as `Authorization: Bearer <key>`. Shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

impl From<Key> for IntegrationKey {
    fn from(k: Key) -> Self {
        IntegrationKey {
            id: k.id,
            name: k.name,
            key_prefix: k.key_prefix,
            hotel_ids: k.hotel_ids,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            key: None,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyList {
    items: Vec<IntegrationKey>,
}

fn pool(state: &AppState) -> Result<&Pool, ApiError> {
    state.pg_pool("integration_keys_disabled", "integration keys are kept")
}

/// The name and hotels, checked: every hotel must exist, be a hotel, and be the caller's
/// (admins: anyone's). All bad fields are named at once.
async fn checked(state: &AppState, staff: &Staff, input: KeyInput) -> Result<(String, Option<Vec<Uuid>>), ApiError> {
    let Staff(user) = staff;
    let mut errors = Vec::new();
    let name = input.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        errors.push(FieldError {
            field: "name".into(),
            message: format!("1 to {MAX_NAME_CHARS} characters, no control characters"),
        });
    }
    let mut hotels = input.hotel_ids;
    if let Some(ids) = hotels.as_ref() {
        if ids.is_empty() || ids.len() > MAX_HOTELS_PER_KEY {
            return Err(ApiError::field(
                "hotel_ids",
                format!("1 to {MAX_HOTELS_PER_KEY} hotels, or leave it out for all of yours"),
            ));
        }
        for (i, id) in ids.iter().enumerate() {
            let read = state.engine.read(ResourceId(*id), |s, _| (s.owner_id(), matches!(s.kind(), Kind::Hotel(_))));
            let ok = match read.await {
                Ok((owner, is_hotel)) => is_hotel && (user.is_admin() || owner == user.id),
                Err(EngineError::ResourceNotFound) => false,
                Err(e) => return Err(ApiError::from(e)),
            };
            if !ok {
                errors.push(FieldError { field: format!("hotel_ids[{i}]"), message: "no such hotel of yours".into() });
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    if let Some(ids) = hotels.as_mut() {
        ids.sort();
        ids.dedup();
    }
    Ok((name, hotels))
}

#[utoipa::path(
    tag = "ingest",
    operation_id = "create_integration_key",
    summary = "Make an integration key for the channel feed",
    description = "A long-lived key with which a channel manager sends `POST /api/v1/ingest` \
                   (`Authorization: Bearer ik_...`) as the caller, on the feed only, optionally limited to some \
                   of the caller's hotels. The key is shown only in this answer; at most 20 active keys per user. \
                   It stops working when revoked, or when its owner is no longer an owner or admin.",
    request_body(content = KeyInput, example = json!({"name": "Channel manager", "hotel_ids": ["0190c3f2-0000-7000-8000-000000000000"]})),
    responses(
        (status = 201, description = "The key, with its secret", body = IntegrationKey),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, description = "The caller already has the most keys allowed (`too_many_keys`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = Unprocessable),
        (status = 501, description = "Running without PostgreSQL: no keys", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[post("/me/integration-keys")]
async fn create(state: web::Data<AppState>, staff: Staff, body: Json<KeyInput>) -> Result<HttpResponse, ApiError> {
    let pool = pool(&state)?;
    let (name, hotels) = checked(&state, &staff, body.0).await?;
    let Staff(user) = staff;
    let Some((key, secret)) = integration_keys::create(pool, user.id.0, &name, hotels, state.engine.now()).await?
    else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_many_keys",
            format!("at most {MAX_KEYS_PER_USER} active integration keys per user; revoke one first"),
        ));
    };
    let shown = IntegrationKey { key: Some(secret), ..IntegrationKey::from(key) };
    Ok(HttpResponse::Created().insert_header((header::CACHE_CONTROL, "no-store")).json(shown))
}

#[utoipa::path(
    tag = "ingest",
    operation_id = "list_integration_keys",
    summary = "The caller's active integration keys",
    description = "Newest first, without their secrets.",
    responses(
        (status = 200, description = "The keys", body = KeyList),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 501, description = "Running without PostgreSQL: no keys", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[get("/me/integration-keys")]
async fn list(state: web::Data<AppState>, staff: Staff) -> Result<HttpResponse, ApiError> {
    let Staff(user) = staff;
    let keys = integration_keys::list(pool(&state)?, user.id.0).await?;
    Ok(HttpResponse::Ok().json(KeyList { items: keys.into_iter().map(IntegrationKey::from).collect() }))
}

#[utoipa::path(
    tag = "ingest",
    operation_id = "revoke_integration_key",
    summary = "Revoke an integration key",
    description = "Requests with it answer 401 from now on.",
    params(("id" = Uuid, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such active key of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "Running without PostgreSQL: no keys", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[delete("/me/integration-keys/{id}")]
async fn revoke(state: web::Data<AppState>, staff: Staff, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let Staff(user) = staff;
    if !integration_keys::revoke(pool(&state)?, user.id.0, *id, state.engine.now()).await? {
        return Err(ApiError::not_found("integration key"));
    }
    Ok(HttpResponse::NoContent().finish())
}
