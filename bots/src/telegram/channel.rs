//! The "telegram" delivery channel: notifications to the chat linked to the recipient's
//! account (`telegram_links`, read by `delivery::store::recipients`). Waitlist offers carry
//! Accept / Decline buttons (handled by the dialogue's `oa:` / `od:` callbacks); confirmations,
//! changes and reminders are plain texts.
//!
//! The Bot API has no idempotency key, so a send cannot be made idempotent on Telegram's side.
//! The dedupe key is used where it can be: a key this process already sent is not sent again
//! (a retry after the send succeeded but recording the result failed), and it is logged with
//! every send so a duplicate after a crash can be traced.

use crate::delivery::{Channel, DeliveryError, Notice, NoticeKind, Recipient};
use crate::render;
use futures::future::BoxFuture;
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use teloxide::prelude::*;
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup};
use teloxide::{ApiError, RequestError};

/// Dedupe keys remembered per process.
const REMEMBERED_KEYS: usize = 10_000;

pub struct TelegramChannel {
    bot: Bot,
    sent: Mutex<(HashSet<String>, VecDeque<String>)>,
}

impl TelegramChannel {
    pub fn new(bot: Bot) -> Self {
        TelegramChannel { bot, sent: Mutex::new((HashSet::new(), VecDeque::new())) }
    }

    fn already_sent(&self, key: &str) -> bool {
        self.sent.lock().map(|g| g.0.contains(key)).unwrap_or(false)
    }

    fn remember(&self, key: &str) {
        if let Ok(mut g) = self.sent.lock() {
            let (set, order) = &mut *g;
            if set.insert(key.to_owned()) {
                order.push_back(key.to_owned());
                while order.len() > REMEMBERED_KEYS {
                    if let Some(old) = order.pop_front() {
                        set.remove(&old);
                    }
                }
            }
        }
    }
}

/// The message text of a notice (plain text; Telegram shows it as is).
pub fn text(n: &Notice) -> String {
    let r = render::render(n);
    let mut t = format!("{}\n\n", r.subject);
    t.push_str(&format!("What: {}\n", render::what(n)));
    t.push_str(&format!("When: {}\n", render::when(n)));
    t.push_str(&format!(
        "Amount: {}\n",
        render::money(n.booking.amount.amount_minor, n.booking.amount.currency.as_str())
    ));
    t.push_str(&format!("Status: {}\n", n.booking.status.as_str()));
    if matches!(&n.kind, NoticeKind::Notification(k) if k == "hold_created") {
        t.push_str("\nPay from /mybookings before the hold lapses.\n");
    }
    if matches!(&n.kind, NoticeKind::Notification(k) if k == "offer_made") {
        t.push_str("\nAccept to book it, or decline to let the next person have it.\n");
    }
    t
}

/// Accept / Decline buttons for a waitlist offer.
pub fn buttons(n: &Notice) -> Option<InlineKeyboardMarkup> {
    match (&n.kind, n.entry_id) {
        (NoticeKind::Notification(k), Some(entry)) if k == "offer_made" => {
            let id = entry.simple();
            Some(InlineKeyboardMarkup::new(vec![vec![
                InlineKeyboardButton::callback("Accept", format!("oa:{id}")),
                InlineKeyboardButton::callback("Decline", format!("od:{id}")),
            ]]))
        }
        _ => None,
    }
}

fn classify(e: RequestError) -> DeliveryError {
    match e {
        // The person blocked the bot, left, or the chat is gone: waiting will not help.
        RequestError::Api(
            ApiError::BotBlocked
            | ApiError::ChatNotFound
            | ApiError::UserDeactivated
            | ApiError::BotKicked
            | ApiError::BotKickedFromSupergroup
            | ApiError::CantInitiateConversation
            | ApiError::CantTalkWithBots,
        ) => DeliveryError::Permanent(e.to_string()),
        other => DeliveryError::Transient(other.to_string()),
    }
}

impl Channel for TelegramChannel {
    fn name(&self) -> &'static str {
        "telegram"
    }

    fn reaches(&self, to: &Recipient) -> bool {
        to.telegram_chat_id.is_some()
    }

    fn deliver<'a>(&'a self, notice: &'a Notice) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let Some(chat) = notice.recipient.telegram_chat_id else {
                return Err(DeliveryError::Permanent("the recipient has no linked Telegram chat".into()));
            };
            if self.already_sent(&notice.dedupe_key) {
                tracing::info!(dedupe_key = %notice.dedupe_key, "telegram: already sent by this process");
                return Ok(());
            }
            let mut req = self.bot.send_message(ChatId(chat), text(notice));
            if let Some(kb) = buttons(notice) {
                req = req.reply_markup(kb);
            }
            req.await.map_err(classify)?;
            self.remember(&notice.dedupe_key);
            tracing::debug!(dedupe_key = %notice.dedupe_key, chat_id = chat, "telegram: sent");
            Ok(())
        })
    }
}
