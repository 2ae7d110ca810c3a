-- Idempotency-Key records of the HTTP gateway: the first response to a state-changing request,
-- replayed for a retry with the same key and the same request (fingerprint) for 24 hours.
-- A row is reserved ('in_progress', with the lock_id of the request running it) before the
-- handler runs, so a concurrent duplicate sees it; responses of 500 and above are not kept.
CREATE TABLE http_idempotency (
    -- The caller's user id, or 'anonymous' for requests without a valid access token.
    scope        text NOT NULL CHECK (char_length(scope) BETWEEN 1 AND 64),
    key          text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 200),
    -- SHA-256 (hex) of method, path, query and body.
    fingerprint  text NOT NULL,
    state        text NOT NULL CHECK (state IN ('in_progress', 'done')),
    lock_id      uuid,
    status       smallint CHECK (status BETWEEN 100 AND 599),
    content_type text,
    location     text,
    body         bytea,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (scope, key),
    CHECK (state = 'in_progress' OR (status IS NOT NULL AND body IS NOT NULL))
);
-- Expired records (older than 24 hours) are deleted by age.
CREATE INDEX http_idempotency_created_at ON http_idempotency (created_at);
