//! The conversation: commands, free-text steps (city, dates, guests, a date for slots) and
//! inline-keyboard buttons. Where a chat is in a conversation is its [`State`], kept in a
//! dialogue [`Storage`](teloxide::dispatching::dialogue::Storage) (PostgreSQL in production,
//! see `storage.rs`), so a restart resumes it. Every input gets an answer: unknown commands,
//! text where a date is needed and buttons whose context is gone are explained, never ignored.

use super::backend::{
    Account, Backend, BackendError, BookingLine, HotelQuery, Page, ProviderHit, SlotHit, TelegramUser,
};
use crate::render;
use engine::domain::booking::{BookingItem, BookingRequest, BookingStatus, Wish};
use engine::domain::ids::RoomTypeId;
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use teloxide::dispatching::dialogue::{self, ErasedStorage};
use teloxide::dispatching::{UpdateFilterExt, UpdateHandler};
use teloxide::prelude::*;
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup, User};
use uuid::Uuid;

pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;
type HandlerResult = Result<(), HandlerError>;
pub type BotDialogue = Dialogue<State, ErasedStorage<State>>;
/// How the dispatcher gets the server: a dependency of this type.
pub type SharedBackend = Arc<dyn Backend>;

/// Longest message the bot reads; longer ones are refused with an explanation.
pub const MAX_TEXT_CHARS: usize = 300;
/// Longest city name searched for.
pub const MAX_CITY_CHARS: usize = 100;
/// Longest link code accepted (codes the server issues are much shorter).
pub const MAX_CODE_CHARS: usize = 64;
/// Telegram refuses messages over 4096 characters.
const MAX_REPLY_CHARS: usize = 4000;
/// Callback data may be at most 64 bytes.
const MAX_CALLBACK_BYTES: usize = 64;

/// Where a chat is in a conversation. Serialized as JSON into the dialogue storage: keep
/// variants and fields backwards-compatible (an unreadable state is treated as `Idle`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum State {
    #[default]
    Idle,
    /// /hotels: waiting for a city.
    HotelCity,
    /// Waiting for check-in and check-out dates.
    HotelDates { city: String },
    /// Waiting for the number of guests.
    HotelGuests { city: String, check_in: Date, check_out: Date },
    /// Results shown; buttons `hb:<i>` / `hw:<i>` pick `options[i]`, `hp:<cursor>` pages on.
    HotelResults { query: HotelQuery, options: Vec<HotelOption> },
    /// Waiting for a date to list a provider's free slots (for a new appointment, or to move
    /// the booking `reschedule`).
    ProviderDate { provider: Uuid, reschedule: Option<Uuid> },
    /// Slots shown; buttons `sb:<i>` pick `slots[i]`.
    ProviderSlots { provider: Uuid, reschedule: Option<Uuid>, slots: Vec<Timestamp> },
}

/// One room type of one hotel as offered on a results page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HotelOption {
    pub hotel: Uuid,
    pub room_type: Uuid,
    pub label: String,
}

pub const HELP: &str = "What I can do:\n\
/hotels - find a hotel room (city, dates, guests) and book it\n\
/events - events with free tickets; book one, or join the waitlist when sold out\n\
/providers - book an appointment in a free slot\n\
/mybookings - your bookings: pay, cancel, reschedule an appointment\n\
/link CODE - link this chat to your account (get a code in the app)\n\
/register - create a new account for this Telegram user\n\
/cancel - stop what we are doing\n\
/help - this list\n\
Waitlist offers, confirmations and reminders arrive here too.";

const WELCOME: &str = "Welcome! To book, link this chat to your account: get a one-time code in the app \
(POST /api/v1/me/telegram/link-code) and send /link CODE. No account yet? Send /register and I will \
create one for you.\nSend /help to see everything I can do.";

const STALE_BUTTON: &str = "That button is out of date: what it belonged to is gone or has moved on. \
Start again with /hotels, /events, /providers or /mybookings.";

/// The handler tree: dialogue storage first, then messages and button presses.
pub fn schema() -> UpdateHandler<HandlerError> {
    dialogue::enter::<Update, ErasedStorage<State>, State, _>()
        .branch(Update::filter_message().endpoint(on_message))
        .branch(Update::filter_callback_query().endpoint(on_callback))
}

/// What the handler tree needs: the server and the dialogue storage.
pub fn dependencies(backend: SharedBackend, storage: Arc<ErasedStorage<State>>) -> DependencyMap {
    dptree::deps![backend, storage]
}

// ---------- small helpers ----------

fn clip(mut s: String) -> String {
    if s.chars().count() > MAX_REPLY_CHARS {
        s = s.chars().take(MAX_REPLY_CHARS - 1).collect();
        s.push('…');
    }
    s
}

async fn say(bot: &Bot, chat: ChatId, text: impl Into<String>) -> HandlerResult {
    bot.send_message(chat, clip(text.into())).await?;
    Ok(())
}

async fn say_with(
    bot: &Bot,
    chat: ChatId,
    text: impl Into<String>,
    rows: Vec<Vec<InlineKeyboardButton>>,
) -> HandlerResult {
    if rows.is_empty() {
        return say(bot, chat, text).await;
    }
    bot.send_message(chat, clip(text.into())).reply_markup(InlineKeyboardMarkup::new(rows)).await?;
    Ok(())
}

fn button(text: impl Into<String>, data: String) -> Option<InlineKeyboardButton> {
    (data.len() <= MAX_CALLBACK_BYTES).then(|| InlineKeyboardButton::callback(text, data))
}

/// The answer to a refusal or failure of the server, in words.
pub fn explain(e: &BackendError) -> String {
    match e {
        BackendError::NotLinked => "This chat is not linked to an account yet. Send /link CODE with a code from \
                                    the app, or /register to create an account."
            .into(),
        BackendError::Refused { message, .. } => format!("Sorry, that did not work: {message}"),
        BackendError::Unavailable(_) => {
            "I cannot reach the booking service right now. Please try again in a minute.".into()
        }
    }
}

fn money(m: &engine::domain::money::Money) -> String {
    render::money(m.amount_minor, m.currency.as_str())
}

fn reference(id: Uuid) -> String {
    render::reference(id)
}

fn short_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// What and when a booking is, in one line.
pub fn describe(line: &BookingLine) -> String {
    let b = &line.booking;
    let what = match &b.item {
        BookingItem::Stay { check_in, check_out, guests, .. } => {
            format!("stay {check_in} to {check_out}, {guests} guest(s)")
        }
        BookingItem::Tickets { quantity, .. } => format!("{quantity} ticket(s)"),
        BookingItem::Appointment { starts_at, .. } => format!("appointment at {}", short_time(*starts_at)),
    };
    format!("{} · {} · {what} · {} · {}", reference(b.id.0), line.resource_name, money(&b.amount), b.status.as_str())
}

fn who(user: Option<&User>, chat: ChatId) -> Option<TelegramUser> {
    let u = user?;
    let name: String = u.full_name().chars().take(200).collect();
    let name = if name.trim().is_empty() { "Telegram user".to_owned() } else { name.trim().to_owned() };
    Some(TelegramUser { chat_id: chat.0, telegram_user_id: i64::try_from(u.id.0).ok()?, name })
}

/// `/cmd@bot rest` → (`cmd`, `rest`).
fn parse_command(text: &str) -> Option<(String, String)> {
    let rest = text.strip_prefix('/')?;
    let (head, tail) = match rest.split_once(char::is_whitespace) {
        Some((h, t)) => (h, t.trim()),
        None => (rest, ""),
    };
    let name = head.split('@').next().unwrap_or_default().to_lowercase();
    Some((name, tail.to_owned()))
}

const DATE_EXAMPLE: &str = "2030-05-01";

fn parse_date(s: &str) -> Result<Date, String> {
    s.trim().parse::<Date>().map_err(|_| {
        format!("I need a date as YYYY-MM-DD, for example {DATE_EXAMPLE}; \"{}\" is not one.", clip_input(s))
    })
}

fn clip_input(s: &str) -> String {
    s.chars().take(40).collect()
}

/// "2030-05-01 2030-05-03", "2030-05-01 to 2030-05-03", "2030-05-01, 2030-05-03".
fn parse_stay_dates(s: &str) -> Result<(Date, Date), String> {
    let parts: Vec<&str> = s
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|p| !p.is_empty() && !p.eq_ignore_ascii_case("to") && *p != "-" && *p != "–")
        .collect();
    let usage = "Send check-in and check-out dates as YYYY-MM-DD YYYY-MM-DD, for example 2030-05-01 2030-05-03 \
                 (or /cancel to stop).";
    match parts.as_slice() {
        [a, b] => match (a.parse::<Date>(), b.parse::<Date>()) {
            (Ok(a), Ok(b)) => Ok((a, b)),
            _ => Err(format!("Those are not dates I can read. {usage}")),
        },
        _ => Err(format!("I need two dates. {usage}")),
    }
}

fn parse_id(s: &str) -> Option<Uuid> {
    Uuid::parse_str(s).ok()
}

// ---------- messages ----------

async fn on_message(
    bot: Bot,
    dialogue: BotDialogue,
    msg: Message,
    backend: SharedBackend,
    state: State,
) -> HandlerResult {
    let chat = msg.chat.id;
    let Some(text) = msg.text() else {
        return say(&bot, chat, "I only read text messages and buttons. Send /help to see what I can do.").await;
    };
    let n = text.chars().count();
    if n > MAX_TEXT_CHARS {
        return say(&bot, chat, format!("That message is too long ({n} characters; I read at most {MAX_TEXT_CHARS})."))
            .await;
    }
    if let Some((cmd, arg)) = parse_command(text) {
        return command(&bot, &dialogue, &msg, backend.as_ref(), &cmd, &arg).await;
    }
    let text = text.trim();
    match state {
        State::Idle => say(&bot, chat, "I did not understand that. Send /help to see what I can do.").await,
        State::HotelCity => {
            if text.is_empty() || text.chars().count() > MAX_CITY_CHARS {
                return say(&bot, chat, format!("Send a city name (1 to {MAX_CITY_CHARS} characters).")).await;
            }
            dialogue.update(State::HotelDates { city: text.to_owned() }).await?;
            say(
                &bot,
                chat,
                format!("{text}: which dates? Send check-in and check-out as YYYY-MM-DD YYYY-MM-DD, for example 2030-05-01 2030-05-03."),
            )
            .await
        }
        State::HotelDates { city } => match parse_stay_dates(text) {
            Ok((check_in, check_out)) => {
                dialogue.update(State::HotelGuests { city, check_in, check_out }).await?;
                say(&bot, chat, "How many guests? Send a number, for example 2.").await
            }
            Err(why) => say(&bot, chat, why).await,
        },
        State::HotelGuests { city, check_in, check_out } => match text.parse::<u16>() {
            Ok(guests) if guests >= 1 => {
                let query = HotelQuery { city, check_in, check_out, guests };
                show_hotels(&bot, &dialogue, chat, backend.as_ref(), query, None).await
            }
            _ => say(&bot, chat, "Send the number of guests as a whole number, for example 2.").await,
        },
        State::HotelResults { .. } => {
            say(&bot, chat, "Pick a room with the buttons above, or send /hotels to search again.").await
        }
        State::ProviderDate { provider, reschedule } | State::ProviderSlots { provider, reschedule, .. } => {
            match parse_date(text) {
                Ok(date) => show_slots(&bot, &dialogue, chat, backend.as_ref(), provider, reschedule, date).await,
                Err(why) => say(&bot, chat, format!("{why} Or send /cancel to stop.")).await,
            }
        }
    }
}

async fn command(
    bot: &Bot,
    dialogue: &BotDialogue,
    msg: &Message,
    backend: &dyn Backend,
    cmd: &str,
    arg: &str,
) -> HandlerResult {
    let chat = msg.chat.id;
    match cmd {
        "start" if !arg.is_empty() => link(bot, dialogue, msg, backend, arg).await,
        "start" => {
            dialogue.update(State::Idle).await?;
            match backend.account(chat.0).await {
                Ok(Some(a)) => say(bot, chat, format!("Welcome back, {}!\n\n{HELP}", a.name)).await,
                Ok(None) => say(bot, chat, WELCOME).await,
                Err(e) => say(bot, chat, explain(&e)).await,
            }
        }
        "link" if arg.is_empty() => {
            say(bot, chat, "Send /link followed by the code from the app, for example /link 7KQ2M9XW.").await
        }
        "link" => link(bot, dialogue, msg, backend, arg).await,
        "register" => {
            let Some(who) = who(msg.from.as_ref(), chat) else {
                return say(bot, chat, "I cannot tell who you are in this chat; write to me directly.").await;
            };
            match backend.register(who).await {
                Ok(a) => {
                    dialogue.update(State::Idle).await?;
                    say(bot, chat, format!("Done: a new account for {} is linked to this chat.\n\n{HELP}", a.name))
                        .await
                }
                Err(e) => say(bot, chat, explain(&e)).await,
            }
        }
        "help" => say(bot, chat, HELP).await,
        "cancel" => {
            dialogue.update(State::Idle).await?;
            say(bot, chat, "OK, stopped. Send /help to see what I can do.").await
        }
        "hotels" => {
            dialogue.update(State::HotelCity).await?;
            say(bot, chat, "Which city?").await
        }
        "events" => show_events(bot, chat, backend, None).await,
        "providers" => show_providers(bot, chat, backend, None).await,
        "mybookings" | "bookings" => show_bookings(bot, chat, backend, None).await,
        other => {
            let other: String = other.chars().take(32).collect();
            say(bot, chat, format!("I do not know the command /{other}. Send /help to see what I can do.")).await
        }
    }
}

async fn link(bot: &Bot, dialogue: &BotDialogue, msg: &Message, backend: &dyn Backend, code: &str) -> HandlerResult {
    let chat = msg.chat.id;
    let code = code.trim();
    if code.chars().count() > MAX_CODE_CHARS || !code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return say(bot, chat, "That is not a link code. Get one in the app and send /link CODE.").await;
    }
    let Some(who) = who(msg.from.as_ref(), chat) else {
        return say(bot, chat, "I cannot tell who you are in this chat; write to me directly.").await;
    };
    match backend.link(who, code.to_owned()).await {
        Ok(Account { name, email, .. }) => {
            dialogue.update(State::Idle).await?;
            say(bot, chat, format!("Linked: this chat now belongs to {name} ({email}).\n\n{HELP}")).await
        }
        Err(BackendError::Refused { code: c, .. }) if c == "link_code_invalid" => {
            say(
                bot,
                chat,
                "That code is unknown, used or expired (codes work once, for a few minutes). Get a new one in the \
                 app and send /link CODE.",
            )
            .await
        }
        Err(e) => say(bot, chat, explain(&e)).await,
    }
}

async fn show_hotels(
    bot: &Bot,
    dialogue: &BotDialogue,
    chat: ChatId,
    backend: &dyn Backend,
    query: HotelQuery,
    cursor: Option<String>,
) -> HandlerResult {
    let page = match backend.search_hotels(query.clone(), cursor).await {
        Ok(p) => p,
        Err(e) => {
            // Keep the collected city: the dates were refused, ask for them again.
            if matches!(e, BackendError::Refused { .. }) {
                dialogue.update(State::HotelDates { city: query.city.clone() }).await?;
                return say(bot, chat, format!("{} Send other dates, or /cancel.", explain(&e))).await;
            }
            return say(bot, chat, explain(&e)).await;
        }
    };
    let mut text = format!(
        "Hotels in {} from {} to {} for {} guest(s):\n",
        query.city, query.check_in, query.check_out, query.guests
    );
    let mut options = Vec::new();
    let mut rows = Vec::new();
    for h in &page.items {
        text.push_str(&format!("\n{}{}\n", h.name, h.city.as_deref().map(|c| format!(", {c}")).unwrap_or_default()));
        for rt in &h.room_types {
            let fits = rt.capacity_guests >= query.guests;
            let state = if !fits {
                "too small".to_owned()
            } else if rt.free_rooms > 0 {
                format!("{} free", rt.free_rooms)
            } else {
                "sold out".to_owned()
            };
            text.push_str(&format!(
                "  {} (up to {}): {} · {state}\n",
                rt.name,
                rt.capacity_guests,
                money(&rt.total_price)
            ));
            if !fits {
                continue;
            }
            let i = options.len();
            let label = format!("{} · {}", h.name, rt.name);
            let b = if rt.free_rooms > 0 {
                button(format!("Book {label} · {}", money(&rt.total_price)), format!("hb:{i}"))
            } else {
                button(format!("Waitlist {label}"), format!("hw:{i}"))
            };
            rows.extend(b.map(|b| vec![b]));
            options.push(HotelOption { hotel: h.id, room_type: rt.room_type_id.0, label });
        }
    }
    if page.items.is_empty() {
        text.push_str("\nNo hotels found. Send /hotels to try another city or other dates.");
    }
    if let Some(next) = page.next_cursor {
        rows.extend(button("More hotels ▶", format!("hp:{next}")).map(|b| vec![b]));
    }
    dialogue.update(State::HotelResults { query, options }).await?;
    say_with(bot, chat, text, rows).await
}

async fn show_events(bot: &Bot, chat: ChatId, backend: &dyn Backend, cursor: Option<String>) -> HandlerResult {
    let page = match backend.events(cursor).await {
        Ok(p) => p,
        Err(e) => return say(bot, chat, explain(&e)).await,
    };
    let mut text = String::from("Events:\n");
    let mut rows = Vec::new();
    for e in &page.items {
        let when = e.starts_at.map(short_time).unwrap_or_else(|| "date to be announced".into());
        let (left, sold_out) = match &e.availability {
            Some(a) => (format!("{} of {} left", a.remaining, a.capacity), a.remaining == 0),
            None => ("availability unknown".into(), false),
        };
        let price = e.price.as_ref().map(money).unwrap_or_default();
        text.push_str(&format!("\n{} · {when} · {price} · {left}\n", e.name));
        let id = e.id.simple();
        let b = if sold_out {
            button(format!("Join waitlist: {}", e.name), format!("ew:{id}"))
        } else {
            button(format!("Book 1 ticket: {}", e.name), format!("eb:{id}"))
        };
        rows.extend(b.map(|b| vec![b]));
    }
    if page.items.is_empty() {
        text.push_str("\nNo events right now.");
    }
    if let Some(next) = page.next_cursor {
        rows.extend(button("More events ▶", format!("ep:{next}")).map(|b| vec![b]));
    }
    say_with(bot, chat, text, rows).await
}

async fn show_providers(bot: &Bot, chat: ChatId, backend: &dyn Backend, cursor: Option<String>) -> HandlerResult {
    let page: Page<ProviderHit> = match backend.providers(cursor).await {
        Ok(p) => p,
        Err(e) => return say(bot, chat, explain(&e)).await,
    };
    let mut rows: Vec<Vec<InlineKeyboardButton>> = page
        .items
        .iter()
        .filter_map(|p| button(p.name.clone(), format!("pv:{}", p.id.simple())))
        .map(|b| vec![b])
        .collect();
    if let Some(next) = page.next_cursor {
        rows.extend(button("More providers ▶", format!("pp:{next}")).map(|b| vec![b]));
    }
    let text = if page.items.is_empty() { "No providers right now." } else { "Pick a provider to see free times:" };
    say_with(bot, chat, text, rows).await
}

async fn show_slots(
    bot: &Bot,
    dialogue: &BotDialogue,
    chat: ChatId,
    backend: &dyn Backend,
    provider: Uuid,
    reschedule: Option<Uuid>,
    date: Date,
) -> HandlerResult {
    let slots: Vec<SlotHit> = match backend.slots(provider, date).await {
        Ok(s) => s,
        Err(e) => return say(bot, chat, format!("{} Send another date, or /cancel.", explain(&e))).await,
    };
    if slots.is_empty() {
        dialogue.update(State::ProviderDate { provider, reschedule }).await?;
        return say(bot, chat, format!("No free times on {date}. Send another date, or /cancel.")).await;
    }
    let rows: Vec<Vec<InlineKeyboardButton>> = slots
        .iter()
        .enumerate()
        // "2030-01-07T10:00:00+01:00" → "10:00" (the provider's local time).
        .filter_map(|(i, s)| button(s.local_start.get(11..16).unwrap_or(&s.local_start), format!("sb:{i}")))
        .collect::<Vec<_>>()
        .chunks(3)
        .map(|c| c.to_vec())
        .collect();
    let verb = if reschedule.is_some() { "move your appointment to" } else { "book" };
    dialogue
        .update(State::ProviderSlots { provider, reschedule, slots: slots.iter().map(|s| s.starts_at).collect() })
        .await?;
    say_with(bot, chat, format!("Free times on {date} (pick one to {verb}):"), rows).await
}

/// Buttons for what can be done with a booking now.
fn booking_buttons(line: &BookingLine) -> Vec<InlineKeyboardButton> {
    let b = &line.booking;
    let id = b.id.0.simple();
    let r = reference(b.id.0);
    let mut out = Vec::new();
    match b.status {
        BookingStatus::Held => {
            out.extend(button(format!("Pay {} ({r})", money(&b.amount)), format!("pay:{id}")));
            out.extend(button(format!("Cancel {r}"), format!("cx:{id}")));
        }
        BookingStatus::Confirmed => {
            if matches!(b.item, BookingItem::Appointment { .. }) {
                out.extend(button(format!("Reschedule {r}"), format!("rs:{id}")));
            }
            out.extend(button(format!("Cancel {r}"), format!("cx:{id}")));
        }
        _ => {}
    }
    out
}

async fn show_bookings(bot: &Bot, chat: ChatId, backend: &dyn Backend, cursor: Option<String>) -> HandlerResult {
    let page = match backend.my_bookings(chat.0, cursor).await {
        Ok(p) => p,
        Err(e) => return say(bot, chat, explain(&e)).await,
    };
    if page.items.is_empty() {
        return say(bot, chat, "You have no bookings yet. Try /hotels, /events or /providers.").await;
    }
    let mut text = String::from("Your bookings:\n");
    let mut rows = Vec::new();
    for line in &page.items {
        text.push_str(&format!("\n{}", describe(line)));
        let bs = booking_buttons(line);
        if !bs.is_empty() {
            rows.push(bs);
        }
    }
    if let Some(next) = page.next_cursor {
        rows.extend(button("More bookings ▶", format!("mp:{next}")).map(|b| vec![b]));
    }
    say_with(bot, chat, text, rows).await
}

async fn held(bot: &Bot, chat: ChatId, line: BookingLine) -> HandlerResult {
    let b = &line.booking;
    let until = b.hold_expires_at.map(|t| format!(" until {}", short_time(t))).unwrap_or_default();
    let text = format!("Held for you{until}:\n{}\nPay to confirm it.", describe(&line));
    say_with(bot, chat, text, vec![booking_buttons(&line)]).await
}

// ---------- buttons ----------

async fn on_callback(
    bot: Bot,
    dialogue: BotDialogue,
    q: CallbackQuery,
    backend: SharedBackend,
    state: State,
) -> HandlerResult {
    // Stop the button's spinner whatever happens next.
    bot.answer_callback_query(q.id.clone()).await?;
    let chat = dialogue.chat_id();
    let data = q.data.as_deref().unwrap_or_default();
    if data.len() > MAX_CALLBACK_BYTES {
        return say(&bot, chat, STALE_BUTTON).await;
    }
    let (verb, arg) = data.split_once(':').unwrap_or((data, ""));
    let backend = backend.as_ref();
    match verb {
        "hp" => match state {
            State::HotelResults { query, .. } => {
                show_hotels(&bot, &dialogue, chat, backend, query, Some(arg.to_owned())).await
            }
            _ => say(&bot, chat, STALE_BUTTON).await,
        },
        "hb" | "hw" => {
            let picked = match (&state, arg.parse::<usize>()) {
                (State::HotelResults { query, options }, Ok(i)) => options.get(i).map(|o| (query.clone(), o.clone())),
                _ => None,
            };
            let Some((query, option)) = picked else { return say(&bot, chat, STALE_BUTTON).await };
            let room_type_id = RoomTypeId(option.room_type);
            if verb == "hb" {
                let request = BookingRequest::Stay {
                    room_type_id,
                    room_id: None,
                    check_in: query.check_in,
                    check_out: query.check_out,
                    guests: query.guests,
                };
                match backend.hold(chat.0, option.hotel, request).await {
                    Ok(line) => {
                        dialogue.update(State::Idle).await?;
                        held(&bot, chat, line).await
                    }
                    Err(e) => say(&bot, chat, explain(&e)).await,
                }
            } else {
                let wish = Wish::Stay {
                    room_type_id,
                    check_in: query.check_in,
                    check_out: query.check_out,
                    guests: query.guests,
                };
                join_waitlist(&bot, chat, backend, option.hotel, wish, &option.label).await
            }
        }
        "ep" => show_events(&bot, chat, backend, Some(arg.to_owned())).await,
        "eb" | "ew" => {
            let Some(event) = parse_id(arg) else { return say(&bot, chat, STALE_BUTTON).await };
            if verb == "eb" {
                let request = BookingRequest::Tickets { category_id: None, quantity: 1 };
                match backend.hold(chat.0, event, request).await {
                    Ok(line) => held(&bot, chat, line).await,
                    Err(e) if e.code() == "sold_out" => {
                        let rows = button("Join the waitlist", format!("ew:{}", event.simple()))
                            .map(|b| vec![vec![b]])
                            .unwrap_or_default();
                        say_with(&bot, chat, "Sold out just now. Join the waitlist?", rows).await
                    }
                    Err(e) => say(&bot, chat, explain(&e)).await,
                }
            } else {
                let wish = Wish::Tickets { category_id: None, quantity: 1 };
                join_waitlist(&bot, chat, backend, event, wish, "1 ticket").await
            }
        }
        "pp" => show_providers(&bot, chat, backend, Some(arg.to_owned())).await,
        "pv" => {
            let Some(provider) = parse_id(arg) else { return say(&bot, chat, STALE_BUTTON).await };
            dialogue.update(State::ProviderDate { provider, reschedule: None }).await?;
            say(&bot, chat, format!("Which date? Send it as YYYY-MM-DD, for example {DATE_EXAMPLE}.")).await
        }
        "sb" => {
            let picked = match (&state, arg.parse::<usize>()) {
                (State::ProviderSlots { provider, reschedule, slots }, Ok(i)) => {
                    slots.get(i).map(|t| (*provider, *reschedule, *t))
                }
                _ => None,
            };
            let Some((provider, reschedule, starts_at)) = picked else {
                return say(&bot, chat, STALE_BUTTON).await;
            };
            let result = match reschedule {
                Some(booking) => backend.reschedule(chat.0, booking, starts_at).await.map(|l| (l, true)),
                None => {
                    backend.hold(chat.0, provider, BookingRequest::Appointment { starts_at }).await.map(|l| (l, false))
                }
            };
            match result {
                Ok((line, moved)) => {
                    dialogue.update(State::Idle).await?;
                    if moved {
                        say(&bot, chat, format!("Moved: {}", describe(&line))).await
                    } else {
                        held(&bot, chat, line).await
                    }
                }
                Err(e) => say(&bot, chat, format!("{} Pick another time, or send another date.", explain(&e))).await,
            }
        }
        "mp" => show_bookings(&bot, chat, backend, Some(arg.to_owned())).await,
        "pay" => {
            let Some(id) = parse_id(arg) else { return say(&bot, chat, STALE_BUTTON).await };
            match backend.pay(chat.0, id).await {
                Ok(p) => {
                    say(
                        &bot,
                        chat,
                        format!(
                            "Payment of {} for {} started. I will tell you here when the booking is confirmed; \
                             /mybookings shows its status.",
                            money(&p.amount),
                            reference(p.booking_id)
                        ),
                    )
                    .await
                }
                Err(e) => say(&bot, chat, explain(&e)).await,
            }
        }
        "cx" => {
            let Some(id) = parse_id(arg) else { return say(&bot, chat, STALE_BUTTON).await };
            match backend.cancel(chat.0, id).await {
                Ok(line) => say(&bot, chat, format!("Cancelled: {}", describe(&line))).await,
                Err(e) => say(&bot, chat, explain(&e)).await,
            }
        }
        "rs" => {
            let Some(id) = parse_id(arg) else { return say(&bot, chat, STALE_BUTTON).await };
            match backend.booking(chat.0, id).await {
                Ok(line) if matches!(line.booking.item, BookingItem::Appointment { .. }) => {
                    let provider = line.booking.resource_id.0;
                    dialogue.update(State::ProviderDate { provider, reschedule: Some(id) }).await?;
                    say(&bot, chat, format!("Move {} to which date? Send it as YYYY-MM-DD.", reference(id))).await
                }
                Ok(_) => say(&bot, chat, "Only appointments can be rescheduled here.").await,
                Err(e) => say(&bot, chat, explain(&e)).await,
            }
        }
        "oa" => {
            let Some(id) = parse_id(arg) else { return say(&bot, chat, STALE_BUTTON).await };
            match backend.accept_offer(chat.0, id).await {
                Ok(line) => say(&bot, chat, format!("Accepted. Your booking: {}", describe(&line))).await,
                Err(e) => say(&bot, chat, explain(&e)).await,
            }
        }
        "od" => {
            let Some(id) = parse_id(arg) else { return say(&bot, chat, STALE_BUTTON).await };
            match backend.decline_offer(chat.0, id).await {
                Ok(()) => say(&bot, chat, "Declined: the place goes to the next person waiting.").await,
                Err(e) => say(&bot, chat, explain(&e)).await,
            }
        }
        _ => say(&bot, chat, STALE_BUTTON).await,
    }
}

async fn join_waitlist(
    bot: &Bot,
    chat: ChatId,
    backend: &dyn Backend,
    resource: Uuid,
    wish: Wish,
    what: &str,
) -> HandlerResult {
    match backend.join_waitlist(chat.0, resource, wish).await {
        Ok(entry) => {
            say(
                bot,
                chat,
                format!(
                    "You are on the waitlist ({what}, place {}). When a place frees up I will send you an offer \
                     to accept or decline here.",
                    entry.position
                ),
            )
            .await
        }
        Err(e) => say(bot, chat, explain(&e)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_bot_names_and_arguments() {
        assert_eq!(parse_command("/start abc"), Some(("start".into(), "abc".into())));
        assert_eq!(parse_command("/Help@my_bot"), Some(("help".into(), "".into())));
        assert_eq!(parse_command("hello"), None);
    }

    #[test]
    fn stay_dates_parse_in_the_forms_people_write() {
        let want = Ok(("2030-05-01".parse().expect("date"), "2030-05-03".parse().expect("date")));
        assert_eq!(parse_stay_dates("2030-05-01 2030-05-03"), want);
        assert_eq!(parse_stay_dates("2030-05-01 to 2030-05-03"), want);
        assert_eq!(parse_stay_dates("2030-05-01, 2030-05-03"), want);
        assert!(parse_stay_dates("next friday").is_err());
        assert!(parse_stay_dates("2030-05-01").is_err());
    }

    #[test]
    fn states_round_trip_through_json() {
        let s = State::ProviderSlots {
            provider: Uuid::nil(),
            reschedule: Some(Uuid::nil()),
            slots: vec![Timestamp::UNIX_EPOCH],
        };
        let v = serde_json::to_value(&s).expect("json");
        assert_eq!(serde_json::from_value::<State>(v).expect("state"), s);
    }
}
