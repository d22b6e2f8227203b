//! `--html PATH`: one self-contained HTML file (inline CSS and SVG, no
//! script, nothing fetched) that a person opens in a browser: statistics
//! and latency distributions per scenario, and every violation drawn as a
//! swimlane timeline, one lane per client. `mutants` adds the strategy ×
//! target matrix, each catch linked to its timeline; `load` shows its runs.
//!
//! Every value is interpolated through maud, which escapes it: answers of
//! the service under test (resource ids, error texts) cannot inject markup.

mod load;
mod matrix;
mod page;
mod run;
mod timeline;

use std::path::Path;

use crate::load::LoadReport;
use crate::mutants::MutantsReport;
use crate::report::RunReport;

/// The report of `suite`: one section per target.
pub fn suite(runs: &[RunReport]) -> String {
    let title = "idemproof suite";
    page::page(
        title,
        maud::html! {
            h1 { (title) }
            (run::overview(runs))
            @for (i, r) in runs.iter().enumerate() {
                (run::section(i, r))
            }
        },
    )
    .into_string()
}

/// The report of `mutants`: the matrix, then every run.
pub fn mutants(report: &MutantsReport) -> String {
    let title = "idemproof mutants";
    page::page(
        title,
        maud::html! {
            h1 { (title) }
            (matrix::matrix(report))
            @for (i, r) in report.runs.iter().enumerate() {
                (run::section(i, r))
            }
        },
    )
    .into_string()
}

/// The report of `load`.
pub fn load(report: &LoadReport) -> String {
    page::page("idemproof load", load::body(report)).into_string()
}

/// Writes a report, creating parent directories.
pub fn write(path: &Path, html: &str) -> anyhow::Result<()> {
    crate::report::write_file(path, html.as_bytes())
}

/// Anchor of the `n`th violation of `scenario` in run `run`.
fn violation_anchor(run: usize, scenario: &str, n: usize) -> String {
    format!("r{run}-{scenario}-{n}")
}
