#!/usr/bin/env bash
# Issue 15's burst of new connections: the release server (in-memory store, nothing else
# running) with HTTP_BACKLOG=128 (the old fixed backlog) and with the default, each hit by
# bursts of 200 and 1,000 connections opened at once (burst.py). Figures go to
# docs/benchmarks.md by hand.
#
#   bash load-tests/bench/burst.sh            # BACKLOGS="128 4096" SIZES="200 1000"
set -euo pipefail
cd "$(dirname "$0")/../.."
BACKLOGS="${BACKLOGS:-128 4096}"
SIZES="${SIZES:-200 1000}"
PORT="${PORT:-18091}"
cargo build --release --locked -p gateway --bin gateway
echo "net.core.somaxconn = $(cat /proc/sys/net/core/somaxconn) (the kernel caps the backlog at it)"
for b in $BACKLOGS; do
  JWT_SECRET="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" APP_PORT="$PORT" HTTP_BACKLOG="$b" \
    LOG_FORMAT=json RUST_LOG=warn ./target/release/gateway >"/tmp/burst_$b.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.2; done
  echo "HTTP_BACKLOG=$b ($(ss -ltnH "sport = :$PORT" | awk '{print "listening with backlog " $3}'))"
  for n in $SIZES; do python3 load-tests/bench/burst.py "http://127.0.0.1:$PORT/health" "$n" 10; done
  kill "$pid"; wait "$pid" || true
done
