-- Integration keys (issue 6): long-lived credentials with which a channel manager sends a
-- hotel's feed (`POST /api/v1/ingest`) without a person's login. An owner (or admin) makes
-- one, optionally limited to some of their hotels; the key is shown once and only its
-- SHA-256 is kept (it is 32 random bytes, so a fast hash is enough: nothing to guess).
-- A key acts as its owner, only on the feed, only while the owner is still staff.
CREATE TABLE integration_keys (
    id           uuid PRIMARY KEY,
    owner_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    key_hash     text NOT NULL UNIQUE,
    -- The key's first characters, to tell keys apart in a list without the secret.
    key_prefix   text NOT NULL,
    -- NULL: every hotel the owner has, now or later. Otherwise only these.
    hotel_ids    uuid[] CHECK (hotel_ids IS NULL OR cardinality(hotel_ids) BETWEEN 1 AND 100),
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX integration_keys_owner ON integration_keys (owner_id, created_at) WHERE revoked_at IS NULL;
