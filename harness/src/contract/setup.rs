//! Fixtures a target file asks for before each scenario: requests whose
//! answers give values the other templates use, for a resource that only
//! exists under another one (a deployment under its agent, an order under
//! its cart). Each `[[setup]]` entry is sent once per tenant (or once per
//! tenant and user) straight to the service, and what it `capture`s
//! becomes a placeholder of its own: `capture = { agent = { pointer =
//! "/data/agent/id" } }` makes `{agent}` the new agent's id.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Encoding, IdSource};

/// One fixture request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setup {
    /// HTTP method.
    #[serde(default = "post")]
    pub method: String,
    /// Path and query template (`{tenant}`, `{user}`, `{nonce}`, and the
    /// captures of earlier entries).
    pub path: String,
    /// Body encoding.
    #[serde(default)]
    pub encoding: Encoding,
    /// Body template (same placeholders as `path`); none: no body.
    #[serde(default)]
    pub body: Option<Value>,
    /// Whom it is sent for.
    #[serde(default)]
    pub per: SetupPer,
    /// Placeholder name → where its value is in the answer (a JSON
    /// pointer into the body, or a header, each with an optional regex).
    pub capture: BTreeMap<String, IdSource>,
}

fn post() -> String {
    "POST".into()
}

/// How often a fixture is made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SetupPer {
    /// Once per tenant, as its first user: every user of the tenant shares
    /// the fixture (and so each other's key space under it, if the
    /// service scopes keys by it).
    #[default]
    Tenant,
    /// Once per tenant and user, each as itself.
    Principal,
}
