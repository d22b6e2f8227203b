#!/usr/bin/env bash
# Reproduces every figure of docs/benchmarks.md in one run, on one quiet
# machine: the criterion benches, then the load runs (Postgres and memory),
# each beside pgbench and wrk. Outputs land in target/criterion/ and
# target/idemproof/. Needs Docker (scripts/docker-up.sh) and, for the
# yardsticks, pgbench and wrk (`apt-get install postgresql-client wrk`).
#   bash scripts/bench.sh            # everything (about 25 minutes)
#   bash scripts/bench.sh load       # the load runs only
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/docker-up.sh
IDEMPROOF_PG_IMAGE=$(bash scripts/postgres-image.sh)
export IDEMPROOF_PG_IMAGE
out=target/idemproof
mkdir -p "$out"

if [ "${1:-all}" != "load" ]; then
  for bench in claim_table create_path index_lookup; do
    echo "[bench] cargo bench --bench $bench" >&2
    cargo bench --locked --bench "$bench"
  done
fi

cargo build --release --locked -p idemproof-harness
for target in postgres memory; do
  echo "[bench] idemproof load --target $target" >&2
  ./target/release/idemproof load --target "$target" --connections 16 \
    --duration 10s --warmup 2s --json "$out/load-$target.json" --out "$out/load-$target" \
    | tee "$out/load-$target.txt"
done
