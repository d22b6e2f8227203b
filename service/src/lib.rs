//! # idemproof-service
//!
//! A reference agent service whose idempotency keys hold under concurrency,
//! crashes and bad input. `POST /api/v1/agents` with an `Idempotency-Key`
//! creates at most one agent per (organisation, user, endpoint, key),
//! whatever the interleaving of duplicates and retries; see
//! `docs/semantics.md` for the state machine and the statuses.
//!
//! ## Layout
//!
//! - `main.rs`: parses [`Config`], starts logging, runs [`Application`].
//! - [`startup`]: `Application::build` (store, listeners) and
//!   `run_until_stopped` (serve, reaper, shutdown within a drain deadline).
//! - [`config`]: every setting as an env var and a flag.
//! - [`http`]: the connection loop (`server`: timeouts, connection cap,
//!   drain), the request-head checks, the in-flight cap, the gate (token,
//!   organisation, rate limit, then the body), routes, extraction, the
//!   problem-JSON [`ApiError`], metrics. `docs/operations.md` lists every
//!   limit.
//! - [`idempotency`]: the endpoint-agnostic claim / work / replay loop.
//! - [`store`]: the [`Store`] trait; `memory` and `postgres`
//!   implementations, Postgres migrations beside it.
//! - [`domain`]: agents, payload validation and fingerprints.
//! - [`auth`], [`clock`], [`reaper`], [`telemetry`].
//! - [`readiness`]: a write-probe verdict with hysteresis, the prototype of
//!   a `/readyz` that reflects whether the service can create.
//! - `mutants` (feature `mutants` only): deliberately broken strategies
//!   for the harness to catch.
//!
//! The claim logic of the in-memory store and the rule both stores follow
//! live in `idemproof-models`, free of tokio, so loom can check them.
//!
//! [`ApiError`]: http::error::ApiError
//! [`Store`]: store::Store

pub mod auth;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod idempotency;
#[cfg(feature = "mutants")]
pub mod mutants;
pub mod readiness;
pub mod reaper;
pub mod startup;
pub mod store;
pub mod telemetry;

pub use config::Config;
pub use startup::Application;
