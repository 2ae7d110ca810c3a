//! `Idempotency-Key` for every request that creates or changes state (POST, PUT, PATCH,
//! DELETE): the same key with the same request answers the first response again (with
//! `Idempotent-Replayed: true`); with another request, 422. Records are scoped by caller (the
//! user of a valid access token, or the hash of an integration key) and live 24 h; a request
//! without a verified caller runs as if it had no key. Answers that carry a secret
//! (`Cache-Control: no-store`) are never stored: a retry gets 409 `idempotent_answer_withheld`.
//! Booking and waitlist commands also hand the key to the engine, which derives their ids from it.
//!
//! A record is reserved atomically before the handler runs, so a concurrent duplicate gets 409
//! instead of a second effect. Responses of 500 and above are not stored (the reservation is
//! released and a retry runs again), nor are bodies over [`MAX_STORED_BODY`].

pub mod memory;
pub mod postgres;

use crate::auth;
use crate::error::ApiError;
use crate::extract::{BodyLimit, DEFAULT_BODY_LIMIT};
use crate::state::AppState;
use actix_web::HttpMessage;
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes, BytesMut};
use engine::domain::command::MAX_KEY_CHARS;
use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How long a key is remembered.
pub const TTL: SignedDuration = SignedDuration::from_hours(24);
/// A reservation older than this was abandoned (the process died mid-request): a retry may take
/// it over. Well above the longest request (store statements and commits time out after 5 s).
pub const STALE_RESERVATION: SignedDuration = SignedDuration::from_secs(60);
/// Larger response bodies are not stored (the reservation is released instead).
pub const MAX_STORED_BODY: usize = 1024 * 1024;
/// How often expired records are deleted.
const CLEANUP_EVERY: Duration = Duration::from_secs(600);

pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
const KEY_HEADER: &str = "idempotency-key";
/// The state-changing routes that take no token: the caller proves who they are in the body
/// (a password, a refresh token) or by a signature (the payment webhook). They take no key
/// either, even from a caller who also sends an access token: a replayed refresh token must
/// reach the reuse detection, and their answers carry tokens. `openapi::finish` offers the
/// header exactly where this list does not apply (a test holds the two together).
pub const KEYLESS_ROUTES: [&str; 5] = [
    "/api/v1/auth/register",
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/api/v1/auth/logout",
    "/api/v1/payments/webhook",
];
/// The one route an integration key is accepted on (`routes::ingest::FeedSender`).
const INGEST_ROUTE: &str = "/api/v1/ingest";
/// Integration keys look like `ik_...` (see `integration_keys.rs`).
const INTEGRATION_KEY_PREFIX: &str = "ik_";

pub type IdemFuture<T> = Pin<Box<dyn Future<Output = Result<T, IdempotencyError>> + Send + 'static>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("idempotency store unavailable: {0}")]
pub struct IdempotencyError(pub String);

/// A response as stored for replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub location: Option<String>,
    pub body: Vec<u8>,
}

/// Who holds a reservation: only its holder may complete or release it.
#[derive(Clone, Debug)]
pub struct Reservation {
    pub scope: String,
    pub key: String,
    pub lock_id: Uuid,
}

/// What `begin` found for (scope, key).
#[derive(Debug)]
pub enum Begin {
    /// Nothing live: the caller now holds the key and runs the request.
    Reserved(Reservation),
    /// The same request already ran: answer this again.
    Replay(StoredResponse),
    /// The same request is running right now.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

pub trait IdempotencyStore: Send + Sync + 'static {
    /// Atomically reserves (scope, key) for the request `fingerprint` unless a live record
    /// (younger than [`TTL`]; in progress: younger than [`STALE_RESERVATION`]) exists.
    fn begin(&self, scope: &str, key: &str, fingerprint: &str, now: Timestamp) -> IdemFuture<Begin>;
    /// Stores the response of a reservation (no-op if the reservation is no longer held).
    fn complete(&self, reservation: &Reservation, response: StoredResponse) -> IdemFuture<()>;
    /// Forgets a reservation so that a retry runs the request again.
    fn release(&self, reservation: &Reservation) -> IdemFuture<()>;
    /// Deletes records older than [`TTL`]; returns how many.
    fn purge_expired(&self, now: Timestamp) -> IdemFuture<u64>;
}

fn changes_state(m: &Method) -> bool {
    matches!(*m, Method::POST | Method::PUT | Method::PATCH | Method::DELETE)
}

/// Whose key space a request's Idempotency-Key lives in, decided before anything else of the
/// key: the signed-in user's; for an integration key (checked later by the one route that takes
/// it) a hash of it, so two senders never share replays. `None` for a request that proves no
/// one: no Authorization header, or an access token that does not verify. Such a request runs
/// as if it carried no key, so a route that needs a token answers 401 (not a replay or a 422 of
/// someone else's key), and the anonymous routes (register, login, refresh, logout, the payment
/// webhook) are never answered from a shared key space.
fn scope_of(req: &actix_web::HttpRequest) -> Option<String> {
    if KEYLESS_ROUTES.contains(&req.path()) {
        return None;
    }
    if let Some(user) = auth::bearer_user(req) {
        return Some(user.id.0.to_string());
    }
    // An integration key is good on the feed only: anywhere else it proves no one.
    if req.path() != INGEST_ROUTE {
        return None;
    }
    let header = req.headers().get(actix_web::http::header::AUTHORIZATION)?;
    let token = auth::bearer_token(header).ok()?;
    // 61 characters: the stored scope is at most 64 (V4).
    token.starts_with(INTEGRATION_KEY_PREFIX).then(|| format!("cred:{}", &auth::hash_token(token)[..56]))
}

/// An answer that says `Cache-Control: no-store` carries a secret (tokens, an integration key,
/// a webhook secret, a calendar feed URL). It is never kept: the record stores this problem
/// instead, so a retry learns that the first request was done, and where its result lives,
/// without the secret being at rest in `http_idempotency`.
fn withheld(first_status: StatusCode, location: Option<String>) -> StoredResponse {
    let detail = format!(
        "a request with this Idempotency-Key already succeeded ({}); its answer carried a secret, which is \
         never stored, so it cannot be shown again",
        first_status.as_u16()
    );
    let problem = serde_json::json!({
        "type": "/problems/idempotent_answer_withheld",
        "title": "Conflict",
        "status": 409,
        "detail": detail,
        "code": "idempotent_answer_withheld",
    });
    StoredResponse {
        status: StatusCode::CONFLICT.as_u16(),
        content_type: Some("application/problem+json".to_owned()),
        location,
        body: problem.to_string().into_bytes(),
    }
}

fn carries_secret(headers: &header::HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("no-store"))
}

/// The `Idempotency-Key` header, if sent: 1..=200 visible ASCII characters, else 400.
pub fn key_of(req: &ServiceRequest) -> Result<Option<String>, ApiError> {
    parse_key(req.headers())
}

/// The one rule for Idempotency-Key values, shared by the middleware and the routes that
/// pass the key on to the engine.
pub fn parse_key(headers: &actix_web::http::header::HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(KEY_HEADER) else { return Ok(None) };
    let b = v.as_bytes();
    if b.is_empty() || b.len() > MAX_KEY_CHARS || !b.iter().all(u8::is_ascii_graphic) {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            format!("Idempotency-Key must be 1 to {MAX_KEY_CHARS} visible ASCII characters"),
        ));
    }
    Ok(Some(String::from_utf8_lossy(b).into_owned()))
}

/// SHA-256 of method, path, query and body (length-prefixed, so parts cannot run together).
pub fn fingerprint(method: &str, path: &str, query: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [method.as_bytes(), path.as_bytes(), query.as_bytes(), body] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("the body is larger than {limit} bytes"))
}

/// Reads the whole request body, bounded by the configured `BodyLimit`.
async fn read_body(req: &mut ServiceRequest) -> Result<Bytes, ApiError> {
    let limit = req.app_data::<BodyLimit>().map(|l| l.0).unwrap_or(DEFAULT_BODY_LIMIT);
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let mut payload = req.take_payload();
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request("bad_body", format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn replay(r: StoredResponse) -> Result<actix_web::HttpResponse, ApiError> {
    let status = StatusCode::from_u16(r.status).map_err(ApiError::internal)?;
    let mut res = actix_web::HttpResponse::build(status);
    res.insert_header((REPLAYED, HeaderValue::from_static("true")));
    if let Some(ct) = r.content_type.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
        res.insert_header((header::CONTENT_TYPE, ct));
    }
    if let Some(loc) = r.location.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
        res.insert_header((header::LOCATION, loc));
    }
    Ok(res.body(r.body))
}

/// Releases the reservation unless disarmed, also when the request future is dropped (the
/// client went away mid-request).
struct ReleaseOnDrop {
    store: Arc<dyn IdempotencyStore>,
    reservation: Option<Reservation>,
}

impl ReleaseOnDrop {
    fn disarm(&mut self) -> Option<Reservation> {
        self.reservation.take()
    }

    /// Releases before the answer leaves, so that an immediate retry runs (not 409).
    async fn release_now(&mut self) {
        if let Some(r) = self.disarm()
            && let Err(e) = self.store.release(&r).await
        {
            tracing::warn!(error = %e, "could not release an idempotency reservation");
        }
    }
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        let Some(r) = self.reservation.take() else { return };
        let fut = self.store.release(&r);
        // No runtime (shutdown): the reservation goes stale and is taken over later.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = fut.await {
                    tracing::warn!(error = %e, "could not release an idempotency reservation");
                }
            });
        }
    }
}

fn boxed<B: MessageBody + 'static>(res: ServiceResponse<B>) -> ServiceResponse<BoxBody> {
    res.map_into_boxed_body()
}

/// The middleware (wrap with `middleware::from_fn`, inside rate limiting).
pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if !changes_state(req.method()) {
        return next.call(req).await.map(boxed);
    }
    let key = match key_of(&req) {
        Ok(Some(k)) => k,
        Ok(None) => return next.call(req).await.map(boxed),
        Err(e) => return Ok(req.error_response(e)),
    };
    // Authentication first: a caller who proves no one gets no key space at all.
    let Some(scope) = scope_of(req.request()) else {
        return next.call(req).await.map(boxed);
    };
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(req.error_response(ApiError::internal("app state missing")));
    };
    let body = match read_body(&mut req).await {
        Ok(b) => b,
        Err(e) => return Ok(req.error_response(e)),
    };
    let fp = fingerprint(req.method().as_str(), req.path(), req.query_string(), &body);
    req.set_payload(Payload::from(body));

    let store = state.idempotency.clone();
    let reservation = match store.begin(&scope, &key, &fp, Timestamp::now()).await {
        Ok(Begin::Reserved(r)) => r,
        Ok(Begin::Replay(stored)) => {
            return Ok(match replay(stored) {
                Ok(res) => req.into_response(res),
                Err(e) => req.error_response(e),
            });
        }
        Ok(Begin::InProgress) => {
            let e = ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_key_in_use",
                    "a request with this Idempotency-Key is still running; retry shortly",
                )
            };
            return Ok(req.error_response(e));
        }
        Ok(Begin::Mismatch) => {
            let e = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request",
            );
            return Ok(req.error_response(e));
        }
        Err(e) => {
            tracing::warn!(error = %e, "idempotency store unavailable");
            return Ok(req.error_response(ApiError::unavailable("the idempotency store is unavailable; retry shortly")));
        }
    };
    let mut guard = ReleaseOnDrop { store: store.clone(), reservation: Some(reservation) };

    let res = match next.call(req).await {
        Ok(res) => res,
        Err(e) => {
            guard.release_now().await;
            return Err(e);
        }
    };
    // Not kept either: a 401, whose request was not done for anyone (a revoked or forged
    // integration key on the feed), so a later request with the key is judged afresh.
    let storable = !res.status().is_server_error()
        && res.status() != StatusCode::UNAUTHORIZED
        && match res.response().body().size() {
            BodySize::None => true,
            BodySize::Sized(n) => usize::try_from(n).is_ok_and(|n| n <= MAX_STORED_BODY),
            BodySize::Stream => false,
        };
    if !storable {
        guard.release_now().await;
        return Ok(boxed(res));
    }
    let (http_req, http_res) = res.into_parts();
    let (head, body) = http_res.into_parts();
    let bytes = match actix_web::body::to_bytes_limited(body, MAX_STORED_BODY).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            guard.release_now().await;
            let e: Box<dyn std::error::Error> = e.into();
            return Ok(ServiceResponse::from_err(ApiError::internal(e), http_req));
        }
        Err(_) => {
            guard.release_now().await;
            return Ok(ServiceResponse::from_err(ApiError::internal("response body over its size"), http_req));
        }
    };
    let text = |name| head.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok()).map(str::to_owned);
    let stored = if carries_secret(head.headers()) {
        withheld(head.status(), text(header::LOCATION))
    } else {
        StoredResponse {
            status: head.status().as_u16(),
            content_type: text(header::CONTENT_TYPE),
            location: text(header::LOCATION),
            body: bytes.to_vec(),
        }
    };
    if let Some(r) = guard.disarm()
        && let Err(e) = store.complete(&r, stored).await
    {
        // The response still goes out; the reservation goes stale and a later retry runs again.
        tracing::warn!(error = %e, "could not store an idempotent response");
    }
    Ok(ServiceResponse::new(http_req, head.set_body(BoxBody::new(bytes))))
}

/// Deletes expired records now and then, for as long as the server runs.
pub fn spawn_cleanup(store: Arc<dyn IdempotencyStore>) {
    actix_web::rt::spawn(async move {
        let mut every = tokio::time::interval(CLEANUP_EVERY);
        loop {
            every.tick().await;
            match store.purge_expired(Timestamp::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(deleted = n, "expired idempotency records deleted"),
                Err(e) => tracing::warn!(error = %e, "idempotency cleanup failed"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_every_part_apart() {
        let a = fingerprint("POST", "/a", "", b"{}");
        assert_eq!(a, fingerprint("POST", "/a", "", b"{}"));
        assert_ne!(a, fingerprint("PUT", "/a", "", b"{}"));
        assert_ne!(a, fingerprint("POST", "/a", "x=1", b"{}"));
        assert_ne!(a, fingerprint("POST", "/a", "", b"{ }"));
        assert_ne!(fingerprint("POST", "/ab", "", b""), fingerprint("POST", "/a", "b", b""));
    }
}
