//! The HTTP side of the harness: one reqwest client, tokens minted per
//! (user, orgs) and cached, and the few API calls the harness makes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use crate::history::Outcome;

/// A client of the agent API.
pub struct ApiClient {
    http: reqwest::Client,
    /// HS256 secret of the service under test.
    secret: String,
    /// Bearer tokens by (user, org): minting costs an HMAC per request
    /// otherwise, which would show up in latency figures.
    tokens: Mutex<HashMap<(i64, i64), String>>,
}

/// The user the harness reads as: any member of an organisation may read
/// it, and the service accepts only canonical positive user ids (never 0),
/// so the largest one, which no scenario uses.
const READER: i64 = i64::MAX;

impl ApiClient {
    /// A client minting tokens with `secret`.
    pub fn new(secret: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            http,
            secret: secret.to_owned(),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// The underlying HTTP client (one connection pool), for callers that
    /// build their own requests.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn token(&self, user: i64, org: i64) -> String {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .entry((user, org))
            .or_insert_with(|| idemproof_service::auth::mint(&self.secret, user, &[org], 24 * 3600).unwrap_or_default())
            .clone()
    }

    /// One creation attempt, bounded by `timeout`.
    pub async fn create(
        &self,
        base: &str,
        org: i64,
        user: i64,
        key: Option<&str>,
        payload: &Value,
        timeout: Duration,
    ) -> Outcome {
        let mut request = self
            .http
            .post(format!("{base}/api/v1/agents?organization_id={org}"))
            .bearer_auth(self.token(user, org))
            .timeout(timeout)
            .json(payload);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", format!("\"{key}\""));
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Outcome::Timeout,
            Err(e) => return Outcome::Transport { error: short(&e) },
        };
        let status = response.status().as_u16();
        let replayed = response
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        let body: Value = match response.bytes().await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            Err(e) if e.is_timeout() => return Outcome::Timeout,
            Err(e) => return Outcome::Transport { error: short(&e) },
        };
        let agent = body.pointer("/data/agent").filter(|a| a.is_object()).cloned();
        let code = body.get("code").and_then(Value::as_str).map(str::to_owned);
        Outcome::Response {
            status,
            replayed,
            code,
            agent,
        }
    }

    /// The agent `id` as the API shows it, looked up in each of `orgs`.
    pub async fn find_agent(&self, base: &str, id: i64, orgs: &BTreeSet<i64>) -> anyhow::Result<Option<Value>> {
        for &org in orgs {
            let response = self
                .http
                .get(format!("{base}/api/v1/agents/{id}?organization_id={org}"))
                .bearer_auth(self.token(READER, org))
                .send()
                .await?;
            if response.status().is_success() {
                let body: Value = response.json().await?;
                return Ok(body.pointer("/data/agent").cloned());
            }
        }
        Ok(None)
    }

    /// Every agent of `org`, following cursors (at most 200 pages).
    pub async fn list_agents(&self, base: &str, org: i64) -> anyhow::Result<Vec<Value>> {
        self.list_all(base, org, &format!("/api/v1/agents?organization_id={org}"), "agents")
            .await
    }

    /// Every item of the collection at `path` (a list endpoint of `org`,
    /// query string included) whose pages hold it in `data.<field>`,
    /// following cursors (at most 200 pages).
    pub async fn list_all(&self, base: &str, org: i64, path: &str, field: &str) -> anyhow::Result<Vec<Value>> {
        let mut all = Vec::new();
        let mut cursor = String::new();
        for _ in 0..200 {
            let response = self
                .http
                .get(format!("{base}{path}&limit=500&cursor={cursor}"))
                .bearer_auth(self.token(READER, org))
                .send()
                .await?
                .error_for_status()?;
            let body: Value = response.json().await?;
            if let Some(items) = body.pointer(&format!("/data/{field}")).and_then(Value::as_array) {
                all.extend(items.iter().cloned());
            }
            match body.pointer("/data/next_cursor").and_then(Value::as_str) {
                Some(next) => cursor = next.to_owned(),
                None => return Ok(all),
            }
        }
        anyhow::bail!("more than 100 000 {field} at {path}")
    }
}

/// The error without reqwest's URL noise, for the history.
fn short(e: &reqwest::Error) -> String {
    let mut msg = if e.is_connect() {
        "connection refused".to_owned()
    } else if e.is_request() || e.is_body() {
        "connection closed".to_owned()
    } else {
        "transport error".to_owned()
    };
    if let Some(source) = std::error::Error::source(e) {
        msg.push_str(": ");
        msg.push_str(&source.to_string());
    }
    msg
}
