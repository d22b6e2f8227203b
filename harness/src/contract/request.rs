//! The request side of a target file: who the clients are, how they
//! authenticate, how a creation is sent and where its key goes.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::duration;
use crate::form::FormField;

/// Who the simulated clients are: every user acts in every tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principals {
    /// `{tenant}` values (numbers or strings), at least one.
    pub tenants: Vec<Value>,
    /// `{user}` values, at least one.
    pub users: Vec<Value>,
}

/// How requests authenticate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthKind {
    /// Only the static `headers`, if any.
    #[default]
    None,
    /// Static `headers` (templated per principal).
    Headers,
    /// An HS256 JWT minted per principal from `claims`.
    Jwt,
    /// A `login` request per simulated client and principal; the client
    /// keeps the cookies it sets (and, with `token`, a bearer token).
    Login,
}

/// Authentication settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// Which scheme.
    #[serde(default)]
    pub kind: AuthKind,
    /// Sent with every request; values may use `{tenant}`, `{user}`,
    /// `{client}` and `${VAR}`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `jwt`: the HS256 secret.
    #[serde(default)]
    pub secret: Option<String>,
    /// `jwt`: the claims template (`{tenant}`, `{user}`, `{exp}`, `{now}`).
    #[serde(default)]
    pub claims: Option<Value>,
    /// `jwt`: lifetime of a token (`{exp}` is now plus this).
    #[serde(default = "day", with = "duration")]
    pub ttl: Duration,
    /// `jwt` and `login` with `token`: the header carrying the token.
    #[serde(default = "authorization")]
    pub header: String,
    /// Its scheme word (empty: the bare token).
    #[serde(default = "bearer")]
    pub scheme: String,
    /// `login`: the request.
    #[serde(default)]
    pub login: Option<Login>,
}

impl Default for Auth {
    fn default() -> Self {
        Self {
            kind: AuthKind::None,
            headers: BTreeMap::new(),
            secret: None,
            claims: None,
            ttl: day(),
            header: authorization(),
            scheme: bearer(),
            login: None,
        }
    }
}

fn day() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn authorization() -> String {
    "Authorization".into()
}
fn bearer() -> String {
    "Bearer".into()
}
fn post() -> String {
    "POST".into()
}

/// A login request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// HTTP method.
    #[serde(default = "post")]
    pub method: String,
    /// Path template (`{tenant}`, `{user}`, `{client}`).
    pub path: String,
    /// Body encoding.
    #[serde(default)]
    pub encoding: Encoding,
    /// Body template.
    #[serde(default)]
    pub body: Option<Value>,
    /// JSON pointer to a token in the answer, sent as `auth.header`.
    #[serde(default)]
    pub token: Option<String>,
}

/// How a body is encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// `application/json`.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded` (a flat table; arrays repeat
    /// the field).
    Form,
}

/// The creation request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Create {
    /// HTTP method.
    #[serde(default = "post")]
    pub method: String,
    /// Path and query template (`{tenant}`, `{user}`, `{key}`, `{nonce}`,
    /// `{name}`, `{description}`, `{level}`, `{client}`).
    pub path: String,
    /// Body encoding.
    #[serde(default)]
    pub encoding: Encoding,
    /// Body template (same placeholders as `path`).
    pub body: Value,
    /// The form fields `edit-resubmit` changes (default: `name`).
    #[serde(default = "edit_name")]
    pub edit: Vec<FormField>,
}

fn edit_name() -> Vec<FormField> {
    vec![FormField::Name]
}

/// Where the key travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyIn {
    /// A request header.
    Header,
    /// A body field: a JSON pointer (JSON) or a field name (form).
    Body,
    /// A query parameter.
    Query,
}

/// How a header key is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyFormat {
    /// An RFC 8941 string, `"…"` (the IETF draft).
    #[default]
    SfString,
    /// The key as is.
    Raw,
}

/// Where the idempotency key goes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPlacement {
    /// Header, body or query.
    #[serde(rename = "in")]
    pub place: KeyIn,
    /// Header name, JSON pointer / form field, or query parameter.
    pub name: String,
    /// Header only.
    #[serde(default)]
    pub format: KeyFormat,
}
