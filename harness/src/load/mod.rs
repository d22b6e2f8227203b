//! `idemproof load`: what idempotency costs, measured side by side in one
//! run. Closed and open loop over the four workloads, the legacy design's
//! keyed creation on the same server, `pgbench` running the same
//! transaction on the same database, `wrk` on the same endpoint, and the
//! issue's target ratios computed from those numbers.

pub mod external;
pub mod generator;
mod report;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use idemproof_service::mutants::Strategy;
use serde::Serialize;

pub use self::external::External;
pub use self::generator::{Endpoint, Measured, Workload};
pub use self::report::{latency_svg, print};
use crate::deploy::{ProcessReplica, ServiceSettings};
use crate::postgres::PgServer;

/// Where the load goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoadTarget {
    /// A service process on the in-memory store.
    Memory,
    /// A service process on Postgres (durable settings) in a container.
    Postgres,
    /// An external service.
    Url(String),
}

/// How much load, for how long.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Target.
    pub target: LoadTarget,
    /// Closed-loop connections (also pgbench's and wrk's).
    pub connections: usize,
    /// Measured time per run.
    pub duration: Duration,
    /// Unrecorded time before each run.
    pub warmup: Duration,
    /// Open-loop arrival rate; default half the closed-loop keyed rate.
    pub rate: Option<f64>,
    /// Workloads to run.
    pub workloads: Vec<Workload>,
    /// Run pgbench and wrk.
    pub external: bool,
    /// Run the legacy design's keyed creation for comparison.
    pub legacy: bool,
    /// Seeds the request mix.
    pub seed: u64,
    /// Secret of the service (for `url` targets: the external one's).
    pub secret: String,
    /// Where scripts and plots go.
    pub out: PathBuf,
}

/// One closed- or open-loop run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Workload.
    pub workload: Workload,
    /// `closed` (N connections) or `open` (fixed rate).
    pub mode: String,
    /// Open loop: the arrival rate.
    pub rate: Option<f64>,
    /// Results.
    pub measured: Measured,
}

/// A performance target of docs/benchmarks.md (a ratio and its bound), as measured.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    /// What is compared.
    pub name: String,
    /// The measured ratio, if both sides ran.
    pub value: Option<f64>,
    /// The bound, e.g. `<= 1.15`.
    pub bound: String,
    /// Whether it was met.
    pub met: Option<bool>,
}

/// Everything one `load` invocation measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Target.
    pub target: LoadTarget,
    /// Closed-loop connections.
    pub connections: usize,
    /// Measured seconds per run.
    pub duration_s: f64,
    /// Every harness run.
    pub runs: Vec<Run>,
    /// The legacy design's keyed creation, closed loop, same server.
    pub legacy_keyed: Option<Measured>,
    /// pgbench on the same transaction and database.
    pub pgbench: Option<External>,
    /// wrk on the same endpoint.
    pub wrk: Option<External>,
    /// The target ratios.
    pub targets: Vec<TargetCheck>,
}

impl LoadReport {
    fn closed(&self, workload: Workload) -> Option<&Measured> {
        self.runs
            .iter()
            .find(|r| r.workload == workload && r.mode == "closed")
            .map(|r| &r.measured)
    }
}

/// A running service for the load, and what is needed to reach it.
struct Service {
    endpoint: Endpoint,
    process: Option<ProcessReplica>,
    /// Direct URL of its database, for pgbench.
    db_url: Option<String>,
}

async fn start_service(
    opts: &LoadOptions,
    postgres: Option<&PgServer>,
    strategy: Strategy,
    nonce: &str,
) -> anyhow::Result<Service> {
    let settings = ServiceSettings {
        strategy,
        // The service's pool matches the offered concurrency, as pgbench's
        // connection count does.
        pool_size: opts.connections.clamp(4, 64) as u32,
        ..ServiceSettings::new(opts.secret.clone())
    };
    let (base, process, db_url) = match (&opts.target, postgres) {
        (LoadTarget::Url(url), _) => (url.clone(), None, None),
        (LoadTarget::Postgres, Some(pg)) => {
            let db = pg.create_database().await?;
            let url = pg.url(&db);
            let process = ProcessReplica::start(Some(&url), &settings).await?;
            (format!("http://127.0.0.1:{}", process.port), Some(process), Some(url))
        }
        (LoadTarget::Postgres, None) => anyhow::bail!("the Postgres load target needs the container"),
        (LoadTarget::Memory, _) => {
            let process = ProcessReplica::start(None, &settings).await?;
            (format!("http://127.0.0.1:{}", process.port), Some(process), None)
        }
    };
    let token = idemproof_service::auth::mint(&opts.secret, 1, &[1], 24 * 3600)?;
    let endpoint = Endpoint {
        url: format!("{base}/api/v1/agents?organization_id=1"),
        authorization: format!("Bearer {token}"),
        replay_pool: Arc::new(Vec::new()),
        nonce: nonce.to_owned(),
    };
    Ok(Service {
        endpoint,
        process,
        db_url,
    })
}

/// Creates `n` agents with keys, for the replay workload to replay.
async fn seed_replay_pool(endpoint: &mut Endpoint, n: usize) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let keys: Vec<String> = (0..n).map(|i| format!("{}-replay-{i}", endpoint.nonce)).collect();
    let body = generator::body();
    for chunk in keys.chunks(32) {
        let sends = chunk
            .iter()
            .map(|key| generator::send(&client, endpoint, &body, Some(key), 201));
        for answer in futures::future::join_all(sends).await {
            answer.map_err(|e| anyhow::anyhow!("seeding the replay pool failed: {e}"))?;
        }
    }
    endpoint.replay_pool = Arc::new(keys);
    Ok(())
}

/// Runs everything `opts` asks for.
pub async fn run(opts: &LoadOptions) -> anyhow::Result<LoadReport> {
    let postgres = match opts.target {
        LoadTarget::Postgres => Some(PgServer::start_for_benchmarks().await.map_err(anyhow::Error::msg)?),
        _ => None,
    };
    let result = measure(opts, postgres.as_ref()).await;
    if let Some(pg) = postgres {
        pg.remove().await;
    }
    result
}

async fn measure(opts: &LoadOptions, postgres: Option<&PgServer>) -> anyhow::Result<LoadReport> {
    let nonce = format!("load{:x}", chrono::Utc::now().timestamp_millis() & 0xff_ffff);
    let mut service = start_service(opts, postgres, Strategy::Correct, &nonce).await?;
    if opts.workloads.contains(&Workload::Replay) {
        seed_replay_pool(&mut service.endpoint, 500).await?;
    }
    let mut report = LoadReport {
        target: opts.target.clone(),
        connections: opts.connections,
        duration_s: opts.duration.as_secs_f64(),
        runs: Vec::new(),
        legacy_keyed: None,
        pgbench: None,
        wrk: None,
        targets: Vec::new(),
    };
    let closed = |workload: Workload| {
        let endpoint = service.endpoint.clone();
        async move {
            eprintln!(
                "[load] closed loop, {} connections: {}",
                opts.connections,
                workload.name()
            );
            let measured = generator::closed_loop(
                &endpoint,
                workload,
                opts.connections,
                opts.warmup,
                opts.duration,
                opts.seed,
            )
            .await?;
            Ok::<_, anyhow::Error>(Run {
                workload,
                mode: "closed".into(),
                rate: None,
                measured,
            })
        }
    };
    for &workload in &opts.workloads {
        report.runs.push(closed(workload).await?);
        // wrk right after the harness's own keyed run, on the same endpoint.
        if workload == Workload::Keyed && opts.external {
            eprintln!("[load] wrk, {} connections: keyed", opts.connections);
            let base = service.endpoint.url.clone();
            report.wrk = Some(
                external::wrk(
                    &base,
                    &service.endpoint.authorization,
                    opts.connections,
                    opts.duration,
                    &opts.out,
                )
                .await,
            );
        }
    }
    let rate = opts
        .rate
        .or_else(|| report.closed(Workload::Keyed).map(|m| (m.throughput / 2.0).max(10.0)));
    if let Some(rate) = rate {
        for &workload in &opts.workloads {
            eprintln!("[load] open loop, {rate:.0} requests/s: {}", workload.name());
            let measured =
                generator::open_loop(&service.endpoint, workload, rate, opts.warmup, opts.duration, opts.seed).await?;
            report.runs.push(Run {
                workload,
                mode: "open".into(),
                rate: Some(rate),
                measured,
            });
        }
    }
    if let Some(mut process) = service.process.take() {
        process.kill().await;
    }
    if opts.external
        && let Some(db_url) = &service.db_url
    {
        eprintln!(
            "[load] pgbench, {} connections: the keyed-creation transaction",
            opts.connections
        );
        report.pgbench = Some(external::pgbench(db_url, opts.connections, opts.duration, &opts.out).await);
    }
    if opts.legacy && opts.target == LoadTarget::Postgres {
        eprintln!(
            "[load] closed loop, {} connections: keyed, legacy design",
            opts.connections
        );
        let mut legacy = start_service(opts, postgres, Strategy::Legacy, &format!("{nonce}-legacy")).await?;
        let measured = generator::closed_loop(
            &legacy.endpoint,
            Workload::Keyed,
            opts.connections,
            opts.warmup,
            opts.duration,
            opts.seed,
        )
        .await;
        if let Some(mut process) = legacy.process.take() {
            process.kill().await;
        }
        report.legacy_keyed = Some(measured?);
    }
    report.targets = targets(&report);
    Ok(report)
}

/// The performance targets of docs/benchmarks.md, from this run's numbers.
fn targets(r: &LoadReport) -> Vec<TargetCheck> {
    let keyed = r.closed(Workload::Keyed);
    let unkeyed = r.closed(Workload::Unkeyed);
    let replay = r.closed(Workload::Replay);
    let check = |name: &str, value: Option<f64>, max: Option<f64>, min: Option<f64>| {
        let (bound, met) = match (max, min) {
            (Some(max), _) => (format!("<= {max}"), value.map(|v| v <= max)),
            (_, Some(min)) => (format!(">= {min}"), value.map(|v| v >= min)),
            _ => (String::new(), None),
        };
        TargetCheck {
            name: name.to_owned(),
            value,
            bound,
            met,
        }
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    vec![
        check(
            "keyed create p50 / unkeyed create p50",
            ratio(keyed.map(|m| m.p50_ms), unkeyed.map(|m| m.p50_ms)),
            Some(1.15),
            None,
        ),
        check(
            "keyed create throughput / legacy look-up-then-insert throughput",
            ratio(
                keyed.map(|m| m.throughput),
                r.legacy_keyed.as_ref().map(|m| m.throughput),
            ),
            None,
            Some(1.3),
        ),
        check(
            "replay p50 / keyed create p50",
            ratio(replay.map(|m| m.p50_ms), keyed.map(|m| m.p50_ms)),
            Some(0.5),
            None,
        ),
        check(
            "service keyed-create throughput / pgbench throughput (same transaction)",
            ratio(keyed.map(|m| m.throughput), r.pgbench.as_ref().and_then(External::rate)),
            None,
            Some(0.6),
        ),
        check(
            "harness generator rate / wrk rate (same endpoint)",
            ratio(keyed.map(|m| m.throughput), r.wrk.as_ref().and_then(External::rate)),
            None,
            Some(0.8),
        ),
    ]
}
