#!/usr/bin/env bash
# The OpenAPI contract, checked from outside: schemathesis (PyPI) generates requests from
# /openapi.json and sends them to the real server on a fresh PostgreSQL database, once with a
# client's token and once with an owner's. Every answer must be a documented status, match its
# documented schema, carry its required headers, and never be a 5xx; a method the spec does not
# list must be 405. README ("The OpenAPI contract") says what is left out and why.
#
# Run by .ci/run after the tests (which build target/debug/gateway); by hand: bash .ci/contract.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

SCHEMATHESIS_VERSION=4.32.5
CHECKS=not_a_server_error,status_code_conformance,response_schema_conformance,missing_required_header,unsupported_method,ignored_auth
# Fixed seed and a bound on examples per operation: the same requests every run, a few minutes.
SEED="${CONTRACT_SEED:-1}"
MAX_EXAMPLES="${CONTRACT_MAX_EXAMPLES:-15}"

fail() {
  echo "FAIL (contract): $*" >&2
  exit 1
}

# schemathesis in its own virtualenv, kept between runs (pinned: its checks change between versions).
venv="${CONTRACT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/reservation-engine/schemathesis-$SCHEMATHESIS_VERSION}"
if [ ! -x "$venv/bin/schemathesis" ]; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv" || fail "python3 -m venv failed"
  "$venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION" || fail "pip install schemathesis failed"
fi

bin=target/debug/gateway
if [ ! -x "$bin" ]; then
  echo "building the gateway"
  cargo build -p gateway --locked
fi

work="$(mktemp -d)"
db="contract_$(date +%s)_$$"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  psql -h 127.0.0.1 -U postgres -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" postgres >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
psql -h 127.0.0.1 -U postgres -q -c "CREATE DATABASE $db" postgres || fail "could not create database $db"

# Demo data gives the generated requests real resources to reach; the rate limits are raised
# so that schemathesis's burst is not answered 429 everywhere (429 is documented, but then
# nothing behind the limiter would be exercised).
env -i PATH="$PATH" HOME="$HOME" \
  APP_HOST=127.0.0.1 APP_PORT="$port" \
  DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" \
  DEMO_DATA=true \
  JWT_SECRET="contract-$(date +%s%N)-$$-not-a-real-secret" \
  ACCESS_TOKEN_TTL_SECS=3600 \
  RATE_LIMIT_AUTH_PER_MIN=1000000 RATE_LIMIT_BOOKINGS_PER_SEC=1000000 \
  LOG_FORMAT=json RUST_LOG=warn \
  "$bin" >"$work/server.log" 2>&1 &
server_pid=$!

base="http://127.0.0.1:$port"
for _ in $(seq 1 120); do
  curl -fsS "$base/ready" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { tail -n 50 "$work/server.log" >&2; fail "the gateway exited at start"; }
  sleep 0.5
done
curl -fsS "$base/ready" >/dev/null || { tail -n 50 "$work/server.log" >&2; fail "the gateway is not ready"; }

token_of() {
  curl -fsS -H 'content-type: application/json' \
    -d "{\"email\": \"$1\", \"password\": \"demo-password\"}" "$base/api/v1/auth/login" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}

status=0
for who in client owner; do
  token="$(token_of "$who@demo.example")" || fail "could not sign in as $who@demo.example"
  echo "contract: schemathesis $SCHEMATHESIS_VERSION as $who (seed $SEED, at most $MAX_EXAMPLES examples per operation)"
  # Run from the scratch folder so hypothesis's example database lands there, not in the repo;
  # the hooks give each well-formed Idempotency-Key a fresh value (.ci/contract_hooks.py).
  if ! (cd "$work" && PYTHONPATH="$repo/.ci" SCHEMATHESIS_HOOKS=contract_hooks "$venv/bin/schemathesis" run "$base/openapi.json" \
    --checks "$CHECKS" \
    --header "Authorization: Bearer $token" \
    --seed "$SEED" --max-examples "$MAX_EXAMPLES" --workers 2 \
    --request-timeout 20 --no-color); then
    echo "contract: FAILED as $who" >&2
    status=1
  fi
done

if grep -q '"level":"ERROR"' "$work/server.log"; then
  echo "contract: the server logged errors:" >&2
  grep '"level":"ERROR"' "$work/server.log" | tail -n 20 >&2
  status=1
fi
[ "$status" -eq 0 ] || { tail -n 30 "$work/server.log" >&2; fail "schemathesis found answers the OpenAPI does not promise"; }
echo "contract: passed for client and owner"
