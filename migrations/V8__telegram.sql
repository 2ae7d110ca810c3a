-- The Telegram bot (`bots/src/telegram`, wired in `gateway/src/telegram.rs`).

-- Which chat belongs to which account: one chat per account and one account per chat.
-- `store::recipients` reads `chat_id` to reach the user on the "telegram" channel.
CREATE TABLE telegram_links (
    user_id          uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    chat_id          bigint NOT NULL UNIQUE,
    telegram_user_id bigint NOT NULL,
    linked_at        timestamptz NOT NULL
);

-- One-time link codes issued to a signed-in user (`POST /api/v1/me/telegram/link-code`) and
-- redeemed with `/start <code>` or `/link <code>`. Only the SHA-256 of the code is stored;
-- a code is good once and for minutes.
CREATE TABLE telegram_link_codes (
    code_hash  text PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX telegram_link_codes_expiry ON telegram_link_codes (expires_at);

-- Dialogue state per chat (teloxide's dialogue `Storage`), so a restart resumes a
-- conversation where it was.
CREATE TABLE telegram_dialogues (
    chat_id    bigint PRIMARY KEY,
    state      jsonb NOT NULL,
    updated_at timestamptz NOT NULL
);
