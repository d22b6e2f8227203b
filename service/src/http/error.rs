//! The one error type of the HTTP layer. Every variant is one status, every
//! response is RFC 9457 `application/problem+json` with a stable `code`,
//! and nothing internal (SQL, driver messages) ever reaches a client: the
//! cause of a 503 goes to the log only.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::AuthError;
use crate::domain::agent::FieldError;
use crate::store::StoreError;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Seconds a client should wait before retrying a 409 or 503.
const RETRY_AFTER_SECS: &str = "1";

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request: bad query, JSON syntax, conflicting keys (400).
    #[error("{detail}")]
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// What to fix.
        detail: String,
    },
    /// Missing, invalid or expired token (401).
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    /// Authenticated, but not a member of the organisation (403).
    #[error("you are not a member of organization {0}")]
    Forbidden(i64),
    /// No such resource here (404).
    #[error("{0}")]
    NotFound(String),
    /// Route exists, method does not (405).
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// A request with this idempotency key is still in flight (409).
    #[error("a request with this idempotency key is still being processed; retry later")]
    InFlight,
    /// Body over `MAX_BODY_BYTES` (413).
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// Body is not JSON by its content type (415).
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    /// Idempotency key reused with a different payload (422).
    #[error("this idempotency key was already used with a different request payload")]
    KeyReused,
    /// Well-formed JSON that fails validation (422).
    #[error("the request body failed validation")]
    Validation(Vec<FieldError>),
    /// The store is unreachable or failed (503); nothing was written.
    #[error("the service is temporarily unavailable; retry later")]
    Unavailable(#[source] StoreError),
    /// Too many connections or requests in flight (503); nothing was read.
    #[error("the service is overloaded; retry later")]
    Overloaded,
    /// The organisation is over its request rate (429); retry after the
    /// given number of seconds.
    #[error("organization {organization_id} is over its request rate; retry in {retry_after_secs} s")]
    RateLimited {
        /// The organisation over its quota.
        organization_id: i64,
        /// When its next request will be admitted, rounded up.
        retry_after_secs: u64,
    },
    /// The body did not arrive within `HTTP_BODY_TIMEOUT` (408).
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// The request target is over `MAX_URI_BYTES` (414).
    #[error("the request target is longer than {0} bytes")]
    UriTooLong(usize),
    /// Too many or too large header lines (431).
    #[error("{0}")]
    HeadersTooLarge(String),
    /// The organisation has `MAX_IN_FLIGHT_PER_ORG` requests in flight
    /// already (429); nothing was read.
    #[error("organization {organization_id} already has {limit} requests in flight; retry when one finishes")]
    TenantBusy {
        /// The organisation at its cap.
        organization_id: i64,
        /// The cap.
        limit: usize,
    },
    /// The in-memory store has no room for a new creation (503); nothing
    /// was written. Replays of existing keys are still answered.
    #[error("the store is full: no room for a new creation; existing keys still replay")]
    StoreFull {
        /// When room may come, in whole seconds.
        retry_after_secs: u64,
    },
    /// The write probe says creations would fail (503, `/readyz` only).
    #[error("the service cannot create right now: its write probe fails")]
    NotReady,
}

impl ApiError {
    /// A 400 with a code and detail.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    /// HTTP status of the variant.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::InFlight => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::KeyReused | Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) | Self::Overloaded | Self::StoreFull { .. } | Self::NotReady => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::RateLimited { .. } | Self::TenantBusy { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. } => code,
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InFlight => "idempotency_key_conflict",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::KeyReused => "idempotency_key_reused",
            Self::Validation(_) => "validation_failed",
            Self::Unavailable(_) => "service_unavailable",
            Self::Overloaded => "overloaded",
            Self::RateLimited { .. } => "rate_limited",
            Self::RequestTimeout => "request_timeout",
            Self::UriTooLong(_) => "uri_too_long",
            Self::HeadersTooLarge(_) => "request_header_fields_too_large",
            Self::TenantBusy { .. } => "too_many_in_flight",
            Self::StoreFull { .. } => "store_full",
            Self::NotReady => "not_ready",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Full { retry_after_secs } => Self::StoreFull { retry_after_secs },
            e => Self::Unavailable(e),
        }
    }
}

/// The RFC 9457 body.
#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Unavailable(cause) = &self {
            tracing::error!(error = ?cause, "store failure answered with 503");
        }
        let status = self.status();
        let problem = Problem {
            kind: format!("urn:idemproof:problem:{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self.to_string(),
            code: self.code(),
            errors: match &self {
                Self::Validation(errors) => Some(errors),
                _ => None,
            },
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match self {
            Self::InFlight | Self::Unavailable(_) | Self::Overloaded | Self::TenantBusy { .. } | Self::NotReady => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
            }
            Self::RateLimited { retry_after_secs, .. } | Self::StoreFull { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            // The rest of the body may still be on its way: the connection
            // cannot be reused.
            Self::RequestTimeout | Self::PayloadTooLarge(_) => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
