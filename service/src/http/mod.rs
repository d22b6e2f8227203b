//! The HTTP layer: routes, shared state, extraction and errors. Each
//! resource has its own file of handlers (`agents.rs`, `deployments.rs`);
//! what creation endpoints share is in `creation.rs`, listing in
//! `listing.rs`.

pub mod agents;
mod creation;
pub mod deployments;
pub mod error;
pub mod extract;
pub mod health;
mod listing;
pub mod metrics;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn;
use axum::routing::{get, post};

pub use self::creation::REPLAYED_HEADER;
use self::creation::detached;
use self::error::ApiError;
use self::metrics::Metrics;
use crate::auth::Verifier;
use crate::clock::Clock;
use crate::idempotency::Idempotency;
use crate::store::Stores;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Keys, agents and deployments.
    pub stores: Stores,
    /// The idempotency machinery over `stores.keys`.
    pub idempotency: Idempotency,
    /// Timestamps for everything stored.
    pub clock: Arc<dyn Clock>,
    /// Bearer-token verification.
    pub verifier: Arc<Verifier>,
    /// Counters behind `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Body size limit, echoed in 413 responses.
    pub max_body_bytes: usize,
}

/// All routes. Creations run detached from their connection; unknown paths
/// and methods get problem responses too.
pub fn router(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route(
            "/api/v1/agents",
            post(agents::create).layer(from_fn(detached)).get(agents::list),
        )
        .route("/api/v1/agents/{id}", get(agents::show))
        .route(
            "/api/v1/agents/{agent_id}/deployments",
            post(deployments::create)
                .layer(from_fn(detached))
                .get(deployments::list),
        )
        .route("/api/v1/agents/{agent_id}/deployments/{id}", get(deployments::show))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(metrics::render))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}
