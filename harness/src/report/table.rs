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
        "409",
        "422",
        "errors",
        "timeouts",
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
    println!(
        "\ntarget {}  strategy {}  seed {}  ({:.1} s)\n{table}",
        report.target,
        report.settings.strategy,
        report.seed,
        report.wall_ms as f64 / 1000.0
    );
    for note in notes {
        println!("  {note}");
    }
}

/// Prints up to `per_scenario` violations of each scenario in full.
pub fn print_violations(report: &RunReport, per_scenario: usize) {
    for s in &report.scenarios {
        for v in s.violations.iter().take(per_scenario) {
            println!("\nVIOLATION {} in {} on {}", v.invariant, s.scenario, report.target);
            if let Some((org, user, key)) = &v.scope {
                println!("  key {key:?} (org {org}, user {user})");
            }
            println!("  {}", v.detail);
            for line in &v.timeline {
                println!("    {line}");
            }
            let strategy = match report.settings.strategy {
                idemproof_service::mutants::Strategy::Correct => String::new(),
                other => format!(" --strategy {other}"),
            };
            println!(
                "  replay: idemproof suite --target {} --scenario {} --seed {}{strategy}",
                report.target, s.scenario, report.seed
            );
        }
        if s.violations.len() > per_scenario {
            println!(
                "\n… and {} more violations in {}",
                s.violations.len() - per_scenario,
                s.scenario
            );
        }
    }
}
