//! The cap on API requests in flight: `MAX_IN_FLIGHT` at once (tower's
//! global concurrency limit, one semaphore shared by every route it
//! wraps), and the next one refused at once with 503 `overloaded` and
//! `Retry-After` (tower's load shedding) rather than queued without
//! bound. The probes are outside it, so an overloaded replica still
//! answers `/healthz`.

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::response::{IntoResponse, Response};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::{BoxError, ServiceBuilder};

use super::error::ApiError;

/// `router`'s routes, shedding load above `max_in_flight` requests.
pub fn limit<S: Clone + Send + Sync + 'static>(router: Router<S>, max_in_flight: usize) -> Router<S> {
    router.route_layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(refuse))
            .layer(LoadShedLayer::new())
            .layer(GlobalConcurrencyLimitLayer::new(max_in_flight)),
    )
}

/// Every error of the stack is the shedding (the handlers are infallible).
async fn refuse(error: BoxError) -> Response {
    if !error.is::<tower::load_shed::error::Overloaded>() {
        tracing::error!(error = %error, "unexpected error in the overload layer");
    }
    ApiError::Overloaded.into_response()
}
