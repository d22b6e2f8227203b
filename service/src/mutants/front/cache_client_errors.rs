//! `cache-client-errors`: the middleware stores every answer to a keyed
//! request against its key, client errors included, and answers every
//! later request with that key from the store. A form whose first submit
//! failed validation (or whose body was cut short) can never be fixed and
//! resubmitted under its key: the 400 comes back for the key's lifetime.
//! Real bug: an ASGI idempotency middleware seen replaying a 400 for
//! 24 h; Stripe's first API documented the same for 500s. (Answers that
//! say "try again", 409 and 429, are not stored.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};

use super::FrontScope;

/// A stored answer.
#[derive(Clone)]
struct Stored {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// The middleware's store: every key's first client error.
type Answers = Arc<Mutex<HashMap<FrontScope, Stored>>>;

/// `router` behind the caching middleware.
pub(in crate::mutants) fn cache_client_errors(router: Router) -> Router {
    router.layer(from_fn_with_state(Answers::default(), middleware))
}

async fn middleware(State(answers): State<Answers>, request: Request, next: Next) -> Response {
    let Some(scope) = FrontScope::of(&request) else {
        return next.run(request).await;
    };
    let stored = answers.lock().unwrap_or_else(|p| p.into_inner()).get(&scope).cloned();
    if let Some(s) = stored {
        return (s.status, s.headers, s.body).into_response();
    }
    let response = next.run(request).await;
    let status = response.status();
    if !status.is_client_error() || status == StatusCode::CONFLICT || status == StatusCode::TOO_MANY_REQUESTS {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let stored = Stored {
        status,
        headers: parts.headers.clone(),
        body: body.clone(),
    };
    answers.lock().unwrap_or_else(|p| p.into_inner()).insert(scope, stored);
    Response::from_parts(parts, Body::from(body))
}
