//! Dialogue state in PostgreSQL (`telegram_dialogues`, migration V8), so a restarted server
//! resumes each conversation where it was. The in-memory store of the gateway uses teloxide's
//! `InMemStorage` instead (nothing survives a restart there anyway).

use super::dialogue::State;
use deadpool_postgres::Pool;
use futures::future::BoxFuture;
use std::sync::Arc;
use teloxide::dispatching::dialogue::{ErasedStorage, InMemStorage, Storage};
use teloxide::types::ChatId;

#[derive(Debug, thiserror::Error)]
pub enum DialogueStoreError {
    #[error("database: {0}")]
    Db(String),
    #[error("no dialogue for this chat")]
    NotFound,
}

impl From<tokio_postgres::Error> for DialogueStoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        DialogueStoreError::Db(e.to_string())
    }
}
impl From<deadpool_postgres::PoolError> for DialogueStoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        DialogueStoreError::Db(e.to_string())
    }
}

/// teloxide's dialogue [`Storage`] over PostgreSQL: one row per chat, the state as JSON.
pub struct PgDialogueStorage {
    pool: Pool,
}

impl PgDialogueStorage {
    pub fn new(pool: Pool) -> Arc<Self> {
        Arc::new(PgDialogueStorage { pool })
    }
}

/// The storage the handler tree takes: PostgreSQL when there is a pool, else in memory.
pub fn storage(pool: Option<Pool>) -> Arc<ErasedStorage<State>> {
    match pool {
        Some(pool) => PgDialogueStorage::new(pool).erase(),
        None => InMemStorage::<State>::new().erase(),
    }
}

impl Storage<State> for PgDialogueStorage {
    type Error = DialogueStoreError;

    fn remove_dialogue(self: Arc<Self>, chat_id: ChatId) -> BoxFuture<'static, Result<(), Self::Error>> {
        Box::pin(async move {
            let c = self.pool.get().await?;
            let n = c.execute("DELETE FROM telegram_dialogues WHERE chat_id = $1", &[&chat_id.0]).await?;
            if n == 0 { Err(DialogueStoreError::NotFound) } else { Ok(()) }
        })
    }

    fn update_dialogue(self: Arc<Self>, chat_id: ChatId, state: State) -> BoxFuture<'static, Result<(), Self::Error>> {
        Box::pin(async move {
            let json = serde_json::to_value(&state).map_err(|e| DialogueStoreError::Db(e.to_string()))?;
            let c = self.pool.get().await?;
            c.execute(
                "INSERT INTO telegram_dialogues (chat_id, state, updated_at) VALUES ($1, $2, now()) \
                 ON CONFLICT (chat_id) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at",
                &[&chat_id.0, &json],
            )
            .await?;
            Ok(())
        })
    }

    fn get_dialogue(self: Arc<Self>, chat_id: ChatId) -> BoxFuture<'static, Result<Option<State>, Self::Error>> {
        Box::pin(async move {
            let c = self.pool.get().await?;
            let row = c.query_opt("SELECT state FROM telegram_dialogues WHERE chat_id = $1", &[&chat_id.0]).await?;
            let Some(row) = row else { return Ok(None) };
            let json: serde_json::Value = row.get(0);
            // A state written by an older version that no longer reads starts the chat afresh
            // rather than leaving it stuck with no answer.
            match serde_json::from_value(json) {
                Ok(s) => Ok(Some(s)),
                Err(e) => {
                    tracing::warn!(chat_id = chat_id.0, error = %e, "unreadable dialogue state; starting afresh");
                    Ok(None)
                }
            }
        })
    }
}
