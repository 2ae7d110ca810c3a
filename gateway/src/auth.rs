//! Authentication: argon2id password hashes, short-lived JWT access tokens (HS256), opaque
//! refresh tokens stored hashed and rotated on every use. `AuthUser` is the extractor every
//! protected route takes; roles are checked by the routes (see `require`).

use crate::accounts::{RefreshRecord, Role};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::HttpMessage;
use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use engine::domain::booking::Requester;
use engine::domain::ids::UserId;
use futures::future::{Ready, ready};
use jiff::{SignedDuration, Timestamp};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub const MIN_PASSWORD_CHARS: usize = 10;
pub const MAX_PASSWORD_CHARS: usize = 256;

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
}

impl JwtKeys {
    pub fn new(secret: &[u8], access_ttl_secs: u64, refresh_ttl_secs: u64) -> Self {
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            access_ttl_secs,
            refresh_ttl_secs,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    role: Role,
    iat: i64,
    exp: i64,
}

/// A fresh access token for `user`.
pub fn access_token(keys: &JwtKeys, user: UserId, role: Role, now: Timestamp) -> Result<String, ApiError> {
    let iat = now.as_second();
    let exp = iat + i64::try_from(keys.access_ttl_secs).unwrap_or(900);
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &Claims { sub: user.0, role, iat, exp }, &keys.encoding)
        .map_err(ApiError::internal)
}

/// A new opaque refresh token and the record that stores its hash.
pub fn refresh_token(keys: &JwtKeys, user: UserId, family_id: Uuid, now: Timestamp) -> (String, RefreshRecord) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let ttl = SignedDuration::from_secs(i64::try_from(keys.refresh_ttl_secs).unwrap_or(2_592_000));
    let rec = RefreshRecord {
        token_hash: hash_token(&token),
        family_id,
        user_id: user,
        created_at: now,
        expires_at: now + ttl,
    };
    (token, rec)
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// argon2id with the crate's default (OWASP-recommended) parameters. CPU-heavy: call it on
/// the blocking pool, never on an async worker.
pub fn hash_password(password: &str) -> Result<String, crate::app::AppError> {
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(crate::app::AppError::internal)
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// The authenticated caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthUser {
    pub id: UserId,
    pub role: Role,
}

impl AuthUser {
    pub fn requester(&self) -> Requester {
        match self.role {
            Role::Client => Requester::Client(self.id),
            Role::Owner => Requester::Owner(self.id),
            Role::Admin => Requester::Admin(self.id),
        }
    }
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
    /// Refuses (forbidden) unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role], what: &str) -> Result<(), crate::app::AppError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(crate::app::AppError::forbidden(format!("a {} cannot {what}", self.role.as_str())))
        }
    }
}

fn authenticate(req: &HttpRequest) -> Result<AuthUser, ApiError> {
    // A booking's token is asked for up to three times (the rate limiter's key, the
    // idempotency scope, the handler's extractor): verify its signature once per request.
    if let Some(user) = req.extensions().get::<AuthUser>() {
        return Ok(*user);
    }
    let user = verify_token(req)?;
    req.extensions_mut().insert(user);
    Ok(user)
}

fn verify_token(req: &HttpRequest) -> Result<AuthUser, ApiError> {
    let state = req.app_data::<web::Data<AppState>>().ok_or_else(|| ApiError::internal("app state missing"))?;
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("send an access token: Authorization: Bearer <token>"))?;
    verify_access_token(state, bearer_token(header)?).map(|(user, _)| user)
}

/// The token of an `Authorization: Bearer <token>` header (at most 4,096 characters).
pub(crate) fn bearer_token(header: &actix_web::http::header::HeaderValue) -> Result<&str, ApiError> {
    header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 4096)
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be 'Bearer <token>'"))
}

/// The caller of a valid access token and when the token expires (Unix seconds).
fn verify_access_token(state: &AppState, token: &str) -> Result<(AuthUser, i64), ApiError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 5;
    let data = jsonwebtoken::decode::<Claims>(token, &state.keys.decoding, &validation)
        .map_err(|e| ApiError::unauthorized(format!("invalid access token: {e}")))?;
    Ok((AuthUser { id: UserId(data.claims.sub), role: data.claims.role }, data.claims.exp))
}

/// The WebSocket subprotocol the server answers when a client offers it (browsers that offer
/// subprotocols need one answered), and the prefix of the subprotocol that carries a token.
pub const WS_PROTOCOL: &str = "reservations.v1";
pub const WS_TOKEN_PREFIX: &str = "bearer.";

/// The caller of a WebSocket upgrade and when its token expires (Unix seconds). Browsers cannot
/// set headers on a WebSocket, so besides `Authorization: Bearer <token>` the token may come as
/// one of the offered subprotocols, `Sec-WebSocket-Protocol: reservations.v1, bearer.<token>`
/// (never in the URL: query strings end up in access logs).
pub(crate) fn authenticate_ws(req: &HttpRequest) -> Result<(AuthUser, i64), ApiError> {
    let state = req.app_data::<web::Data<AppState>>().ok_or_else(|| ApiError::internal("app state missing"))?;
    if let Some(header) = req.headers().get(AUTHORIZATION) {
        return verify_access_token(state, bearer_token(header)?);
    }
    let offered = req
        .headers()
        .get_all(actix_web::http::header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .find_map(|p| p.strip_prefix(WS_TOKEN_PREFIX));
    match offered {
        Some(t) if !t.is_empty() && t.len() <= 4096 => verify_access_token(state, t),
        _ => Err(ApiError::unauthorized(
            "send an access token: Authorization: Bearer <token>, or the WebSocket subprotocol bearer.<token>",
        )),
    }
}

/// The caller of a valid Bearer token, if any (middleware: idempotency scope, rate-limit key).
pub(crate) fn bearer_user(req: &HttpRequest) -> Option<AuthUser> {
    req.headers().get(AUTHORIZATION)?;
    authenticate(req).ok()
}

/// An owner or an admin: a client gets 403 before the body is even read.
pub struct Staff(pub AuthUser);

/// A client or an admin (acting for clients): an owner gets 403 before the body is read.
pub struct Customer(pub AuthUser);

fn with_role(req: &HttpRequest, roles: &[Role], what: &str) -> Result<AuthUser, ApiError> {
    let user = authenticate(req)?;
    user.require(roles, what)?;
    Ok(user)
}

impl FromRequest for Staff {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(with_role(req, &crate::app::access::STAFF_ROLES, "manage resources").map(Staff))
    }
}

impl FromRequest for Customer {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            authenticate(req)
                .and_then(|user| {
                    crate::app::access::require_customer(&user, "book or change bookings")
                        .map_err(ApiError::from)
                        .map(|()| user)
                })
                .map(Customer),
        )
    }
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong horse battery", &h));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn refresh_tokens_are_random_and_stored_hashed() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef", 900, 3600);
        let now = Timestamp::now();
        let (a, ra) = refresh_token(&keys, UserId::new_v7(), Uuid::now_v7(), now);
        let (b, _) = refresh_token(&keys, UserId::new_v7(), Uuid::now_v7(), now);
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_ne!(ra.token_hash, a, "the token itself must not be stored");
        assert_eq!(ra.token_hash, hash_token(&a));
    }
}
