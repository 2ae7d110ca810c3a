#!/usr/bin/env bash
# Issue 6's feed figure: seed 000's events sent by ingest-gen in batches of 1,000 to the release
# server, as fast as it answers, each run on a fresh database (so every booking event is a
# new one-night stay, a real write), then the rows in PostgreSQL are counted against what the
# server acknowledged.
#
#   bash load-tests/bench/ingest.sh      # HOTELS="8 24 64" CANCEL="0 0.1" SECONDS_EACH=10 ROUNDS=2
set -euo pipefail
cd "$(dirname "$0")/../.."
HOTELS="${HOTELS:-8 24 64}"
CANCEL="${CANCEL:-0 0.1}"
SECONDS_EACH="${SECONDS_EACH:-10}"
ROUNDS="${ROUNDS:-2}"
PORT="${PORT:-18093}"
export JWT_SECRET="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cargo build --release --locked -p gateway -p load-tests --bin gateway --bin ingest-gen

pid=""
db=""
stop() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ -n "$db" ]; then psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true; fi
  pid=""
  db=""
}
trap stop EXIT

for round in $(seq 1 "$ROUNDS"); do
  for cancel in $CANCEL; do
    for hotels in $HOTELS; do
      db="bench_ingest_$$_${round}_${hotels}"
      DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" APP_PORT="$PORT" LOG_FORMAT=json RUST_LOG=warn \
        ./target/release/gateway >"/tmp/$db.log" 2>&1 &
      pid=$!
      for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.2; done
      echo "== round $round, $hotels hotels x 300 rooms, cancel ratio $cancel"
      ./target/release/ingest-gen --url "http://127.0.0.1:$PORT" --hotels "$hotels" --rooms 300 --year 2028 \
        --rate 0 --batch 1000 --concurrency 8 --seconds "$SECONDS_EACH" --cancel-ratio "$cancel" \
        --seed "$round" | sed -n '2,/^request latency/p'
      # Durable: every acknowledged booking is a row, every cancelled one too.
      psql -h 127.0.0.1 -U postgres -d "$db" -tAc \
        "SELECT 'in PostgreSQL: ' || count(*) FILTER (WHERE status = 'confirmed') || ' confirmed, '
                || count(*) FILTER (WHERE status = 'cancelled') || ' cancelled' FROM bookings"
      stop
    done
  done
done
