//! `idemproof mutants`: the harness's proof of power. The suite runs
//! against the correct strategy and against each deliberately broken one;
//! the run passes only if the correct one is clean and every broken one is
//! caught, on every target it exists for.

use std::collections::BTreeSet;
use std::time::Duration;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use idemproof_service::mutants::Strategy;
use serde::Serialize;

use crate::deploy::{ServiceSettings, Target};
use crate::report::{RunReport, Status};
use crate::scenario::Scenario;
use crate::suite::{self, Environment, Sizes};

/// One strategy on one target.
#[derive(Debug, Clone, Serialize)]
pub struct MutantRow {
    /// Strategy name.
    pub strategy: Strategy,
    /// What is broken about it.
    pub description: &'static str,
    /// Target description.
    pub target: String,
    /// Whether any invariant was violated.
    pub caught: bool,
    /// `(scenario, invariant)` of every violation kind found.
    pub caught_by: Vec<(String, String)>,
    /// Seconds into the run when the first violating answer came back.
    pub detected_after_s: Option<f64>,
    /// Violations in all.
    pub violations: usize,
    /// Scenarios the harness itself failed to run.
    pub harness_failures: usize,
}

impl MutantRow {
    /// Whether this row is what the harness must produce: clean for the
    /// correct strategy, caught for a broken one, no harness failures.
    pub fn as_expected(&self) -> bool {
        self.harness_failures == 0 && (self.caught == (self.strategy != Strategy::Correct))
    }
}

/// The whole `mutants` run.
#[derive(Debug, Clone, Serialize)]
pub struct MutantsReport {
    /// Seed of every run.
    pub seed: u64,
    /// The table.
    pub rows: Vec<MutantRow>,
    /// Every run in full.
    pub runs: Vec<RunReport>,
    /// Every row as expected.
    pub passed: bool,
}

/// Runs the suite for each strategy on each target, with the scenarios
/// `scenarios` gives for the strategy (the command line runs the same for
/// all; a test may run each broken one only where it is known to be
/// caught).
pub async fn run(
    targets: &[Target],
    env: &Environment,
    base: &ServiceSettings,
    sizes: &Sizes,
    scenarios: impl Fn(Strategy) -> Vec<Scenario>,
    show_progress: bool,
) -> anyhow::Result<MutantsReport> {
    let mut rows = Vec::new();
    let mut runs = Vec::new();
    for strategy in strategies() {
        for target in targets {
            if !exists_on(strategy, target) {
                continue;
            }
            let settings = ServiceSettings {
                strategy,
                ..base.clone()
            };
            eprintln!("[mutants] {strategy} on {}", target.label(&settings));
            let report = suite::run(target, env, &settings, sizes, &scenarios(strategy), show_progress).await?;
            rows.push(row(strategy, &report));
            runs.push(report);
        }
    }
    let passed = rows.iter().all(MutantRow::as_expected);
    Ok(MutantsReport {
        seed: sizes.seed,
        rows,
        runs,
        passed,
    })
}

/// The correct strategy, then every broken one.
pub fn strategies() -> impl Iterator<Item = Strategy> {
    std::iter::once(Strategy::Correct).chain(Strategy::broken())
}

/// Whether `strategy` can run on `target` (split-lock is in-process state).
pub fn exists_on(strategy: Strategy, target: &Target) -> bool {
    target.is_reference() && (!target.needs_postgres() || strategy.has_postgres_form())
}

fn row(strategy: Strategy, report: &RunReport) -> MutantRow {
    let mut caught_by = BTreeSet::new();
    let mut detected_after = None;
    let mut elapsed = Duration::ZERO;
    for s in &report.scenarios {
        for v in &s.violations {
            caught_by.insert((s.scenario.clone(), v.invariant.name()));
        }
        if detected_after.is_none()
            && let Some(first) = s.violations.iter().map(|v| v.at_us).min()
        {
            detected_after = Some((elapsed + Duration::from_micros(first)).as_secs_f64());
        }
        elapsed += Duration::from_millis(s.wall_ms);
    }
    MutantRow {
        strategy,
        description: strategy.describe(),
        target: report.target.clone(),
        caught: report.violations() > 0,
        caught_by: caught_by.into_iter().collect(),
        detected_after_s: detected_after,
        violations: report.violations(),
        harness_failures: report
            .scenarios
            .iter()
            .filter(|s| matches!(s.status, Status::Failed(_)))
            .count(),
    }
}

/// Prints the table: strategy, target, caught, by what, how fast.
pub fn print(report: &MutantsReport) {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header(vec![
        "strategy",
        "target",
        "caught?",
        "by (scenario: invariant)",
        "detected after",
        "verdict",
    ]);
    for r in &report.rows {
        let by = if r.caught_by.is_empty() {
            "-".to_owned()
        } else {
            let mut lines: Vec<String> = r.caught_by.iter().take(6).map(|(s, i)| format!("{s}: {i}")).collect();
            if r.caught_by.len() > 6 {
                lines.push(format!("… {} more", r.caught_by.len() - 6));
            }
            lines.join("\n")
        };
        table.add_row(vec![
            format!("{}\n({})", r.strategy, r.description),
            r.target.clone(),
            if r.caught {
                format!("yes ({})", r.violations)
            } else {
                "no".into()
            },
            by,
            r.detected_after_s.map_or("-".into(), |s| format!("{s:.2} s")),
            match (r.as_expected(), r.strategy == Strategy::Correct) {
                (true, true) => "clean, as it must be".into(),
                (true, false) => "caught".into(),
                (false, true) => "FALSE ALARM or harness failure".into(),
                (false, false) if r.harness_failures > 0 => "HARNESS FAILURE".into(),
                (false, false) => "MISSED".into(),
            },
        ]);
    }
    println!("\nmutants (seed {})\n{table}", report.seed);
    println!(
        "{}",
        if report.passed {
            "every broken strategy was caught and the correct one ran clean"
        } else {
            "FAILED: see the rows not marked caught/clean"
        }
    );
}
