//! The HTTP layer: the connection loop, routes, shared state, the layers
//! every request passes, extraction and errors. Each resource has its own
//! file of handlers (`agents.rs`, `deployments.rs`); what creation
//! endpoints share is in `creation.rs`, listing in `listing.rs`.
//!
//! A request meets, in order: the connection loop's bounds (`server`:
//! header and write timeouts, connection cap), the request-head checks
//! (`request_head`: Host, URI and header sizes), and on the API routes the
//! in-flight cap (`overload`) and the gate (`gate`: token, organisation,
//! rate, then the body). `docs/operations.md` lists every limit.

pub mod agents;
mod creation;
pub mod deployments;
pub mod error;
pub mod eviction;
pub mod extract;
pub mod gate;
pub mod health;
mod listing;
pub mod metrics;
pub mod overload;
pub mod rate_limit;
pub mod request_head;
pub mod server;
pub mod tenant_limit;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn;
use axum::routing::{get, post};

pub use self::creation::REPLAYED_HEADER;
use self::creation::detached;
use self::error::ApiError;
use self::metrics::Metrics;
use self::rate_limit::OrgRateLimiter;
use self::request_head::HeadLimits;
use self::tenant_limit::TenantInFlight;
use crate::auth::Verifier;
use crate::clock::Clock;
use crate::idempotency::Idempotency;
use crate::readiness::Readiness;
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
    /// Time a body has to arrive once the gate starts reading it.
    pub body_timeout: Duration,
    /// Per-organisation request rates; `None` when off.
    pub rate_limiter: Option<Arc<OrgRateLimiter>>,
    /// Largest list page, in bytes of resources' JSON.
    pub list_page_max_bytes: usize,
    /// Request-head limits.
    pub head_limits: HeadLimits,
    /// API requests in flight at once.
    pub max_in_flight: usize,
    /// Per-organisation requests in flight; `None` when uncapped.
    pub tenant_in_flight: Option<Arc<TenantInFlight>>,
    /// The write probe's verdict, behind `/readyz`.
    pub readiness: Arc<Readiness>,
}

/// All routes of the API listener. Every `/api/v1` route is behind the
/// in-flight cap and the gate; a creation runs detached from its
/// connection, cap and gate included, so the slots it holds are held until
/// it ends. Unknown paths and methods get problem responses too.
/// `/metrics` is not here: it has its own listener.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/v1/agents", post(agents::create).get(agents::list))
        .route("/api/v1/agents/{id}", get(agents::show))
        .route(
            "/api/v1/agents/{agent_id}/deployments",
            post(deployments::create).get(deployments::list),
        )
        .route("/api/v1/agents/{agent_id}/deployments/{id}", get(deployments::show))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), gate::admit));
    let api = overload::limit(api, state.max_in_flight).route_layer(from_fn(detached));
    Router::new()
        .merge(api)
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(
            state.head_limits,
            request_head::check,
        ))
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .with_state(state)
}

/// The routes of the metrics listener (`METRICS_BIND`).
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::render))
        .fallback(|| async { ApiError::NotFound("only /metrics is served here".into()) })
        .with_state(metrics)
}
