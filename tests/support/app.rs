//! A real service instance on a free loopback port, over the backend under
//! test, with a manual clock, plus a small client for the agent API.

use std::sync::Arc;

use idemproof_service::auth;
use idemproof_service::clock::ManualClock;
use idemproof_service::store::Store;
use idemproof_service::store::memory::MemoryStore;
use idemproof_service::store::postgres::PgStore;
use idemproof_service::{Application, Config};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::sync::oneshot;

use idemproof_harness::postgres::PgServer;

/// Secret the test apps verify tokens with.
pub const SECRET: &str = "contract-test-secret";

/// Which store a test runs against.
#[derive(Clone)]
pub enum Backend {
    Memory,
    Postgres(Arc<PgServer>),
}

impl Backend {
    /// A fresh, empty store of this kind for `config`'s terms.
    pub async fn store(&self, config: &Config) -> (Arc<dyn Store>, Option<sqlx::PgPool>) {
        match self {
            Backend::Memory => (Arc::new(MemoryStore::new(config.terms())), None),
            Backend::Postgres(server) => {
                let url = server.fresh_database().await;
                let store = PgStore::connect(&url, 16, config.terms())
                    .await
                    .expect("connect to the test database");
                let pool = store.pool().clone();
                (Arc::new(store), Some(pool))
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
    pub client: reqwest::Client,
    /// The store the service runs on, for direct inspection and claims.
    pub store: Arc<dyn Store>,
    /// Postgres pool of the test database, when on Postgres.
    pub pool: Option<sqlx::PgPool>,
    pub clock: Arc<ManualClock>,
    pub config: Config,
    shutdown: Option<oneshot::Sender<()>>,
}

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
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

    /// The `code` of a problem response.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The default test configuration: port 0, test secret, short waits.
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
    /// Spawns the service on `backend` with the test configuration,
    /// adjusted by `tweak`.
    pub async fn spawn(backend: &Backend, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config();
        tweak(&mut config);
        let (store, pool) = backend.store(&config).await;
        Self::spawn_on(store, pool, config).await
    }

    /// Spawns the service over a given store (e.g. a faulty wrapper).
    pub async fn spawn_on(store: Arc<dyn Store>, pool: Option<sqlx::PgPool>, config: Config) -> Self {
        let clock = Arc::new(ManualClock::new());
        let app = Application::build_with(config.clone(), store.clone(), clock.clone())
            .await
            .expect("build the application");
        let base = format!("http://127.0.0.1:{}", app.port());
        let metrics_base = app.metrics_address().map(|a| format!("http://{a}"));
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        Self {
            base,
            metrics_base,
            client: reqwest::Client::new(),
            store,
            pool,
            clock,
            config,
            shutdown: Some(tx),
        }
    }

    /// A valid token for `user` in `orgs`.
    pub fn token(&self, user: i64, orgs: &[i64]) -> String {
        auth::mint(SECRET, user, orgs, 3600).expect("mint a token")
    }

    /// Sends a request and reads the whole reply.
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
        let mut request = self
            .client
            .post(format!("{}/api/v1/agents?organization_id={org}", self.base))
            .bearer_auth(self.token(user, &[org]))
            .json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", format!("\"{key}\""));
        }
        self.send(request).await
    }

    /// Every agent of `org`, following cursors.
    pub async fn all_agents(&self, org: i64) -> Vec<Value> {
        let token = self.token(1, &[org]);
        let mut agents = Vec::new();
        let mut cursor = String::new();
        loop {
            let reply = self
                .send(
                    self.client
                        .get(format!(
                            "{}/api/v1/agents?organization_id={org}&limit=500&cursor={cursor}",
                            self.base
                        ))
                        .bearer_auth(&token),
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
            agents.extend(reply.body["data"]["agents"].as_array().cloned().unwrap_or_default());
            match reply.body["data"]["next_cursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => return agents,
            }
        }
    }

    /// Number of agents in `org` created with idempotency key `key`.
    pub async fn agents_with_key(&self, org: i64, key: &str) -> usize {
        self.all_agents(org)
            .await
            .iter()
            .filter(|a| a["idempotency_key"] == key)
            .count()
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

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
