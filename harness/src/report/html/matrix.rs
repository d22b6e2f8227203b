//! The mutants matrix: a row per strategy, a column per target, each cell
//! the verdict and a link to the timeline of every catch.

use maud::{Markup, html};

use super::{run, violation_anchor};
use crate::mutants::{MutantRow, MutantsReport};

/// The matrix, the whole run's verdict under it.
pub(super) fn matrix(report: &MutantsReport) -> Markup {
    let mut targets: Vec<&str> = Vec::new();
    let mut strategies = Vec::new();
    for row in &report.rows {
        if !targets.contains(&row.target.as_str()) {
            targets.push(&row.target);
        }
        if !strategies.contains(&row.strategy) {
            strategies.push(row.strategy);
        }
    }
    html! {
        p.meta { "seed " (report.seed) }
        table.matrix {
            tr {
                th { "strategy" }
                @for t in &targets { th { (t) } }
            }
            @for strategy in &strategies {
                tr data-strategy=(strategy.to_string()) {
                    th { (strategy.to_string()) br; span.meta { (strategy.describe()) } }
                    @for t in &targets {
                        @match report.rows.iter().position(|r| r.strategy == *strategy && r.target == *t) {
                            Some(i) => (cell(report, i, &report.rows[i])),
                            None => td.meta { "does not exist here" },
                        }
                    }
                }
            }
        }
        p class=(if report.passed { "verdict-ok" } else { "verdict-bad" }) {
            @if report.passed { "every broken strategy was caught and the correct one ran clean" }
            @else { "FAILED: see the cells not marked caught or clean" }
        }
    }
}

fn cell(report: &MutantsReport, i: usize, row: &MutantRow) -> Markup {
    let verdict = match (
        row.as_expected(),
        row.strategy == idemproof_service::mutants::Strategy::Correct,
    ) {
        (true, true) => "clean, as it must be",
        (true, false) => "caught",
        (false, true) => "FALSE ALARM or harness failure",
        (false, false) if row.harness_failures > 0 => "HARNESS FAILURE",
        (false, false) => "MISSED",
    };
    let run = &report.runs[i];
    html! {
        td class=(if row.as_expected() { "verdict-ok" } else { "verdict-bad" }) data-verdict=(verdict) {
            a href={ "#run-" (i) } { (verdict) }
            @if row.caught {
                " (" (row.violations) ")"
            }
            @if let Some(s) = row.detected_after_s { span.meta { (format!(" after {s:.2} s")) } }
            @for (scenario, invariant) in &row.caught_by {
                @if let Some(n) = run::representative_of(run, scenario, invariant) {
                    a.catch href={ "#" (violation_anchor(i, scenario, n)) } { (scenario) ": " (invariant) }
                }
            }
        }
    }
}
