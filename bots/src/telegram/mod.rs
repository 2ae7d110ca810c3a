//! The Telegram bot (teloxide): browse and book over chat, and the "telegram" notification
//! channel.
//!
//! - `backend.rs`: the [`Backend`] trait, everything the bot asks of the server (link a chat,
//!   register, search, hold, pay, list, cancel, reschedule, waitlist, offers). The gateway
//!   implements it over its own state (`gateway/src/telegram.rs`): the bot holds no rule.
//! - `dialogue.rs`: the handler tree (commands, free-text steps, inline keyboards) and the
//!   per-chat [`State`].
//! - `storage.rs`: the dialogue state in PostgreSQL, so conversations survive a restart.
//! - `channel.rs`: [`TelegramChannel`], a `delivery::Channel` sending notices to linked chats
//!   (offers with Accept / Decline buttons).

pub mod backend;
pub mod channel;
pub mod dialogue;
pub mod storage;

pub use backend::{Backend, BackendError};
pub use channel::TelegramChannel;
pub use dialogue::{HELP, State, dependencies, schema};
pub use teloxide::Bot;

use std::sync::Arc;
use teloxide::dispatching::ShutdownToken;
use teloxide::dispatching::dialogue::ErasedStorage;
use teloxide::prelude::*;

/// A bot for `token`, talking to `api_url` when given (a self-hosted Bot API server).
pub fn bot(token: &str, api_url: Option<&str>) -> Result<Bot, String> {
    let bot = Bot::new(token);
    match api_url {
        Some(u) => {
            let url = url::Url::parse(u).map_err(|e| format!("TELEGRAM_API_URL {u:?}: {e}"))?;
            Ok(bot.set_api_url(url))
        }
        None => Ok(bot),
    }
}

/// The running bot: stop it with [`BotHandle::shutdown`].
pub struct BotHandle {
    token: ShutdownToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl BotHandle {
    pub async fn shutdown(mut self) {
        if let Ok(done) = self.token.shutdown() {
            done.await;
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for BotHandle {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Runs the bot (long polling) on the current runtime until shut down.
pub fn spawn(bot: Bot, backend: Arc<dyn Backend>, storage: Arc<ErasedStorage<State>>) -> BotHandle {
    let mut dispatcher = Dispatcher::builder(bot, schema())
        .dependencies(dependencies(backend, storage))
        .default_handler(|_| async {})
        .error_handler(LoggingErrorHandler::with_custom_text("telegram bot: a handler failed"))
        .build();
    let token = dispatcher.shutdown_token();
    let task = tokio::spawn(async move { dispatcher.dispatch().await });
    BotHandle { token, task: Some(task) }
}
