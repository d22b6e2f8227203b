//! The system under test: which service, on which store, with which
//! faults the harness can inject and how it can inspect the final state.

mod fault_store;
mod insert_trigger;
mod proxy;
mod replica;

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use idemproof_service::clock::SystemClock;
use idemproof_service::config::Config;
use idemproof_service::domain::agent::Agent;
use idemproof_service::idempotency::{InFlightMode, MismatchMode};
use idemproof_service::mutants::{Backend as StrategyBackend, Strategy};
use idemproof_service::store::memory::MemoryStore;
use idemproof_service::{Application, Running};
use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinHandle;

pub use self::fault_store::FaultState;
pub use self::proxy::DbProxy;
pub use self::replica::ProcessReplica;
use crate::check::ScopeKey;
use crate::postgres::PgServer;

/// Which service to attack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetSpec {
    /// The service in-process over the in-memory store.
    Memory,
    /// `replicas` service processes sharing one Postgres container.
    Postgres {
        /// Number of service processes.
        replicas: usize,
    },
    /// Any service following the API contract, as a black box.
    Url(String),
}

impl FromStr for TargetSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "memory" => Ok(Self::Memory),
            "postgres" => Ok(Self::Postgres { replicas: 1 }),
            _ => {
                if let Some(n) = s.strip_prefix("replicas=") {
                    let replicas = n.parse::<usize>().map_err(|_| format!("bad replica count in `{s}`"))?;
                    if !(1..=16).contains(&replicas) {
                        return Err("replicas must be 1 to 16".into());
                    }
                    Ok(Self::Postgres { replicas })
                } else if let Some(url) = s.strip_prefix("url=") {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(format!("`{url}` is not an http(s) URL"));
                    }
                    Ok(Self::Url(url.trim_end_matches('/').to_owned()))
                } else {
                    Err(format!(
                        "unknown target `{s}`: use memory, postgres, replicas=N or url=http://..."
                    ))
                }
            }
        }
    }
}

impl std::fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("memory"),
            Self::Postgres { replicas: 1 } => f.write_str("postgres"),
            Self::Postgres { replicas } => write!(f, "replicas={replicas}"),
            Self::Url(url) => write!(f, "url={url}"),
        }
    }
}

impl TargetSpec {
    /// Whether the target needs the Postgres container.
    pub fn needs_postgres(&self) -> bool {
        matches!(self, Self::Postgres { .. })
    }
}

/// How the services the harness starts are configured. For a `url` target
/// these describe the external service (its secret, its modes) instead.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceSettings {
    /// Correct or one of the broken strategies.
    pub strategy: Strategy,
    /// HS256 secret for minting tokens.
    #[serde(skip)]
    pub secret: String,
    /// `IDEMPOTENCY_LEASE`: short, so crash recovery fits in a run.
    #[serde(with = "humantime_serde_compat")]
    pub lease: Duration,
    /// `IDEMPOTENCY_WAIT`.
    #[serde(with = "humantime_serde_compat")]
    pub wait: Duration,
    /// `IDEMPOTENCY_IN_FLIGHT`.
    #[serde(serialize_with = "debug_lower")]
    pub in_flight: InFlightMode,
    /// `IDEMPOTENCY_MISMATCH`.
    #[serde(serialize_with = "debug_lower")]
    pub mismatch: MismatchMode,
    /// `DATABASE_MAX_CONNECTIONS` per replica.
    pub pool_size: u32,
}

mod humantime_serde_compat {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

fn debug_lower<T: std::fmt::Debug, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:?}").to_lowercase())
}

impl ServiceSettings {
    /// The harness's defaults: correct strategy, 2 s lease, 1 s wait.
    pub fn new(secret: String) -> Self {
        Self {
            strategy: Strategy::Correct,
            secret,
            lease: Duration::from_secs(2),
            wait: Duration::from_secs(1),
            in_flight: InFlightMode::Wait,
            mismatch: MismatchMode::Reject,
            pool_size: 16,
        }
    }

    fn config(&self) -> Config {
        Config {
            bind: "127.0.0.1:0".parse().expect("loopback address"),
            auth_secret: Some(self.secret.clone()),
            idempotency_lease: self.lease,
            idempotency_wait: self.wait,
            idempotency_in_flight: self.in_flight,
            idempotency_mismatch: self.mismatch,
            database_max_connections: self.pool_size,
            ..Config::default()
        }
    }

    /// Environment of a child replica (everything but BIND and the URL).
    fn env(&self) -> Vec<(String, String)> {
        let d = |d: Duration| humantime::format_duration(d).to_string();
        vec![
            ("AUTH_SECRET".into(), self.secret.clone()),
            ("IDEMPOTENCY_LEASE".into(), d(self.lease)),
            ("IDEMPOTENCY_WAIT".into(), d(self.wait)),
            (
                "IDEMPOTENCY_IN_FLIGHT".into(),
                format!("{:?}", self.in_flight).to_lowercase(),
            ),
            (
                "IDEMPOTENCY_MISMATCH".into(),
                format!("{:?}", self.mismatch).to_lowercase(),
            ),
            ("DATABASE_MAX_CONNECTIONS".into(), self.pool_size.to_string()),
            ("LOG_FORMAT".into(), "text".into()),
        ]
    }
}

/// A fault the harness injects.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// `kill -9` of one replica.
    Crash(usize),
    /// Start a killed replica again.
    Restart(usize),
    /// Database stopped (container stop).
    DbDown,
    /// Database started again.
    DbUp,
    /// Latency added between service and database.
    DbSlow(#[serde(with = "humantime_serde_compat")] Duration),
    /// Connections between service and database keep being cut.
    DbDrop,
    /// The next this-many agent inserts fail inside the database.
    FailInserts(u32),
    /// Every creation takes this long between its claim and its write.
    SlowWork(#[serde(with = "humantime_serde_compat")] Duration),
    /// Every fault removed (crashed replicas restarted).
    Heal,
}

/// What a deployment lets the harness do.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Capabilities {
    /// Processes can be killed (or, in process, a kill is emulated).
    pub crash: bool,
    /// Database faults can be injected (for real or emulated).
    pub db_faults: bool,
    /// Faults are emulated at the store boundary rather than real.
    pub emulated: bool,
    /// Distinct service replicas clients can be sent to.
    pub replicas: usize,
}

/// The final state the checker compares the history with.
#[derive(Debug, Default)]
pub struct StoreView {
    /// The stored agent of every id the history acknowledged (`None` if
    /// it is missing), serialised as the API would.
    pub acknowledged: HashMap<i64, Option<Value>>,
    /// `(org, user, key)` holding more than one agent, with the count.
    pub duplicates: Vec<(ScopeKey, usize)>,
    /// Scopes still in progress with a lease beyond the check time, when
    /// the store can be read directly (`None`: use the probes instead).
    pub in_progress: Option<Vec<ScopeKey>>,
}

/// A running system under test.
pub struct Deployment {
    /// Base URLs, one per replica (stable across restarts).
    pub urls: Vec<String>,
    /// How the services are configured.
    pub settings: ServiceSettings,
    backend: Backend,
}

enum Backend {
    Memory {
        /// The store under the strategy and the faults, read directly.
        memory: Arc<MemoryStore>,
        faults: Arc<FaultState>,
        /// Stops serving when dropped.
        app: Option<Running>,
    },
    Postgres {
        server: Arc<PgServer>,
        /// The scenario's database.
        db: String,
        proxy: DbProxy,
        replicas: Vec<ProcessReplica>,
        severing: Option<JoinHandle<()>>,
        /// Whether the failing-insert trigger may be installed.
        insert_trigger: bool,
    },
    Url,
}

impl Deployment {
    /// Starts a fresh system under test (fresh store or database).
    pub async fn start(
        spec: &TargetSpec,
        postgres: Option<&Arc<PgServer>>,
        settings: &ServiceSettings,
        seed: u64,
    ) -> anyhow::Result<Self> {
        match spec {
            TargetSpec::Memory => {
                let config = settings.config();
                let faults = Arc::new(FaultState::new(seed));
                let backend = settings.strategy.memory(config.terms());
                let stores = settings.strategy.stores(&backend, |s| s.layer(faults.clone()))?;
                let StrategyBackend::Memory(memory) = backend else {
                    anyhow::bail!("the memory target got another backend");
                };
                let app = Application::build_with(config, stores, Arc::new(SystemClock))
                    .await?
                    .spawn();
                Ok(Self {
                    urls: vec![app.url.clone()],
                    settings: settings.clone(),
                    backend: Backend::Memory {
                        memory,
                        faults,
                        app: Some(app),
                    },
                })
            }
            TargetSpec::Postgres { replicas: n } => {
                let server = postgres.context("the Postgres target needs the container")?.clone();
                let db = server.create_database().await;
                let proxy = DbProxy::start(server.addr()).await?;
                let via_proxy = format!("postgres://postgres@{}/{db}", proxy.addr);
                let mut replicas = Vec::new();
                for _ in 0..*n {
                    replicas.push(ProcessReplica::start(Some(&via_proxy), settings).await?);
                }
                Ok(Self {
                    urls: replicas
                        .iter()
                        .map(|r| format!("http://127.0.0.1:{}", r.port))
                        .collect(),
                    settings: settings.clone(),
                    backend: Backend::Postgres {
                        server,
                        db,
                        proxy,
                        replicas,
                        severing: None,
                        insert_trigger: false,
                    },
                })
            }
            TargetSpec::Url(url) => Ok(Self {
                urls: vec![url.clone()],
                settings: settings.clone(),
                backend: Backend::Url,
            }),
        }
    }

    /// What can be done to this deployment.
    pub fn capabilities(&self) -> Capabilities {
        match &self.backend {
            Backend::Memory { .. } => Capabilities {
                crash: true,
                db_faults: true,
                emulated: true,
                replicas: 1,
            },
            Backend::Postgres { replicas, .. } => Capabilities {
                crash: true,
                db_faults: true,
                emulated: false,
                replicas: replicas.len(),
            },
            Backend::Url => Capabilities {
                crash: false,
                db_faults: false,
                emulated: false,
                replicas: 1,
            },
        }
    }

    /// Injects (or removes) a fault.
    pub async fn apply(&mut self, fault: Fault) -> anyhow::Result<()> {
        match &mut self.backend {
            Backend::Memory { faults, .. } => match fault {
                Fault::Crash(_) => faults.crash(),
                Fault::Restart(_) => faults.restart(),
                Fault::DbDown => faults.set_outage(true),
                Fault::DbUp => faults.set_outage(false),
                Fault::DbSlow(latency) => faults.set_latency(latency),
                Fault::DbDrop => faults.set_drop_rate(0.3),
                Fault::FailInserts(n) => faults.fail_next_creates(n),
                Fault::SlowWork(delay) => faults.set_work_delay(delay),
                Fault::Heal => {
                    faults.restart();
                    faults.fail_next_creates(0);
                    faults.set_work_delay(Duration::ZERO);
                    faults.set_outage(false);
                    faults.set_latency(Duration::ZERO);
                    faults.set_drop_rate(0.0);
                }
            },
            Backend::Postgres {
                server,
                db,
                proxy,
                replicas,
                severing,
                insert_trigger,
            } => match fault {
                Fault::Crash(i) => {
                    let n = replicas.len();
                    replicas[i % n].kill().await;
                }
                Fault::Restart(i) => {
                    let n = replicas.len();
                    replicas[i % n].restart().await?;
                }
                Fault::DbDown => server.stop().await?,
                Fault::DbUp => proxy.set_upstream(server.start_again().await?),
                Fault::DbSlow(latency) => proxy.set_latency(latency),
                Fault::DbDrop => {
                    if severing.is_none() {
                        *severing = Some(tokio::spawn(sever_repeatedly(proxy.severer())));
                    }
                }
                Fault::FailInserts(n) => {
                    *insert_trigger = true;
                    insert_trigger::fail_next(&server.url(db), n).await?;
                }
                Fault::SlowWork(delay) => {
                    for r in replicas.iter_mut() {
                        r.set_work_delay(delay).await?;
                    }
                }
                Fault::Heal => {
                    if let Some(task) = severing.take() {
                        task.abort();
                    }
                    if std::mem::take(insert_trigger) {
                        insert_trigger::disarm(&server.url(db)).await?;
                    }
                    proxy.set_latency(Duration::ZERO);
                    for r in replicas.iter_mut() {
                        r.restart().await?;
                        r.set_work_delay(Duration::ZERO).await?;
                    }
                }
            },
            Backend::Url => anyhow::bail!("faults cannot be injected into a url target"),
        }
        Ok(())
    }

    /// Reads the final state for the ids, orgs and keys in the history.
    pub async fn inspect(
        &self,
        ids: &BTreeSet<i64>,
        orgs: &BTreeSet<i64>,
        client: &crate::client::ApiClient,
    ) -> anyhow::Result<StoreView> {
        let mut view = StoreView::default();
        match &self.backend {
            Backend::Postgres { server, db, .. } => {
                // Directly, not through the proxy, and on the current port:
                // a restarted container may have moved.
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(2)
                    .connect(&server.url(db))
                    .await?;
                let pool = &pool;
                let ids: Vec<i64> = ids.iter().copied().collect();
                let found: Vec<Agent> = sqlx::query_as("SELECT * FROM agents WHERE id = ANY($1)")
                    .bind(&ids)
                    .fetch_all(pool)
                    .await?;
                let found: HashMap<i64, Agent> = found.into_iter().map(|a| (a.id, a)).collect();
                for id in ids {
                    view.acknowledged.insert(id, found.get(&id).map(agent_json));
                }
                let dups: Vec<(i64, i64, String, i64)> = sqlx::query_as(
                    "SELECT organization_id, user_id, idempotency_key, count(*) FROM agents
                      WHERE idempotency_key IS NOT NULL GROUP BY 1, 2, 3 HAVING count(*) > 1",
                )
                .fetch_all(pool)
                .await?;
                view.duplicates = dups.into_iter().map(|(o, u, k, n)| ((o, u, k), n as usize)).collect();
                let stuck: Vec<ScopeKey> = sqlx::query_as(
                    "SELECT organization_id, user_id, key FROM idempotency_keys
                      WHERE lease_token IS NOT NULL AND lease_expires_at > now()",
                )
                .fetch_all(pool)
                .await?;
                view.in_progress = Some(stuck);
                pool.close().await;
            }
            Backend::Memory { memory, .. } => {
                let agents = memory.table::<Agent>().all();
                for &id in ids {
                    let agent = agents.iter().find(|a| a.id == id);
                    view.acknowledged.insert(id, agent.map(agent_json));
                }
                let all: Vec<Value> = agents
                    .iter()
                    .filter(|a| orgs.contains(&a.organization_id))
                    .map(agent_json)
                    .collect();
                view.duplicates = count_duplicates(&all);
            }
            Backend::Url => {
                for &id in ids {
                    view.acknowledged
                        .insert(id, client.find_agent(&self.urls[0], id, orgs).await?);
                }
                let mut all = Vec::new();
                for &org in orgs {
                    all.extend(client.list_agents(&self.urls[0], org).await?);
                }
                view.duplicates = count_duplicates(&all);
            }
        }
        Ok(view)
    }

    /// Stops whatever the harness started.
    pub async fn stop(mut self) {
        match &mut self.backend {
            Backend::Memory { app, faults, .. } => {
                faults.stop();
                drop(app.take());
            }
            Backend::Postgres { replicas, severing, .. } => {
                if let Some(task) = severing.take() {
                    task.abort();
                }
                for r in replicas.iter_mut() {
                    r.kill().await;
                }
            }
            Backend::Url => {}
        }
    }
}

/// The harness-wide view of an agent: as the API serialises it.
fn agent_json(agent: &Agent) -> Value {
    serde_json::to_value(agent).unwrap_or(Value::Null)
}

fn count_duplicates(agents: &[Value]) -> Vec<(ScopeKey, usize)> {
    let mut counts: HashMap<ScopeKey, usize> = HashMap::new();
    for a in agents {
        if let (Some(org), Some(user), Some(key)) = (
            a["organization_id"].as_i64(),
            a["user_id"].as_i64(),
            a["idempotency_key"].as_str(),
        ) {
            *counts.entry((org, user, key.to_owned())).or_default() += 1;
        }
    }
    let mut dups: Vec<_> = counts.into_iter().filter(|(_, n)| *n > 1).collect();
    dups.sort();
    dups
}

/// `db-drop` on Postgres: sever every connection every 100 ms.
async fn sever_repeatedly(sever: impl Fn()) {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        sever();
    }
}
