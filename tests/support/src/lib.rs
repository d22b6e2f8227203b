//! # idemproof-testkit
//!
//! What the integration tests (`tests/`) and the benchmarks (`benches/`)
//! share. A library rather than a module each binary includes, so every
//! binary uses what it needs and nothing is dead code anywhere.
//!
//! ## Layout
//!
//! - [`app`]: [`TestApp`](app::TestApp), the real service over a fresh
//!   backend with a manual clock, on a port of its own (through
//!   `Application::spawn`, stopped on drop), with the harness's HTTP
//!   client; [`Backend`](app::Backend) and [`Reply`](app::Reply).
//! - [`runner`]: the libtest-mimic runner: one trial per case and backend,
//!   one Postgres container per binary, Docker missing a loud failure.
//! - [`budget`]: how many proptest cases a property runs.
//! - [`bench`]: criterion's configuration, the bench Postgres, synthetic
//!   keys and bulk fixtures.

pub mod app;
pub mod bench;
pub mod budget;
pub mod runner;
