//! The system under test: which service, started how, with which faults
//! the harness can inject and how it reads the final state. One backend
//! per file behind [`Backend`]:
//!
//! - [`in_process`]: `memory`, the reference service in process;
//! - [`processes`]: `postgres` / `replicas=N`, service processes over
//!   Postgres in a container;
//! - [`external`]: `url=` / `file=`, a service the harness did not start;
//! - [`router`]: an axum `Router` driven in process, no socket (the
//!   `cargo test` API).
//!
//! The HTTP faults ([`http_faults`]) reach any deployment: through the
//! proxy put in front of it ([`http_proxy`]), or for a router inside its
//! transport. Only the first two backends import the service crate.

pub mod child;
mod db_proxy;
pub mod external;
mod fault_store;
pub mod http_faults;
pub mod http_proxy;
pub mod in_process;
mod insert_trigger;
pub mod processes;
mod read_back;
mod replica;
pub mod router;
mod settings;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use idemproof_service::store::postgres::Schema;
use serde::Serialize;
use serde_json::Value;

pub use self::db_proxy::DbProxy;
pub use self::fault_store::FaultState;
pub use self::http_faults::{HttpFaults, RawAnswer, Unseen};
pub use self::http_proxy::HttpProxy;
pub use self::replica::ProcessReplica;
pub use self::settings::ServiceSettings;
use crate::client::{ApiClient, Transport};
use crate::contract::{Contract, Endpoint, Semantics};
use crate::fault::Fault;
use crate::history::ScopeKey;
use crate::history::final_state::{FinalState, Judged};
use crate::postgres::PgServer;

/// Which service to attack.
#[derive(Clone)]
pub enum Target {
    /// The reference service in process over the in-memory store.
    Memory,
    /// `replicas` reference service processes sharing one Postgres.
    Postgres {
        /// Number of service processes.
        replicas: usize,
    },
    /// A service the harness did not start, described by its contract
    /// (which has its base URL).
    External {
        /// Its contract.
        contract: Arc<Contract>,
        /// How the command line named it.
        label: String,
    },
    /// An axum router, driven in process.
    Router {
        /// Its contract (the base URL is ignored).
        contract: Arc<Contract>,
        /// The application, as the clients' transport.
        router: Arc<router::InProcess>,
        /// A name for reports.
        label: String,
    },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({self})")
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("memory"),
            Self::Postgres { replicas: 1 } => f.write_str("postgres"),
            Self::Postgres { replicas } => write!(f, "replicas={replicas}"),
            Self::External { label, .. } | Self::Router { label, .. } => f.write_str(label),
        }
    }
}

impl Target {
    /// Parses a command-line target: `memory`, `postgres`, `replicas=N`,
    /// `url=http://…` (the reference contract at that URL) or `file=PATH`
    /// (a target file).
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "memory" => return Ok(Self::Memory),
            "postgres" => return Ok(Self::Postgres { replicas: 1 }),
            _ => {}
        }
        if let Some(n) = s.strip_prefix("replicas=") {
            let replicas = n
                .parse::<usize>()
                .map_err(|_| anyhow::anyhow!("bad replica count in `{s}`"))?;
            anyhow::ensure!((1..=16).contains(&replicas), "replicas must be 1 to 16");
            Ok(Self::Postgres { replicas })
        } else if let Some(url) = s.strip_prefix("url=") {
            anyhow::ensure!(
                url.starts_with("http://") || url.starts_with("https://"),
                "`{url}` is not an http(s) URL"
            );
            let contract = Contract::reference()?.at(url);
            Ok(Self::External {
                contract: Arc::new(contract),
                label: format!("url={}", url.trim_end_matches('/')),
            })
        } else if let Some(path) = s.strip_prefix("file=") {
            let contract = Contract::from_file(&PathBuf::from(path))?;
            anyhow::ensure!(
                contract.base_url.is_some(),
                "{path} has no base_url: add one, or use the file from code with a URL"
            );
            Ok(Self::External {
                contract: Arc::new(contract),
                label: format!("file={path}"),
            })
        } else {
            anyhow::bail!("unknown target `{s}`: use memory, postgres, replicas=N, url=http://... or file=PATH")
        }
    }

    /// A service at `url`, described by `contract`.
    pub fn url(contract: Contract, url: &str) -> Self {
        let contract = contract.at(url);
        Self::External {
            label: format!("url={}", url.trim_end_matches('/')),
            contract: Arc::new(contract),
        }
    }

    /// An axum router, described by `contract`, driven in process.
    pub fn router(contract: Contract, router: axum::Router) -> Self {
        Self::Router {
            label: format!("router ({})", contract.source),
            contract: Arc::new(contract),
            router: Arc::new(router::InProcess::new(router)),
        }
    }

    /// What carries the clients' requests when it is not the network (a
    /// router in process).
    pub fn transport(&self) -> Option<Arc<dyn Transport>> {
        match self {
            Self::Router { router, .. } => Some(router.clone()),
            _ => None,
        }
    }

    /// What reports call the target run with `settings`: `memory`, or
    /// `replicas=2 (deployments, partitioned)` for a reference target
    /// started with other than the default endpoint or schema.
    pub fn label(&self, settings: &ServiceSettings) -> String {
        let extra = if self.is_reference() {
            settings.label(self.needs_postgres())
        } else {
            String::new()
        };
        if extra.is_empty() {
            self.to_string()
        } else {
            format!("{self} ({extra})")
        }
    }

    /// The command-line options naming this target run with `settings`
    /// (`--target replicas=2 --endpoint deployments`).
    pub fn args(&self, settings: &ServiceSettings) -> String {
        let mut args = format!("--target {self}");
        let reference =
            self.is_reference() || matches!(self, Self::External { label, .. } if label.starts_with("url="));
        if reference && settings.endpoint != Endpoint::Agents {
            args.push_str(&format!(" --endpoint {}", settings.endpoint));
        }
        if self.needs_postgres() && settings.schema != Schema::Plain {
            args.push_str(&format!(" --database-schema {}", crate::value_name(&settings.schema)));
        }
        args
    }

    /// Whether the target needs the Postgres container.
    pub fn needs_postgres(&self) -> bool {
        matches!(self, Self::Postgres { .. })
    }

    /// Whether the harness starts the reference service itself (and so
    /// chooses its strategy and settings).
    pub fn is_reference(&self) -> bool {
        matches!(self, Self::Memory | Self::Postgres { .. })
    }

    /// What the target lets the harness do.
    pub fn capabilities(&self) -> Capabilities {
        match self {
            Self::Memory => Capabilities::in_process(),
            Self::Postgres { replicas } => Capabilities::processes(*replicas),
            Self::External { .. } | Self::Router { .. } => Capabilities::black_box(),
        }
    }

    /// The contract the clients follow: the reference one, with the
    /// secret of the services the harness starts, or the target's own.
    pub fn contract(&self, settings: &ServiceSettings) -> anyhow::Result<Arc<Contract>> {
        match self {
            Self::Memory | Self::Postgres { .. } => {
                let mut contract = Contract::reference_for(settings.endpoint)?;
                contract.auth.secret = Some(settings.secret.clone());
                Ok(Arc::new(contract))
            }
            Self::External { contract, .. } | Self::Router { contract, .. } => Ok(contract.clone()),
        }
    }

    /// What the service promises: the settings the harness starts it
    /// with, or what the target's contract says.
    pub fn semantics(&self, settings: &ServiceSettings) -> Semantics {
        match self {
            Self::Memory | Self::Postgres { .. } => settings.semantics,
            Self::External { contract, .. } | Self::Router { contract, .. } => contract.semantics,
        }
    }
}

/// What a deployment lets the harness do.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Capabilities {
    /// Processes can be killed (or, in process, a kill is emulated).
    pub crash: bool,
    /// Database faults can be injected (for real or emulated), latency too.
    pub db_faults: bool,
    /// Faults are emulated at the store boundary rather than real.
    pub emulated: bool,
    /// Distinct service replicas clients can be sent to.
    pub replicas: usize,
    /// Nothing but the API (and the HTTP proxy) reaches the service.
    pub black_box: bool,
}

impl Capabilities {
    /// The reference service in process.
    pub fn in_process() -> Self {
        Self {
            crash: true,
            db_faults: true,
            emulated: true,
            replicas: 1,
            black_box: false,
        }
    }

    /// `replicas` service processes over Postgres.
    pub fn processes(replicas: usize) -> Self {
        Self {
            crash: true,
            db_faults: true,
            emulated: false,
            replicas,
            black_box: false,
        }
    }

    /// A service reached only through its API.
    pub fn black_box() -> Self {
        Self {
            crash: false,
            db_faults: false,
            emulated: false,
            replicas: 1,
            black_box: true,
        }
    }
}

/// One kind of deployment. Its futures need not be `Send` (the suite
/// drives deployments from one task; testcontainers' and sqlx's futures
/// are not `Send` for every lifetime).
#[async_trait(?Send)]
pub trait Backend: Send + Sync {
    /// Base URLs, one per replica (stable across restarts).
    fn urls(&self) -> Vec<String>;
    /// What can be done to it.
    fn capabilities(&self) -> Capabilities;
    /// Where the HTTP faults apply when the backend applies them itself
    /// (a router in process) rather than through a proxy in front of it.
    fn http_faults(&self) -> Option<Arc<HttpFaults>> {
        None
    }
    /// Injects (or removes, `Heal`) a fault other than the HTTP ones.
    async fn apply(&mut self, fault: Fault) -> anyhow::Result<()>;
    /// Reads the final state the history asks about.
    async fn inspect(&self, judged: &Judged, client: &ApiClient) -> anyhow::Result<FinalState>;
    /// Stops whatever the harness started.
    async fn stop(&mut self);
}

/// A running system under test, possibly behind HTTP fault proxies.
pub struct Deployment {
    backend: Box<dyn Backend>,
    proxies: Vec<HttpProxy>,
    /// The backend's own HTTP faults, once armed instead of proxies.
    in_process: Option<Arc<HttpFaults>>,
}

impl Deployment {
    /// Starts a fresh system under test (fresh store or database).
    pub async fn start(
        target: &Target,
        postgres: Option<&Arc<PgServer>>,
        settings: &ServiceSettings,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let backend: Box<dyn Backend> = match target {
            Target::Memory => Box::new(in_process::InProcess::start(settings, seed).await?),
            Target::Postgres { replicas } => {
                let server = postgres.context("the Postgres target needs the container")?.clone();
                Box::new(processes::Processes::start(server, *replicas, settings).await?)
            }
            Target::External { contract, .. } => {
                let url = contract.base_url.as_deref().context("the target has no base URL")?;
                Box::new(external::External::new(url))
            }
            Target::Router { router, .. } => Box::new(router::Driven::start(router.clone())),
        };
        Ok(Self {
            backend,
            proxies: Vec::new(),
            in_process: None,
        })
    }

    /// Lets the HTTP faults reach the clients' requests: an HTTP fault
    /// proxy in front of every replica (clients go through it from now on;
    /// probes and reads still go direct), or the backend's own.
    pub async fn front_with_proxies(&mut self) -> anyhow::Result<()> {
        if let Some(faults) = self.backend.http_faults() {
            self.in_process = Some(faults);
        } else if self.proxies.is_empty() {
            for url in self.backend.urls() {
                self.proxies.push(HttpProxy::start(&url).await?);
            }
        }
        Ok(())
    }

    /// Where clients send their requests, one URL per replica.
    pub fn urls(&self) -> Vec<String> {
        if self.proxies.is_empty() {
            self.backend.urls()
        } else {
            self.proxies.iter().map(|p| p.url.clone()).collect()
        }
    }

    /// The services' own URLs, past any proxy.
    pub fn direct_urls(&self) -> Vec<String> {
        self.backend.urls()
    }

    /// Whether the HTTP faults reach the clients' requests.
    pub fn proxied(&self) -> bool {
        !self.proxies.is_empty() || self.in_process.is_some()
    }

    /// What can be done to this deployment.
    pub fn capabilities(&self) -> Capabilities {
        self.backend.capabilities()
    }

    /// Injects (or removes) a fault.
    pub async fn apply(&mut self, fault: Fault) -> anyhow::Result<()> {
        if fault.is_http() || fault == Fault::Heal {
            anyhow::ensure!(fault == Fault::Heal || self.proxied(), "{fault:?} needs the HTTP proxy");
            for p in &self.proxies {
                p.apply(fault);
            }
            if let Some(faults) = &self.in_process {
                faults.apply(fault);
            }
        }
        if fault.is_http() {
            return Ok(());
        }
        self.backend.apply(fault).await
    }

    /// Per replica, the answers the HTTP faults kept from clients (empty
    /// when none can).
    pub fn unseen(&self) -> Vec<Unseen> {
        match &self.in_process {
            Some(faults) => vec![Unseen(faults.clone())],
            None => self.proxies.iter().map(HttpProxy::unseen).collect(),
        }
    }

    /// Reads the final state the history asks about.
    pub async fn inspect(&self, judged: &Judged, client: &ApiClient) -> anyhow::Result<FinalState> {
        self.backend.inspect(judged, client).await
    }

    /// Stops whatever the harness started.
    pub async fn stop(mut self) {
        self.proxies.clear();
        self.backend.stop().await;
    }
}

/// A resource as the API serialises it (the reference backends' view).
fn resource_json<R: Serialize>(resource: &R) -> Value {
    serde_json::to_value(resource).unwrap_or(Value::Null)
}

/// Judged scopes holding more than one resource, from counts by
/// (tenant, user, key) labels.
fn count_judged(
    judged: &Judged,
    counts: impl IntoIterator<Item = ((String, String, String), usize)>,
) -> Vec<(ScopeKey, usize)> {
    let mut dups: Vec<(ScopeKey, usize)> = counts
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .filter_map(|((t, u, k), n)| Some((judged.find(&t, &u, &k)?, n)))
        .collect();
    dups.sort();
    dups
}
