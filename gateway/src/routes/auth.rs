//! Register, log in, refresh (rotating), log out, who am I.

use crate::accounts::{AccountError, RefreshUse, Role, User};
use crate::app::AppError;
use crate::app::accounts::create_account;
use crate::auth::{self, AuthUser, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
use crate::error::responses::*;
use crate::error::{ApiError, Problem};
use crate::extract::Json;
use crate::state::AppState;
use actix_web::{HttpResponse, get, post, web};
use engine::domain::error::Problems;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Token answers must not be cached (RFC 6749 5.1); it also keeps them out of idempotency records.
const NO_STORE: (actix_web::http::header::HeaderName, &str) = (actix_web::http::header::CACHE_CONTROL, "no-store");

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(register).service(login).service(refresh).service(logout).service(me);
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "password": "a long password", "name": "Ada Lovelace", "role": "client"}))]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    #[schema(max_length = 254, pattern = r"^[!-?A-~]+@[!-\-/-?A-~][!-~]*\.[!-~]*$")]
    pub email: String,
    #[schema(min_length = 10, max_length = 256)]
    pub password: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// `client` (default) or `owner`; admins are made by admins.
    #[serde(default)]
    pub role: Option<Role>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "password": "a long password"}))]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    #[schema(max_length = 254)]
    pub email: String,
    #[schema(max_length = 256)]
    pub password: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"refresh_token": "r1.3q2+7w..."}))]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    pub refresh_token: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Tokens {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
    pub user: User,
}

fn check_email(p: &mut Problems, email: &str) {
    let e = email.trim();
    let ok = e.len() <= 254
        && e.split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.starts_with('.'))
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    p.check(ok, "email", "must be an email address");
}

fn check_password(p: &mut Problems, password: &str) {
    let n = password.chars().count();
    p.check(
        (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n),
        "password",
        format!("must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"),
    );
}

fn account_error(e: AccountError) -> ApiError {
    AppError::from(e).into()
}

/// Issues an access token and a refresh token (a new family unless one is given).
pub async fn issue(state: &AppState, user: User, family: Option<Uuid>) -> Result<Tokens, ApiError> {
    let now = Timestamp::now();
    let access_token = auth::access_token(&state.keys, user.id, user.role, now)?;
    let (refresh_token, rec) = auth::refresh_token(&state.keys, user.id, family.unwrap_or_else(Uuid::now_v7), now);
    state.accounts.store_refresh(rec).await.map_err(account_error)?;
    Ok(Tokens { access_token, token_type: "Bearer", expires_in: state.keys.access_ttl_secs, refresh_token, user })
}

#[utoipa::path(
    tag = "auth",
    summary = "Create an account",
    description = "Registers a client or owner account and signs it in.",
    request_body(content = RegisterBody, example = json!({"email": "ada@example.com", "password": "a long password", "name": "Ada Lovelace", "role": "client"})),
    responses(
        (status = 201, description = "Account created and signed in", body = Tokens),
        (status = 400, response = BadRequest),
        (status = 409, description = "An account with this email exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)
    )
)]
#[post("/auth/register")]
async fn register(state: web::Data<AppState>, body: Json<RegisterBody>) -> Result<HttpResponse, ApiError> {
    let b = body.0;
    let mut p = Problems::default();
    check_email(&mut p, &b.email);
    check_password(&mut p, &b.password);
    if let Err(m) = engine::domain::spec::check_name(&b.name) {
        p.push("name", m);
    }
    let role = b.role.unwrap_or(Role::Client);
    p.check(role != Role::Admin, "role", "must be client or owner");
    p.into_result(()).map_err(|e| ApiError::validation(e.errors))?;
    let user = create_account(&state, &b.email, &b.password, &b.name, role).await?;
    Ok(HttpResponse::Created().insert_header(NO_STORE).json(issue(&state, user, None).await?))
}

#[utoipa::path(
    tag = "auth",
    summary = "Sign in",
    description = "Exchanges an email and password for an access token and a refresh token.",
    request_body(content = LoginBody, example = json!({"email": "ada@example.com", "password": "a long password"})),
    responses(
        (status = 200, description = "Tokens and the account", body = Tokens),
        (status = 400, response = BadRequest),
        (status = 401, description = "Wrong email or password", body = Problem, content_type = "application/problem+json"),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)
    )
)]
#[post("/auth/login")]
async fn login(state: web::Data<AppState>, body: Json<LoginBody>) -> Result<HttpResponse, ApiError> {
    let b = body.0;
    if b.password.chars().count() > MAX_PASSWORD_CHARS || b.email.len() > 254 {
        return Err(ApiError::unauthorized("wrong email or password"));
    }
    let found = state.accounts.user_by_email(&b.email).await.map_err(account_error)?;
    // Verify against a real hash even when the email is unknown, so timing tells nothing.
    let hash = found.as_ref().map(|u| u.password_hash.clone());
    let pw = b.password;
    let ok = web::block(move || match hash {
        Some(h) => auth::verify_password(&pw, &h),
        None => {
            auth::verify_password(&pw, dummy_hash());
            false
        }
    })
    .await
    .map_err(ApiError::internal)?;
    match found {
        Some(u) if ok => Ok(HttpResponse::Ok().insert_header(NO_STORE).json(issue(&state, u.user, None).await?)),
        _ => Err(ApiError::unauthorized("wrong email or password")),
    }
}

/// A real argon2id hash (of a password nobody has), made once: checking an unknown email
/// against it costs what checking a known one does.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| auth::hash_password(&uuid::Uuid::now_v7().to_string()).unwrap_or_default())
}

#[utoipa::path(
    tag = "auth",
    summary = "Refresh the tokens",
    description = "Rotates a refresh token: the old one stops working; reusing it signs out the whole login.",
    request_body(content = RefreshBody, example = json!({"refresh_token": "r1.3q2+7w..."})),
    responses(
        (status = 200, description = "Tokens and the account", body = Tokens),
        (status = 400, response = BadRequest),
        (status = 401, description = "Invalid, expired or reused refresh token", body = Problem, content_type = "application/problem+json"),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)
    )
)]
#[post("/auth/refresh")]
async fn refresh(state: web::Data<AppState>, body: Json<RefreshBody>) -> Result<HttpResponse, ApiError> {
    let token = body.0.refresh_token;
    if token.len() > 256 {
        return Err(ApiError::unauthorized("invalid refresh token"));
    }
    match state.accounts.use_refresh(&auth::hash_token(&token), Timestamp::now()).await.map_err(account_error)? {
        RefreshUse::Rotated { user_id, family_id } => {
            let user = state
                .accounts
                .user_by_id(user_id)
                .await
                .map_err(account_error)?
                .ok_or_else(|| ApiError::unauthorized("the account no longer exists"))?;
            Ok(HttpResponse::Ok().insert_header(NO_STORE).json(issue(&state, user, Some(family_id)).await?))
        }
        RefreshUse::Reused => Err(ApiError::new(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "refresh_token_reused",
            "this refresh token was already used; every session of its login is now signed out",
        )),
        RefreshUse::Invalid => Err(ApiError::unauthorized("invalid or expired refresh token")),
    }
}

#[utoipa::path(
    tag = "auth",
    summary = "Sign out",
    description = "Revokes the refresh token and every token of its login.",
    request_body(content = RefreshBody, example = json!({"refresh_token": "r1.3q2+7w..."})),
    responses(
        (status = 204, description = "Signed out (also when the token was unknown)"),
        (status = 400, response = BadRequest),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable)
    )
)]
#[post("/auth/logout")]
async fn logout(state: web::Data<AppState>, body: Json<RefreshBody>) -> Result<HttpResponse, ApiError> {
    let token = body.0.refresh_token;
    if token.len() <= 256 {
        state.accounts.revoke_family_of(&auth::hash_token(&token), Timestamp::now()).await.map_err(account_error)?;
    }
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    tag = "auth",
    summary = "Who am I",
    description = "The account of the access token.",
    responses(
        (status = 200, description = "The caller's account", body = User),
        (status = 401, response = Unauthorized),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[get("/auth/me")]
async fn me(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let u = state
        .accounts
        .user_by_id(user.id)
        .await
        .map_err(account_error)?
        .ok_or_else(|| ApiError::unauthorized("the account no longer exists"))?;
    Ok(HttpResponse::Ok().json(u))
}
