//! What a run produced: per-scenario statistics and violations, written as
//! a terminal table, a JSON file and a latency plot.

mod plot;
mod table;

use std::path::Path;

use hdrhistogram::Histogram;
use serde::Serialize;

pub use self::plot::{cdf_svg, latency_svg};
pub use self::table::{print_summary, print_violations, violations_text};
use crate::check::Violation;
use crate::contract::{Class, Semantics};
use crate::fault::{FaultRecord, FaultWindow};
use crate::history::{History, Outcome, Phase};
use crate::scenario::Latency;

/// Counts and latency of one scenario's load phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// HTTP attempts sent (probes excluded).
    pub requests: u64,
    /// Successes that created (by the replay marker, or else the first
    /// answer naming each resource).
    pub created: u64,
    /// Successes that replayed.
    pub replayed: u64,
    /// "In flight" answers.
    pub conflict: u64,
    /// "Key reused" answers.
    pub mismatch: u64,
    /// Other errors, 5xx and connection failures.
    pub errors: u64,
    /// Client timeouts.
    pub timeouts: u64,
    /// Answers the service sent that the fault proxy kept from the client.
    pub lost: u64,
    /// Median latency of answered attempts, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
    /// `(latency ms, cumulative share)` points for plots.
    pub cdf: Vec<(f64, f64)>,
}

impl Stats {
    /// Statistics of a history's load phase.
    pub fn of(history: &History) -> Self {
        let mut stats = Stats::default();
        let mut latencies = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).ok();
        let mut load: Vec<_> = history.events.iter().filter(|e| e.phase == Phase::Load).collect();
        load.sort_by_key(|e| e.return_us);
        let mut seen = std::collections::BTreeSet::new();
        for e in load {
            stats.requests += 1;
            stats.lost += u64::from(e.unseen.is_some());
            match &e.outcome {
                Outcome::Response { class, replayed, .. } => {
                    match class {
                        Class::Success => {
                            let new = e.outcome.id().is_some_and(|id| seen.insert(id.to_owned()));
                            if replayed.map_or(new, |r| !r) {
                                stats.created += 1;
                            } else {
                                stats.replayed += 1;
                            }
                        }
                        Class::InFlight => stats.conflict += 1,
                        Class::KeyReused => stats.mismatch += 1,
                        Class::MissingKey | Class::Unavailable | Class::Other => stats.errors += 1,
                    }
                    if let Some(h) = &mut latencies {
                        let _ = h.record((e.return_us - e.invoke_us).max(1));
                    }
                }
                Outcome::Timeout => stats.timeouts += 1,
                Outcome::Transport { .. } => stats.errors += 1,
            }
        }
        if let Some(latencies) = latencies.filter(|h| !h.is_empty()) {
            let ms = |us: u64| us as f64 / 1000.0;
            stats.p50_ms = ms(latencies.value_at_quantile(0.50));
            stats.p99_ms = ms(latencies.value_at_quantile(0.99));
            stats.max_ms = ms(latencies.max());
            stats.cdf = (0..=100)
                .map(|i| {
                    let q = f64::from(i) / 100.0;
                    (ms(latencies.value_at_quantile(q)), q)
                })
                .collect();
        }
        stats
    }
}

/// How a scenario ended.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "reason")]
pub enum Status {
    /// It ran; see the violations.
    Ran,
    /// It cannot run on this target.
    Skipped(String),
    /// The harness itself failed (deployment, injection).
    Failed(String),
}

/// One scenario against one target.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// Scenario name.
    pub scenario: String,
    /// Ran, skipped or failed.
    pub status: Status,
    /// Counts and latencies.
    pub stats: Stats,
    /// Broken promises.
    pub violations: Vec<Violation>,
    /// Faults injected, with when.
    pub faults: Vec<FaultRecord>,
    /// When each fault was in force (for shading timelines).
    pub fault_windows: Vec<FaultWindow>,
    /// How the final state was read (empty: it was not).
    pub final_state: Vec<String>,
    /// Wall time of the scenario, ms.
    pub wall_ms: u64,
}

impl ScenarioReport {
    /// A scenario that did not run, and why.
    pub fn not_run(scenario: &str, status: Status, wall_ms: u64) -> Self {
        Self {
            scenario: scenario.to_owned(),
            status,
            stats: Stats::default(),
            violations: Vec::new(),
            faults: Vec::new(),
            fault_windows: Vec::new(),
            final_state: Vec::new(),
            wall_ms,
        }
    }
}

/// One suite run against one target.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Target description.
    pub target: String,
    /// The `idemproof suite` options that attack the same target the same
    /// way (`--target memory --endpoint deployments`), for replay commands.
    pub target_args: String,
    /// Seed to replay the run.
    pub seed: u64,
    /// The broken strategy the harness ran the service with (`None` for a
    /// service it did not start).
    pub strategy: Option<String>,
    /// The target file the clients followed.
    pub contract: String,
    /// What the service promised, as judged.
    pub semantics: Semantics,
    /// The black box's latency, as calibrated (if it was).
    pub latency: Option<Latency>,
    /// Per scenario.
    pub scenarios: Vec<ScenarioReport>,
    /// Wall time of the run, ms.
    pub wall_ms: u64,
}

impl RunReport {
    /// Total violations.
    pub fn violations(&self) -> usize {
        self.scenarios.iter().map(|s| s.violations.len()).sum()
    }

    /// Whether every scenario ran and held.
    pub fn is_clean(&self) -> bool {
        self.violations() == 0 && self.failures() == 0
    }

    /// Panics with the first violations (and the replay command) unless
    /// every scenario that ran held and none failed to run: for a
    /// `cargo test` of your own service.
    pub fn assert_clean(&self) {
        if !self.is_clean() {
            panic!("{}", table::violations_text(self, 3));
        }
    }

    /// Scenarios the harness itself could not run.
    pub fn failures(&self) -> usize {
        self.scenarios
            .iter()
            .filter(|s| matches!(s.status, Status::Failed(_)))
            .count()
    }
}

/// Writes any serialisable report as pretty JSON, creating parent dirs.
pub fn write_json(path: &Path, report: &impl Serialize) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(report)?)?;
    Ok(())
}
