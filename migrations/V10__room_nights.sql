-- The database's guard against two active stays on one room-night, as a B-tree instead of a
-- GiST exclusion (issue 6). Why: profiling the channel feed (one-night stays in batches of
-- 1,000) showed the exclusion constraint `no_overlapping_stays` taking about half of all CPU
-- on the machine: each insert searched and grew a GiST index over (room_id, daterange). A row
-- per active room-night under a unique B-tree key says the same thing ("no room-night is held
-- by two active stays") at a fraction of the cost, for every stay, not only the feed's.
--
-- The rows are kept by statement-level triggers on `bookings` (one run per COPY or UPDATE,
-- reading its transition tables), so the guard holds whoever writes `bookings`: the engine,
-- an operator in psql, a future tool. The engine never writes this table itself.
--
-- Deferred, like the exclusion it replaces: a group commit may free a room-night and let it
-- again in one transaction, and rows are written in bulk, not in decision order.
CREATE TABLE room_nights (
    room_id    uuid NOT NULL,
    night      date NOT NULL,
    booking_id uuid NOT NULL,
    CONSTRAINT one_active_stay_per_room_night PRIMARY KEY (room_id, night) DEFERRABLE INITIALLY DEFERRED
);

-- "Active" is the same predicate the exclusion had: a held or confirmed stay.
CREATE FUNCTION room_nights_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO room_nights (room_id, night, booking_id)
    SELECT n.room_id, n.check_in + i, n.id
    FROM new_rows n, generate_series(0, n.check_out - n.check_in - 1) AS i
    WHERE n.item_kind = 'stay' AND n.status IN ('held', 'confirmed');
    RETURN NULL;
END $$;

-- A stay that stopped being active, moved to another room or changed dates gives back the
-- nights it had (found by its old room and dates: no index on booking_id to pay for on every
-- insert) and takes its new ones. Rows whose stay did not change touch nothing.
CREATE FUNCTION room_nights_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM room_nights r
    USING old_rows o JOIN new_rows n ON n.id = o.id, generate_series(0, o.check_out - o.check_in - 1) AS i
    WHERE o.item_kind = 'stay' AND o.status IN ('held', 'confirmed')
      AND (n.item_kind <> 'stay' OR n.status NOT IN ('held', 'confirmed')
           OR n.room_id IS DISTINCT FROM o.room_id OR n.check_in IS DISTINCT FROM o.check_in
           OR n.check_out IS DISTINCT FROM o.check_out)
      AND r.room_id = o.room_id AND r.night = o.check_in + i AND r.booking_id = o.id;
    INSERT INTO room_nights (room_id, night, booking_id)
    SELECT n.room_id, n.check_in + i, n.id
    FROM new_rows n JOIN old_rows o ON o.id = n.id, generate_series(0, n.check_out - n.check_in - 1) AS i
    WHERE n.item_kind = 'stay' AND n.status IN ('held', 'confirmed')
      AND NOT (o.item_kind = 'stay' AND o.status IN ('held', 'confirmed') AND o.room_id = n.room_id
               AND o.check_in = n.check_in AND o.check_out = n.check_out);
    RETURN NULL;
END $$;

CREATE FUNCTION room_nights_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM room_nights r
    USING old_rows o, generate_series(0, o.check_out - o.check_in - 1) AS i
    WHERE o.item_kind = 'stay' AND o.status IN ('held', 'confirmed')
      AND r.room_id = o.room_id AND r.night = o.check_in + i AND r.booking_id = o.id;
    RETURN NULL;
END $$;

INSERT INTO room_nights (room_id, night, booking_id)
SELECT b.room_id, b.check_in + i, b.id
FROM bookings b, generate_series(0, b.check_out - b.check_in - 1) AS i
WHERE b.item_kind = 'stay' AND b.status IN ('held', 'confirmed');

CREATE TRIGGER room_nights_insert AFTER INSERT ON bookings
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION room_nights_after_insert();
CREATE TRIGGER room_nights_update AFTER UPDATE ON bookings
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION room_nights_after_update();
CREATE TRIGGER room_nights_delete AFTER DELETE ON bookings
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION room_nights_after_delete();

ALTER TABLE bookings DROP CONSTRAINT no_overlapping_stays;
