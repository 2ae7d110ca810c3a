#!/usr/bin/env bash
# Crash drill, long form: load the server (release build) with an open-loop flash sale,
# kill -9 it mid-run, restart it, and check in PostgreSQL that every booking acknowledged
# before the kill is there and nothing is oversold. The short form runs in CI
# (gateway/tests/api/drills.rs).
#
#   bash load-tests/drills/crash.sh            # RATE=2000 SECONDS_UNDER_LOAD=20 by default
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE="${RATE:-2000}"
SECONDS_UNDER_LOAD="${SECONDS_UNDER_LOAD:-20}"
PORT="${PORT:-18081}"
DB="drill_crash_$$"
export JWT_SECRET="drill-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
cargo build --release --locked -p gateway -p load-tests --bin gateway --bin loadgen
start() {
  APP_PORT="$PORT" RATE_LIMIT_BOOKINGS_PER_SEC=1000000 LOG_FORMAT=json RUST_LOG=warn \
    ./target/release/gateway >>"/tmp/$DB.log" 2>&1 &
  echo $!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null && return 0; sleep 0.2; done
  echo "server did not start; see /tmp/$DB.log" >&2; exit 1
}
pid="$(start | head -n 1)"
# The load outlives the server: its requests after the kill fail, and loadgen records only
# what was acknowledged.
./target/release/loadgen --base-url "http://127.0.0.1:$PORT" --json flash-sale \
  --capacity 1000000 --rate "$RATE" --duration-secs "$SECONDS_UNDER_LOAD" >"/tmp/$DB.json" || true &
load=$!
sleep $((SECONDS_UNDER_LOAD / 2))
kill -9 "$pid"
echo "killed the server (pid $pid) mid-run"
wait "$load" || true
pid="$(start | head -n 1)"
echo "restarted (pid $pid); checking invariants"
# loadgen checked the database at the end of its run (after the kill): every booking it saw
# acknowledged must be there. Its own verdict also counts the requests the kill cut off, so
# read the invariants part. Then the check again, with the restarted server running.
python3 - "/tmp/$DB.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"acknowledged before the kill: {r['bookings']}; outcomes: {r['outcomes']}")
bad = [c for c in r["invariants"] if c["violations"]]
for c in bad:
    print("FAIL", c["check"], c["violations"][:5])
print("PASS" if r["invariants_pass"] else "FAIL")
sys.exit(0 if r["invariants_pass"] else 1)
PY
./target/release/loadgen --base-url "http://127.0.0.1:$PORT" check
kill "$pid"
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE $DB WITH (FORCE)"
