//! Checks of the request line and headers that hyper leaves to the
//! application, answered with problem responses:
//!
//! - `Host` (RFC 9112 §3.2): an HTTP/1.1 request without one, any request
//!   with two, or one whose value is not a host and optional port, gets
//!   400 `invalid_host`;
//! - the request target over `MAX_URI_BYTES`: 414 `uri_too_long`;
//! - more than `MAX_HEADERS` header lines, or more than
//!   `MAX_HEADER_BYTES` of them: 431 `request_header_fields_too_large`.
//!
//! hyper has its own limits for the last two, but answers them with an
//! empty body; its limits are therefore set above these (see
//! `server::ServeSettings`), so that only a head too large to parse at
//! all gets hyper's bare answer.

use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, Code};

/// The limits, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// `MAX_URI_BYTES`.
    pub max_uri_bytes: usize,
    /// `MAX_HEADER_BYTES`: names, values and their `: ` and CRLF.
    pub max_header_bytes: usize,
    /// `MAX_HEADERS`.
    pub max_headers: usize,
}

/// The middleware (`axum::middleware::from_fn_with_state`).
pub async fn check(State(limits): State<HeadLimits>, request: Request, next: Next) -> Response {
    match refusal(&limits, &request) {
        Some(refused) => refused.into_response(),
        None => next.run(request).await,
    }
}

fn refusal(limits: &HeadLimits, request: &Request) -> Option<ApiError> {
    let target = request.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target > limits.max_uri_bytes {
        return Some(ApiError::UriTooLong(limits.max_uri_bytes));
    }
    let headers = request.headers();
    if headers.len() > limits.max_headers {
        return Some(ApiError::HeadersTooLarge(format!(
            "more than {} header lines",
            limits.max_headers
        )));
    }
    let bytes: usize = headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    if bytes > limits.max_header_bytes {
        return Some(ApiError::HeadersTooLarge(format!(
            "header lines larger than {} bytes in all",
            limits.max_header_bytes
        )));
    }
    let invalid_host = |detail: &str| Some(ApiError::bad_request(Code::InvalidHost, detail));
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => invalid_host("send exactly one Host header"),
        (None, None) if request.version() == Version::HTTP_11 => {
            invalid_host("an HTTP/1.1 request needs a Host header")
        }
        (None, None) => None,
        (Some(host), None) => {
            let valid = host
                .to_str()
                .ok()
                .and_then(|h| h.parse::<Authority>().ok())
                .is_some_and(|a| !a.as_str().contains('@') && !a.host().is_empty());
            if valid {
                None
            } else {
                invalid_host("the Host header is not a host name with an optional port")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;

    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_uri_bytes: 64,
        max_header_bytes: 256,
        max_headers: 4,
    };

    fn status(request: axum::http::request::Builder) -> Option<StatusCode> {
        let request = request.body(Body::empty()).expect("request");
        refusal(&LIMITS, &request).map(|e| e.status())
    }

    #[test]
    fn host_rules() {
        let get = || Request::builder().uri("/healthz");
        assert_eq!(status(get().header("host", "example.com:8080")), None);
        assert_eq!(status(get().header("host", "[::1]:80")), None);
        assert_eq!(status(get()), Some(StatusCode::BAD_REQUEST), "HTTP/1.1 without Host");
        assert_eq!(status(get().version(Version::HTTP_10)), None, "HTTP/1.0 may omit it");
        for bad in ["a b", "user@host", "host/path", ""] {
            assert_eq!(
                status(get().header("host", bad)),
                Some(StatusCode::BAD_REQUEST),
                "{bad:?}"
            );
        }
        let two = get().header("host", "a").header("host", "a");
        assert_eq!(status(two), Some(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn size_rules() {
        let ok = || Request::builder().header("host", "h");
        assert_eq!(status(ok().uri(format!("/{}", "a".repeat(63)))), None);
        assert_eq!(
            status(ok().uri(format!("/{}", "a".repeat(64)))),
            Some(StatusCode::URI_TOO_LONG)
        );
        let four = (0..3).fold(ok(), |r, i| r.header(format!("x-{i}"), "v"));
        assert_eq!(status(four), None, "as many header lines as allowed");
        let many = (0..4).fold(ok(), |r, i| r.header(format!("x-{i}"), "v"));
        assert_eq!(status(many), Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
        // Each line counts its name, its value and 4 bytes: 9 for the
        // host, 9 + the value for x-big.
        let fits = ok().header("x-big", "v".repeat(256 - 18));
        assert_eq!(status(fits), None, "exactly the bytes allowed");
        let big = ok().header("x-big", "v".repeat(256 - 17));
        assert_eq!(status(big), Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
    }
}
