//! # idemproof-harness
//!
//! Attacks a service that claims idempotent creation with concurrent
//! duplicates, retries and faults, records every request, and checks the
//! history against the invariants an idempotency key promises. It must
//! catch the broken designs (`idemproof mutants`), not just bless the
//! correct one. Any HTTP API can be attacked: a target file (a
//! [`contract::Contract`]) says how to talk to it. See `docs/harness.md`.
//!
//! ## Layout
//!
//! Read top-down; each layer imports only those below it.
//!
//! - [`cli`]: `idemproof suite`, `mutants`, `load`, `check-target`.
//! - [`testing`]: the suite from a `cargo test` (your `Router` or a URL).
//! - [`mutants`]: the broken-strategy table.
//! - [`suite`]: one scenario after another on fresh deployments:
//!   calibrate (black boxes), deploy, drive, settle, probe, inspect, check.
//! - [`check_target`]: what the harness understood of a target file.
//! - [`scenario`]: the named, seeded workloads (one file each).
//! - [`driver`]: runs a plan's client chains and fault schedule; records.
//! - [`check`]: the invariants and the per-key checker.
//! - [`deploy`]: the system under test, one backend per file behind a
//!   trait (the reference service in process or as processes over
//!   Postgres, an external URL, a `Router`), the fault store, the DB and
//!   HTTP fault proxies, the final-state read-back. Of the harness's
//!   core only this imports the service crate (the commands above it do,
//!   for the strategies and defaults, and [`load`]); scenarios, history,
//!   checker and client know services only through their contract.
//! - [`client`]: the HTTP client, driven by a contract (auth, sessions,
//!   requests, reading answers).
//! - [`history`]: submissions, attempts, outcomes; beside it the final
//!   state asked of the deployment.
//! - [`contract`]: target files: parsing, profiles, templates, validation.
//! - [`fault`], [`form`]: leaves: the faults and what a user fills in.
//! - [`report`]: terminal table, JSON, latency plot.
//! - [`load`]: `idemproof load`, throughput and latency side by side with
//!   pgbench and wrk.
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
