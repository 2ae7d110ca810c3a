#!/usr/bin/env bash
# Spread load over HTTP (the shards issue): the release server on a fresh database, loadgen
# booking one ticket per request (confirmed at once) on EVENTS events chosen uniformly, closed
# loop at each of CLIENTS connections; then the naive SQL baseline for the same load
# (../shared/bench/naive-sql/spread.sql, 1,000 events, under pgbench) on the same PostgreSQL.
# Figures go to docs/benchmarks.md by hand.
#
#   bash load-tests/bench/http_spread.sh            # EVENTS=1000 CLIENTS="256" SECONDS_PER_RUN=20
#   ACCOUNTS=1 bash load-tests/bench/http_spread.sh # clients with accounts: notifications are sent
set -euo pipefail
cd "$(dirname "$0")/../.."
EVENTS="${EVENTS:-1000}"
CLIENTS="${CLIENTS:-256}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-20}"
ACCOUNTS_FLAG=""
if [ -n "${ACCOUNTS:-}" ]; then ACCOUNTS_FLAG="--accounts"; fi
PORT="${PORT:-18091}"
NAIVE="${NAIVE:-../shared/bench/naive-sql}"
DB="bench_spread_$$"
export JWT_SECRET="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
cargo build --release --locked -p gateway -p load-tests --bin gateway --bin loadgen
APP_PORT="$PORT" RATE_LIMIT_BOOKINGS_PER_SEC=1000000 LOG_FORMAT=json RUST_LOG=warn \
  ./target/release/gateway >"/tmp/$DB.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.2; done
for c in $CLIENTS; do
  ./target/release/loadgen --base-url "http://127.0.0.1:$PORT" $ACCOUNTS_FLAG flash-sale --events "$EVENTS" --capacity 1000000 \
    --clients "$c" --users 10000 --duration-secs "$SECONDS_PER_RUN" || echo "(loadgen said FAIL: see above)"
done
echo "naive SQL baseline (spread.sql, pgbench -c 16 -j 2 -T 20):"
dropdb -h 127.0.0.1 -U postgres --if-exists --force naive_spread_bench
createdb -h 127.0.0.1 -U postgres naive_spread_bench
psql -h 127.0.0.1 -U postgres -q -d naive_spread_bench -f "$NAIVE/schema.sql"
# The database name is positional: pgbench -d means --debug (and slows it).
pgbench -h 127.0.0.1 -U postgres -n -f "$NAIVE/spread.sql" -c 16 -j 2 -T 20 naive_spread_bench | grep -E "^tps"
dropdb -h 127.0.0.1 -U postgres --if-exists --force naive_spread_bench
