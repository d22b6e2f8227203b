#!/usr/bin/env bash
# The test command: provisions what the tests need on a fresh Debian
# machine (a Docker engine, a Postgres image, promtool, schemathesis and
# openapi-spec-validator: scripts/tools.sh; Chromium and xmllint for the
# report test: scripts/chromium.sh), then runs every test.
#   bash scripts/test.sh            # everything CI runs
#   bash scripts/test.sh -- --help  # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/docker-up.sh
# shellcheck source=scripts/tools.sh
source scripts/tools.sh
bash scripts/chromium.sh
IDEMPROOF_PG_IMAGE=$(bash scripts/postgres-image.sh)
export IDEMPROOF_PG_IMAGE
# Docker-backed tests must run here: never honour the local opt-out.
unset IDEMPROOF_SKIP_DOCKER

[ "${1:-}" = "--" ] && shift
echo "[test] cargo test --workspace (Postgres image: $IDEMPROOF_PG_IMAGE)" >&2
cargo test --workspace --locked "$@"
