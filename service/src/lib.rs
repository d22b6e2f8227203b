//! # idemproof-service
//!
//! A reference agent service whose idempotency keys hold under concurrency,
//! crashes and bad input. `POST /api/v1/agents` and
//! `POST /api/v1/agents/{agent_id}/deployments` with an `Idempotency-Key`
//! create at most one resource per (organisation, user, endpoint, key),
//! whatever the interleaving of duplicates and retries; see
//! `docs/semantics.md` for the state machine and the statuses.
//!
//! A keyed creation, from the handler to the SQL: `http::agents::create`
//! validates and fingerprints the request, `http::creation::create` calls
//! [`Idempotency::begin`], which tries
//! [`Resources::insert_one_step`] (on Postgres, the one statement composed
//! in `store/postgres/statements.rs`) and otherwise claims the key through
//! the [`KeyStore`] and hands back a [`Claim`] to complete.
//!
//! ## Layout
//!
//! - `main.rs`: parses [`Config`], starts logging, runs [`Application`].
//! - [`startup`]: `Application::build` (stores, listeners),
//!   `run_until_stopped` (serve, reaper, shutdown within a drain deadline)
//!   and `spawn` (serve in process, as tests and the harness do).
//! - [`config`]: every setting as an env var and a flag.
//! - [`http`]: the connection loop (`server`: timeouts, connection cap,
//!   drain), the request-head checks, the in-flight cap, the gate (token,
//!   organisation, rate limit, then the body), routes, one file of
//!   handlers per resource, what creation endpoints share (`creation.rs`),
//!   extraction, the problem-JSON [`ApiError`], metrics.
//!   `docs/operations.md` lists every limit.
//! - [`idempotency`]: the endpoint-agnostic machinery (`begin`, the
//!   [`Claim`]) and its [`Policy`].
//! - [`store`]: the [`KeyStore`] and [`Resources`] traits, one
//!   [`Resource`] impl per resource (its insert), the `memory` and
//!   `postgres` backends (migrations beside them), and [`Layer`]s.
//! - [`domain`]: agents, deployments, payload validation and fingerprints.
//! - [`auth`], [`clock`], [`reaper`], [`telemetry`].
//! - [`readiness`]: the background write probe and its verdict, with
//!   hysteresis: `/readyz` says whether the service can create.
//! - `mutants` (feature `mutants` only): deliberately broken strategies,
//!   one file each, for the harness to catch.
//!
//! The claim logic of the in-memory store and the rule both stores follow
//! live in `idemproof-models`, free of tokio, so loom can check them.
//!
//! [`ApiError`]: http::error::ApiError
//! [`Claim`]: idempotency::Claim
//! [`Idempotency::begin`]: idempotency::Idempotency::begin
//! [`Policy`]: idempotency::Policy
//! [`KeyStore`]: store::KeyStore
//! [`Layer`]: store::Layer
//! [`Resource`]: store::Resource
//! [`Resources`]: store::Resources
//! [`Resources::insert_one_step`]: store::Resources::insert_one_step

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
pub use startup::{Application, Running};
