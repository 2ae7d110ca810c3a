#!/usr/bin/env bash
# Database outage drill, long form: stop the machine's PostgreSQL under load
# (pg_ctlcluster ... stop -m immediate), watch the server answer 503 store_unavailable, start
# PostgreSQL again and check the server recovers by itself with nothing acknowledged lost.
# It stops the shared PostgreSQL: do not run it while tests run. The short form runs in CI
# through a TCP proxy instead (gateway/tests/api/drills.rs).
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT="${PORT:-18082}"
DB="drill_outage_$$"
CLUSTER="$(ls /etc/postgresql | head -n 1)"
export JWT_SECRET="drill-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
cargo build --release --locked -p gateway -p load-tests --bin gateway --bin loadgen
APP_PORT="$PORT" RATE_LIMIT_BOOKINGS_PER_SEC=1000000 LOG_FORMAT=json RUST_LOG=warn \
  ./target/release/gateway >>"/tmp/$DB.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.2; done
./target/release/loadgen --base-url "http://127.0.0.1:$PORT" --json flash-sale \
  --capacity 1000000 --rate 1000 --duration-secs 20 >"/tmp/$DB.json" || true &
load=$!
sleep 5
pg_ctlcluster --skip-systemctl-redirect "$CLUSTER" main stop -m immediate
echo "PostgreSQL stopped; the server says:"
curl -s -o /dev/null -w '%{http_code} in %{time_total}s\n' "http://127.0.0.1:$PORT/ready"
sleep 5
pg_ctlcluster --skip-systemctl-redirect "$CLUSTER" main start
echo "PostgreSQL started again"
wait "$load" || true
python3 - "/tmp/$DB.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"outcomes: {r['outcomes']}")
outage = {k: v for k, v in r["outcomes"].items() if k.startswith("503")}
print(f"503 during the outage: {outage}")
late = r["outcomes"].get("201 confirmed", 0)
print("PASS" if r["invariants_pass"] and outage and late else "FAIL")
sys.exit(0 if r["invariants_pass"] and outage else 1)
PY
curl -fs "http://127.0.0.1:$PORT/ready"; echo
kill "$pid"
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE $DB WITH (FORCE)"
