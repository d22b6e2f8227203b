//! The per-request metrics of the API listener: every request counts in
//! flight until it is answered (or dropped), then its latency is observed
//! by method, route template and status. The outermost layer, so refusals
//! by the head checks, the cap and the gate are measured too.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::metrics::Metrics;
use crate::metrics::operational::UNMATCHED;

/// Measures one request.
pub async fn observe(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let _in_flight = metrics.operational.request_started();
    let method = request.method().clone();
    // The template (`/api/v1/agents/{id}`), never the concrete path: the
    // label set stays bounded whatever clients send.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.operational.request_answered(
        method.as_str(),
        route.as_deref().unwrap_or(UNMATCHED),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
