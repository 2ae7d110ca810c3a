#!/usr/bin/env bash
# Issue 5's HTTP flash-sale benchmark in one run on this machine: the release server on a
# fresh database, loadgen closed loop (several client counts) and open loop (a fixed rate),
# then the naive SQL baseline (../shared/bench/naive-sql/hot.sql under pgbench) on the same
# PostgreSQL. Figures go to docs/benchmarks.md by hand.
#
#   bash load-tests/bench/http_flash_sale.sh            # CLIENTS="100 1000" RATES="5000 10000"
set -euo pipefail
cd "$(dirname "$0")/../.."
CLIENTS="${CLIENTS:-100 1000}"
RATES="${RATES:-5000 10000}"
PORT="${PORT:-18090}"
NAIVE="${NAIVE:-../shared/bench/naive-sql}"
DB="bench_http_$$"
export JWT_SECRET="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
cargo build --release --locked -p gateway -p load-tests --bin gateway --bin loadgen
APP_PORT="$PORT" RATE_LIMIT_BOOKINGS_PER_SEC=1000000 LOG_FORMAT=json RUST_LOG=warn \
  ./target/release/gateway >"/tmp/$DB.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.2; done
for c in $CLIENTS; do
  ./target/release/loadgen --base-url "http://127.0.0.1:$PORT" flash-sale --capacity 200000 --clients "$c" --users 10000 --duration-secs 30 || echo "(loadgen said FAIL: see above)"
done
for r in $RATES; do
  ./target/release/loadgen --base-url "http://127.0.0.1:$PORT" flash-sale --capacity 1000000 --rate "$r" --duration-secs 10 --users 10000 || echo "(loadgen said FAIL: see above)"
done
echo "naive SQL baseline (hot.sql, pgbench -c 16 -j 2 -T 20):"
dropdb -h 127.0.0.1 -U postgres --if-exists --force naive_http_bench
createdb -h 127.0.0.1 -U postgres naive_http_bench
psql -h 127.0.0.1 -U postgres -q -d naive_http_bench -f "$NAIVE/schema.sql"
# The database name is positional: pgbench -d means --debug (and slows it).
pgbench -h 127.0.0.1 -U postgres -n -f "$NAIVE/hot.sql" -c 16 -j 2 -T 20 naive_http_bench | grep -E "^tps"
dropdb -h 127.0.0.1 -U postgres --if-exists --force naive_http_bench
