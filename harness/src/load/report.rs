//! The load report: a table per mode, the yardsticks and the targets, and
//! latency CDFs as SVG.

use std::path::Path;

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};

use super::{CpuUse, External, LoadReport, Measured};

fn num(v: f64, decimals: usize) -> Cell {
    Cell::new(format!("{v:.decimals$}")).set_alignment(CellAlignment::Right)
}

fn maybe(v: Option<f64>, decimals: usize) -> Cell {
    v.map_or_else(
        || Cell::new("-").set_alignment(CellAlignment::Right),
        |v| num(v, decimals),
    )
}

/// Service, database and generator CPU µs per request.
fn cpu_cells(cpu: Option<CpuUse>) -> [Cell; 3] {
    let cpu = cpu.unwrap_or_default();
    [
        maybe(cpu.service_us, 0),
        maybe(cpu.database_us, 0),
        maybe(cpu.generator_us, 0),
    ]
}

/// One table row: mode, workload, then the measurements.
fn row(mode: String, workload: &str, m: &Measured) -> Vec<Cell> {
    let mut cells = vec![
        Cell::new(mode),
        Cell::new(workload),
        num(m.throughput, 0),
        num(m.p50_ms, 2),
        num(m.p90_ms, 2),
        num(m.p99_ms, 2),
        num(m.p999_ms, 2),
        num(m.max_ms, 1),
    ];
    cells.extend(cpu_cells(m.cpu));
    cells.extend([num(m.ok as f64, 0), num(m.errors as f64, 0), num(m.shed as f64, 0)]);
    cells
}

/// Prints the runs, the yardsticks and the target ratios.
pub fn print(r: &LoadReport) {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header(vec![
        "mode",
        "workload",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "service CPU µs/req",
        "database CPU µs/req",
        "generator CPU µs/req",
        "ok",
        "errors",
        "shed",
    ]);
    for run in &r.runs {
        let mode = match run.rate {
            Some(rate) => format!("open @ {rate:.0}/s"),
            None => format!("closed x{}", r.connections),
        };
        table.add_row(row(mode, run.workload.name(), &run.measured));
    }
    if let Some(m) = &r.legacy_keyed {
        table.add_row(row(format!("closed x{}", r.connections), "keyed, legacy design", m));
    }
    println!("\nload on {:?}, {} s per run\n{table}", r.target, r.duration_s);
    for run in &r.runs {
        if let Some(e) = &run.measured.first_error {
            println!("first error of {} ({}): {e}", run.workload.name(), run.mode);
        }
    }
    for (name, ext) in [("pgbench", &r.pgbench), ("wrk", &r.wrk)] {
        match ext {
            Some(External::Ran {
                rate,
                command,
                failures,
                cpu,
            }) => {
                let cpu = cpu.unwrap_or_default();
                let per = |label: &str, v: Option<f64>| v.map(|v| format!(", {label} {v:.0} µs CPU each"));
                println!(
                    "{name}: {rate:.0}/s{}{}  ({command}{})",
                    per("service", cpu.service_us).unwrap_or_default(),
                    per("database", cpu.database_us).unwrap_or_default(),
                    if *failures > 0 {
                        format!(", {failures} non-2xx")
                    } else {
                        String::new()
                    }
                );
            }
            Some(External::Unavailable { reason: why }) => println!("{name}: not measured: {why}"),
            None => {}
        }
    }
    if !r.storms.is_empty() {
        let mut storms = Table::new();
        storms.load_style(UTF8_FULL_CONDENSED).set_header(vec![
            "clients on one key",
            "rounds",
            "all answered p50 ms",
            "all answered max ms",
            "request p50 ms",
            "request p99 ms",
            "service CPU µs/req",
            "database CPU µs/req",
            "generator CPU µs/req",
            "201",
            "200",
            "other",
        ]);
        for s in &r.storms {
            let mut cells = vec![
                num(s.clients as f64, 0),
                num(s.rounds as f64, 0),
                num(s.all_answered_p50_ms, 2),
                num(s.all_answered_max_ms, 2),
                num(s.p50_ms, 2),
                num(s.p99_ms, 2),
            ];
            cells.extend(cpu_cells(s.cpu));
            cells.extend([
                num(s.created as f64, 0),
                num(s.replayed as f64, 0),
                num(s.other as f64, 0),
            ]);
            storms.add_row(cells);
        }
        println!("\nstorms: every client of a round sends the same key at once\n{storms}");
        for s in &r.storms {
            if let Some(e) = &s.first_error {
                println!("storm of {}: {e}", s.clients);
            }
        }
    }
    if let Some(w) = &r.wake {
        println!(
            "\nwaiting duplicates on another replica, answered after their original: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} rounds x {}; {} errors{})",
            w.p50_ms,
            w.p99_ms,
            w.max_ms,
            w.rounds,
            w.waiters,
            w.errors,
            w.first_error
                .as_deref()
                .map(|e| format!(", first: {e}"))
                .unwrap_or_default()
        );
    }
    let mut targets = Table::new();
    targets
        .load_style(UTF8_FULL_CONDENSED)
        .set_header(vec!["target", "measured", "bound", "verdict"]);
    for t in &r.targets {
        targets.add_row(vec![
            Cell::new(&t.name),
            t.value.map_or(Cell::new("not measured"), |v| num(v, 2)),
            Cell::new(&t.bound),
            Cell::new(match t.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "-",
            }),
        ]);
    }
    println!("\ntargets (ratios from this run)\n{targets}");
}

/// Latency CDFs of every run, log latency axis, as SVG.
pub fn latency_svg(r: &LoadReport, path: &Path) -> anyhow::Result<()> {
    let mut series: Vec<(String, &[(f64, f64)])> = r
        .runs
        .iter()
        .map(|run| {
            let label = match run.rate {
                Some(rate) => format!("{} (open @ {rate:.0}/s)", run.workload.name()),
                None => format!("{} (closed x{})", run.workload.name(), r.connections),
            };
            (label, run.measured.cdf.as_slice())
        })
        .collect();
    if let Some(m) = &r.legacy_keyed {
        series.push((
            format!("keyed, legacy design (closed x{})", r.connections),
            m.cdf.as_slice(),
        ));
    }
    let caption = format!("Latency CDF, load on {:?}", r.target);
    crate::report::cdf_svg(path, &caption, "share of requests", &series)
}
