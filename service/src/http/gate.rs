//! The gate in front of every organisation-scoped API route: who is
//! asking, for which organisation, within its quota, and only then the
//! body, bounded in size and time.
//!
//! Order matters for what an attacker can make the service hold:
//!
//! 1. the bearer token (401): an anonymous client never gets a byte of
//!    its body read, and an `Expect: 100-continue` client never gets its
//!    `100 Continue` (hyper sends it only when the body is first read);
//! 2. `organization_id` and membership (400, 403);
//! 3. the organisation's rate (429 `rate_limited`, see `rate_limit`);
//! 4. the organisation's requests in flight (429 `too_many_in_flight`,
//!    see `tenant_limit`): the slot taken here is held until the request
//!    has been handled;
//! 5. a body that is not JSON by its content type (415);
//! 6. a declared `Content-Length` over `MAX_BODY_BYTES` (413, before
//!    reading anything);
//! 7. the body itself, at most `MAX_BODY_BYTES` (413 for a chunked body
//!    that grows past it) within `HTTP_BODY_TIMEOUT` (408).
//!
//! The handlers then find the body already in memory and the [`User`] in
//! the request's extensions.

use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{Query, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::AppState;
use super::error::{ApiError, Code};
use super::extract::{bearer_user, is_json, organization_id, params};
use super::tenant_limit::Slot;
use crate::metrics::Outcome;

/// The middleware (`axum::middleware::from_fn_with_state`).
pub async fn admit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Every POST of the API creates (an agent or a deployment), and its
    // refusals here count among the creation outcomes as the handlers'
    // refusals do.
    let is_create = request.method() == Method::POST;
    match check(&state, request).await {
        Ok((request, _slot)) => next.run(request).await,
        Err(refused) => {
            if is_create {
                state.metrics.record(match refused {
                    ApiError::RateLimited { .. } => Outcome::RateLimited,
                    ApiError::TenantBusy { .. } => Outcome::ConcurrencyLimited,
                    _ => Outcome::Invalid,
                });
            }
            refused.into_response()
        }
    }
}

/// The request with its body read, and its organisation's in-flight slot
/// (if there is a cap), to hold while it is handled.
async fn check(state: &AppState, request: Request) -> Result<(Request, Option<Slot>), ApiError> {
    let (mut parts, body) = request.into_parts();
    let user = bearer_user(&parts.headers, &state.verifier)?;
    let organization_id = organization_id(&params(Query::try_from_uri(&parts.uri))?, &user)?;
    if let Some(limiter) = &state.rate_limiter {
        limiter.check(organization_id).map_err(|wait| ApiError::RateLimited {
            organization_id,
            retry_after_secs: whole_seconds(wait),
        })?;
    }
    let slot = match &state.tenant_in_flight {
        Some(cap) => Some(cap.enter(organization_id).ok_or(ApiError::TenantBusy {
            organization_id,
            limit: cap.limit(),
        })?),
        None => None,
    };
    // Every body the API takes is JSON: anything else is refused before
    // it is read (and before its size is, as the handlers always did).
    if !body.is_end_stream() && !is_json(&parts.headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    parts.extensions.insert(user);
    let body = read_body(body, state.max_body_bytes, state.body_timeout).await?;
    Ok((Request::from_parts(parts, body), slot))
}

/// The whole body in memory, or why not.
async fn read_body(body: Body, limit: usize, timeout: Duration) -> Result<Body, ApiError> {
    if body.is_end_stream() {
        return Ok(body);
    }
    // hyper's size hint is the declared Content-Length when there is one.
    if body.size_hint().lower() > limit as u64 {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_elapsed) => Err(ApiError::RequestTimeout),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::PayloadTooLarge(limit)),
        Ok(Err(_)) => Err(ApiError::bad_request(
            Code::InvalidBody,
            "the request body could not be read",
        )),
        Ok(Ok(collected)) => Ok(Body::from(collected.to_bytes())),
    }
}

/// `Retry-After` seconds: rounded up, at least 1.
fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_of_exactly_the_limit_is_read_one_byte_more_is_not() {
        let read = |len: usize| read_body(Body::from(vec![b'x'; len]), 10, Duration::from_secs(5));
        let whole = read(10).await.expect("the limit itself is allowed");
        let bytes = axum::body::to_bytes(whole, 10).await.expect("in memory");
        assert_eq!(bytes.len(), 10);
        assert!(matches!(read(11).await, Err(ApiError::PayloadTooLarge(10))));
    }

    /// A body with no declared length (chunked) is cut where it grows
    /// past the limit (413); one that breaks off is a 400.
    #[tokio::test]
    async fn a_body_without_a_length_is_refused_as_too_large_or_unreadable() {
        let chunks = |items: Vec<Result<axum::body::Bytes, std::io::Error>>| {
            read_body(
                Body::from_stream(futures::stream::iter(items)),
                10,
                Duration::from_secs(5),
            )
        };
        let six = || Ok(axum::body::Bytes::from_static(b"xxxxxx"));
        assert!(matches!(
            chunks(vec![six(), six()]).await,
            Err(ApiError::PayloadTooLarge(10))
        ));
        let broken = chunks(vec![six(), Err(std::io::ErrorKind::ConnectionReset.into())]).await;
        assert!(
            matches!(&broken, Err(e) if e.status() == axum::http::StatusCode::BAD_REQUEST),
            "{broken:?}"
        );
        assert!(chunks(vec![six()]).await.is_ok());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(2)), 2);
        assert_eq!(whole_seconds(Duration::from_millis(2001)), 3);
    }
}
