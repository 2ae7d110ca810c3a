-- Delivery of notifications (issue 4): the outbox consumer's records and durable reminders.
--
-- A notifier moves each outbox row, in one transaction, into one `deliveries` row per channel
-- the recipient has (email now; Telegram, webhooks, WebSocket later) and deletes the outbox
-- row: the outbox stays short and the booking path pays for nothing here. Sending works on
-- `deliveries` only. `dedupe_key` (per notification and channel) is unique, so the same
-- notification never becomes two deliveries, and channels pass it on (email: the Message-ID)
-- so that a recipient sees it once even if a crash makes us send it twice.
CREATE TABLE deliveries (
    id              bigserial PRIMARY KEY,
    dedupe_key      text NOT NULL UNIQUE,
    channel         text NOT NULL,
    -- An outbox notification kind (hold_created, confirmed, ...) or 'reminder'.
    kind            text NOT NULL,
    user_id         uuid NOT NULL,
    resource_id     uuid NOT NULL,
    booking_id      uuid,
    entry_id        uuid,
    -- Reminders: {"offset_minutes": 60, "starts_at": "..."}.
    payload         jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- pending: to send (again) at next_attempt_at; delivered; dead: gave up (admins may retry).
    status          text NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- While a worker sends, this is the end of its lease: a crashed worker's claim comes due again.
    next_attempt_at timestamptz NOT NULL,
    last_error      text CHECK (char_length(last_error) <= 1000),
    -- When the cause happened (the outbox row's time, or the reminder's due time).
    notified_at     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    delivered_at    timestamptz
);
-- What is due, for the workers' claim (pending rows only).
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
-- The admin listing by status, newest first.
CREATE INDEX deliveries_by_status ON deliveries (status, id);

-- Reminders before a confirmed booking starts (e.g. 24 h and 1 h). Kept in step with the
-- booking by the notifier whenever the booking's notifications pass through it: scheduled on
-- confirmation, moved on reschedule, cancelled when it is cancelled or ends otherwise.
CREATE TABLE reminders (
    booking_id     uuid NOT NULL,
    offset_minutes integer NOT NULL CHECK (offset_minutes > 0),
    resource_id    uuid NOT NULL,
    user_id        uuid NOT NULL,
    starts_at      timestamptz NOT NULL,
    due_at         timestamptz NOT NULL,
    -- skipped: already past when the booking was confirmed or moved.
    status         text NOT NULL CHECK (status IN ('scheduled', 'sent', 'cancelled', 'skipped')),
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (booking_id, offset_minutes)
);
CREATE INDEX reminders_due ON reminders (due_at) WHERE status = 'scheduled';
