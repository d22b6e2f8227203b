//! Arbitrary bytes where a client controls them (the body, the
//! `Authorization`, `Idempotency-Key` and `Content-Type` headers, the query
//! string, the agent id in the path), each sent in a request that must be
//! refused whatever the bytes are. The service must answer every one with a
//! documented 4xx problem (never a 5xx, never a dropped connection from a
//! panicking handler) and must not write anything.

use proptest::collection::vec;
use proptest::prelude::*;
use reqwest::RequestBuilder;
use reqwest::header::HeaderValue;
use serde_json::json;

use crate::client::authorize;
use crate::reference::{Auth, PAYLOADS};
use idemproof_testkit::app::{Reply, TestApp};

/// Every `code` README.md documents.
const DOCUMENTED_CODES: [&str; 18] = [
    "malformed_json",
    "invalid_organization_id",
    "organization_mismatch",
    "invalid_idempotency_key",
    "conflicting_idempotency_keys",
    "invalid_query",
    "invalid_limit",
    "invalid_cursor",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "idempotency_key_conflict",
    "payload_too_large",
    "unsupported_media_type",
    "validation_failed",
    "idempotency_key_reused",
    "service_unavailable",
];

/// One change to a valid body.
#[derive(Debug, Clone)]
pub enum Edit {
    Insert(usize, u8),
    Replace(usize, u8),
    Delete(usize),
}

/// Which part of a request gets the bytes.
#[derive(Debug, Clone)]
pub enum Fuzz {
    Body(Vec<u8>),
    /// A valid payload with a few bytes inserted, replaced or deleted.
    EditedBody {
        payload: usize,
        edits: Vec<Edit>,
    },
    Authorization(Vec<u8>),
    IdempotencyKey(Vec<u8>),
    ContentType(Vec<u8>),
    /// The value of `organization_id` in the query string.
    OrganizationId(Vec<u8>),
    /// The whole query string.
    Query(Vec<u8>),
    /// The `{id}` path segment of `GET /api/v1/agents/{id}`.
    AgentId(Vec<u8>),
}

/// Bytes a header value may hold (visible ASCII, space, tab and obs-text),
/// with the characters the key parser cares about made more likely.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        6 => 0x20u8..=0x7e,
        2 => proptest::sample::select(vec![b'"', b'\\', b' ', b'\t', b',', b';']),
        1 => 0x80u8..=0xff,
    ];
    vec(byte, 0..64)
}

pub fn fuzz() -> impl Strategy<Value = Fuzz> {
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Insert(at, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Replace(at, b)),
        any::<usize>().prop_map(Edit::Delete),
    ];
    prop_oneof![
        3 => prop_oneof![vec(any::<u8>(), 0..64), vec(any::<u8>(), 0..3_000)].prop_map(Fuzz::Body),
        4 => (0..PAYLOADS.len(), vec(edit, 1..4)).prop_map(|(payload, edits)| Fuzz::EditedBody { payload, edits }),
        2 => header_bytes().prop_map(Fuzz::Authorization),
        3 => header_bytes().prop_map(Fuzz::IdempotencyKey),
        2 => header_bytes().prop_map(Fuzz::ContentType),
        1 => vec(any::<u8>(), 0..16).prop_map(Fuzz::OrganizationId),
        1 => vec(any::<u8>(), 0..48).prop_map(Fuzz::Query),
        1 => vec(any::<u8>(), 0..24).prop_map(Fuzz::AgentId),
    ]
}

fn edited(payload: usize, edits: &[Edit]) -> Vec<u8> {
    let mut body = PAYLOADS[payload].0.as_bytes().to_vec();
    for edit in edits {
        let len = body.len();
        match *edit {
            Edit::Insert(at, b) => body.insert(at % (len + 1), b),
            Edit::Replace(at, b) if len > 0 => body[at % len] = b,
            Edit::Delete(at) if len > 0 => {
                body.remove(at % len);
            }
            Edit::Replace(..) | Edit::Delete(_) => {}
        }
    }
    body
}

/// Percent-encodes everything but ASCII letters and digits, plus `keep`.
fn encoded(bytes: &[u8], keep: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| {
            if b.is_ascii_alphanumeric() || keep.contains(b) {
                char::from(*b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn header(bytes: &[u8]) -> HeaderValue {
    HeaderValue::from_bytes(bytes).expect("the strategy only makes valid header bytes")
}

/// A creation request from a member of organisation 1 with a valid body,
/// made unacceptable by two `Idempotency-Key` headers: the key is the last
/// thing the service checks, so the fuzzed part is parsed first.
fn doomed_creation(app: &TestApp, query: &str, content_type: HeaderValue) -> RequestBuilder {
    authorize(
        app.client.post(format!("{}/api/v1/agents?{query}", app.base)),
        Auth::Member(0),
    )
    .header("content-type", content_type)
    .header("idempotency-key", "k1")
    .header("idempotency-key", "k1")
    .body(PAYLOADS[0].0)
}

/// The request for `fuzz` and the statuses it may get.
pub fn request(app: &TestApp, fuzz: &Fuzz) -> (RequestBuilder, &'static [u16]) {
    let org1 = "organization_id=1";
    let json = || HeaderValue::from_static("application/json");
    match fuzz {
        Fuzz::Body(bytes) => (doomed_creation(app, org1, json()).body(bytes.clone()), &[400, 413, 422]),
        Fuzz::EditedBody { payload, edits } => (
            doomed_creation(app, org1, json()).body(edited(*payload, edits)),
            &[400, 413, 422],
        ),
        Fuzz::Authorization(bytes) => {
            let valid = app
                .client
                .post(format!("{}/api/v1/agents?{org1}", app.base))
                .header("content-type", json())
                .header("idempotency-key", "\"k1\"")
                .body(PAYLOADS[0].0);
            (valid.header("authorization", header(bytes)), &[401])
        }
        Fuzz::IdempotencyKey(bytes) => {
            // The body's key is invalid, so whatever the header says the
            // request is refused: as invalid, or as conflicting with it.
            let request = authorize(
                app.client.post(format!("{}/api/v1/agents?{org1}", app.base)),
                Auth::Member(0),
            )
            .header("content-type", json())
            .header("idempotency-key", header(bytes))
            .body(json!({"name": "Alpha", "idempotency_key": "a b"}).to_string());
            (request, &[400])
        }
        Fuzz::ContentType(bytes) => (doomed_creation(app, org1, header(bytes)), &[400, 415]),
        Fuzz::OrganizationId(bytes) => (
            doomed_creation(app, &format!("organization_id={}", encoded(bytes, b"")), json()),
            &[400, 403],
        ),
        Fuzz::Query(bytes) => (doomed_creation(app, &encoded(bytes, b"=&_"), json()), &[400, 403]),
        Fuzz::AgentId(bytes) => {
            let url = format!("{}/api/v1/agents/{}?{org1}", app.base, encoded(bytes, b""));
            (authorize(app.client.get(url), Auth::Member(0)), &[404])
        }
    }
}

/// Checks one reply: an allowed 4xx, as a documented problem.
pub fn check(fuzz: &Fuzz, reply: &Reply, allowed: &[u16]) {
    let context = format!("{fuzz:?} answered {reply:?}");
    assert!(
        allowed.contains(&reply.status.as_u16()),
        "{context}: allowed {allowed:?}"
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json"),
        "{context}"
    );
    assert!(DOCUMENTED_CODES.contains(&reply.code()), "{context}: undocumented code");
}
