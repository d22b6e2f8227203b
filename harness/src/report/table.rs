//! The terminal summary: one row per scenario, then the violations with
//! their timelines and the command that replays them.

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};

use super::{RunReport, Status};

/// Prints the per-scenario table of a run.
pub fn print_summary(report: &RunReport) {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header(vec![
        "scenario",
        "requests",
        "created",
        "replayed",
        "in flight",
        "key reused",
        "errors",
        "timeouts",
        "lost",
        "p50 ms",
        "p99 ms",
        "violations",
    ]);
    let mut notes = Vec::new();
    for s in &report.scenarios {
        let mut row = vec![Cell::new(&s.scenario)];
        match &s.status {
            Status::Ran => {
                let st = &s.stats;
                for n in [
                    st.requests,
                    st.created,
                    st.replayed,
                    st.conflict,
                    st.mismatch,
                    st.errors,
                    st.timeouts,
                    st.lost,
                ] {
                    row.push(Cell::new(n).set_alignment(CellAlignment::Right));
                }
                row.push(Cell::new(format!("{:.1}", st.p50_ms)).set_alignment(CellAlignment::Right));
                row.push(Cell::new(format!("{:.1}", st.p99_ms)).set_alignment(CellAlignment::Right));
                row.push(Cell::new(s.violations.len()).set_alignment(CellAlignment::Right));
            }
            Status::Skipped(why) => {
                row.push(Cell::new("skipped"));
                notes.push(format!("{} skipped: {why}", s.scenario));
            }
            Status::Failed(why) => {
                row.push(Cell::new("HARNESS FAILURE"));
                notes.push(format!("{} could not run: {why}", s.scenario));
            }
        }
        table.add_row(row);
    }
    let strategy = report
        .strategy
        .as_ref()
        .map(|s| format!("  strategy {s}"))
        .unwrap_or_default();
    let latency = report
        .latency
        .map(|l| format!("  latency {:?} typical, {:?} slowest", l.typical, l.slowest))
        .unwrap_or_default();
    println!(
        "\ntarget {}{strategy}  seed {}{latency}  ({:.1} s)\n{table}",
        report.target,
        report.seed,
        report.wall_ms as f64 / 1000.0
    );
    for note in notes {
        println!("  {note}");
    }
}

/// Prints up to `per_scenario` violations of each scenario in full.
pub fn print_violations(report: &RunReport, per_scenario: usize) {
    print!("{}", violations_text(report, per_scenario));
}

/// Up to `per_scenario` violations of each scenario in full, with the
/// command that replays each, and the scenarios that could not run.
pub fn violations_text(report: &RunReport, per_scenario: usize) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let strategy = match report.strategy.as_deref() {
        None | Some("correct") => String::new(),
        Some(other) => format!(" --strategy {other}"),
    };
    for s in &report.scenarios {
        if let Status::Failed(why) = &s.status {
            let _ = writeln!(out, "\n{} could not run on {}: {why}", s.scenario, report.target);
        }
        for v in s.violations.iter().take(per_scenario) {
            let _ = writeln!(
                out,
                "\nVIOLATION {} in {} on {}",
                v.invariant, s.scenario, report.target
            );
            if let Some(scope) = &v.scope {
                let _ = writeln!(
                    out,
                    "  key {:?} (tenant {}, user {})",
                    scope.key, scope.tenant, scope.user
                );
            }
            let _ = writeln!(out, "  {}", v.detail);
            for line in &v.timeline {
                let _ = writeln!(out, "    {line}");
            }
            let _ = writeln!(
                out,
                "  replay: idemproof suite {} --scenario {} --seed {}{strategy}",
                report.target_args, s.scenario, report.seed
            );
        }
        if s.violations.len() > per_scenario {
            let _ = writeln!(
                out,
                "\n… and {} more violations in {}",
                s.violations.len() - per_scenario,
                s.scenario
            );
        }
    }
    out
}
