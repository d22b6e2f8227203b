//! The `load` report: every run's throughput and latency, the
//! yardsticks, the target ratios, and the latency distributions.

use maud::{Markup, PreEscaped, html};

use crate::load::{CpuUse, External, LoadReport, Measured};

/// µs with no decimals, or "-" when not measured.
fn us(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"))
}

/// Service, database and generator CPU µs per request, as table cells.
fn cpu_cells(cpu: Option<CpuUse>) -> Markup {
    let cpu = cpu.unwrap_or_default();
    html! {
        @for v in [cpu.service_us, cpu.database_us, cpu.generator_us] { td.num { (us(v)) } }
    }
}

pub(super) fn body(r: &LoadReport) -> Markup {
    let mode = |rate: Option<f64>| match rate {
        Some(rate) => format!("open @ {rate:.0}/s"),
        None => format!("closed x{}", r.connections),
    };
    html! {
        h1 { "idemproof load" }
        p.meta { "target " (format!("{:?}", r.target)) " · " (r.duration_s) " s per run" }
        table.load {
            tr {
                th { "mode" } th { "workload" } th { "req/s" } th { "p50 ms" } th { "p90 ms" } th { "p99 ms" }
                th { "p99.9 ms" } th { "max ms" } th { "ok" } th { "errors" } th { "shed" }
                th { "service CPU µs/req" } th { "database CPU µs/req" } th { "generator CPU µs/req" } th { "first error" }
            }
            @for run in &r.runs {
                (row(&mode(run.rate), run.workload.name(), &run.measured))
            }
            @if let Some(m) = &r.legacy_keyed {
                (row(&mode(None), "keyed, legacy design", m))
            }
        }
        @for (name, ext) in [("pgbench", &r.pgbench), ("wrk", &r.wrk)] {
            @match ext {
                Some(External::Ran { rate, command, failures, cpu }) => p {
                    (name) ": " (format!("{rate:.0}/s")) " " code { (command) }
                    @if *failures > 0 { " (" (failures) " non-2xx)" }
                    @if let Some(cpu) = cpu {
                        " · CPU µs per request: service " (us(cpu.service_us)) ", database " (us(cpu.database_us))
                    }
                },
                Some(External::Unavailable { reason }) => p.note { (name) ": not measured: " (reason) },
                None => {},
            }
        }
        h2 { "targets (ratios from this run)" }
        table.targets {
            tr { th { "target" } th { "measured" } th { "bound" } th { "verdict" } }
            @for t in &r.targets {
                tr class=(match t.met { Some(false) => "verdict-bad", Some(true) => "verdict-ok", None => "" }) {
                    td { (t.name) }
                    td.num { (t.value.map_or("not measured".to_owned(), |v| format!("{v:.2}"))) }
                    td { (t.bound) }
                    td { (match t.met { Some(true) => "met", Some(false) => "MISSED", None => "-" }) }
                }
            }
        }
        h2 { "latency" }
        (latency(r, &mode))
    }
}

fn row(mode: &str, workload: &str, m: &Measured) -> Markup {
    html! {
        tr class=(if m.errors > 0 || m.ok == 0 { "verdict-bad" } else { "" }) {
            td { (mode) } td { (workload) }
            td.num { (format!("{:.0}", m.throughput)) }
            @for v in [m.p50_ms, m.p90_ms, m.p99_ms, m.p999_ms] { td.num { (format!("{v:.2}")) } }
            td.num { (format!("{:.1}", m.max_ms)) }
            td.num { (m.ok) } td.num { (m.errors) } td.num { (m.shed) }
            (cpu_cells(m.cpu))
            td { (m.first_error.as_deref().unwrap_or("")) }
        }
    }
}

fn latency(r: &LoadReport, mode: &dyn Fn(Option<f64>) -> String) -> Markup {
    let mut series: Vec<(String, &[(f64, f64)])> = r
        .runs
        .iter()
        .map(|run| {
            (
                format!("{} ({})", run.workload.name(), mode(run.rate)),
                run.measured.cdf.as_slice(),
            )
        })
        .collect();
    if let Some(m) = &r.legacy_keyed {
        series.push((format!("keyed, legacy design ({})", mode(None)), m.cdf.as_slice()));
    }
    match crate::report::cdf_svg_string("Latency CDF", "share of requests", &series) {
        Ok(svg) => html! { div.latency { (PreEscaped(svg)) } },
        Err(e) => html! { p.note { "latency plot failed: " (e) } },
    }
}
