-- Unscoped booking listings (an admin's view of everything) read recent windows of created_at
-- first (see list_bookings in engine/src/store/postgres.rs). Bookings are inserted in
-- created_at order, so a BRIN index of block ranges serves those windows; unlike a btree it
-- adds almost nothing to each booking written (measured: 24 kB for 1M rows).
CREATE INDEX bookings_created ON bookings USING brin (created_at);
