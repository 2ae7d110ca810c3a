//! What the bot asks of the server. The bot only talks and remembers where a conversation is;
//! every rule (who may book what, prices, availability, link codes) is decided behind this
//! trait, which the gateway implements over the same code paths as its HTTP routes.
//!
//! Operations that act for someone take the chat id: the implementation finds the account
//! linked to that chat itself, so the bot can never act for an account it was not linked to.

use engine::domain::booking::{Booking, BookingRequest, Wish};
use engine::domain::event::EventAvailability;
use engine::domain::hotel::RoomTypeAvailability;
use engine::domain::waitlist::WaitlistEntry;
use futures::future::BoxFuture;
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who wrote to the bot (from the update, not from the user's text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelegramUser {
    pub chat_id: i64,
    pub telegram_user_id: i64,
    /// The Telegram first (and last) name: a new account's name.
    pub name: String,
}

/// The account linked to a chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub user_id: Uuid,
    pub name: String,
    pub email: String,
}

/// One page of a listing and where the next one starts.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A hotel search, as the dialogue collected it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HotelQuery {
    pub city: String,
    pub check_in: Date,
    pub check_out: Date,
    pub guests: u16,
}

#[derive(Clone, Debug)]
pub struct HotelHit {
    pub id: Uuid,
    pub name: String,
    pub city: Option<String>,
    /// Per room type: rooms free for the whole stay and the stay's price.
    pub room_types: Vec<RoomTypeAvailability>,
}

#[derive(Clone, Debug)]
pub struct EventHit {
    pub id: Uuid,
    pub name: String,
    pub starts_at: Option<Timestamp>,
    pub availability: Option<EventAvailability>,
    /// Price of one ticket of the default category, if it has one.
    pub price: Option<engine::domain::money::Money>,
}

#[derive(Clone, Debug)]
pub struct ProviderHit {
    pub id: Uuid,
    pub name: String,
}

#[derive(Clone, Debug)]
pub struct SlotHit {
    pub starts_at: Timestamp,
    /// Local start in the provider's zone, for people.
    pub local_start: String,
}

/// A booking with the name of where it is.
#[derive(Clone, Debug)]
pub struct BookingLine {
    pub booking: Booking,
    pub resource_name: String,
    /// `hotel`, `event` or `provider`.
    pub resource_kind: String,
}

/// A payment under way: the provider settles it shortly and the confirmation follows.
#[derive(Clone, Debug)]
pub struct PaymentStarted {
    pub payment_id: Uuid,
    pub booking_id: Uuid,
    pub amount: engine::domain::money::Money,
}

/// Why something did not happen, in words the person can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The chat is not linked to an account.
    #[error("this chat is not linked to an account")]
    NotLinked,
    /// A refusal by the rules (sold out, hold expired, bad dates, expired code ...): `code` is
    /// the API's stable problem code, `message` its explanation.
    #[error("{message}")]
    Refused { code: String, message: String },
    /// The server cannot answer now (database away, overloaded): try again later.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
}

impl BackendError {
    pub fn refused(code: impl Into<String>, message: impl Into<String>) -> Self {
        BackendError::Refused { code: code.into(), message: message.into() }
    }
    pub fn code(&self) -> &str {
        match self {
            BackendError::NotLinked => "not_linked",
            BackendError::Refused { code, .. } => code,
            BackendError::Unavailable(_) => "unavailable",
        }
    }
}

pub type BackendResult<'a, T> = BoxFuture<'a, Result<T, BackendError>>;

/// The server's side of the bot. Object-safe (`Arc<dyn Backend>` is a dispatcher dependency).
pub trait Backend: Send + Sync + 'static {
    /// The account linked to this chat, if any.
    fn account(&self, chat_id: i64) -> BackendResult<'_, Option<Account>>;
    /// Links the chat to the account that was issued `code` (single use, short-lived).
    fn link(&self, who: TelegramUser, code: String) -> BackendResult<'_, Account>;
    /// Creates a client account for this Telegram user and links the chat to it.
    fn register(&self, who: TelegramUser) -> BackendResult<'_, Account>;

    fn search_hotels(&self, q: HotelQuery, cursor: Option<String>) -> BackendResult<'_, Page<HotelHit>>;
    fn events(&self, cursor: Option<String>) -> BackendResult<'_, Page<EventHit>>;
    fn providers(&self, cursor: Option<String>) -> BackendResult<'_, Page<ProviderHit>>;
    fn slots(&self, provider: Uuid, date: Date) -> BackendResult<'_, Vec<SlotHit>>;

    /// Holds (books unconfirmed) for the chat's account.
    fn hold(&self, chat_id: i64, resource: Uuid, request: BookingRequest) -> BackendResult<'_, BookingLine>;
    /// Starts paying for a held booking of the chat's account.
    fn pay(&self, chat_id: i64, booking: Uuid) -> BackendResult<'_, PaymentStarted>;
    /// The account's bookings, newest first.
    fn my_bookings(&self, chat_id: i64, cursor: Option<String>) -> BackendResult<'_, Page<BookingLine>>;
    fn booking(&self, chat_id: i64, booking: Uuid) -> BackendResult<'_, BookingLine>;
    fn cancel(&self, chat_id: i64, booking: Uuid) -> BackendResult<'_, BookingLine>;
    /// Moves an appointment to another start.
    fn reschedule(&self, chat_id: i64, booking: Uuid, starts_at: Timestamp) -> BackendResult<'_, BookingLine>;
    fn join_waitlist(&self, chat_id: i64, resource: Uuid, wish: Wish) -> BackendResult<'_, WaitlistEntry>;
    fn accept_offer(&self, chat_id: i64, entry: Uuid) -> BackendResult<'_, BookingLine>;
    fn decline_offer(&self, chat_id: i64, entry: Uuid) -> BackendResult<'_, ()>;
}
