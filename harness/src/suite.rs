//! Runs scenarios against a target: deploy, drive, settle, probe,
//! inspect, check, report.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::time::Instant;

use crate::check::{self, Violation};
use crate::client::ApiClient;
use crate::driver;
use crate::postgres::PgServer;
use crate::report::{RunReport, ScenarioReport, Stats, Status};
use crate::scenario::{self, Scenario};
use crate::target::{Deployment, ServiceSettings, TargetSpec};

/// How big a run is.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// Seeds every plan.
    pub seed: u64,
    /// Concurrent clients in the continuous scenarios.
    pub clients: usize,
    /// Keys in the per-key scenarios.
    pub keys: usize,
    /// Clients per key in `storm`.
    pub storm_clients: usize,
    /// Load window per scenario.
    pub duration: Duration,
}

impl Sizes {
    /// The small sizes the test suite uses: seconds per scenario.
    pub fn smoke(seed: u64) -> Self {
        Self {
            seed,
            clients: 8,
            keys: 8,
            storm_clients: 16,
            duration: Duration::from_millis(1500),
        }
    }
}

/// Shared infrastructure of a run: the Postgres container, if any.
pub struct Environment {
    /// Started when a target needs it.
    pub postgres: Option<Arc<PgServer>>,
}

impl Environment {
    /// Starts Postgres if `needs_postgres`.
    pub async fn start(needs_postgres: bool) -> Result<Self, String> {
        let postgres = if needs_postgres {
            Some(Arc::new(PgServer::start().await?))
        } else {
            None
        };
        Ok(Self { postgres })
    }

    /// Removes the container.
    pub async fn stop(self) {
        if let Some(pg) = self.postgres
            && let Ok(pg) = Arc::try_unwrap(pg)
        {
            pg.remove().await;
        }
    }
}

/// Runs `scenarios` against `target`, each on a fresh deployment.
pub async fn run(
    target: &TargetSpec,
    env: &Environment,
    settings: &ServiceSettings,
    sizes: &Sizes,
    scenarios: &[Scenario],
    show_progress: bool,
) -> anyhow::Result<RunReport> {
    let started = Instant::now();
    let client = Arc::new(ApiClient::new(&settings.secret)?);
    let nonce = format!(
        "r{:x}-{:x}",
        sizes.seed & 0xffff,
        chrono::Utc::now().timestamp_millis() & 0xff_ffff
    );
    let mut reports = Vec::new();
    for &scenario in scenarios {
        let report = match run_one(target, env, settings, sizes, scenario, &nonce, &client, show_progress).await {
            Ok(report) => report,
            Err(e) => ScenarioReport {
                scenario: scenario.name().into(),
                status: Status::Failed(format!("{e:#}")),
                stats: Stats::default(),
                violations: Vec::new(),
                wall_ms: 0,
            },
        };
        reports.push(report);
    }
    Ok(RunReport {
        target: target.to_string(),
        seed: sizes.seed,
        settings: settings.clone(),
        scenarios: reports,
        wall_ms: started.elapsed().as_millis() as u64,
    })
}

#[allow(clippy::too_many_arguments)]
async fn run_one(
    target: &TargetSpec,
    env: &Environment,
    settings: &ServiceSettings,
    sizes: &Sizes,
    scenario: Scenario,
    nonce: &str,
    client: &Arc<ApiClient>,
    show_progress: bool,
) -> anyhow::Result<ScenarioReport> {
    let started = Instant::now();
    let mut deployment = Deployment::start(target, env.postgres.as_ref(), settings, sizes.seed).await?;
    let ctx = scenario::Ctx {
        seed: sizes.seed,
        clients: sizes.clients,
        keys: sizes.keys,
        storm_clients: sizes.storm_clients,
        duration: sizes.duration,
        nonce: nonce.to_owned(),
        caps: deployment.capabilities(),
        settings: settings.clone(),
    };
    let plan = match scenario.plan(&ctx) {
        Ok(plan) => plan,
        Err(why) => {
            deployment.stop().await;
            return Ok(ScenarioReport {
                scenario: scenario.name().into(),
                status: Status::Skipped(why),
                stats: Stats::default(),
                violations: Vec::new(),
                wall_ms: started.elapsed().as_millis() as u64,
            });
        }
    };
    let progress = progress_bar(
        plan.submissions.len() as u64,
        &format!("{target} {scenario}"),
        show_progress,
    );
    let mut history = driver::run(plan, &mut deployment, client, &progress).await;
    progress.finish_and_clear();

    // Let every lease a fault may have orphaned run out, so that what is
    // still in progress afterwards is stuck, not merely abandoned.
    if !history.faults.is_empty() {
        tokio::time::sleep(settings.lease + Duration::from_millis(300)).await;
    }
    let probes = driver::probe(&history, &deployment, client, settings.wait + Duration::from_secs(3)).await;
    history.events.extend(probes);

    let ids: BTreeSet<i64> = history.events.iter().filter_map(|e| e.outcome.agent_id()).collect();
    let orgs: BTreeSet<i64> = history.submissions.iter().map(|s| s.org).collect();
    let view = deployment.inspect(&ids, &orgs, client).await;
    deployment.stop().await;
    let view = view?;
    let violations: Vec<Violation> = check::check(
        &history,
        &check::Context {
            view: &view,
            mismatch: settings.mismatch,
            grace: settings.lease + settings.wait + Duration::from_secs(3),
        },
    );
    Ok(ScenarioReport {
        scenario: scenario.name().into(),
        status: Status::Ran,
        stats: Stats::of(&history),
        violations,
        wall_ms: started.elapsed().as_millis() as u64,
    })
}

/// A progress bar that only appears once a scenario has run for a second,
/// and only on a terminal.
fn progress_bar(len: u64, label: &str, show: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
    if let Ok(style) = ProgressStyle::with_template("{msg:30} [{bar:40}] {pos}/{len} forms {elapsed}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_owned());
    if show {
        let bar = bar.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if !bar.is_finished() {
                bar.set_draw_target(ProgressDrawTarget::stderr());
            }
        });
    }
    bar
}
