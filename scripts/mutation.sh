#!/usr/bin/env bash
# How strong are the tests? cargo-mutants (crates.io) changes the code one
# small edit at a time (a `<` for a `<=`, a function body for a default)
# and reruns the tests chosen for that code; a change no test notices is a
# "missed" mutant. Results go to target/mutation/<part>/mutants.out; the
# last results are recorded in docs/verification.md. Not run in CI: it
# rebuilds and retests once per mutant.
#
#   bash scripts/mutation.sh            # every part below
#   bash scripts/mutation.sh models     # one part: models | idempotency
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
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-mutants >/dev/null || cargo install --locked cargo-mutants
out=target/mutation
[ $# -gt 0 ] || set -- models idempotency

for part in "$@"; do
  case "$part" in
    models)
      cargo mutants --package idemproof-models --features mutants --jobs 1 --output "$out/models"
      ;;
    idempotency)
      # The contract suite's Postgres trials need Docker; the in-memory
      # ones exercise the same `begin`, so this local run skips the rest.
      IDEMPROOF_SKIP_DOCKER=1 cargo mutants --package idemproof-service \
        --file 'service/src/idempotency/*.rs' --jobs 1 --output "$out/idempotency" \
        --test-package idemproof-service --test-package idemproof \
        --cargo-test-arg=--lib --cargo-test-arg=--test=contract
      ;;
    *)
      echo "unknown part: $part (models | idempotency)" >&2
      exit 2
      ;;
  esac
done
