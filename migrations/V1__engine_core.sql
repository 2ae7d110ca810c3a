-- The engine's tables. The actor of each resource decides; these constraints are the second
-- line of defence (a bug or a stale writer hits a constraint instead of double-booking).

CREATE EXTENSION IF NOT EXISTS btree_gist;

-- One row per hotel, event or provider. `version` fences writers: a commit only applies if
-- the version is the one its actor loaded. The counters mirror the active booking rows.
CREATE TABLE resources (
    id                 uuid PRIMARY KEY,
    kind               text NOT NULL CHECK (kind IN ('hotel', 'event', 'provider')),
    name               text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    owner_id           uuid NOT NULL,
    hold_ttl_secs      integer NOT NULL CHECK (hold_ttl_secs BETWEEN 1 AND 86400),
    offer_ttl_secs     integer NOT NULL CHECK (offer_ttl_secs BETWEEN 1 AND 604800),
    version            bigint NOT NULL CHECK (version >= 1),
    held_bookings      bigint NOT NULL DEFAULT 0 CHECK (held_bookings >= 0),
    held_units         bigint NOT NULL DEFAULT 0 CHECK (held_units >= 0),
    confirmed_bookings bigint NOT NULL DEFAULT 0 CHECK (confirmed_bookings >= 0),
    confirmed_units    bigint NOT NULL DEFAULT 0 CHECK (confirmed_units >= 0),
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);
CREATE INDEX resources_owner ON resources (owner_id);
CREATE INDEX resources_kind ON resources (kind, id);

-- Hotels -----------------------------------------------------------------------------------
CREATE TABLE hotels (
    resource_id          uuid PRIMARY KEY REFERENCES resources (id) ON DELETE CASCADE,
    city                 text NOT NULL CHECK (char_length(city) BETWEEN 1 AND 200),
    time_zone            text NOT NULL,
    currency             char(3) NOT NULL,
    check_out_time       time NOT NULL,
    booking_horizon_days integer NOT NULL CHECK (booking_horizon_days > 0)
);
CREATE INDEX hotels_city ON hotels (lower(city));

CREATE TABLE room_types (
    id               uuid PRIMARY KEY,
    hotel_id         uuid NOT NULL REFERENCES hotels (resource_id) ON DELETE CASCADE,
    position         integer NOT NULL,
    name             text NOT NULL,
    capacity_guests  smallint NOT NULL CHECK (capacity_guests > 0),
    base_price_minor bigint NOT NULL CHECK (base_price_minor >= 0),
    UNIQUE (hotel_id, position)
);

-- Nightly price for one date (the night that starts on it), replacing the base price.
CREATE TABLE room_prices (
    room_type_id uuid NOT NULL REFERENCES room_types (id) ON DELETE CASCADE,
    night        date NOT NULL,
    price_minor  bigint NOT NULL CHECK (price_minor >= 0),
    PRIMARY KEY (room_type_id, night)
);

CREATE TABLE rooms (
    id           uuid PRIMARY KEY,
    hotel_id     uuid NOT NULL REFERENCES hotels (resource_id) ON DELETE CASCADE,
    room_type_id uuid NOT NULL REFERENCES room_types (id) ON DELETE CASCADE,
    position     integer NOT NULL,
    number       text NOT NULL,
    UNIQUE (hotel_id, number),
    UNIQUE (hotel_id, position)
);

-- Events -----------------------------------------------------------------------------------
CREATE TABLE events (
    resource_id     uuid PRIMARY KEY REFERENCES resources (id) ON DELETE CASCADE,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    capacity        integer NOT NULL CHECK (capacity > 0),
    max_per_booking integer NOT NULL CHECK (max_per_booking > 0),
    currency        char(3) NOT NULL,
    price_minor     bigint NOT NULL CHECK (price_minor >= 0),
    -- Tickets held + confirmed, written with every commit: the database refuses an oversell.
    taken           bigint NOT NULL DEFAULT 0 CHECK (taken >= 0),
    CHECK (ends_at > starts_at),
    CHECK (taken <= capacity)
);
CREATE INDEX events_starts_at ON events (starts_at);

CREATE TABLE ticket_categories (
    id          uuid PRIMARY KEY,
    event_id    uuid NOT NULL REFERENCES events (resource_id) ON DELETE CASCADE,
    position    integer NOT NULL,
    name        text NOT NULL,
    capacity    integer NOT NULL CHECK (capacity > 0),
    price_minor bigint NOT NULL CHECK (price_minor >= 0),
    UNIQUE (event_id, position)
);

-- Providers (appointments) -----------------------------------------------------------------
CREATE TABLE providers (
    resource_id          uuid PRIMARY KEY REFERENCES resources (id) ON DELETE CASCADE,
    time_zone            text NOT NULL,
    currency             char(3) NOT NULL,
    price_minor          bigint NOT NULL CHECK (price_minor >= 0),
    slot_minutes         smallint NOT NULL CHECK (slot_minutes > 0),
    buffer_minutes       smallint NOT NULL CHECK (buffer_minutes >= 0),
    min_notice_minutes   integer NOT NULL CHECK (min_notice_minutes >= 0),
    booking_horizon_days integer NOT NULL CHECK (booking_horizon_days > 0)
);

-- Weekly working hours: local minutes after midnight, ISO weekday (1 = Monday).
CREATE TABLE provider_hours (
    provider_id  uuid NOT NULL REFERENCES providers (resource_id) ON DELETE CASCADE,
    weekday      smallint NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    start_minute smallint NOT NULL,
    end_minute   smallint NOT NULL,
    CHECK (0 <= start_minute AND start_minute < end_minute AND end_minute <= 1440),
    PRIMARY KEY (provider_id, weekday, start_minute)
);

-- Hours for one local date, replacing the weekly ones. A row with NULL minutes: closed.
CREATE TABLE provider_overrides (
    provider_id  uuid NOT NULL REFERENCES providers (resource_id) ON DELETE CASCADE,
    day          date NOT NULL,
    start_minute smallint,
    end_minute   smallint,
    CHECK ((start_minute IS NULL AND end_minute IS NULL)
        OR (0 <= start_minute AND start_minute < end_minute AND end_minute <= 1440))
);
CREATE INDEX provider_overrides_day ON provider_overrides (provider_id, day);

-- Bookings ---------------------------------------------------------------------------------
CREATE TABLE bookings (
    id                uuid PRIMARY KEY,
    resource_id       uuid NOT NULL REFERENCES resources (id),
    item_kind         text NOT NULL CHECK (item_kind IN ('stay', 'tickets', 'appointment')),
    user_id           uuid NOT NULL,
    status            text NOT NULL
                      CHECK (status IN ('held', 'confirmed', 'completed', 'released', 'expired', 'cancelled')),
    -- stay
    room_type_id      uuid,
    room_id           uuid,
    check_in          date,
    check_out         date,
    guests            smallint,
    -- tickets
    category_id       uuid,
    quantity          integer,
    -- appointment
    starts_at         timestamptz,
    ends_at           timestamptz,
    amount_minor      bigint NOT NULL CHECK (amount_minor >= 0),
    currency          char(3) NOT NULL,
    hold_expires_at   timestamptz,
    payment_ref       text CHECK (char_length(payment_ref) <= 200),
    refunded_minor    bigint NOT NULL DEFAULT 0,
    waitlist_entry_id uuid,
    idempotency_key   text CHECK (char_length(idempotency_key) <= 200),
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    CHECK (refunded_minor >= 0 AND refunded_minor <= amount_minor),
    CHECK (status <> 'held' OR hold_expires_at IS NOT NULL),
    CHECK (item_kind <> 'stay' OR (room_type_id IS NOT NULL AND room_id IS NOT NULL
                                   AND check_out > check_in AND guests > 0)),
    CHECK (item_kind <> 'tickets' OR quantity > 0),
    CHECK (item_kind <> 'appointment' OR ends_at > starts_at),
    -- No two active stays overlap on one room. Deferred: a group commit may free a room and
    -- re-let it in one transaction, and rows are written in bulk, not in decision order.
    CONSTRAINT no_overlapping_stays EXCLUDE USING gist (room_id WITH =, daterange(check_in, check_out) WITH &&)
        WHERE (item_kind = 'stay' AND status IN ('held', 'confirmed')) DEFERRABLE INITIALLY DEFERRED,
    -- No two active appointments of one provider overlap (buffers are the actor's rule).
    CONSTRAINT no_overlapping_appointments EXCLUDE USING gist (resource_id WITH =, tstzrange(starts_at, ends_at) WITH &&)
        WHERE (item_kind = 'appointment' AND status IN ('held', 'confirmed')) DEFERRABLE INITIALLY DEFERRED
);
-- Every index costs each booking written (measured: 4-10k bookings/s apiece in a flash sale),
-- so each serves several reads. By resource: loading its active bookings (status prefix) and
-- owners' listings by status and date. By user: "my bookings". Lapsing: the expiry sweeper
-- (held rows only, so confirmed bookings never enter it).
CREATE INDEX bookings_by_resource ON bookings (resource_id, status, created_at);
CREATE INDEX bookings_by_user ON bookings (user_id, created_at);
CREATE INDEX bookings_lapsing ON bookings (hold_expires_at) WHERE status = 'held';

-- Every transition: who moved which booking from what to what, when and why.
CREATE TABLE booking_history (
    -- Keyed by booking first: the history of one booking is the only way it is read.
    booking_id  uuid NOT NULL,
    id          bigserial,
    resource_id uuid NOT NULL,
    from_status text,
    to_status   text NOT NULL,
    at          timestamptz NOT NULL,
    by_role     text NOT NULL CHECK (by_role IN ('client', 'owner', 'admin', 'system')),
    by_user     uuid,
    reason      text NOT NULL,
    PRIMARY KEY (booking_id, id)
);

-- Waitlist ---------------------------------------------------------------------------------
CREATE TABLE waitlist_entries (
    id               uuid PRIMARY KEY,
    resource_id      uuid NOT NULL REFERENCES resources (id),
    user_id          uuid NOT NULL,
    wish             jsonb NOT NULL,
    status           text NOT NULL
                     CHECK (status IN ('waiting', 'offered', 'accepted', 'declined', 'offer_expired', 'left')),
    position         bigint NOT NULL,
    offer_booking_id uuid,
    offer_expires_at timestamptz,
    joined_at        timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    CHECK (status <> 'offered' OR (offer_booking_id IS NOT NULL AND offer_expires_at IS NOT NULL))
);
-- One active entry per user and wish; FIFO positions unique per resource.
CREATE UNIQUE INDEX waitlist_one_active_per_wish ON waitlist_entries (resource_id, user_id, wish)
    WHERE status IN ('waiting', 'offered');
CREATE UNIQUE INDEX waitlist_position ON waitlist_entries (resource_id, position);
-- "My waitlist entries", newest first.
CREATE INDEX waitlist_by_user ON waitlist_entries (user_id, joined_at);

-- Transactional outbox: one row per notification, written with the change that causes it.
-- The table is the queue of what is still to deliver: a delivery worker deletes a row once
-- every channel has it (delivery records live in their own tables), so the primary key alone
-- orders the pending work and the booking path pays for no second index.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    resource_id uuid NOT NULL,
    kind        text NOT NULL,
    user_id     uuid NOT NULL,
    booking_id  uuid,
    entry_id    uuid,
    payload     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL
);

-- The first result of a command sent with an idempotency key (per resource and sender).
CREATE TABLE idempotency_keys (
    resource_id uuid NOT NULL REFERENCES resources (id),
    scope       text NOT NULL,
    key         text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 200),
    fingerprint text NOT NULL,
    result      jsonb NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (resource_id, scope, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
