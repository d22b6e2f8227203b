//! `order-sensitive-fingerprint`: the middleware fingerprints the raw
//! body text, so a retry that sends the same fields in another order, or
//! spaced differently, is refused as "key reused with another payload"
//! (422), though it means the same thing (JSON objects are unordered).
//! The service behind it compares a canonical form and would have
//! replayed. Real bug: @node-idempotency/core (the fingerprint is a hash
//! of `JSON.stringify(body)`).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use idemproof_models::Fingerprint;

use super::FrontScope;
use crate::http::error::ApiError;

/// The longest body the middleware reads (the service's own limit is
/// lower, so it answers anything longer).
const MAX_BODY: usize = 4 << 20;

/// The middleware's store: each key's first raw-body fingerprint.
type Seen = Arc<Mutex<HashMap<FrontScope, Fingerprint>>>;

/// `router` behind the fingerprinting middleware.
pub(in crate::mutants) fn raw_fingerprint(router: Router) -> Router {
    router.layer(from_fn_with_state(Seen::default(), middleware))
}

async fn middleware(State(seen): State<Seen>, request: Request, next: Next) -> Response {
    let Some(scope) = FrontScope::of(&request) else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let fingerprint = Fingerprint::of(&body);
    match seen.lock().unwrap_or_else(|p| p.into_inner()).entry(scope) {
        Entry::Occupied(first) if *first.get() != fingerprint => return ApiError::KeyReused.into_response(),
        Entry::Occupied(_) => {}
        Entry::Vacant(v) => {
            v.insert(fingerprint);
        }
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}
