//! The load report: a table per mode, the yardsticks and the targets, and
//! latency CDFs as SVG.

use std::path::Path;

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use plotters::prelude::*;

use super::{External, LoadReport};

fn num(v: f64, decimals: usize) -> Cell {
    Cell::new(format!("{v:.decimals$}")).set_alignment(CellAlignment::Right)
}

/// Prints the runs, the yardsticks and the target ratios.
pub fn print(r: &LoadReport) {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header(vec![
        "mode", "workload", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "ok", "errors", "shed",
    ]);
    for run in &r.runs {
        let m = &run.measured;
        let mode = match run.rate {
            Some(rate) => format!("open @ {rate:.0}/s"),
            None => format!("closed x{}", r.connections),
        };
        table.add_row(vec![
            Cell::new(mode),
            Cell::new(run.workload.name()),
            num(m.throughput, 0),
            num(m.p50_ms, 2),
            num(m.p90_ms, 2),
            num(m.p99_ms, 2),
            num(m.p999_ms, 2),
            num(m.max_ms, 1),
            num(m.ok as f64, 0),
            num(m.errors as f64, 0),
            num(m.shed as f64, 0),
        ]);
    }
    if let Some(m) = &r.legacy_keyed {
        table.add_row(vec![
            Cell::new(format!("closed x{}", r.connections)),
            Cell::new("keyed, legacy design"),
            num(m.throughput, 0),
            num(m.p50_ms, 2),
            num(m.p90_ms, 2),
            num(m.p99_ms, 2),
            num(m.p999_ms, 2),
            num(m.max_ms, 1),
            num(m.ok as f64, 0),
            num(m.errors as f64, 0),
            num(0.0, 0),
        ]);
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
            }) => {
                println!(
                    "{name}: {rate:.0}/s  ({command}{})",
                    if *failures > 0 {
                        format!(", {failures} non-2xx")
                    } else {
                        String::new()
                    }
                );
            }
            Some(External::Unavailable(why)) => println!("{name}: not measured: {why}"),
            None => {}
        }
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
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut series: Vec<(String, &Vec<(f64, f64)>)> = r
        .runs
        .iter()
        .map(|run| {
            let label = match run.rate {
                Some(rate) => format!("{} (open @ {rate:.0}/s)", run.workload.name()),
                None => format!("{} (closed x{})", run.workload.name(), r.connections),
            };
            (label, &run.measured.cdf)
        })
        .collect();
    if let Some(m) = &r.legacy_keyed {
        series.push((format!("keyed, legacy design (closed x{})", r.connections), &m.cdf));
    }
    series.retain(|(_, cdf)| !cdf.is_empty());
    let max = series
        .iter()
        .flat_map(|(_, cdf)| cdf.iter().map(|p| p.0))
        .fold(1.0_f64, f64::max);
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Latency CDF, load on {:?}", r.target), ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((0.05_f64..max * 1.2).log_scale(), 0.0_f64..1.0)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms, log scale)")
        .y_desc("share of requests")
        .draw()?;
    for (i, (label, cdf)) in series.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                cdf.iter().map(|&(ms, q)| (ms.max(0.05), q)),
                color.stroke_width(2),
            ))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}
