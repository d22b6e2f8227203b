//! # idemproof-harness
//!
//! Attacks a service that claims idempotent creation with concurrent
//! duplicates, retries and faults, records every request, and checks the
//! history against the invariants an idempotency key promises. It must
//! catch the broken designs (`idemproof mutants`), not just bless the
//! correct one. See `docs/harness.md`.
//!
//! ## Layout
//!
//! - [`cli`]: `idemproof suite`, `idemproof mutants`, `idemproof load`.
//! - [`suite`]: one scenario after another on fresh deployments: deploy,
//!   drive, settle, probe, inspect, check.
//! - [`scenario`]: the named, seeded workloads (one file each).
//! - [`driver`]: runs a plan's client chains and fault schedule; records.
//! - [`history`]: submissions, attempts, outcomes, faults.
//! - [`check`]: the invariants and the per-key checker.
//! - [`target`]: the system under test (in-process memory, service
//!   processes over Postgres with a fault proxy, or any URL), fault
//!   injection and final-state inspection.
//! - [`client`]: the HTTP client of the agent API.
//! - [`report`]: terminal table, JSON, latency plot.
//! - [`mutants`]: the broken-strategy table.
//! - [`load`]: `idemproof load`, throughput and latency side by side with
//!   pgbench and wrk.
//! - [`child`]: service replicas are this binary, re-executed.
//! - [`postgres`]: the Postgres container.

pub mod check;
pub mod check_target;
pub mod cli;
pub mod client;
pub mod contract;
pub mod deploy;
pub mod driver;
pub mod fault;
pub mod form;
pub mod history;
pub mod load;
pub mod mutants;
pub mod postgres;
pub mod report;
pub mod scenario;
pub mod suite;
pub mod testing;

/// The former name of [`deploy`], for the fault store the contract tests
/// use.
#[doc(hidden)]
pub mod target {
    pub use crate::deploy::{FaultState, FaultStore};
}

/// The seeded generator behind every random choice: portable and
/// reproducible across platforms and versions, as a replayable seed needs.
pub type SeededRng = rand::rngs::Xoshiro256PlusPlus;

/// The command-line name of a clap value (`storm`, `lost-ack`).
pub(crate) fn value_name<T: clap::ValueEnum>(value: &T) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}
