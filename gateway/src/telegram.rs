//! The Telegram bot inside the server: settings, the one-time link codes
//! (`POST /api/v1/me/telegram/link-code`), the chat ↔ account links, and [`GatewayBackend`],
//! the bot's [`Backend`] over this server's state. Every operation goes through the same
//! functions as the HTTP routes (hotel search, events, slots, hold, payment, cancel,
//! reschedule, waitlist, offers), with the same role checks as their extractors, so a booking
//! made in Telegram follows exactly the rules of one made over HTTP.
//!
//! The bot runs on any tokio runtime (in tests, teloxide_tests runs it on its own); the
//! engine's actors live in this server's actix system. [`GatewayBackend`] therefore runs each
//! operation on the server's arbiter and hands the result back over a oneshot channel.

use crate::accounts::{Role, User};
use crate::app::search::{HotelSearch, PageQuery};
use crate::app::{AppError, access, accounts, bookings, listings, payments, search, waitlist};
use crate::auth::AuthUser;
use crate::configuration::Settings;
use crate::error::ApiError;
use crate::error::responses::*;
use crate::pagination::page_cut;
use crate::state::AppState;
use actix::ArbiterHandle;
use actix_web::{HttpResponse, post, web};
use bots::telegram::backend::{
    Account, Backend, BackendError, BackendResult, BookingLine, EventHit, HotelHit, HotelQuery, Page, PaymentStarted,
    ProviderHit, SlotHit, TelegramUser,
};
use bots::telegram::{BotHandle, TelegramChannel};
use engine::domain::booking::{Booking, BookingRequest, Wish};
use engine::domain::command::{Command, Outcome};
use engine::domain::ids::{BookingId, ResourceId, UserId, WaitlistEntryId};
use engine::domain::money::Money;
use engine::domain::spec::{KindSpec, ResourceKind};
use engine::domain::waitlist::WaitlistEntry;
use engine::store::{BookingFilter, ResourceFilter};
use jiff::{SignedDuration, Timestamp};
use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// How long a link code works.
pub const LINK_CODE_TTL: SignedDuration = SignedDuration::from_mins(10);
/// Codes are 10 characters of an alphabet without look-alikes (0/O, 1/I): 50 bits.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
const CODE_LEN: usize = 10;
/// Accounts the bot creates get an address in this reserved domain (RFC 2606): they have no
/// mailbox, so `bots::delivery::store::recipients` gives them no email address.
pub const TELEGRAM_EMAIL_DOMAIN: &str = "telegram.invalid";
/// Items per page in the bot's lists (short enough for one message with buttons).
const BOT_PAGE: i64 = 5;
const BOT_BOOKINGS_PAGE: i64 = 8;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(link_code);
}

// ---------- settings ----------

fn token(s: &Settings) -> Option<&str> {
    s.telegram_bot_token.as_ref().map(|t| t.expose().trim()).filter(|t| !t.is_empty())
}
fn api_url(s: &Settings) -> Option<&str> {
    s.telegram_api_url.as_deref().map(str::trim).filter(|u| !u.is_empty())
}

/// The bot's own checks (called from `Settings::check`).
pub fn check(s: &Settings) -> Result<(), String> {
    if let Some(t) = token(s)
        && (!t.contains(':') || t.len() > 200 || t.chars().any(char::is_whitespace))
    {
        return Err("TELEGRAM_BOT_TOKEN does not look like a bot token (<id>:<secret> from @BotFather)".into());
    }
    if let Some(u) = api_url(s) {
        let _ = bots::telegram::bot("0:check", Some(u))?;
    }
    Ok(())
}

/// The bot's client when a token is set.
pub fn bot(s: &Settings) -> Result<Option<bots::telegram::Bot>, String> {
    match token(s) {
        Some(t) => bots::telegram::bot(t, api_url(s)).map(Some),
        None => Ok(None),
    }
}

/// The "telegram" notification channel when a token is set (`notify.rs`).
pub fn channel(s: &Settings) -> Result<Option<TelegramChannel>, String> {
    Ok(bot(s)?.map(TelegramChannel::new))
}

/// Starts the bot (long polling) when TELEGRAM_BOT_TOKEN is set; says at start what it does.
/// Must run inside the server's actix system.
pub fn start(state: &web::Data<AppState>) -> Result<Option<BotHandle>, String> {
    let Some(bot) = bot(&state.settings)? else {
        tracing::info!("TELEGRAM_BOT_TOKEN is not set: the Telegram bot is off");
        return Ok(None);
    };
    let storage = bots::telegram::storage::storage(state.pg.as_ref().map(|p| p.pool().clone()));
    let backend: Arc<dyn Backend> = Arc::new(GatewayBackend::new(state.clone()));
    tracing::info!(
        api_url = api_url(&state.settings).unwrap_or("https://api.telegram.org"),
        dialogues = if state.pg.is_some() { "postgres" } else { "memory" },
        "Telegram bot: on (long polling)"
    );
    Ok(Some(bots::telegram::spawn(bot, backend, storage)))
}

// ---------- links and codes ----------

fn hash_code(code: &str) -> String {
    hex::encode(Sha256::digest(code.trim().to_ascii_uppercase().as_bytes()))
}

fn new_code() -> String {
    let mut rng = rand::rng();
    (0..CODE_LEN).map(|_| char::from(CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())])).collect()
}

#[derive(Default)]
pub struct MemoryLinks {
    /// code hash → (user, expires at, used)
    codes: HashMap<String, (UserId, Timestamp, bool)>,
    /// chat → user
    chats: HashMap<i64, UserId>,
}

/// Chat ↔ account links and the link codes: PostgreSQL (`telegram_links`,
/// `telegram_link_codes`) or, with the in-memory store, memory.
pub enum Links {
    Pg(deadpool_postgres::Pool),
    Memory(Mutex<MemoryLinks>),
}

fn db(e: impl std::fmt::Display) -> AppError {
    AppError::unavailable(e.to_string())
}

fn poisoned<T>(_: T) -> AppError {
    AppError::internal("telegram links lock poisoned")
}

impl Links {
    pub fn new(pool: Option<deadpool_postgres::Pool>) -> Links {
        match pool {
            Some(p) => Links::Pg(p),
            None => Links::Memory(Mutex::new(MemoryLinks::default())),
        }
    }

    /// Stores a new code for `user`, replacing the user's unused ones.
    async fn issue(&self, user: UserId, hash: String, expires_at: Timestamp, now: Timestamp) -> Result<(), AppError> {
        match self {
            Links::Pg(pool) => {
                let c = pool.get().await.map_err(db)?;
                c.execute(
                    "DELETE FROM telegram_link_codes WHERE (user_id = $1 AND used_at IS NULL) OR expires_at < $2",
                    &[&user.0, &(now - SignedDuration::from_hours(24))],
                )
                .await
                .map_err(db)?;
                c.execute(
                    "INSERT INTO telegram_link_codes (code_hash, user_id, expires_at) VALUES ($1, $2, $3)",
                    &[&hash, &user.0, &expires_at],
                )
                .await
                .map_err(db)?;
            }
            Links::Memory(m) => {
                let mut m = m.lock().map_err(poisoned)?;
                // Drop the user's unused codes and every expired one.
                m.codes.retain(|_, (u, exp, used)| (*used || *u != user) && *exp >= now);
                m.codes.insert(hash, (user, expires_at, false));
            }
        }
        Ok(())
    }

    /// Uses a code (once, before it expires) and links the chat to its user.
    async fn redeem(&self, hash: &str, who: &TelegramUser, now: Timestamp) -> Result<Option<UserId>, AppError> {
        match self {
            Links::Pg(pool) => {
                let mut c = pool.get().await.map_err(db)?;
                let tx = c.transaction().await.map_err(db)?;
                let row = tx
                    .query_opt(
                        "UPDATE telegram_link_codes SET used_at = $2 \
                         WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING user_id",
                        &[&hash, &now],
                    )
                    .await
                    .map_err(db)?;
                let Some(row) = row else { return Ok(None) };
                let user = UserId(row.get(0));
                Self::pg_link(&tx, user, who, now).await?;
                tx.commit().await.map_err(db)?;
                Ok(Some(user))
            }
            Links::Memory(m) => {
                let mut m = m.lock().map_err(poisoned)?;
                let user = match m.codes.get_mut(hash) {
                    Some((user, exp, used)) if !*used && *exp > now => {
                        *used = true;
                        *user
                    }
                    _ => return Ok(None),
                };
                m.chats.retain(|_, u| *u != user);
                m.chats.insert(who.chat_id, user);
                Ok(Some(user))
            }
        }
    }

    async fn pg_link(
        c: &impl deadpool_postgres::GenericClient,
        user: UserId,
        who: &TelegramUser,
        now: Timestamp,
    ) -> Result<(), AppError> {
        // One chat per account and one account per chat: a new link replaces older ones.
        c.execute("DELETE FROM telegram_links WHERE chat_id = $1 OR user_id = $2", &[&who.chat_id, &user.0])
            .await
            .map_err(db)?;
        c.execute(
            "INSERT INTO telegram_links (user_id, chat_id, telegram_user_id, linked_at) VALUES ($1, $2, $3, $4)",
            &[&user.0, &who.chat_id, &who.telegram_user_id, &now],
        )
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn link(&self, user: UserId, who: &TelegramUser, now: Timestamp) -> Result<(), AppError> {
        match self {
            Links::Pg(pool) => {
                let mut c = pool.get().await.map_err(db)?;
                let tx = c.transaction().await.map_err(db)?;
                Self::pg_link(&tx, user, who, now).await?;
                tx.commit().await.map_err(db)
            }
            Links::Memory(m) => {
                let mut m = m.lock().map_err(poisoned)?;
                m.chats.retain(|_, u| *u != user);
                m.chats.insert(who.chat_id, user);
                Ok(())
            }
        }
    }

    pub async fn user_of_chat(&self, chat_id: i64) -> Result<Option<UserId>, AppError> {
        match self {
            Links::Pg(pool) => {
                let c = pool.get().await.map_err(db)?;
                let row = c
                    .query_opt("SELECT user_id FROM telegram_links WHERE chat_id = $1", &[&chat_id])
                    .await
                    .map_err(db)?;
                Ok(row.map(|r| UserId(r.get(0))))
            }
            Links::Memory(m) => Ok(m.lock().map_err(poisoned)?.chats.get(&chat_id).copied()),
        }
    }
}

/// A one-time code that links a Telegram chat to the caller's account.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LinkCode {
    /// Send `/start <code>` or `/link <code>` to the bot.
    pub code: String,
    pub expires_at: Timestamp,
}

#[utoipa::path(
    tag = "auth",
    operation_id = "telegram_link_code",
    summary = "Code to link Telegram",
    description = "A one-time code (10 minutes) that links a Telegram chat to the caller's account: send `/start <code>` or `/link <code>` to the bot. A new code replaces the caller's unused ones.",
    responses(
        (status = 201, description = "The code", body = LinkCode),
        (status = 401, response = Unauthorized),
        (status = 503, response = Unavailable)
    ),
    security(("bearer" = []))
)]
#[post("/me/telegram/link-code")]
async fn link_code(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let code = new_code();
    let now = state.engine.now();
    let expires_at = now + LINK_CODE_TTL;
    state.telegram.issue(user.id, hash_code(&code), expires_at, now).await?;
    // The code links a chat to this account: a secret, so never cached nor kept for replays.
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(LinkCode { code, expires_at }))
}

// ---------- the bot's backend ----------

/// The bot's view of this server: runs every operation on the server's arbiter.
pub struct GatewayBackend {
    state: web::Data<AppState>,
    arbiter: ArbiterHandle,
}

impl GatewayBackend {
    /// Must be called inside the server's actix system (its current arbiter runs the work).
    pub fn new(state: web::Data<AppState>) -> Self {
        GatewayBackend { state, arbiter: actix::Arbiter::current() }
    }

    fn on_server<T, F, Fut>(&self, f: F) -> BackendResult<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(web::Data<AppState>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, BackendError>> + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let state = self.state.clone();
        let sent = self.arbiter.spawn_fn(move || {
            actix_web::rt::spawn(async move {
                let _ = tx.send(f(state).await);
            });
        });
        Box::pin(async move {
            let stopping = || BackendError::Unavailable("the server is stopping".into());
            if !sent {
                return Err(stopping());
            }
            rx.await.unwrap_or_else(|_| Err(stopping()))
        })
    }
}

/// An application error in the bot's terms: what is worth retrying says "try later", a refusal
/// keeps its code and explanation (with the fields it names).
fn refused(e: AppError) -> BackendError {
    if e.kind.is_transient() {
        return BackendError::Unavailable(e.detail);
    }
    let mut message = e.detail;
    for f in &e.errors {
        message.push_str(&format!("; {}: {}", f.field, f.message));
    }
    BackendError::Refused { code: e.code.to_owned(), message }
}

async fn linked_user(state: &AppState, chat_id: i64) -> Result<Option<User>, BackendError> {
    let Some(id) = state.telegram.user_of_chat(chat_id).await.map_err(refused)? else { return Ok(None) };
    state.accounts.user_by_id(id).await.map_err(|e| BackendError::Unavailable(e.to_string()))
}

/// The chat's account as a caller of the API.
async fn caller(state: &AppState, chat_id: i64) -> Result<AuthUser, BackendError> {
    let u = linked_user(state, chat_id).await?.ok_or(BackendError::NotLinked)?;
    Ok(AuthUser { id: u.id, role: u.role })
}

/// The chat's account, if it may book (the rule of `app::access`, as over HTTP).
async fn customer(state: &AppState, chat_id: i64, what: &str) -> Result<AuthUser, BackendError> {
    let u = caller(state, chat_id).await?;
    access::require_customer(&u, what).map_err(refused)?;
    Ok(u)
}

fn account(u: User) -> Account {
    Account { user_id: u.id.0, name: u.name, email: u.email }
}

async fn line(state: &AppState, booking: Booking) -> Result<BookingLine, BackendError> {
    let (name, kind) = state
        .engine
        .read(booking.resource_id, |s, _| {
            let spec = s.spec();
            let kind = match spec.kind {
                KindSpec::Hotel(_) => "hotel",
                KindSpec::Event(_) => "event",
                KindSpec::Provider(_) => "provider",
            };
            (spec.name, kind)
        })
        .await
        .map_err(|e| refused(e.into()))?;
    Ok(BookingLine { booking, resource_name: name, resource_kind: kind.to_owned() })
}

fn booking_of(o: Outcome) -> Result<Booking, BackendError> {
    match o {
        Outcome::Booking { booking } | Outcome::OfferAccepted { booking, .. } => Ok(booking),
        other => Err(BackendError::Unavailable(format!("unexpected outcome {other:?}"))),
    }
}

impl Backend for GatewayBackend {
    fn account(&self, chat_id: i64) -> BackendResult<'_, Option<Account>> {
        self.on_server(move |state| async move { Ok(linked_user(&state, chat_id).await?.map(account)) })
    }

    fn link(&self, who: TelegramUser, code: String) -> BackendResult<'_, Account> {
        self.on_server(move |state| async move {
            let now = state.engine.now();
            let user = state.telegram.redeem(&hash_code(&code), &who, now).await.map_err(refused)?;
            let Some(user) = user else {
                return Err(BackendError::refused("link_code_invalid", "the code is unknown, used or expired"));
            };
            tracing::info!(user_id = %user.0, chat_id = who.chat_id, "telegram: chat linked with a code");
            linked_user(&state, who.chat_id).await?.map(account).ok_or(BackendError::NotLinked)
        })
    }

    fn register(&self, who: TelegramUser) -> BackendResult<'_, Account> {
        self.on_server(move |state| async move {
            if let Some(u) = linked_user(&state, who.chat_id).await? {
                return Err(BackendError::refused(
                    "already_linked",
                    format!("this chat is already linked to {} ({}); /help shows what you can do", u.name, u.email),
                ));
            }
            let email = format!("telegram-{}@{TELEGRAM_EMAIL_DOMAIN}", who.telegram_user_id);
            // The same Telegram user (identified by Telegram, not by what they type) gets the
            // account the bot made for them before, e.g. from another chat.
            let existing =
                state.accounts.user_by_email(&email).await.map_err(|e| BackendError::Unavailable(e.to_string()))?;
            let user = match existing {
                Some(u) => u.user,
                None => {
                    // A random password nobody knows: the account is used through Telegram.
                    let mut pw = [0u8; 32];
                    rand::rng().fill(&mut pw);
                    accounts::create_account(&state, &email, &hex::encode(pw), &who.name, Role::Client)
                        .await
                        .map_err(refused)?
                }
            };
            state.telegram.link(user.id, &who, state.engine.now()).await.map_err(refused)?;
            tracing::info!(user_id = %user.id.0, chat_id = who.chat_id, "telegram: account registered and linked");
            Ok(account(user))
        })
    }

    fn search_hotels(&self, q: HotelQuery, cursor: Option<String>) -> BackendResult<'_, Page<HotelHit>> {
        self.on_server(move |state| async move {
            let search = HotelSearch {
                city: Some(q.city),
                check_in: q.check_in,
                check_out: q.check_out,
                guests: Some(q.guests),
                cursor,
                limit: Some(BOT_PAGE),
            };
            let page = search::hotel_search(&state, search).await.map_err(refused)?;
            let items = page
                .items
                .into_iter()
                .map(|h| HotelHit { id: h.id.0, name: h.name, city: h.city, room_types: h.room_types })
                .collect();
            Ok(Page { items, next_cursor: page.next_cursor })
        })
    }

    fn events(&self, cursor: Option<String>) -> BackendResult<'_, Page<EventHit>> {
        self.on_server(move |state| async move {
            let q = PageQuery { cursor, limit: Some(BOT_PAGE) };
            let page = search::events_page(&state, &q).await.map_err(refused)?;
            let mut items = Vec::with_capacity(page.items.len());
            for e in page.items {
                let price = state
                    .engine
                    .read(e.id, |s, _| match s.spec().kind {
                        KindSpec::Event(ev) => Some(Money::new(ev.price_minor, ev.currency)),
                        _ => None,
                    })
                    .await
                    .map_err(|e| refused(e.into()))?;
                items.push(EventHit {
                    id: e.id.0,
                    name: e.name,
                    starts_at: e.starts_at,
                    availability: e.availability,
                    price,
                });
            }
            Ok(Page { items, next_cursor: page.next_cursor })
        })
    }

    fn providers(&self, cursor: Option<String>) -> BackendResult<'_, Page<ProviderHit>> {
        self.on_server(move |state| async move {
            let after = cursor.as_deref().map(crate::pagination::parse_resource_cursor).transpose().map_err(refused)?;
            let filter = ResourceFilter {
                kind: Some(ResourceKind::Provider),
                after,
                limit: BOT_PAGE + 1,
                ..ResourceFilter::default()
            };
            let mut rows = state
                .engine
                .store()
                .list_resources(filter)
                .await
                .map_err(|e| BackendError::Unavailable(e.to_string()))?;
            let next = page_cut(&mut rows, BOT_PAGE).map(|r| r.id.to_string());
            let items = rows.into_iter().map(|r| ProviderHit { id: r.id.0, name: r.name }).collect();
            Ok(Page { items, next_cursor: next })
        })
    }

    fn slots(&self, provider: Uuid, date: jiff::civil::Date) -> BackendResult<'_, Vec<SlotHit>> {
        self.on_server(move |state| async move {
            let slots = search::provider_slots(&state, ResourceId(provider), date).await.map_err(refused)?;
            Ok(slots.into_iter().map(|s| SlotHit { starts_at: s.starts_at, local_start: s.local_start }).collect())
        })
    }

    fn hold(&self, chat_id: i64, resource: Uuid, request: BookingRequest) -> BackendResult<'_, BookingLine> {
        self.on_server(move |state| async move {
            let user = customer(&state, chat_id, "book").await?;
            let b = bookings::hold(&state, &user, ResourceId(resource), request, false, None).await.map_err(refused)?;
            line(&state, b).await
        })
    }

    fn pay(&self, chat_id: i64, booking: Uuid) -> BackendResult<'_, PaymentStarted> {
        self.on_server(move |state| async move {
            let user = customer(&state, chat_id, "pay").await?;
            let p = payments::start_payment(&state, &user, BookingId(booking)).await.map_err(refused)?;
            Ok(PaymentStarted { payment_id: p.id, booking_id: p.booking_id.0, amount: p.amount })
        })
    }

    fn my_bookings(&self, chat_id: i64, cursor: Option<String>) -> BackendResult<'_, Page<BookingLine>> {
        self.on_server(move |state| async move {
            let user = caller(&state, chat_id).await?;
            let filter = match user.role {
                Role::Owner => BookingFilter { owner_id: Some(user.id), ..BookingFilter::default() },
                // Also for admins: in a chat, "my bookings" are the ones they made.
                Role::Client | Role::Admin => BookingFilter { user_id: Some(user.id), ..BookingFilter::default() },
            };
            let q = listings::BookingListQuery {
                status: None,
                from: None,
                to: None,
                when: None,
                cursor,
                limit: Some(BOT_BOOKINGS_PAGE),
            };
            let page = listings::booking_page(&state, filter, &q).await.map_err(refused)?;
            let mut items = Vec::with_capacity(page.items.len());
            for b in page.items {
                items.push(line(&state, b).await?);
            }
            Ok(Page { items, next_cursor: page.next_cursor })
        })
    }

    fn booking(&self, chat_id: i64, booking: Uuid) -> BackendResult<'_, BookingLine> {
        self.on_server(move |state| async move {
            let user = caller(&state, chat_id).await?;
            let (_, b) = access::visible_booking(&state, &user, BookingId(booking)).await.map_err(refused)?;
            line(&state, b).await
        })
    }

    fn cancel(&self, chat_id: i64, booking: Uuid) -> BackendResult<'_, BookingLine> {
        self.on_server(move |state| async move {
            let user = caller(&state, chat_id).await?;
            let by = user.requester();
            let booking_id = BookingId(booking);
            let reason = "cancelled in Telegram".to_owned();
            let b =
                bookings::act_on(&state, &user, booking_id, None, move || Command::Cancel { booking_id, reason, by })
                    .await
                    .map_err(refused)?;
            line(&state, b).await
        })
    }

    fn reschedule(&self, chat_id: i64, booking: Uuid, starts_at: Timestamp) -> BackendResult<'_, BookingLine> {
        self.on_server(move |state| async move {
            // The same rule as over HTTP (`app::bookings::may_reschedule`): owners do not move
            // clients' bookings; the bot also asks that the chat may book at all.
            let user = customer(&state, chat_id, "move a booking").await?;
            let request = BookingRequest::Appointment { starts_at };
            let b = bookings::reschedule(&state, &user, BookingId(booking), request, None).await.map_err(refused)?;
            line(&state, b).await
        })
    }

    fn join_waitlist(&self, chat_id: i64, resource: Uuid, wish: Wish) -> BackendResult<'_, WaitlistEntry> {
        self.on_server(move |state| async move {
            let user = customer(&state, chat_id, "join a waitlist").await?;
            match waitlist::join_waitlist(&state, &user, ResourceId(resource), wish, None).await.map_err(refused)? {
                Outcome::WaitlistEntry { entry } => Ok(entry),
                other => Err(BackendError::Unavailable(format!("unexpected outcome {other:?}"))),
            }
        })
    }

    fn accept_offer(&self, chat_id: i64, entry: Uuid) -> BackendResult<'_, BookingLine> {
        self.on_server(move |state| async move {
            let user = customer(&state, chat_id, "accept an offer").await?;
            let o = waitlist::accept_offer(&state, &user, WaitlistEntryId(entry), None, None).await.map_err(refused)?;
            line(&state, booking_of(o)?).await
        })
    }

    fn decline_offer(&self, chat_id: i64, entry: Uuid) -> BackendResult<'_, ()> {
        self.on_server(move |state| async move {
            let user = customer(&state, chat_id, "decline an offer").await?;
            waitlist::decline_offer(&state, &user, WaitlistEntryId(entry), None).await.map_err(refused)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_long_unambiguous_and_hashed_case_insensitively() {
        let c = new_code();
        assert_eq!(c.len(), CODE_LEN);
        assert!(c.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{c}");
        assert_ne!(new_code(), c);
        assert_eq!(hash_code(&c), hash_code(&format!(" {} ", c.to_lowercase())));
    }

    #[test]
    fn bot_settings_are_checked() {
        let mut s = Settings::local();
        assert!(check(&s).is_ok());
        s.telegram_bot_token = Some(crate::configuration::Secret::new("no-colon"));
        assert!(check(&s).is_err());
        s.telegram_bot_token = Some(crate::configuration::Secret::new("123:abc"));
        assert!(check(&s).is_ok());
        s.telegram_api_url = Some("not a url".into());
        assert!(check(&s).is_err());
        s.telegram_api_url = Some("http://127.0.0.1:8081".into());
        assert!(check(&s).is_ok());
    }
}
