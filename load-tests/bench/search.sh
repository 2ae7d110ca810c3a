#!/usr/bin/env bash
# Issue 5's availability-search figure: 1,000 hotels (20 rooms each) in 20 cities with stays
# booked across the next year, searched by closed-loop clients for random stays of 1-7 nights
# (a page of 20 hotels per search), on the release server and a fresh database.
#
#   bash load-tests/bench/search.sh            # HOTELS=1000 CLIENTS=16,64
set -euo pipefail
cd "$(dirname "$0")/../.."
HOTELS="${HOTELS:-1000}"
CLIENTS="${CLIENTS:-16,64}"
PORT="${PORT:-18092}"
DB="bench_search_$$"
export JWT_SECRET="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
cargo build --release --locked -p gateway -p load-tests --bin gateway --bin loadgen
APP_PORT="$PORT" RATE_LIMIT_BOOKINGS_PER_SEC=1000000 LOG_FORMAT=json RUST_LOG=warn \
  ./target/release/gateway >"/tmp/$DB.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; sleep 1; psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.2; done
./target/release/loadgen --base-url "http://127.0.0.1:$PORT" hotel-search \
  --hotels "$HOTELS" --cities 20 --stays 20000 --clients "$CLIENTS" --duration-secs 20
