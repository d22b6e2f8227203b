//! One run against one target: its statistics per scenario, latency
//! distributions, and every violation's timeline.

use maud::{Markup, PreEscaped, html};

use super::{timeline, violation_anchor};
use crate::check::Invariant;
use crate::report::{RunReport, ScenarioReport, Status, replay_command};

/// Violations drawn per scenario; the JSON report has them all.
const DRAWN_PER_SCENARIO: usize = 20;

/// One line per run, linked to its section.
pub(super) fn overview(runs: &[RunReport]) -> Markup {
    html! {
        table.overview {
            tr { th { "target" } th { "strategy" } th { "seed" } th { "scenarios" } th { "violations" } th { "could not run" } th { "wall" } }
            @for (i, r) in runs.iter().enumerate() {
                tr class=(if r.is_clean() { "verdict-ok" } else { "verdict-bad" }) {
                    td { a href={ "#run-" (i) } { (r.target) } }
                    td { (r.strategy.as_deref().unwrap_or("-")) }
                    td.num { (r.seed) }
                    td.num { (r.scenarios.len()) }
                    td.num { (r.violations()) }
                    td.num { (r.failures()) }
                    td.num { (format!("{:.1} s", r.wall_ms as f64 / 1000.0)) }
                }
            }
        }
    }
}

/// The section of run `i`.
pub(super) fn section(i: usize, r: &RunReport) -> Markup {
    html! {
        section.run id={ "run-" (i) } data-target=(r.target) {
            h2 {
                "target " (r.target)
                @if let Some(strategy) = &r.strategy { ", strategy " (strategy) }
            }
            p.meta {
                "seed " (r.seed) " · target file " (r.contract)
                " · mismatch " (crate::value_name(&r.semantics.mismatch))
                ", in flight " (crate::value_name(&r.semantics.in_flight))
                ", lease " (humantime::format_duration(r.semantics.lease))
                ", wait " (humantime::format_duration(r.semantics.wait))
                @if let Some(l) = r.latency { " · latency " (format!("{:?} typical, {:?} slowest", l.typical, l.slowest)) }
                " · " (format!("{:.1} s", r.wall_ms as f64 / 1000.0))
            }
            (stats(i, r))
            (latency(r))
            @for s in &r.scenarios {
                @if !s.violations.is_empty() {
                    (violations(i, r, s))
                }
            }
        }
    }
}

fn stats(i: usize, r: &RunReport) -> Markup {
    html! {
        table.stats {
            tr {
                th { "scenario" } th { "requests" } th { "created" } th { "replayed" } th { "in flight" }
                th { "key reused" } th { "errors" } th { "timeouts" } th { "lost" }
                th { "p50 ms" } th { "p99 ms" } th { "max ms" } th { "violations" } th { "wall" }
            }
            @for s in &r.scenarios {
                tr class=(if s.violations.is_empty() && matches!(s.status, Status::Ran) { "" } else { "verdict-bad" }) data-scenario=(s.scenario) {
                    td { (s.scenario) }
                    @match &s.status {
                        Status::Ran => {
                            @let st = &s.stats;
                            @for n in [st.requests, st.created, st.replayed, st.conflict, st.mismatch, st.errors, st.timeouts, st.lost] {
                                td.num { (n) }
                            }
                            td.num { (format!("{:.1}", st.p50_ms)) }
                            td.num { (format!("{:.1}", st.p99_ms)) }
                            td.num { (format!("{:.1}", st.max_ms)) }
                            td.num {
                                @if s.violations.is_empty() { "0" } @else {
                                    a href={ "#" (violation_anchor(i, &s.scenario, 0)) } { (s.violations.len()) }
                                }
                            }
                        }
                        Status::Skipped(why) => td colspan="12" .note { "skipped: " (why) }
                        Status::Failed(why) => td colspan="12" .note { "HARNESS FAILURE: " (why) }
                    }
                    td.num { (format!("{:.1} s", s.wall_ms as f64 / 1000.0)) }
                }
            }
        }
    }
}

/// The latency CDFs, one curve per scenario, as inline SVG.
fn latency(r: &RunReport) -> Markup {
    let series: Vec<(String, &[(f64, f64)])> = r
        .scenarios
        .iter()
        .filter(|s| matches!(s.status, Status::Ran))
        .map(|s| (s.scenario.clone(), s.stats.cdf.as_slice()))
        .collect();
    if series.iter().all(|(_, cdf)| cdf.is_empty()) {
        return html! {};
    }
    // Scenario names only: nothing from the service is in the plot, and
    // plotters escapes its text anyway.
    match crate::report::cdf_svg_string("Latency by scenario", "share of answered requests", &series) {
        Ok(svg) => html! { div.latency { (PreEscaped(svg)) } },
        Err(e) => html! { p.note { "latency plot failed: " (e) } },
    }
}

fn violations(i: usize, r: &RunReport, s: &ScenarioReport) -> Markup {
    let replay = replay_command(r, &s.scenario);
    let mut counts: Vec<(Invariant, usize, usize)> = Vec::new();
    for v in &s.violations {
        match counts.iter_mut().find(|(i, _, _)| *i == v.invariant) {
            Some((_, count, _)) => *count += 1,
            None => counts.push((v.invariant, 1, representative(s, v.invariant).unwrap_or(0))),
        }
    }
    html! {
        h3 { (s.violations.len()) " violations in " (s.scenario) }
        p {
            @for (invariant, count, first) in &counts {
                a href={ "#" (violation_anchor(i, &s.scenario, *first)) } { (invariant.name()) } " ×" (count) "  "
            }
        }
        @let drawn = drawn(s);
        @for &n in &drawn {
            (timeline::violation(&s.violations[n], &s.fault_windows, &replay, &violation_anchor(i, &s.scenario, n)))
        }
        @if s.violations.len() > drawn.len() {
            p.note { "… and " (s.violations.len() - drawn.len()) " more in " (s.scenario) " (the --json report has every one)" }
        }
    }
}

/// Which violations of `s` are drawn, in order: the representative of
/// every invariant (the one with the most clients; the mutants matrix
/// links to those), then the next ones up to [`DRAWN_PER_SCENARIO`].
fn drawn(s: &ScenarioReport) -> Vec<usize> {
    let mut invariants: Vec<Invariant> = s.violations.iter().map(|v| v.invariant).collect();
    invariants.sort();
    invariants.dedup();
    let mut drawn: Vec<usize> = invariants.into_iter().filter_map(|i| representative(s, i)).collect();
    let rest: Vec<usize> = (0..s.violations.len())
        .filter(|n| !drawn.contains(n))
        .take(DRAWN_PER_SCENARIO.saturating_sub(drawn.len()))
        .collect();
    drawn.extend(rest);
    drawn
}

/// The violation of `invariant` in `s` that involves the most clients
/// (the first of those), if any: its index (always drawn).
fn representative(s: &ScenarioReport, invariant: Invariant) -> Option<usize> {
    let clients = |n: usize| {
        let mut c: Vec<usize> = s.violations[n].events.iter().map(|e| e.client).collect();
        c.sort_unstable();
        c.dedup();
        c.len()
    };
    (0..s.violations.len())
        .filter(|&n| s.violations[n].invariant == invariant)
        .max_by_key(|&n| (clients(n), std::cmp::Reverse(n)))
}

/// The representative violation of `invariant` (by name) in `scenario` of
/// `r`, if any.
pub(super) fn representative_of(r: &RunReport, scenario: &str, invariant: &str) -> Option<usize> {
    let s = r.scenarios.iter().find(|s| s.scenario == scenario)?;
    let invariant = s.violations.iter().find(|v| v.invariant.name() == invariant)?.invariant;
    representative(s, invariant)
}
