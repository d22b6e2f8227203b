//! The one error type of the HTTP layer. Every variant is one status, every
//! response is RFC 9457 `application/problem+json` with a stable `code`,
//! and nothing internal (SQL, driver messages) ever reaches a client: the
//! cause of a 503 goes to the log only.
//!
//! The codes are the [`Code`] enum: each has one status and the stages of
//! a request it can arise in, and the OpenAPI document (`http::openapi`)
//! lists every operation's problems from there, so a new code is
//! documented the moment it exists.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use clap::ValueEnum;
use serde::Serialize;

use crate::auth::AuthError;
use crate::domain::agent::FieldError;
use crate::store::StoreError;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem's `type` is this followed by its code.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:idemproof:problem:";

/// Seconds a client should wait before retrying a 409 or 503.
const RETRY_AFTER_SECS: &str = "1";

/// A problem's stable `code`. Its name on the wire is the variant's in
/// snake case, and the variants are listed, both derived (`ValueEnum`,
/// as for a command-line value), so the OpenAPI document enumerates them
/// without a table of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Code {
    /// The body is not JSON (400).
    MalformedJson,
    /// The body could not be read (400).
    InvalidBody,
    /// `organization_id` missing or not a positive integer (400).
    InvalidOrganizationId,
    /// The body's `organization_id` is not the query's (400).
    OrganizationMismatch,
    /// The idempotency key is not 1-255 printable ASCII characters, or
    /// the header is not one sf-string or token (400).
    InvalidIdempotencyKey,
    /// The header and the body field carry different keys (400).
    ConflictingIdempotencyKeys,
    /// The query string cannot be decoded (400).
    InvalidQuery,
    /// `limit` is not an integer from 1 to 500 (400).
    InvalidLimit,
    /// `cursor` is not a value the service returned (400).
    InvalidCursor,
    /// No, two or a malformed `Host` header (400).
    InvalidHost,
    /// Missing, invalid or expired token (401).
    Unauthorized,
    /// Not a member of the organisation (403).
    Forbidden,
    /// No such route, or no such resource in the organisation (404).
    NotFound,
    /// The route exists, the method does not (405).
    MethodNotAllowed,
    /// The body did not arrive in time (408).
    RequestTimeout,
    /// The key's original request is still in flight (409).
    IdempotencyKeyConflict,
    /// The body is over `MAX_BODY_BYTES` (413).
    PayloadTooLarge,
    /// The request target is over `MAX_URI_BYTES` (414).
    UriTooLong,
    /// The body is not JSON by its content type (415).
    UnsupportedMediaType,
    /// The body failed validation; `errors` says where (422).
    ValidationFailed,
    /// The key was used before with another payload (422).
    IdempotencyKeyReused,
    /// The organisation is over its request rate (429).
    RateLimited,
    /// The organisation has its most requests in flight (429).
    TooManyInFlight,
    /// Too many or too large header lines (431).
    RequestHeaderFieldsTooLarge,
    /// The store failed or cannot be reached (503).
    ServiceUnavailable,
    /// Too many connections or requests at once (503).
    Overloaded,
    /// The in-memory store has no room for a new creation (503).
    StoreFull,
    /// The write probe fails (503, `/readyz` only).
    NotReady,
}

/// Where in the handling of a request a problem can arise: an operation
/// can answer the codes of the stages it goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Every request of the API listener: the connection cap and the
    /// request-head checks.
    Head,
    /// Routing: a path or method no operation serves.
    Routing,
    /// The gate of every `/api/v1` route: in-flight cap, token,
    /// organisation, quotas.
    Gate,
    /// Reading a request body (the gate reads any body sent).
    Transfer,
    /// A creation's body and key.
    Payload,
    /// The idempotent creation itself.
    Create,
    /// A resource named in the path.
    Lookup,
    /// Paging parameters.
    Page,
    /// A store call.
    Store,
    /// The readiness verdict.
    Readiness,
}

impl Code {
    /// The status every response with this code has.
    pub fn status(self) -> StatusCode {
        use Code::*;
        match self {
            MalformedJson
            | InvalidBody
            | InvalidOrganizationId
            | OrganizationMismatch
            | InvalidIdempotencyKey
            | ConflictingIdempotencyKeys
            | InvalidQuery
            | InvalidLimit
            | InvalidCursor
            | InvalidHost => StatusCode::BAD_REQUEST,
            Unauthorized => StatusCode::UNAUTHORIZED,
            Forbidden => StatusCode::FORBIDDEN,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            IdempotencyKeyConflict => StatusCode::CONFLICT,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UriTooLong => StatusCode::URI_TOO_LONG,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ValidationFailed | IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            RateLimited | TooManyInFlight => StatusCode::TOO_MANY_REQUESTS,
            RequestHeaderFieldsTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ServiceUnavailable | Overloaded | StoreFull | NotReady => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stages this code can arise in.
    pub fn stages(self) -> &'static [Stage] {
        use Code::*;
        match self {
            InvalidHost | UriTooLong | RequestHeaderFieldsTooLarge | Overloaded => &[Stage::Head],
            MethodNotAllowed => &[Stage::Routing],
            NotFound => &[Stage::Routing, Stage::Lookup],
            Unauthorized | Forbidden | InvalidQuery | InvalidOrganizationId | RateLimited | TooManyInFlight => {
                &[Stage::Gate]
            }
            UnsupportedMediaType | PayloadTooLarge | RequestTimeout | InvalidBody => &[Stage::Transfer],
            MalformedJson
            | ValidationFailed
            | OrganizationMismatch
            | InvalidIdempotencyKey
            | ConflictingIdempotencyKeys => &[Stage::Payload],
            IdempotencyKeyConflict | IdempotencyKeyReused | StoreFull => &[Stage::Create],
            InvalidLimit | InvalidCursor => &[Stage::Page],
            ServiceUnavailable => &[Stage::Store],
            NotReady => &[Stage::Readiness],
        }
    }

    /// Whether responses with this code carry `Retry-After`.
    pub fn retry_after(self) -> bool {
        matches!(
            self.status(),
            StatusCode::CONFLICT | StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        )
    }

    /// Every code.
    pub fn all() -> &'static [Code] {
        Self::value_variants()
    }

    /// The code as it is sent (`malformed_json`).
    pub fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name())
    }
}

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request: bad query, JSON syntax, conflicting keys (400).
    #[error("{detail}")]
    BadRequest {
        /// Stable code, one of status 400.
        code: Code,
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
    pub fn bad_request(code: Code, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    /// HTTP status of the variant: its code's.
    pub fn status(&self) -> StatusCode {
        self.code().status()
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> Code {
        match self {
            Self::BadRequest { code, .. } => *code,
            Self::Unauthorized(_) => Code::Unauthorized,
            Self::Forbidden(_) => Code::Forbidden,
            Self::NotFound(_) => Code::NotFound,
            Self::MethodNotAllowed => Code::MethodNotAllowed,
            Self::InFlight => Code::IdempotencyKeyConflict,
            Self::PayloadTooLarge(_) => Code::PayloadTooLarge,
            Self::UnsupportedMediaType => Code::UnsupportedMediaType,
            Self::KeyReused => Code::IdempotencyKeyReused,
            Self::Validation(_) => Code::ValidationFailed,
            Self::Unavailable(_) => Code::ServiceUnavailable,
            Self::Overloaded => Code::Overloaded,
            Self::RateLimited { .. } => Code::RateLimited,
            Self::RequestTimeout => Code::RequestTimeout,
            Self::UriTooLong(_) => Code::UriTooLong,
            Self::HeadersTooLarge(_) => Code::RequestHeaderFieldsTooLarge,
            Self::TenantBusy { .. } => Code::TooManyInFlight,
            Self::StoreFull { .. } => Code::StoreFull,
            Self::NotReady => Code::NotReady,
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
    code: Code,
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
            kind: format!("{PROBLEM_TYPE_PREFIX}{}", self.code().name()),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with each code (the match makes the list complete).
    fn with_code(code: Code) -> ApiError {
        use Code::*;
        match code {
            MalformedJson
            | InvalidBody
            | InvalidOrganizationId
            | OrganizationMismatch
            | InvalidIdempotencyKey
            | ConflictingIdempotencyKeys
            | InvalidQuery
            | InvalidLimit
            | InvalidCursor
            | InvalidHost => ApiError::bad_request(code, "bad"),
            Unauthorized => ApiError::Unauthorized(AuthError::Missing),
            Forbidden => ApiError::Forbidden(1),
            NotFound => ApiError::NotFound("none".into()),
            MethodNotAllowed => ApiError::MethodNotAllowed,
            RequestTimeout => ApiError::RequestTimeout,
            IdempotencyKeyConflict => ApiError::InFlight,
            PayloadTooLarge => ApiError::PayloadTooLarge(1),
            UriTooLong => ApiError::UriTooLong(1),
            UnsupportedMediaType => ApiError::UnsupportedMediaType,
            ValidationFailed => ApiError::Validation(vec![]),
            IdempotencyKeyReused => ApiError::KeyReused,
            RateLimited => ApiError::RateLimited {
                organization_id: 1,
                retry_after_secs: 2,
            },
            TooManyInFlight => ApiError::TenantBusy {
                organization_id: 1,
                limit: 1,
            },
            RequestHeaderFieldsTooLarge => ApiError::HeadersTooLarge("big".into()),
            ServiceUnavailable => ApiError::Unavailable(StoreError::LeaseLost),
            Overloaded => ApiError::Overloaded,
            StoreFull => ApiError::StoreFull { retry_after_secs: 3 },
            NotReady => ApiError::NotReady,
        }
    }

    #[test]
    fn every_code_answers_its_status_headers_and_body() {
        for &code in Code::value_variants() {
            let error = with_code(code);
            assert_eq!(error.code(), code);
            let response = error.into_response();
            assert_eq!(response.status(), code.status(), "{code:?}");
            assert!(code.status().is_client_error() || code.status() == StatusCode::SERVICE_UNAVAILABLE);
            let headers = response.headers();
            assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON);
            assert_eq!(
                headers.contains_key(header::RETRY_AFTER),
                code.retry_after(),
                "{code:?}"
            );
            assert_eq!(
                headers.get(header::CONNECTION).is_some_and(|v| v == "close"),
                matches!(code, Code::RequestTimeout | Code::PayloadTooLarge),
                "{code:?}: only an answer before the whole body was read closes the connection"
            );
            assert!(!code.stages().is_empty(), "{code:?} arises somewhere");
        }
    }

    #[test]
    fn names_are_snake_case_and_distinct() {
        let names: Vec<String> = Code::value_variants().iter().map(|c| c.name()).collect();
        assert!(names.contains(&"malformed_json".to_owned()));
        assert!(names.contains(&"request_header_fields_too_large".to_owned()));
        assert!(
            names
                .iter()
                .all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
        let distinct: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(distinct.len(), names.len());
        assert_eq!(
            serde_json::to_value(Code::IdempotencyKeyReused).expect("json"),
            "idempotency_key_reused"
        );
    }
}
