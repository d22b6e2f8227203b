//! A real service instance on a free loopback port, over the backend under
//! test, with a manual clock; requests go through one reqwest client, the
//! API's own (the harness's client speaks a target file's contract, which
//! tests of the reference API by hand have no use for).

use std::sync::Arc;

use idemproof_harness::postgres::PgServer;
use idemproof_service::auth;
use idemproof_service::clock::ManualClock;
use idemproof_service::store::Stores;
use idemproof_service::store::memory::MemoryStore;
use idemproof_service::store::postgres::{PgStore, Schema};
use idemproof_service::{Application, Config, Running};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// Secret the test apps verify tokens with.
pub const SECRET: &str = "contract-test-secret";

/// The user the kit reads lists as: any member of an organisation may read
/// it, and the service accepts only canonical positive user ids (never 0),
/// so the largest one, which no test creates as.
pub const READER: i64 = i64::MAX;

/// Which store a test runs against.
#[derive(Clone)]
pub enum Backend {
    /// The in-memory store.
    Memory,
    /// Postgres, plain schema.
    Postgres(Arc<PgServer>),
    /// Postgres, every table `PARTITION BY HASH (organization_id)`.
    Partitioned(Arc<PgServer>),
}

/// Fresh, empty stores of one backend, with direct handles on what is
/// behind them.
pub struct Fixture {
    /// What the service runs on (tests may layer faults over them).
    pub stores: Stores,
    /// The in-memory store, when on memory.
    pub memory: Option<Arc<MemoryStore>>,
    /// The Postgres store behind them, when on Postgres.
    pub pg: Option<PgStore>,
}

impl Backend {
    /// The Postgres server and schema, when on Postgres.
    pub fn postgres(&self) -> Option<(&Arc<PgServer>, Schema)> {
        match self {
            Backend::Memory => None,
            Backend::Postgres(server) => Some((server, Schema::Plain)),
            Backend::Partitioned(server) => Some((server, Schema::Partitioned)),
        }
    }

    /// Fresh stores of this kind (a new database on Postgres) with
    /// `config`'s terms, memory bounds and pool size.
    pub async fn fixture(&self, config: &Config) -> Fixture {
        match self.postgres() {
            None => {
                let memory = Arc::new(MemoryStore::bounded(config.terms(), config.memory_limits()));
                Fixture {
                    stores: memory.stores(),
                    memory: Some(memory),
                    pg: None,
                }
            }
            Some((server, schema)) => {
                let url = server.fresh_database().await.expect("create a test database");
                let store = PgStore::connect(&url, config.database_max_connections, config.terms(), schema)
                    .await
                    .expect("connect to the test database")
                    .with_replay_cache(config.replay_cache_bytes);
                Fixture {
                    stores: store.stores(),
                    memory: None,
                    pg: Some(store),
                }
            }
        }
    }
}

/// A running service.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `http://127.0.0.1:PORT` of the `/metrics` listener, when configured.
    pub metrics_base: Option<String>,
    /// One connection pool, for hand-built requests.
    pub client: reqwest::Client,
    /// The stores the service runs on, for direct claims and inserts.
    pub stores: Stores,
    /// The in-memory store behind them, when on memory.
    pub memory: Option<Arc<MemoryStore>>,
    /// A pool on the test database (not the one requests use), when on
    /// Postgres.
    pub pool: Option<sqlx::PgPool>,
    /// The Postgres store the service runs on, when on Postgres: its
    /// request connections can be held or closed.
    pub pg: Option<PgStore>,
    /// The service's clock.
    pub clock: Arc<ManualClock>,
    /// The service's configuration.
    pub config: Config,
    /// Stops the service when the test drops the app.
    _running: Running,
}

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body as JSON (a JSON string if it was not JSON, `null` if empty).
    pub body: Value,
}

impl Reply {
    /// The agent in a success envelope.
    pub fn agent(&self) -> &Value {
        &self.body["data"]["agent"]
    }

    /// The agent id in a success envelope.
    pub fn agent_id(&self) -> i64 {
        self.agent()["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("no agent id in {self:?}"))
    }

    /// The deployment in a success envelope.
    pub fn deployment(&self) -> &Value {
        &self.body["data"]["deployment"]
    }

    /// The deployment id in a success envelope.
    pub fn deployment_id(&self) -> i64 {
        self.deployment()["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("no deployment id in {self:?}"))
    }

    /// The `code` of a problem response.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// A header's value, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The default test configuration: port 0 (and a `/metrics` listener on
/// port 0), test secret, short waits.
pub fn test_config() -> Config {
    Config {
        bind: "127.0.0.1:0".parse().expect("address"),
        auth_secret: Some(SECRET.into()),
        metrics_bind: Some("127.0.0.1:0".parse().expect("address")),
        idempotency_wait: std::time::Duration::from_secs(5),
        ..Config::default()
    }
}

impl TestApp {
    /// Spawns the service on fresh stores of `backend` with the test
    /// configuration, adjusted by `tweak`.
    pub async fn spawn(backend: &Backend, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config();
        tweak(&mut config);
        let fixture = backend.fixture(&config).await;
        Self::spawn_on(fixture, config).await
    }

    /// Spawns the service over given stores (e.g. behind a fault layer).
    pub async fn spawn_on(fixture: Fixture, config: Config) -> Self {
        let clock = Arc::new(ManualClock::new());
        let running = Application::build_with(config.clone(), fixture.stores.clone(), clock.clone())
            .await
            .expect("build the application")
            .spawn();
        Self {
            base: running.url.clone(),
            metrics_base: running.metrics_url.clone(),
            client: reqwest::Client::new(),
            stores: fixture.stores,
            memory: fixture.memory,
            pool: fixture.pg.as_ref().map(|pg| pg.pool().clone()),
            pg: fixture.pg,
            clock,
            config,
            _running: running,
        }
    }

    /// A valid token for `user` in `orgs`.
    pub fn token(&self, user: i64, orgs: &[i64]) -> String {
        auth::mint(SECRET, user, orgs, 3600).expect("mint a token")
    }

    /// Sends a request and reads the whole reply. A 5xx other than 503
    /// fails the test.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request reaches the service");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("read the body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        assert!(
            status.as_u16() < 500 || status == StatusCode::SERVICE_UNAVAILABLE,
            "the service answered {status}: {body}"
        );
        Reply { status, headers, body }
    }

    /// `POST /api/v1/agents?organization_id=org` as `user` (member of
    /// `org`), with an optional `Idempotency-Key` header.
    pub async fn create(&self, org: i64, user: i64, key: Option<&str>, body: &Value) -> Reply {
        self.post(&format!("/api/v1/agents?organization_id={org}"), org, user, key, body)
            .await
    }

    /// `POST /api/v1/agents/{agent}/deployments?organization_id=org` as
    /// `user` (member of `org`), with an optional `Idempotency-Key` header.
    pub async fn deploy(&self, org: i64, user: i64, agent: i64, key: Option<&str>, body: &Value) -> Reply {
        let path = format!("/api/v1/agents/{agent}/deployments?organization_id={org}");
        self.post(&path, org, user, key, body).await
    }

    async fn post(&self, path: &str, org: i64, user: i64, key: Option<&str>, body: &Value) -> Reply {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.token(user, &[org]))
            .json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", format!("\"{key}\""));
        }
        self.send(request).await
    }

    /// Every agent of `org`, following cursors, read as [`READER`].
    pub async fn all_agents(&self, org: i64) -> Vec<Value> {
        self.list_all(org, &format!("/api/v1/agents?organization_id={org}"), "agents")
            .await
    }

    /// Every deployment of agent `agent` of `org`, following cursors.
    pub async fn all_deployments(&self, org: i64, agent: i64) -> Vec<Value> {
        let path = format!("/api/v1/agents/{agent}/deployments?organization_id={org}");
        self.list_all(org, &path, "deployments").await
    }

    /// Every item of the list at `path` (a list endpoint of `org`, query
    /// string included) whose pages hold it in `data.<field>`, following
    /// cursors; at most 200 pages of 500.
    async fn list_all(&self, org: i64, path: &str, field: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor = String::new();
        for _ in 0..200 {
            let request = self
                .client
                .get(format!("{}{path}&limit=500&cursor={cursor}", self.base))
                .bearer_auth(self.token(READER, &[org]));
            let page = self.send(request).await;
            assert!(page.status.is_success(), "listing {path}: {page:?}");
            if let Some(items) = page.body["data"][field].as_array() {
                all.extend(items.iter().cloned());
            }
            match page.body["data"]["next_cursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => return all,
            }
        }
        panic!("more than 200 pages at {path}")
    }

    /// Number of agents in `org` created with idempotency key `key`.
    pub async fn agents_with_key(&self, org: i64, key: &str) -> usize {
        self.all_agents(org)
            .await
            .iter()
            .filter(|a| a["idempotency_key"] == key)
            .count()
    }

    /// `GET /readyz`.
    pub async fn readyz(&self) -> Reply {
        self.send(self.client.get(format!("{}/readyz", self.base))).await
    }

    /// The whole `/metrics` text, scraped from the metrics listener.
    pub async fn metrics_text(&self) -> String {
        let base = self.metrics_base.as_deref().expect("a metrics listener");
        self.client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("scrape /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// The value of one sample of `/metrics` (`name{labels}` as rendered),
    /// scraped from the metrics listener.
    pub async fn metric(&self, sample: &str) -> f64 {
        let text = self.metrics_text().await;
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no sample `{sample}` in\n{text}"))
    }

    /// Rows in a table, when on Postgres.
    pub async fn rows(&self, table: &str) -> Option<i64> {
        let pool = self.pool.as_ref()?;
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(pool)
            .await
            .expect("count rows");
        Some(n)
    }
}
