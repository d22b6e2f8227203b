//! Turns the model's abstract requests into real HTTP requests: tokens,
//! query strings, content types, body bytes and key headers.

use idemproof_service::auth::mint;
use reqwest::RequestBuilder;
use serde_json::{Value, json};

use crate::reference::{
    Auth, Body, BodyKey, BodyOrg, ContentType, Create, HeaderKey, MAX_BODY_BYTES, Malformed, ORGS, PAYLOADS, Query,
    RAW_KEYS, USERS,
};
use idemproof_testkit::app::{SECRET, TestApp};

/// An organisation id nobody in the model belongs to.
const FOREIGN_ORG: i64 = 3;

pub fn authorize(request: RequestBuilder, auth: Auth) -> RequestBuilder {
    let token =
        |secret: &str, user: usize, orgs: &[i64], ttl: i64| mint(secret, USERS[user], orgs, ttl).expect("mint a token");
    match auth {
        Auth::Member(u) => request.bearer_auth(token(SECRET, u, &ORGS, 3_600)),
        Auth::Outsider(u) => request.bearer_auth(token(SECRET, u, &[FOREIGN_ORG], 3_600)),
        Auth::Missing => request,
        Auth::Garbage => request.bearer_auth("not-a-token"),
        // Well past the verifier's leeway.
        Auth::Expired => request.bearer_auth(token(SECRET, 0, &ORGS, -3_600)),
        Auth::ForeignSecret => request.bearer_auth(token("another-secret", 0, &ORGS, 3_600)),
    }
}

/// The query string, with its leading `?` when there is one.
pub fn query_string(query: Query) -> String {
    match query {
        Query::Org(o) => format!("?organization_id={}", ORGS[o]),
        Query::Missing => String::new(),
        Query::NotANumber => "?organization_id=abc".into(),
        Query::Zero => "?organization_id=0".into(),
    }
}

fn body_bytes(body: Body, query: Query) -> Vec<u8> {
    let (payload, org, key) = match body {
        Body::Valid { payload, org, key } => (payload, org, key),
        Body::Malformed(defect) => {
            return match defect {
                Malformed::NotJson => br#"{"name":"#.to_vec(),
                Malformed::NotObject => b"[1]".to_vec(),
                Malformed::NameMissing => br#"{"description":"x"}"#.to_vec(),
                Malformed::NameBlank => br#"{"name":"   "}"#.to_vec(),
                Malformed::ConfigNotObject => br#"{"name":"Alpha","config":"x"}"#.to_vec(),
                Malformed::Oversize => json!({"name": "Alpha", "system_prompt": "p".repeat(MAX_BODY_BYTES)})
                    .to_string()
                    .into_bytes(),
            };
        }
    };
    let mut object: serde_json::Map<String, Value> =
        serde_json::from_str(PAYLOADS[payload].0).expect("the pooled payloads are JSON objects");
    let query_org = match query {
        Query::Org(o) => o,
        Query::Missing | Query::NotANumber | Query::Zero => 0,
    };
    match org {
        BodyOrg::Absent => {}
        BodyOrg::Same => {
            object.insert("organization_id".into(), json!(ORGS[query_org]));
        }
        BodyOrg::Other => {
            object.insert("organization_id".into(), json!(ORGS[1 - query_org]));
        }
        BodyOrg::NotInt => {
            object.insert("organization_id".into(), json!(ORGS[query_org].to_string()));
        }
    }
    match key {
        BodyKey::Absent => {}
        BodyKey::Key(k) => {
            object.insert("idempotency_key".into(), json!(RAW_KEYS[k]));
        }
        BodyKey::NotString => {
            object.insert("idempotency_key".into(), json!(5));
        }
    }
    serde_json::to_vec(&object).expect("serialise a body")
}

/// `POST /api/v1/agents` as the model describes it.
pub fn create(app: &TestApp, c: &Create) -> RequestBuilder {
    let url = format!("{}/api/v1/agents{}", app.base, query_string(c.query));
    let mut request = authorize(app.client.post(url), c.auth).body(body_bytes(c.body, c.query));
    let content_type = match c.content_type {
        ContentType::Json => Some("application/json"),
        ContentType::JsonCharset => Some("application/json; charset=utf-8"),
        ContentType::VendorJson => Some("application/vnd.idemproof+json"),
        ContentType::Text => Some("text/plain"),
        ContentType::Missing => None,
    };
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    match c.key {
        HeaderKey::Absent => request,
        HeaderKey::Quoted(k) => request.header("idempotency-key", format!("\"{}\"", RAW_KEYS[k])),
        HeaderKey::Bare(k) => request.header("idempotency-key", RAW_KEYS[k]),
        HeaderKey::Unterminated => request.header("idempotency-key", "\"k1"),
        // `header` appends: the request carries two values.
        HeaderKey::Twice => request.header("idempotency-key", "k1").header("idempotency-key", "k1"),
    }
}
