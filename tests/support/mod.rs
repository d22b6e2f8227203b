//! Shared by the integration test binaries: spawned service instances, a
//! thin HTTP client and the libtest-mimic runner (the Postgres container
//! and the fault-injecting store come from `idemproof_harness`).

#![allow(dead_code)]

pub mod app;
pub mod runner;
