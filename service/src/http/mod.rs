//! The HTTP layer: routes, shared state, extraction and errors.

pub mod agents;
pub mod error;
pub mod extract;
pub mod health;
pub mod metrics;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use self::error::ApiError;
use self::metrics::Metrics;
use crate::auth::Verifier;
use crate::clock::Clock;
use crate::idempotency::Idempotency;
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Agents and keys.
    pub store: Arc<dyn Store>,
    /// The idempotency machinery over `store`.
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

/// All routes. Unknown paths and methods get problem responses too.
pub fn router(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route("/api/v1/agents", post(agents::create).get(agents::list))
        .route("/api/v1/agents/{id}", get(agents::show))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(metrics::render))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}
