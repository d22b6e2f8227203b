//! Shared by the integration test binaries: spawned service instances, a
//! thin HTTP client, a faulty store and the libtest-mimic runner (the
//! Postgres container comes from `idemproof_harness::postgres`).

#![allow(dead_code)]

pub mod app;
pub mod faulty_store;
pub mod runner;
