//! `--junit PATH`: the run as JUnit XML, the format GitLab, GitHub
//! Actions' test reporters and Jenkins read, so each harness run shows as
//! tests. `suite`: a test suite per target, a test case per scenario; a
//! scenario with violations fails with every violation's timeline in the
//! failure's text (one `<failure>` per test case, the form those systems
//! read), one that could not run is an error, a skipped one is skipped.
//! `mutants`: a test case per (strategy, target), failed unless caught (or,
//! for the correct strategy, clean).

use std::path::Path;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{RunReport, ScenarioReport, Status, scenario_violations_text};
use crate::mutants::MutantsReport;

/// Every violation of a scenario goes into its failure's text.
const ALL: usize = usize::MAX;

/// The JUnit report of `suite` runs.
pub fn suite(runs: &[RunReport]) -> anyhow::Result<String> {
    let mut report = Report::new("idemproof suite");
    let mut total = Duration::ZERO;
    for run in runs {
        let mut suite = TestSuite::new(suite_name(run));
        let time = Duration::from_millis(run.wall_ms);
        suite.set_time(time);
        total += time;
        for s in &run.scenarios {
            suite.add_test_case(scenario_case(run, s));
        }
        report.add_test_suite(suite);
    }
    report.set_time(total);
    Ok(report.to_string()?)
}

/// The JUnit report of `mutants`.
pub fn mutants(m: &MutantsReport) -> anyhow::Result<String> {
    let mut report = Report::new("idemproof mutants");
    let mut suite = TestSuite::new(format!("idemproof mutants (seed {})", m.seed));
    let mut total = Duration::ZERO;
    for (row, run) in m.rows.iter().zip(&m.runs) {
        let time = Duration::from_millis(run.wall_ms);
        total += time;
        let correct = row.strategy == idemproof_service::mutants::Strategy::Correct;
        let catches: Vec<String> = row.caught_by.iter().map(|(s, i)| format!("{s}: {i}")).collect();
        let status = if row.as_expected() {
            TestCaseStatus::success()
        } else if row.harness_failures > 0 {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
            st.set_message(format!("{} scenarios the harness could not run", row.harness_failures))
                .set_type("harness-failure")
                .set_description(super::violations_text(run, 3));
            st
        } else if correct {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
            st.set_message(format!("the correct strategy broke {} promises", row.violations))
                .set_type("false-alarm")
                .set_description(super::violations_text(run, ALL));
            st
        } else {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
            st.set_message(format!("{} was not caught: {}", row.strategy, row.description))
                .set_type("missed");
            st
        };
        let mut case = TestCase::new(format!("{} on {}", row.strategy, row.target), status);
        case.set_classname(format!("idemproof.mutants.{}", class_safe(&row.target)))
            .set_time(time);
        if !catches.is_empty() {
            case.set_system_out(format!("caught by:\n{}\n", catches.join("\n")));
        }
        suite.add_test_case(case);
    }
    suite.set_time(total);
    report.add_test_suite(suite).set_time(total);
    Ok(report.to_string()?)
}

/// Writes a report, creating parent directories.
pub fn write(path: &Path, xml: &str) -> anyhow::Result<()> {
    super::write_file(path, xml.as_bytes())
}

fn suite_name(run: &RunReport) -> String {
    match run.strategy.as_deref() {
        None | Some("correct") => format!("idemproof suite on {}", run.target),
        Some(s) => format!("idemproof suite on {}, strategy {s}", run.target),
    }
}

fn scenario_case(run: &RunReport, s: &ScenarioReport) -> TestCase {
    let status = match &s.status {
        Status::Ran if s.violations.is_empty() => TestCaseStatus::success(),
        Status::Ran => {
            let mut invariants: Vec<String> = s.violations.iter().map(|v| v.invariant.name()).collect();
            invariants.dedup();
            let first = &s.violations[0];
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
            st.set_message(format!(
                "{} violations ({}); first: {}",
                s.violations.len(),
                invariants.join(", "),
                first.detail
            ))
            .set_type(first.invariant.name())
            .set_description(scenario_violations_text(run, s, ALL));
            st
        }
        Status::Skipped(why) => {
            let mut st = TestCaseStatus::skipped();
            st.set_message(why.as_str());
            st
        }
        Status::Failed(why) => {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
            st.set_message(why.as_str()).set_type("harness-failure");
            st
        }
    };
    let mut case = TestCase::new(s.scenario.as_str(), status);
    case.set_classname(format!("idemproof.{}", class_safe(&run.target)))
        .set_time(Duration::from_millis(s.wall_ms));
    let st = &s.stats;
    if matches!(s.status, Status::Ran) {
        case.set_system_out(format!(
            "requests {} created {} replayed {} in-flight {} key-reused {} errors {} timeouts {} lost {} \
             p50 {:.1} ms p99 {:.1} ms\n",
            st.requests,
            st.created,
            st.replayed,
            st.conflict,
            st.mismatch,
            st.errors,
            st.timeouts,
            st.lost,
            st.p50_ms,
            st.p99_ms
        ));
    }
    case
}

/// A target label as a dotted class name segment (`memory`,
/// `postgres_x2_replicas`): CI systems split class names on dots.
fn class_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect()
}
