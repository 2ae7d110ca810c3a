-- Which gateway process holds an in-progress Idempotency-Key reservation. Each process writes
-- a heartbeat row at start and about every second; a reservation whose process stopped beating
-- (it crashed, or was killed) is taken over within seconds by a retry, instead of answering
-- 409 idempotency_key_in_use until the 60 s limit on reservations passes.
CREATE TABLE gateway_instances (
    id           uuid PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
-- NULL for reservations made before this migration: no process beats for them.
ALTER TABLE http_idempotency ADD COLUMN instance_id uuid;
