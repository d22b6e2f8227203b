//! Request parsing shared by the handlers: the bearer token, the
//! `organization_id` query parameter, the JSON body and the idempotency key.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use idemproof_models::IdempotencyKey;
use serde_json::Value;

use super::AppState;
use super::error::{ApiError, Code};
use crate::auth::{AuthError, User, Verifier};
use crate::domain::agent::FieldError;
use crate::domain::json_numbers::inexact_numbers;

/// Name of the request header carrying the key (IETF draft).
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    /// The user the gate (`http::gate`) already authenticated, or else
    /// the one the bearer token names.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<User>() {
            return Ok(user.clone());
        }
        Ok(bearer_user(&parts.headers, &state.verifier)?)
    }
}

/// The user named by the one `Authorization: Bearer` header. Two such
/// headers are refused: proxies and servers disagree on which one counts.
pub fn bearer_user(headers: &HeaderMap, verifier: &Verifier) -> Result<User, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::Missing)?;
    if values.next().is_some() {
        return Err(AuthError::Ambiguous);
    }
    let value = value.to_str().map_err(|_| AuthError::Invalid)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Missing);
    }
    verifier.verify(token.trim())
}

/// Query parameters, parsed leniently so each handler can give a precise
/// error for each parameter.
pub type QueryParams = Result<Query<HashMap<String, String>>, QueryRejection>;

/// The query parameters, or 400 if the query string cannot be decoded.
pub fn params(query: QueryParams) -> Result<HashMap<String, String>, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(Code::InvalidQuery, e.body_text()))
}

/// The `organization_id` query parameter the caller must be a member of.
pub fn organization_id(params: &HashMap<String, String>, user: &User) -> Result<i64, ApiError> {
    let raw = params.get("organization_id").ok_or_else(|| {
        ApiError::bad_request(
            Code::InvalidOrganizationId,
            "organization_id query parameter is required",
        )
    })?;
    let id = raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::bad_request(
            Code::InvalidOrganizationId,
            "organization_id must be a positive integer",
        )
    })?;
    if !user.is_member_of(id) {
        return Err(ApiError::Forbidden(id));
    }
    Ok(id)
}

/// Parses a JSON body after checking its content type and size, and
/// refuses numbers that would not be stored as sent (`json_numbers`),
/// naming the top-level field (one of `fields`, else `body`) each is in.
pub fn json_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    limit: usize,
    fields: &[&'static str],
) -> Result<Value, ApiError> {
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let bytes = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(limit),
        _ => ApiError::bad_request(Code::InvalidBody, "the request body could not be read"),
    })?;
    let value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(Code::MalformedJson, format!("the body is not valid JSON: {e}")))?;
    let inexact = inexact_numbers(&bytes);
    if !inexact.is_empty() {
        return Err(ApiError::Validation(
            inexact
                .into_iter()
                .map(|n| FieldError {
                    field: top_field(&n.pointer, fields),
                    message: format!(
                        "the number {} at {} {}; send it as a string",
                        n.literal, n.pointer, n.reason
                    ),
                })
                .collect(),
        ));
    }
    Ok(value)
}

/// The body field (one of `fields`) a JSON pointer starts in, or `body`.
fn top_field(pointer: &str, fields: &[&'static str]) -> &'static str {
    let first = pointer.split('/').nth(1).unwrap_or_default();
    fields.iter().find(|f| **f == first).copied().unwrap_or("body")
}

/// Whether the content type is JSON (`application/json` or any
/// `application/*+json`).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// The idempotency key from the `Idempotency-Key` header and/or the body's
/// `idempotency_key` field. They must agree when both are present.
pub fn idempotency_key(headers: &HeaderMap, from_body: Option<&str>) -> Result<Option<IdempotencyKey>, ApiError> {
    let from_header = header_key(headers)?;
    let raw = match (from_header.as_deref(), from_body) {
        (Some(h), Some(b)) if h != b => {
            return Err(ApiError::bad_request(
                Code::ConflictingIdempotencyKeys,
                "the Idempotency-Key header and the idempotency_key field differ",
            ));
        }
        (Some(k), _) | (None, Some(k)) => k,
        (None, None) => return Ok(None),
    };
    IdempotencyKey::parse(raw)
        .map(Some)
        .map_err(|e| ApiError::bad_request(Code::InvalidIdempotencyKey, e.to_string()))
}

/// The header's key: an RFC 8941 sf-string (`"..."`, as the IETF draft
/// specifies) or, for older clients, a bare token.
fn header_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let invalid = |detail: &str| ApiError::bad_request(Code::InvalidIdempotencyKey, detail);
    let mut values = headers.get_all(IDEMPOTENCY_KEY_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(invalid("send exactly one Idempotency-Key header"));
    }
    let value = value
        .to_str()
        .map_err(|_| invalid("the Idempotency-Key header must be printable ASCII"))?
        .trim();
    let Some(quoted) = value.strip_prefix('"') else {
        return Ok(Some(value.to_owned()));
    };
    let mut key = String::with_capacity(quoted.len());
    let mut chars = quoted.chars();
    loop {
        match chars.next() {
            Some('"') if chars.as_str().is_empty() => return Ok(Some(key)),
            Some('\\') => match chars.next() {
                Some(c @ ('"' | '\\')) => key.push(c),
                _ => return Err(invalid("bad escape in the Idempotency-Key sf-string")),
            },
            Some('"') | None => {
                return Err(invalid(
                    "unterminated or trailing data in the Idempotency-Key sf-string",
                ));
            }
            Some(c) => key.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn a_pointer_is_named_by_its_top_field_or_body() {
        let fields = ["name", "config"];
        assert_eq!(top_field("/config/deep/1", &fields), "config");
        assert_eq!(top_field("/name", &fields), "name");
        assert_eq!(top_field("/other/x", &fields), "body");
        assert_eq!(top_field("", &fields), "body");
    }

    fn with_key(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(IDEMPOTENCY_KEY_HEADER, HeaderValue::from_static(v));
        h
    }

    fn key(h: &HeaderMap, body: Option<&str>) -> Result<Option<String>, Code> {
        idempotency_key(h, body)
            .map(|k| k.map(|k| k.as_str().to_owned()))
            .map_err(|e| e.code())
    }

    #[test]
    fn sf_strings_and_bare_tokens() {
        assert_eq!(key(&with_key("\"abc-123\""), None), Ok(Some("abc-123".into())));
        assert_eq!(key(&with_key("abc-123"), None), Ok(Some("abc-123".into())));
        assert_eq!(key(&with_key(r#""a\"b\\c""#), None), Ok(Some(r#"a"b\c"#.into())));
        assert_eq!(key(&with_key("\"abc"), None), Err(Code::InvalidIdempotencyKey));
        assert_eq!(key(&with_key("\"a\"b\""), None), Err(Code::InvalidIdempotencyKey));
        assert_eq!(key(&with_key(r#""a\nb""#), None), Err(Code::InvalidIdempotencyKey));
        assert_eq!(key(&with_key("\"\""), None), Err(Code::InvalidIdempotencyKey));
        assert_eq!(key(&with_key("\"a b\""), None), Err(Code::InvalidIdempotencyKey));
    }

    #[test]
    fn header_and_body_must_agree() {
        assert_eq!(key(&with_key("k"), Some("k")), Ok(Some("k".into())));
        assert_eq!(key(&with_key("\"k\""), Some("k")), Ok(Some("k".into())));
        assert_eq!(key(&with_key("k"), Some("j")), Err(Code::ConflictingIdempotencyKeys));
        assert_eq!(key(&HeaderMap::new(), Some("j")), Ok(Some("j".into())));
        assert_eq!(key(&HeaderMap::new(), None), Ok(None));
        assert_eq!(key(&HeaderMap::new(), Some("")), Err(Code::InvalidIdempotencyKey));
    }

    #[test]
    fn two_headers_are_refused() {
        let mut h = with_key("a");
        h.append(IDEMPOTENCY_KEY_HEADER, HeaderValue::from_static("b"));
        assert_eq!(key(&h, None), Err(Code::InvalidIdempotencyKey));
    }
}
