//! # idemproof-harness
//!
//! Attacks a service that claims idempotent creation with concurrent
//! duplicates, retries and faults, records every request, and checks the
//! history against the invariants an idempotency key promises.
//!
//! ## Layout
//!
//! - [`postgres`]: a Postgres server in a testcontainers container.

pub mod postgres;
