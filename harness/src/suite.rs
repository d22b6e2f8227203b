//! Runs scenarios against a target: (calibrate,) deploy, drive, settle,
//! probe, inspect, check, report.

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::time::Instant;

use crate::check::{self, Violation};
use crate::client::Wording;
use crate::client::{ApiClient, CreateRequest, Who};
use crate::contract::Semantics;
use crate::deploy::{Deployment, ServiceSettings, Target};
use crate::driver;
use crate::fault;
use crate::form::Form;
use crate::history::final_state::Judged;
use crate::postgres::PgServer;
use crate::report::{RunReport, ScenarioReport, Stats, Status};
use crate::scenario::{self, Latency, Scenario};

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

/// Calibration requests sent to a black box before its scenarios.
const CALIBRATION_REQUESTS: usize = 5;

/// Runs `scenarios` against `target`, each on a fresh deployment (a
/// service the harness did not start is the same one throughout).
pub async fn run(
    target: &Target,
    env: &Environment,
    settings: &ServiceSettings,
    sizes: &Sizes,
    scenarios: &[Scenario],
    show_progress: bool,
) -> anyhow::Result<RunReport> {
    let started = Instant::now();
    let nonce = format!(
        "r{:x}-{:x}",
        sizes.seed & 0xffff,
        chrono::Utc::now().timestamp_millis() & 0xff_ffff
    );
    let contract = target.contract(settings)?;
    let client = Arc::new(match target.transport() {
        Some(transport) => ApiClient::with_transport(contract.clone(), &nonce, transport),
        None => ApiClient::new(contract.clone(), &nonce)?,
    });
    let run = Run {
        target,
        env,
        settings,
        sizes,
        nonce: &nonce,
        client: &client,
        semantics: target.semantics(settings),
        show_progress,
    };
    let latency = if target.is_reference() {
        None
    } else {
        Some(run.calibrate().await?)
    };
    let mut reports = Vec::new();
    for &scenario in scenarios {
        let report = match run.scenario(scenario, latency).await {
            Ok(report) => report,
            Err(e) => ScenarioReport::not_run(&scenario.name(), Status::Failed(format!("{e:#}")), 0),
        };
        reports.push(report);
    }
    Ok(RunReport {
        target: target.label(settings),
        target_args: target.args(settings),
        seed: sizes.seed,
        strategy: target.is_reference().then(|| settings.strategy.to_string()),
        contract: contract.source.clone(),
        semantics: run.semantics,
        latency,
        scenarios: reports,
        wall_ms: started.elapsed().as_millis() as u64,
    })
}

/// What every scenario of a run shares.
struct Run<'a> {
    target: &'a Target,
    env: &'a Environment,
    settings: &'a ServiceSettings,
    sizes: &'a Sizes,
    nonce: &'a str,
    client: &'a Arc<ApiClient>,
    semantics: Semantics,
    show_progress: bool,
}

impl Run<'_> {
    /// A black box's latency: a few creations one after another (fresh
    /// keys; they are not part of any scenario).
    async fn calibrate(&self) -> anyhow::Result<Latency> {
        let deployment = Deployment::start(self.target, None, self.settings, self.sizes.seed).await?;
        let result = match self.set_up(&deployment).await {
            Ok(()) => self.measure(&deployment).await,
            Err(e) => Err(e),
        };
        deployment.stop().await;
        result
    }

    /// The target file's fixtures on a fresh deployment, straight to its
    /// first replica.
    async fn set_up(&self, deployment: &Deployment) -> anyhow::Result<()> {
        let base = deployment.direct_urls().first().cloned().unwrap_or_default();
        self.client.set_up(&base).await
    }

    async fn measure(&self, deployment: &Deployment) -> anyhow::Result<Latency> {
        let base = deployment.direct_urls().first().cloned().unwrap_or_default();
        let mut times = Vec::new();
        for i in 0..CALIBRATION_REQUESTS {
            let form = Form::new(format!("{} calibration {i}", self.nonce), 0);
            let key = format!("{}-calibration-{i}", self.nonce);
            let request = CreateRequest {
                who: Who {
                    client: 0,
                    tenant: 0,
                    user: 0,
                },
                key: Some(&key),
                form: &form,
                tag: None,
                wording: Wording::Plain,
            };
            let sent = Instant::now();
            let outcome = self.client.create(&base, &request, Duration::from_secs(30)).await;
            anyhow::ensure!(
                outcome.is_success(),
                "calibration: a fresh creation got {} (run `idemproof check-target` on the target file)",
                outcome.label()
            );
            times.push(sent.elapsed());
        }
        times.sort();
        Ok(Latency {
            typical: times[times.len() / 2],
            slowest: times.last().copied().unwrap_or_default(),
        })
    }

    async fn scenario(&self, scenario: Scenario, latency: Option<Latency>) -> anyhow::Result<ScenarioReport> {
        let started = Instant::now();
        let sizes = self.sizes;
        let contract = self.client.contract();
        let mut deployment =
            Deployment::start(self.target, self.env.postgres.as_ref(), self.settings, sizes.seed).await?;
        let ctx = scenario::Ctx {
            seed: sizes.seed,
            clients: sizes.clients,
            keys: sizes.keys,
            storm_clients: sizes.storm_clients,
            duration: sizes.duration,
            nonce: self.nonce.to_owned(),
            caps: deployment.capabilities(),
            semantics: self.semantics,
            tenants: contract.principals.tenants.len(),
            users: contract.principals.users.len(),
            edit: contract.create.edit.clone(),
            latency,
        };
        let plan = match scenario.plan(&ctx) {
            Ok(plan) => plan,
            Err(why) => {
                deployment.stop().await;
                let wall = started.elapsed().as_millis() as u64;
                return Ok(ScenarioReport::not_run(&scenario.name(), Status::Skipped(why), wall));
            }
        };
        if let Err(e) = self.set_up(&deployment).await {
            deployment.stop().await;
            return Err(e);
        }
        if plan.needs_proxy()
            && let Err(e) = deployment.front_with_proxies().await
        {
            deployment.stop().await;
            return Err(e);
        }
        let progress = progress_bar(
            plan.submissions.len() as u64,
            &format!("{} {scenario}", self.target),
            self.show_progress,
        );
        let mut history = driver::run(plan, &mut deployment, self.client, &progress).await;
        progress.finish_and_clear();

        // Let every lease a fault may have orphaned run out, so that what is
        // still in progress afterwards is stuck, not merely abandoned.
        if history.faults.iter().any(|f| f.fault.may_orphan_claims()) {
            tokio::time::sleep(self.semantics.lease + Duration::from_millis(300)).await;
        }
        let slowest = latency.map_or(Duration::ZERO, |l| l.slowest * 20);
        let probe_timeout = (self.semantics.wait + Duration::from_secs(3)).max(slowest);
        let probes = driver::probe(&history, &deployment, self.client, probe_timeout).await;
        history.events.extend(probes);

        let judged = Judged::of(&history);
        let view = deployment.inspect(&judged, self.client).await;
        deployment.stop().await;
        let view = view?;
        let violations: Vec<Violation> = check::check(
            &history,
            &check::Context {
                view: &view,
                semantics: self.semantics,
                grace: self.semantics.lease + self.semantics.wait + Duration::from_secs(3),
            },
        );
        Ok(ScenarioReport {
            scenario: scenario.name(),
            status: Status::Ran,
            stats: Stats::of(&history),
            violations,
            fault_windows: fault::windows(&history.faults),
            faults: history.faults,
            final_state: view.sources,
            wall_ms: started.elapsed().as_millis() as u64,
        })
    }
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
