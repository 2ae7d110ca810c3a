-- Dashboard counters (issue 6): per resource and day, what is booked and what was cancelled.
-- Written by the engine in the same transaction as the bookings they count (Change::Tally,
-- one upsert per batch), so a year of a hotel is at most 366 rows to read however many
-- bookings it has, and the booking path pays no extra index on `bookings`.
-- "Booked" = confirmed or completed; the day is the night of a stay (hotel's local date), the
-- day of sale of tickets (UTC) or the local date of an appointment. See engine/src/domain/stats.rs.
CREATE TABLE daily_stats (
    resource_id     uuid NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    day             date NOT NULL,
    booked_units    bigint NOT NULL DEFAULT 0,
    booked_minutes  bigint NOT NULL DEFAULT 0,
    booked_minor    bigint NOT NULL DEFAULT 0,
    cancelled_units bigint NOT NULL DEFAULT 0,
    cancelled_minor bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (resource_id, day)
);

-- Backfill from the bookings written before this migration, with the same rules as the engine
-- (an amount spread evenly over a stay's nights, the first nights taking the remainder).
INSERT INTO daily_stats (resource_id, day, booked_units, booked_minutes, booked_minor, cancelled_units, cancelled_minor)
SELECT resource_id, day,
       sum(CASE WHEN booked THEN units ELSE 0 END),
       sum(CASE WHEN booked THEN minutes ELSE 0 END),
       sum(CASE WHEN booked THEN minor ELSE 0 END),
       sum(CASE WHEN booked THEN 0 ELSE units END),
       sum(CASE WHEN booked THEN 0 ELSE minor END)
FROM (
    SELECT b.resource_id, (b.check_in + i) AS day, 1::bigint AS units, 0::bigint AS minutes,
           b.amount_minor / (b.check_out - b.check_in)
             + CASE WHEN i < b.amount_minor % (b.check_out - b.check_in) THEN 1 ELSE 0 END AS minor,
           b.status IN ('confirmed', 'completed') AS booked
    FROM bookings b, generate_series(0, b.check_out - b.check_in - 1) AS i
    WHERE b.item_kind = 'stay' AND b.status IN ('confirmed', 'completed', 'cancelled')
    UNION ALL
    SELECT b.resource_id, (b.created_at AT TIME ZONE 'UTC')::date, b.quantity, 0, b.amount_minor,
           b.status IN ('confirmed', 'completed')
    FROM bookings b
    WHERE b.item_kind = 'tickets' AND b.status IN ('confirmed', 'completed', 'cancelled')
    UNION ALL
    SELECT b.resource_id, (b.starts_at AT TIME ZONE p.time_zone)::date, 1,
           (extract(epoch FROM b.ends_at - b.starts_at) / 60)::bigint, b.amount_minor,
           b.status IN ('confirmed', 'completed')
    FROM bookings b JOIN providers p ON p.resource_id = b.resource_id
    WHERE b.item_kind = 'appointment' AND b.status IN ('confirmed', 'completed', 'cancelled')
) AS t
GROUP BY resource_id, day;
