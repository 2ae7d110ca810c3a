-- Payments of the gateway (through the simulated payment provider). A client starts paying for
-- a held booking; the provider reports the result later through a signed webhook, and the
-- gateway then confirms or releases the booking. Only the gateway writes these tables.

CREATE TABLE payments (
    id             uuid PRIMARY KEY,
    -- The booking paid for and its resource (the engine's tables; no foreign key, so that the
    -- engine's rows stay its own business).
    booking_id     uuid NOT NULL,
    resource_id    uuid NOT NULL,
    -- The client whose booking it is (also when an admin started the payment for them).
    user_id        uuid NOT NULL,
    -- The booking's price when the payment started, in minor units (cents).
    amount_minor   bigint NOT NULL CHECK (amount_minor >= 0),
    currency       char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- pending: waiting for the provider; succeeded: paid and the booking confirmed;
    -- failed: not paid, the hold released; refunded: paid, but the money went back
    -- (e.g. the hold expired and its capacity was taken before the payment arrived).
    status         text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'refunded')),
    -- What the simulated provider will report, when a test or demo chose it (default: succeed).
    chosen_outcome text CHECK (chosen_outcome IN ('succeed', 'fail')),
    -- Why the payment failed or was refunded, for people reading it.
    failure_reason text CHECK (char_length(failure_reason) <= 500),
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    CHECK (status <> 'pending' OR failure_reason IS NULL),
    CHECK (updated_at >= created_at)
);
-- The payments of a booking, and at most one pending payment per booking.
CREATE INDEX payments_by_booking ON payments (booking_id, created_at);
CREATE UNIQUE INDEX payments_one_pending_per_booking ON payments (booking_id) WHERE status = 'pending';

-- Every webhook delivery processed, by the provider's event id: a delivery that arrives again
-- (the provider retries until it gets a 2xx) is answered with the stored result, no second effect.
CREATE TABLE payment_webhook_events (
    event_id    text PRIMARY KEY CHECK (char_length(event_id) BETWEEN 1 AND 200),
    payment_id  uuid NOT NULL REFERENCES payments (id),
    received_at timestamptz NOT NULL,
    -- The payment's status after the event was processed.
    result      text NOT NULL CHECK (result IN ('succeeded', 'failed', 'refunded'))
);
CREATE INDEX payment_webhook_events_by_payment ON payment_webhook_events (payment_id);
