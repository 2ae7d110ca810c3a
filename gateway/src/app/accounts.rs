//! Creating accounts: registration, the admin bootstrap, the demo data and the bot's sign-up.

use crate::accounts::{AccountError, Role, User};
use crate::app::AppError;
use crate::auth;
use crate::state::AppState;
use engine::domain::ids::UserId;
use jiff::Timestamp;

impl From<AccountError> for AppError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::EmailTaken => AppError::conflict("email_taken", "an account with this email exists"),
            AccountError::Unavailable(d) => AppError::unavailable(d),
        }
    }
}

/// Creates an account. The password is hashed on the blocking pool (argon2id is CPU-heavy and
/// must never stall an async worker).
pub async fn create_account(
    state: &AppState,
    email: &str,
    password: &str,
    name: &str,
    role: Role,
) -> Result<User, AppError> {
    let pw = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&pw)).await.map_err(AppError::internal)??;
    let user = User {
        id: UserId::new_v7(),
        email: crate::accounts::normalize_email(email),
        name: name.trim().to_owned(),
        role,
        created_at: Timestamp::now(),
    };
    state.accounts.create_user(user.clone(), hash).await?;
    Ok(user)
}
