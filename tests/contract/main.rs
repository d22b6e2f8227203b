//! The contract suite: the service's HTTP API, run against the in-memory
//! store and against Postgres (one container for the binary, one database
//! per case). Every case runs on both unless marked Postgres-only.
//!
//! `cargo test --test contract -- memory::` runs the in-memory half only.

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod concurrency;
mod creation;
mod lifecycle;
mod postgres_only;
mod reads;

use support::runner::Backends;

fn main() -> std::process::ExitCode {
    let mut cases = Vec::new();
    cases.extend(creation::cases());
    cases.extend(concurrency::cases());
    cases.extend(bad_input::cases());
    cases.extend(lifecycle::cases());
    cases.extend(reads::cases());
    cases.extend(postgres_only::cases());
    debug_assert!(cases.iter().any(|(_, b, _)| *b == Backends::Both));
    support::runner::run(cases)
}
