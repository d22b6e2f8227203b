#!/usr/bin/env bash
# How strong are the tests? cargo-mutants (crates.io) changes the code one
# small edit at a time (a `<` for a `<=`, a function body for a default)
# and reruns the tests chosen for that code; a change no test notices is a
# "missed" mutant. Results go to target/mutation/<part>/mutants.out; the
# last results are recorded in docs/verification.md. Not run in CI: it
# rebuilds and retests once per mutant.
#
#   bash scripts/mutation.sh            # models and idempotency
#   bash scripts/mutation.sh models     # one part: models | idempotency | service | postgres
#   MUTATION_SHARD=4/30 bash scripts/mutation.sh service   # one shard of it
#   MUTATION_IN_PLACE=1 bash scripts/mutation.sh idempotency
#
# By default cargo-mutants copies the tree and builds it from scratch.
# MUTATION_IN_PLACE=1 mutates this checkout instead (reusing its target/,
# one mutant at a time): commit or stash first, and check `git status`
# afterwards (cargo-mutants puts every file back, but a killed run may not).
#
# Which tests run for which code, and why:
# - models/: the models crate's own unit tests. The crate is the pure
#   core (keys, scopes, fingerprints, records, the `decide` rule, the
#   claim table), and its tests are the ones written against it; each
#   mutant rebuilds one small crate, so the run takes minutes. Built with
#   the `mutants` feature, so the deliberately broken split-lock halves
#   (compiled only for the harness's mutants and loom) are built and
#   tested too. (The loom models need `--cfg loom` and a release build
#   per mutant: too slow here.)
# - service/src/idempotency/: the service's unit tests (begin, Claim,
#   policy) and the HTTP contract suite on the in-memory store, which
#   drives every path of `begin` through the real application.
# - service/src/{store,http,domain}/ but the Postgres store: the same
#   tests. The contract suite is where the HTTP layer, the body rules
#   and the stores meet real requests (schemathesis included); the
#   hardening suite would add minutes per mutant. It is long (about 640
#   mutants, 20-40 s each here), so it runs in round-robin shards
#   (MUTATION_SHARD=k/n, each a uniform sample), one output per shard.
#   schemathesis generates 30 examples per operation here, not CI's 150
#   (IDEMPROOF_SCHEMATHESIS_EXAMPLES overrides): 5 s per mutant, not 21.
# - service/src/store/postgres/: its unit tests, the contract suite and
#   the store state machine, each on Postgres (plain schema): the SQL,
#   the row mapping, the replay cache and the notifications only show
#   against a real server. Docker, so not in the default parts.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-mutants >/dev/null || cargo install --locked cargo-mutants
out=target/mutation
mkdir -p "$out"
[ $# -gt 0 ] || set -- models idempotency
if [ "${MUTATION_IN_PLACE:-0}" = 1 ]; then
  where=(--in-place)
else
  where=(--jobs 1)
fi

# The sharding flags of part $1 (MUTATION_SHARD=k/n: round-robin shard k
# of n) in `shard`, and the name of its output in `name`.
sharding() {
  shard=()
  name=$1
  if [ -n "${MUTATION_SHARD:-}" ]; then
    shard=(--shard "$MUTATION_SHARD" --sharding round-robin)
    name="$1-${MUTATION_SHARD%/*}-of-${MUTATION_SHARD#*/}"
  fi
}
# schemathesis examples per operation in these runs (CI's: 150).
export IDEMPROOF_SCHEMATHESIS_EXAMPLES="${IDEMPROOF_SCHEMATHESIS_EXAMPLES:-30}"

for part in "$@"; do
  case "$part" in
    models)
      cargo mutants --package idemproof-models --features mutants "${where[@]}" --output "$out/models"
      ;;
    idempotency)
      # The contract suite's Postgres trials need Docker; the in-memory
      # ones exercise the same `begin`, so this local run skips the rest.
      export IDEMPROOF_SKIP_DOCKER=1
      # cargo-mutants' own baseline runs the tests of the mutated package
      # only (it ignores --test-package), where `--test=contract` names
      # nothing and fails. So the unmutated run is done here, and the
      # timeouts it would have set are given: 150 s of tests (they take
      # about 40 s; a mutant that waits forever ends as "timed out").
      cargo test --package idemproof-service --package idemproof --lib --test contract
      cargo mutants --package idemproof-service \
        --file 'service/src/idempotency/*.rs' "${where[@]}" --output "$out/idempotency" \
        --test-package idemproof-service --test-package idemproof \
        --cargo-test-arg=--lib --cargo-test-arg=--test=contract \
        --baseline=skip --timeout 150 --build-timeout 600
      ;;
    service)
      export IDEMPROOF_SKIP_DOCKER=1
      sharding service
      cargo test --package idemproof-service --package idemproof --lib --test contract
      cargo mutants --package idemproof-service \
        --file 'service/src/store/**/*.rs' --file 'service/src/http/**/*.rs' \
        --file 'service/src/domain/**/*.rs' --exclude 'service/src/store/postgres/**' \
        "${shard[@]}" "${where[@]}" --output "$out/$name" \
        --test-package idemproof-service --test-package idemproof \
        --cargo-test-arg=--lib --cargo-test-arg=--test=contract \
        --baseline=skip --timeout 150 --build-timeout 600
      ;;
    postgres)
      # service/src/store/postgres/: its unit tests, and the contract suite
      # and the store state machine on the plain schema (`postgres::`; the
      # partitioned schema runs the same code over other DDL). Needs Docker
      # and the local image: bash scripts/docker-up.sh &&
      # bash scripts/postgres-image.sh, then
      # IDEMPROOF_PG_IMAGE=idemproof/postgres:15-bookworm.
      : "${IDEMPROOF_PG_IMAGE:?the postgres part needs Docker and IDEMPROOF_PG_IMAGE (see above)}"
      sharding postgres
      tests=(--lib --test=contract --test=store_model)
      cargo test --package idemproof-service --package idemproof "${tests[@]}" -- postgres::
      cargo mutants --package idemproof-service --file 'service/src/store/postgres/**' \
        "${shard[@]}" "${where[@]}" --output "$out/$name" \
        --test-package idemproof-service --test-package idemproof \
        "${tests[@]/#/--cargo-test-arg=}" \
        --baseline=skip --timeout 300 --build-timeout 600 -- postgres::
      ;;
    *)
      echo "unknown part: $part (models | idempotency | service | postgres)" >&2
      exit 2
      ;;
  esac
done
