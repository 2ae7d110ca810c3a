#!/usr/bin/env bash
# Issue 5's other scenarios in one run on this machine, each on a fresh database behind the
# release server: (b) hotel rush, (c) appointments, (d) mixed read/write; each closed loop and
# open loop, each ending with loadgen's invariant check in PostgreSQL (PASS or FAIL).
#
#   bash load-tests/bench/scenarios.sh          # CLIENTS=200 RATE=2000 SECS=20
set -euo pipefail
cd "$(dirname "$0")/../.."
CLIENTS="${CLIENTS:-200}"
RATE="${RATE:-2000}"
SECS="${SECS:-20}"
PORT="${PORT:-18093}"
export JWT_SECRET="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cargo build --release --locked -p gateway -p load-tests --bin gateway --bin loadgen
pid=""
DB=""
stop() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ -n "$DB" ]; then psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true; fi
  pid=""
}
trap stop EXIT
# A fresh server and database for each run, so one run's rows do not slow the next.
run() {
  stop
  DB="bench_scen_$$_$RANDOM"
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
  APP_PORT="$PORT" RATE_LIMIT_BOOKINGS_PER_SEC=1000000 LOG_FORMAT=json RUST_LOG=warn \
    ./target/release/gateway >"/tmp/$DB.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.2; done
  ./target/release/loadgen --base-url "http://127.0.0.1:$PORT" "$@" || echo "(loadgen said FAIL: see above)"
}
HOTELS="--hotels 1000 --cities 20 --stays 20000"
run hotel-rush $HOTELS --cancel-pct 20 --users 10000 --clients "$CLIENTS" --duration-secs "$SECS"
run hotel-rush $HOTELS --cancel-pct 20 --users 10000 --rate "$RATE" --duration-secs "$SECS"
run appointments --providers 200 --users 10000 --clients "$CLIENTS" --duration-secs "$SECS"
run appointments --providers 200 --users 10000 --rate "$RATE" --duration-secs 5
run mixed $HOTELS --users 10000 --clients "$CLIENTS" --duration-secs "$SECS"
run mixed $HOTELS --users 10000 --rate "$RATE" --duration-secs "$SECS"
