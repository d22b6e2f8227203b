//! Strategies whose bug sits in front of the service, in an idempotency
//! middleware that sees the raw HTTP request and answer rather than the
//! store: the correct service runs behind it, and the middleware's own
//! key handling adds the bug. Each keeps per-key state of its own, keyed
//! like the service's scope: the caller's credentials, the route and the
//! `Idempotency-Key` header.
//!
//! - `cache-client-errors` (`cache_client_errors.rs`)
//! - `order-sensitive-fingerprint` (`raw_fingerprint.rs`)

mod cache_client_errors;
mod raw_fingerprint;

use axum::extract::Request;
use axum::http::{Method, header};

pub(super) use self::cache_client_errors::cache_client_errors;
pub(super) use self::raw_fingerprint::raw_fingerprint;
use crate::http::extract::IDEMPOTENCY_KEY_HEADER;

/// Which key a keyed creation request uses, as a middleware sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct FrontScope {
    /// The `Authorization` header: the caller.
    credentials: Vec<u8>,
    /// Path and query: the route and its tenant.
    route: String,
    /// The `Idempotency-Key` header, raw.
    key: Vec<u8>,
}

impl FrontScope {
    /// The scope of `request`, if it is a `POST` with a key.
    pub(super) fn of(request: &Request) -> Option<Self> {
        if request.method() != Method::POST {
            return None;
        }
        let headers = request.headers();
        let key = headers.get(IDEMPOTENCY_KEY_HEADER)?.as_bytes().to_vec();
        Some(Self {
            credentials: headers
                .get(header::AUTHORIZATION)
                .map(|v| v.as_bytes().to_vec())
                .unwrap_or_default(),
            route: request
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            key,
        })
    }
}
