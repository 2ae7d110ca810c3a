-- Accounts of the HTTP gateway: users with argon2id password hashes, and refresh tokens.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    role          text NOT NULL CHECK (role IN ('client', 'owner', 'admin')),
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL
);
-- Emails are stored lower-cased; one account per address.
CREATE UNIQUE INDEX users_email ON users (email);

-- Refresh tokens are stored only as SHA-256 hashes. Each refresh rotates the token within its
-- family; presenting a token that was already rotated (used) revokes the whole family, since
-- it means a copy of the token leaked.
CREATE TABLE refresh_tokens (
    token_hash text PRIMARY KEY,
    family_id  uuid NOT NULL,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
