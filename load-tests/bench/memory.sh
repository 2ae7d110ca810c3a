#!/usr/bin/env bash
# Issue 5's memory figure: the release server's resident memory with COUNT (default 100,000)
# events each read once (an actor in memory for each), on a fresh database.
#
#   bash load-tests/bench/memory.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
COUNT="${COUNT:-100000}"
PORT="${PORT:-18091}"
DB="bench_memory_$$"
export JWT_SECRET="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
cargo build --release --locked -p gateway -p load-tests --bin gateway --bin loadgen
APP_PORT="$PORT" LOG_FORMAT=json RUST_LOG=warn ./target/release/gateway >"/tmp/$DB.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; sleep 1; psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.2; done
# The database URL is not passed: the invariant check is not the point here.
DATABASE_URL= ./target/release/loadgen --base-url "http://127.0.0.1:$PORT" many-resources --count "$COUNT" --server-pid "$pid"
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E "^engine_active_resources" || true
