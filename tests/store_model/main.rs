//! Model-based test of the idempotency stores: random sequences of claims,
//! one-step creations, completions, failures, clock advances past leases
//! and TTLs, reaps, keyless creations and cross-tenant lookups, generated
//! by a proptest-state-machine reference model and applied to the
//! in-memory store and to the Postgres store, for agents and for
//! deployments, checking after every operation that the store agrees with
//! the model (see `docs/verification.md`).
//!
//! One Postgres container and one tokio runtime serve the whole binary
//! (the test kit's runner); each case starts from empty tables.
//! `IDEMPROOF_SOAK=1` or `PROPTEST_CASES=N` runs more cases; failing seeds
//! land in `proptest-regressions/store_model_*.txt` and are replayed first.

mod reference;
mod run;
mod system;

use std::process::ExitCode;

use idemproof_service::domain::agent::Agent;
use idemproof_service::domain::deployment::Deployment;
use idemproof_service::store::postgres::PgStore;
use idemproof_testkit::app::Backend as AppBackend;
use idemproof_testkit::budget;
use idemproof_testkit::runner::{Kind, Test, run_tests};
use libtest_mimic::Failed;
use tokio::runtime::Runtime;

use crate::system::{Backend, Subject, terms};

/// Cases per run in CI and in a soak, per backend and resource. The
/// in-memory store is cheap; each Postgres case costs a few hundred round
/// trips.
const MEMORY_CASES: (u32, u32) = (1_024, 50_000);
const POSTGRES_CASES: (u32, u32) = (128, 5_000);

/// Committed files of failing seeds, one per backend, shared by both
/// resources: a seed regenerates the same operations for either.
const MEMORY_REGRESSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/proptest-regressions/store_model_memory.txt"
);
const POSTGRES_REGRESSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/proptest-regressions/store_model_postgres.txt"
);

fn main() -> ExitCode {
    run_tests(vec![
        Test::sync(
            "agents_agree_with_model",
            &[Kind::Memory, Kind::Postgres],
            check::<Agent>,
        ),
        Test::sync(
            "deployments_agree_with_model",
            &[Kind::Memory, Kind::Postgres],
            check::<Deployment>,
        ),
    ])
}

/// Runs the state machine over resource `R` on `backend`.
fn check<R: Subject>(runtime: &Runtime, backend: AppBackend) -> Result<(), Failed> {
    let (backend, (ci, soak), regressions) = match backend.postgres() {
        None => (Backend::Memory, MEMORY_CASES, MEMORY_REGRESSIONS),
        Some((server, schema)) => {
            let store = runtime.block_on(async {
                let url = server
                    .fresh_database()
                    .await
                    .map_err(|e| format!("could not create the test database: {e:#}"))?;
                PgStore::connect(&url, 8, terms(), schema)
                    .await
                    .map_err(|e| format!("could not connect to the test database: {e:#}"))
            })?;
            (Backend::Postgres(store), POSTGRES_CASES, POSTGRES_REGRESSIONS)
        }
    };
    let summary = run::run::<R>(runtime, &backend, budget::case_count(ci, soak), regressions)?;
    eprintln!("{}: {summary}", R::TABLE);
    Ok(())
}
