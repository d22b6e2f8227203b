#!/usr/bin/env bash
# A CPU profile of the service on its keyed-creation path, as a flame graph.
#
# Starts durable Postgres in a container (fsync and synchronous_commit on,
# reached at the container's bridge address, as `idemproof load` does), the
# release service over it, and wrk sending keyed creations (a new
# Idempotency-Key per request, 16 connections); after a warm-up it records
# the service process alone with perf's software clock (`cpu-clock`, which
# works in VMs without hardware counters) and call graphs, folds the stacks
# with inferno and draws the flame graph.
#
#   bash scripts/profile.sh after                 # docs/img/flame-keyed-after.svg
#   bash scripts/profile.sh before path/to/binary # any build of idemproof-service
#
# Needs Docker, perf (`apt-get install linux-perf`), wrk, python3 and
# inferno (`cargo install inferno`). SECONDS_RECORDED (default 10),
# CONNECTIONS (16), POOL (16) and FREQ (sampling Hz, 999) vary it. The
# perf data and folded stacks stay in target/idemproof/profile-LABEL/.
# Loopback and the container's address only; every loop is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

LABEL=${1:-after}
BIN=${2:-target/release/idemproof-service}
if [ "$#" -lt 2 ]; then cargo build --release --locked -p idemproof-service >&2; fi
SECONDS_RECORDED=${SECONDS_RECORDED:-10}
CONNECTIONS=${CONNECTIONS:-16}
POOL=${POOL:-16}
FREQ=${FREQ:-999}
PORT=${PORT:-18090}
OUT=target/idemproof/profile-$LABEL
SVG=${SVG:-docs/img/flame-keyed-$LABEL.svg}
mkdir -p "$OUT"

for tool in docker perf wrk python3 inferno-collapse-perf inferno-flamegraph; do
  command -v "$tool" >/dev/null || { echo "profile.sh needs $tool" >&2; exit 1; }
done

bash scripts/docker-up.sh
IMAGE=$(bash scripts/postgres-image.sh)
SECRET="profile-$RANDOM$RANDOM"
CONTAINER=""
PID=""
cleanup() {
  if [ -n "$PID" ]; then kill -KILL "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  if [ -n "$CONTAINER" ]; then docker rm -f "$CONTAINER" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

# Durable settings: Postgres's defaults (the image's entrypoint passes the
# command through).
CONTAINER=$(docker run -d --network bridge -e POSTGRES_HOST_AUTH_METHOD=trust "$IMAGE" \
  postgres -c max_connections=200)
IP=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$CONTAINER")
ready=false
for _ in $(seq 120); do
  if pg_isready -q -h "$IP" -p 5432 -U postgres 2>/dev/null \
    && psql -q -h "$IP" -U postgres -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
    ready=true
    break
  fi
  sleep 0.5
done
$ready || { echo "Postgres did not start" >&2; exit 1; }
psql -q -h "$IP" -U postgres -d postgres -c 'CREATE DATABASE profile' >/dev/null

AUTH_SECRET=$SECRET BIND="127.0.0.1:$PORT" RUST_LOG=warn \
  DATABASE_URL="postgres://postgres@$IP:5432/profile" DATABASE_MAX_CONNECTIONS=$POOL \
  "$BIN" >"$OUT/service.log" 2>&1 &
PID=$!
for _ in $(seq 300); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  kill -0 "$PID" 2>/dev/null || { cat "$OUT/service.log" >&2; exit 1; }
  sleep 0.1
done

# An HS256 token for user 1 in organisation 1 (what `auth::mint` issues).
TOKEN=$(SECRET=$SECRET python3 - <<'EOF'
import base64, hashlib, hmac, json, os, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": "1", "orgs": [1], "exp": int(time.time()) + 3600}).encode())
sig = hmac.new(os.environ["SECRET"].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
print(f"{head}.{body}.{b64(sig)}")
EOF
)

cat >"$OUT/keyed.lua" <<EOF
-- Keyed agent creations, a new Idempotency-Key per request.
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end
local prefix = "profile"
function init(args)
  prefix = "profile-" .. tostring(id) .. "-" .. tostring(os.time())
end
local n = 0
function request()
  n = n + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer $TOKEN",
    ["Idempotency-Key"] = '"' .. prefix .. "-" .. n .. '"',
  }, '{"name": "load test agent", "config": {"model": "small", "tools": ["search"]}}')
end
EOF

URL="http://127.0.0.1:$PORT/api/v1/agents?organization_id=1"
WARMUP=3
wrk -t 2 -c "$CONNECTIONS" -d "$((SECONDS_RECORDED + WARMUP + 2))s" -s "$OUT/keyed.lua" "$URL" >"$OUT/wrk.txt" &
WRK=$!
sleep "$WARMUP"
# DWARF call graphs: release builds keep no frame pointers, and the unwind
# tables are always there. 16 KiB of stack per sample is deep enough for
# tokio + hyper + sqlx.
perf record -q -e cpu-clock -F "$FREQ" --call-graph dwarf,16384 -p "$PID" -o "$OUT/perf.data" \
  -- sleep "$SECONDS_RECORDED" 2>"$OUT/perf.log"
wait "$WRK"
perf script -i "$OUT/perf.data" 2>/dev/null | inferno-collapse-perf --all >"$OUT/folded.txt"
# Readable frames: generic parameters folded to <…> and symbol hashes
# dropped (stacks that differed only there merge).
python3 - "$OUT/folded.txt" >"$OUT/folded-short.txt" <<'PY'
import collections, re, sys
def short(frame):
    frame = re.sub(r"::h[0-9a-f]{16}$", "", frame)
    out, depth = [], 0
    for c in frame:
        if c == "<":
            if depth == 0:
                out.append("<…>")
            depth += 1
        elif c == ">" and depth > 0:
            depth -= 1
        elif depth == 0:
            out.append(c)
    return "".join(out)
merged = collections.Counter()
for line in open(sys.argv[1]):
    stack, _, n = line.rstrip().rpartition(" ")
    merged[";".join(short(f) for f in stack.split(";"))] += int(n)
for stack, n in merged.items():
    print(stack, n)
PY
inferno-flamegraph --minwidth 1 --title "idemproof-service, keyed creations on durable Postgres ($LABEL)" \
  --subtitle "perf cpu-clock, ${SECONDS_RECORDED}s under wrk -c $CONNECTIONS; $(grep -h 'Requests/sec' "$OUT/wrk.txt" | tr -s ' ')" \
  "$OUT/folded-short.txt" >"$SVG"

# Where the time went, by coarse category (share of samples).
python3 - "$OUT/folded.txt" <<'EOF'
import sys
total = 0
kernel = 0
for line in open(sys.argv[1]):
    stack, _, n = line.rstrip().rpartition(" ")
    n = int(n)
    total += n
    leaf = stack.split(";")[-1]
    if leaf.endswith("_[k]") or "[kernel.kallsyms]" in leaf:
        kernel += n
print(f"CPU sampled: {total / 1e9:.2f} s; leaf in the kernel: {100 * kernel / max(total, 1):.1f} %")
EOF
grep -h 'Requests/sec' "$OUT/wrk.txt"
echo "flame graph: $SVG"
