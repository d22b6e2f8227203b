#!/usr/bin/env bash
# Measures what hostile clients do to a normal client, and how long
# SIGTERM takes with a slow client connected (docs/operations.md quotes
# the figures). Loopback only; every loop is bounded.
#
#   bash scripts/hostile-clients.sh                 # this tree's release build
#   bash scripts/hostile-clients.sh path/to/binary  # any build, e.g. an older one
#
# The service runs under the usual soft open-file limit of 1024 (the hard
# limit is left as it is: raising the soft one is the service's job).
# HOSTILE (default 1000), REQUESTS (default 400) and MAX_SECONDS (default
# 120, per run) size the runs; TIMEOUT (default 5) is how long a normal
# request may take before it counts as failed.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${1:-target/release/idemproof-service}
if [ "$#" -eq 0 ]; then cargo build --release --locked -p idemproof-service >&2; fi
HOSTILE=${HOSTILE:-1000}
REQUESTS=${REQUESTS:-400}
MAX_SECONDS=${MAX_SECONDS:-120}
TIMEOUT=${TIMEOUT:-5}
DRAIN=${DRAIN:-5s}
PORT=${PORT:-18080}
# Soft:hard open-file limit of the service (empty hard: left as it is).
NOFILE=${NOFILE:-1024:}

start() {
  AUTH_SECRET="measure-$RANDOM$RANDOM" BIND="127.0.0.1:$PORT" RUST_LOG=warn \
    SHUTDOWN_DRAIN_TIMEOUT="$DRAIN" prlimit --nofile="$NOFILE" "$BIN" >/dev/null 2>&1 &
  PID=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return; fi
    sleep 0.1
  done
  echo "the service did not start" >&2
  exit 1
}

stop() { kill -KILL "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
trap stop EXIT

for mode in none idle slowloris; do
  start
  python3 scripts/hostile_clients.py --target "127.0.0.1:$PORT" --mode "$mode" \
    --hostile "$HOSTILE" --requests "$REQUESTS" --max-seconds "$MAX_SECONDS" --timeout "$TIMEOUT"
  stop
done

# SIGTERM with one slowloris client connected: seconds until the process
# exits (given up after 60 s).
start
exec 4<>"/dev/tcp/127.0.0.1/$PORT"
printf 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n' >&4
sleep 0.5
t0=$(date +%s.%N)
kill -TERM "$PID"
exited=false
for _ in $(seq 600); do
  if ! kill -0 "$PID" 2>/dev/null; then exited=true; break; fi
  sleep 0.1
done
t1=$(date +%s.%N)
exec 4>&-
printf '{"sigterm_with_slow_client": {"drain_deadline": "%s", "exited": %s, "seconds": %.2f}}\n' \
  "$DRAIN" "$exited" "$(awk "BEGIN { print $t1 - $t0 }")"
