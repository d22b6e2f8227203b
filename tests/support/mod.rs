//! Shared by the integration test binaries: a Postgres server in a
//! container, spawned service instances and a thin HTTP client.

#![allow(dead_code)]

pub mod app;
pub mod faulty_store;
pub mod postgres;
pub mod runner;
