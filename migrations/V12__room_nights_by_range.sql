-- Give back a stay's room-nights by a range scan of the primary key, and plan the update
-- trigger's statements for the rows at hand.
--
-- Why (measured on the channel feed with 10 % cancellations, issue 6): the V10 versions
-- joined `generate_series(...)` to `room_nights`; for a transition table the planner guesses
-- 1,000 nights per stay, so it read every row of the room (a bitmap scan on `room_id` alone,
-- ~365 rows per room once a year is fed) and filtered them, for each cancelled stay: 5-8 ms
-- per batch and a quarter of PostgreSQL's CPU. `room_id = ? AND night >= ? AND night < ?` is
-- one index range per stay, whatever the planner guesses.
--
-- The update trigger's statements join the old and new transition tables. PL/pgSQL keeps one
-- plan per statement per connection, made for the sizes the tables had at the first call (a
-- statement without parameters is never re-planned for new sizes), so a plan made for a batch
-- of one (a nested loop) would then compare every old row with every new row of a batch of a
-- thousand. EXECUTE plans each run for the rows it has: about 0.1 ms, once per statement.
CREATE OR REPLACE FUNCTION room_nights_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE $q$
    DELETE FROM room_nights r
    USING old_rows o JOIN new_rows n ON n.id = o.id
    WHERE o.item_kind = 'stay' AND o.status IN ('held', 'confirmed')
      AND (n.item_kind <> 'stay' OR n.status NOT IN ('held', 'confirmed')
           OR n.room_id IS DISTINCT FROM o.room_id OR n.check_in IS DISTINCT FROM o.check_in
           OR n.check_out IS DISTINCT FROM o.check_out)
      AND r.room_id = o.room_id AND r.night >= o.check_in AND r.night < o.check_out AND r.booking_id = o.id
    $q$;
    EXECUTE $q$
    INSERT INTO room_nights (room_id, night, booking_id)
    SELECT n.room_id, n.check_in + i, n.id
    FROM new_rows n JOIN old_rows o ON o.id = n.id, generate_series(0, n.check_out - n.check_in - 1) AS i
    WHERE n.item_kind = 'stay' AND n.status IN ('held', 'confirmed')
      AND NOT (o.item_kind = 'stay' AND o.status IN ('held', 'confirmed') AND o.room_id = n.room_id
               AND o.check_in = n.check_in AND o.check_out = n.check_out)
    $q$;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION room_nights_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM room_nights r
    USING old_rows o
    WHERE o.item_kind = 'stay' AND o.status IN ('held', 'confirmed')
      AND r.room_id = o.room_id AND r.night >= o.check_in AND r.night < o.check_out AND r.booking_id = o.id;
    RETURN NULL;
END $$;
