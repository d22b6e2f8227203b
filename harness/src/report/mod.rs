//! What a run produced: per-scenario statistics and violations, written as
//! a terminal table, a JSON file and a latency plot.

mod plot;
mod table;

use std::path::Path;

use hdrhistogram::Histogram;
use serde::Serialize;

pub use self::plot::{cdf_svg, latency_svg};
pub use self::table::{print_summary, print_violations};
use crate::check::Violation;
use crate::history::{History, Outcome, Phase};
use crate::target::ServiceSettings;

/// Counts and latency of one scenario's load phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// HTTP attempts sent (probes excluded).
    pub requests: u64,
    /// 201 answers.
    pub created: u64,
    /// 200 answers (replays).
    pub replayed: u64,
    /// 409 answers.
    pub conflict: u64,
    /// 422 answers.
    pub mismatch: u64,
    /// 5xx answers and connection failures.
    pub errors: u64,
    /// Client timeouts.
    pub timeouts: u64,
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
        let mut latencies = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds");
        for e in history.events.iter().filter(|e| e.phase == Phase::Load) {
            stats.requests += 1;
            match &e.outcome {
                Outcome::Response { status, .. } => {
                    match status {
                        201 => stats.created += 1,
                        200 => stats.replayed += 1,
                        409 => stats.conflict += 1,
                        422 => stats.mismatch += 1,
                        s if *s >= 500 => stats.errors += 1,
                        _ => {}
                    }
                    let _ = latencies.record((e.return_us - e.invoke_us).max(1));
                }
                Outcome::Timeout => stats.timeouts += 1,
                Outcome::Transport { .. } => stats.errors += 1,
            }
        }
        if !latencies.is_empty() {
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
    /// Wall time of the scenario, ms.
    pub wall_ms: u64,
}

/// One suite run against one target.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Target description.
    pub target: String,
    /// Seed to replay the run.
    pub seed: u64,
    /// How the services were configured.
    pub settings: ServiceSettings,
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
