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
use std::time::Duration;
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
        match self.token.shutdown() {
            Ok(done) => {
                done.await;
                if let Some(t) = self.task.take() {
                    let _ = t.await;
                }
            }
            // Not dispatching (still waiting to reach the Bot API): nothing to finish.
            Err(_) => {
                if let Some(t) = self.task.take() {
                    t.abort();
                }
            }
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

/// Longest wait between attempts to reach the Bot API at start.
const MAX_START_RETRY: Duration = Duration::from_secs(300);

/// Runs the bot (long polling) on the current runtime until shut down. If the Bot API cannot
/// be reached at start (teloxide's `dispatch` would panic), it retries with backoff and logs.
pub fn spawn(bot: Bot, backend: Arc<dyn Backend>, storage: Arc<ErasedStorage<State>>) -> BotHandle {
    let mut dispatcher = Dispatcher::builder(bot.clone(), schema())
        .dependencies(dependencies(backend, storage))
        .default_handler(|_| async {})
        .error_handler(LoggingErrorHandler::with_custom_text("telegram bot: a handler failed"))
        .build();
    let token = dispatcher.shutdown_token();
    let task = tokio::spawn(async move {
        let mut delay = Duration::from_secs(1);
        loop {
            let listener = teloxide::update_listeners::polling_default(bot.clone()).await;
            let on_error = LoggingErrorHandler::with_custom_text("telegram bot: polling failed");
            match dispatcher.try_dispatch_with_listener(listener, on_error).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_secs = delay.as_secs(), "telegram bot: cannot reach the Bot API");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_START_RETRY);
                }
            }
        }
    });
    BotHandle { token, task: Some(task) }
}
