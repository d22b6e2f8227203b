//! The harness's reports the way a person sees them: `idemproof suite`
//! and `mutants` run (through the library's command line) against a
//! deliberately broken strategy with `--html`, `--junit` and `--json`; the
//! HTML opens in headless Chromium, which must draw the known violation's
//! lanes (one per client of that violation) and bars (one per request,
//! each labelled with the resource it named), and takes a screenshot; the
//! JUnit XML must have the structure CI systems read. Chromium missing is
//! a failure, never a skip (`scripts/chromium.sh` installs it).
//!
//! A custom `main` (libtest-mimic): `load` starts the service as this
//! binary re-executed.

mod chromium;
mod junit;
mod measure;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use clap::Parser;
use idemproof_harness::cli::{self, Cli};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

/// Fixed, so a failure replays with `idemproof suite --seed`.
const SEED: u64 = 20_261_129;

/// `unscoped` forgets the tenant in the key's scope: `cross-tenant`
/// catches it every time, with several clients per violation.
const STRATEGY: &str = "unscoped";
const CAUGHT_IN: &str = "cross-tenant";
/// What it breaks there.
const KNOWN: &str = "tenant-isolation";

/// `cache-failures` replays a failure caused by a fault: `db-error`
/// catches it, with the fault's window in every timeline.
const FAULT_STRATEGY: &str = "cache-failures";
const FAULT_SCENARIO: &str = "db-error";

/// A clean scenario and one the in-memory target cannot run (skipped)
/// beside it, so every kind of test case is written.
const SCENARIOS: &str = "double-click,cross-tenant,crash";

/// The smoke sizes (`Sizes::smoke`).
const SIZES: [&str; 8] = [
    "--clients",
    "8",
    "--keys",
    "8",
    "--storm-clients",
    "16",
    "--duration",
    "1500ms",
];

type Runtime = Arc<tokio::runtime::Runtime>;

fn main() -> ExitCode {
    idemproof_harness::deploy::child::run_if_child();
    let args = Arguments::from_args();
    let runtime: Runtime = Arc::new(tokio::runtime::Runtime::new().expect("tokio runtime"));
    let suite = Run::new("suite", "suite", &["--strategy", STRATEGY, "--scenario", SCENARIOS]);
    let faults = Run::new(
        "suite",
        "faults",
        &["--strategy", FAULT_STRATEGY, "--scenario", FAULT_SCENARIO],
    );
    let mutants = Run::new("mutants", "mutants", &["--scenario", CAUGHT_IN]);
    let trials = vec![
        suite.trial(&runtime, "timelines_drawn_in_chromium", suite_html_in_chromium),
        suite.trial(&runtime, "junit_structure", suite_junit_structure),
        faults.trial(&runtime, "fault_windows_shaded", fault_windows_shaded),
        mutants.trial(&runtime, "matrix_links_every_catch", mutants_html_links_every_catch),
        mutants.trial(&runtime, "junit_structure", mutants_junit_structure),
        {
            let runtime = runtime.clone();
            Trial::test("load::html_report", move || load_html(&runtime))
        },
    ];
    libtest_mimic::run(&args, trials).exit_code()
}

/// What one command wrote.
struct Outputs {
    dir: PathBuf,
    html: PathBuf,
    junit: PathBuf,
    json: Value,
}

/// One command line, run once for all the trials that read its reports.
struct Run {
    command: &'static str,
    dir: &'static str,
    args: &'static [&'static str],
    outputs: OnceLock<Result<Outputs, String>>,
}

impl Run {
    fn new(command: &'static str, dir: &'static str, args: &'static [&'static str]) -> Arc<Self> {
        Arc::new(Self {
            command,
            dir,
            args,
            outputs: OnceLock::new(),
        })
    }

    /// A trial `f` of this run's reports, named `<command>::<name>`.
    fn trial(self: &Arc<Self>, runtime: &Runtime, name: &str, f: fn(&Outputs) -> Result<(), String>) -> Trial {
        let (run, runtime) = (self.clone(), runtime.clone());
        Trial::test(format!("{}::{name}", self.command), move || {
            let out = run
                .outputs
                .get_or_init(|| run_command(&runtime, run.command, run.dir, run.args));
            f(out.as_ref().map_err(Failed::from)?).map_err(Failed::from)
        })
    }
}

/// A fresh directory for `name`'s files, kept after the run.
fn scratch(name: &str) -> Result<PathBuf, String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// `idemproof <command> --target memory <extra>` at the smoke sizes, every
/// report written to the scratch directory `name`.
fn run_command(runtime: &Runtime, command: &str, name: &str, extra: &[&str]) -> Result<Outputs, String> {
    let dir = scratch(name)?;
    let (html, junit, json) = (dir.join("report.html"), dir.join("junit.xml"), dir.join("report.json"));
    let seed = SEED.to_string();
    let mut args: Vec<String> = vec!["idemproof".into(), command.into(), "--target".into(), "memory".into()];
    args.extend(extra.iter().chain(&SIZES).map(|s| (*s).to_owned()));
    for (flag, value) in [
        ("--seed", seed.as_str()),
        ("--out", &dir.display().to_string()),
        ("--html", &html.display().to_string()),
        ("--junit", &junit.display().to_string()),
        ("--json", &json.display().to_string()),
    ] {
        args.extend([flag.to_owned(), value.to_owned()]);
    }
    args.push("--no-progress".into());
    let cli = Cli::try_parse_from(&args).map_err(|e| e.to_string())?;
    // Violations were found (1), the command itself did not fail (2).
    let code = runtime.block_on(cli::run(cli));
    if code != ExitCode::from(1) {
        return Err(format!("{args:?} exited {code:?}, expected 1 (violations found)"));
    }
    let json = serde_json::from_slice(&std::fs::read(&json).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    Ok(Outputs { dir, html, junit, json })
}

/// The runs of a `suite` (an array) or `mutants` (its `runs`) report.
fn runs(json: &Value) -> &[Value] {
    json.as_array()
        .or_else(|| json["runs"].as_array())
        .map_or(&[], Vec::as_slice)
}

/// The report must stand alone: nothing to fetch, no script.
fn self_contained(html: &str) -> Result<(), String> {
    for banned in ["<link", " src=", "url(", "@import", "<script", "<iframe"] {
        if html.contains(banned) {
            return Err(format!(
                "the report contains `{banned}`: it must not fetch or run anything"
            ));
        }
    }
    Ok(())
}

fn suite_html_in_chromium(out: &Outputs) -> Result<(), String> {
    let html = std::fs::read_to_string(&out.html).map_err(|e| e.to_string())?;
    self_contained(&html)?;
    let run = &runs(&out.json)[0];
    let scenario = run["scenarios"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["scenario"] == CAUGHT_IN))
        .ok_or("no cross-tenant scenario in the JSON report")?;
    // The known violation: one resource shown to many principals, the
    // one with the most clients (the first of those).
    let clients = |v: &Value| {
        v["events"].as_array().map_or(0, |e| {
            e.iter().map(|e| e["client"].to_string()).collect::<BTreeSet<_>>().len()
        })
    };
    let (n, known) = scenario["violations"]
        .as_array()
        .and_then(|v| {
            v.iter()
                .enumerate()
                .filter(|(_, v)| v["invariant"] == KNOWN)
                .max_by_key(|(n, v)| (clients(v), std::cmp::Reverse(*n)))
        })
        .ok_or_else(|| format!("{STRATEGY} escaped {CAUGHT_IN}: no {KNOWN} violation to draw"))?;
    let page = measure::measure(&out.html, &out.dir)?;
    let anchor = format!("r0-{CAUGHT_IN}-{n}");
    let drawn = page
        .violations
        .iter()
        .find(|v| v.anchor == anchor)
        .ok_or_else(|| format!("violation #{anchor} is not on the page"))?;
    check_drawn(drawn, known)?;
    if drawn.lanes.len() < 2 || drawn.lanes.iter().flat_map(|l| &l.bars).all(|b| b.id.is_none()) {
        return Err(format!(
            "{anchor}: {} lanes, no resource ids: not the known violation",
            drawn.lanes.len()
        ));
    }
    for fragment in [
        format!("--scenario {CAUGHT_IN}"),
        format!("--seed {SEED}"),
        format!("--strategy {STRATEGY}"),
    ] {
        if !drawn.replay.contains(&fragment) {
            return Err(format!("replay command {:?} lacks {fragment:?}", drawn.replay));
        }
    }
    // Every violation drawn: its own lanes and bars, all within the page.
    for d in &page.violations {
        if let Some(b) = d
            .lanes
            .iter()
            .flat_map(|l| &l.bars)
            .find(|b| b.x + b.w > page.width + 0.5)
        {
            return Err(format!("{}: bar {b:?} beyond the page's {} px", d.anchor, page.width));
        }
        let (scenario, n) = d
            .anchor
            .strip_prefix("r0-")
            .and_then(|rest| rest.rsplit_once('-'))
            .ok_or_else(|| format!("anchor {}", d.anchor))?;
        let json = run["scenarios"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["scenario"] == scenario))
            .map(|s| &s["violations"][n.parse::<usize>().unwrap_or(usize::MAX)])
            .ok_or_else(|| format!("{} is in no scenario", d.anchor))?;
        check_drawn(d, json)?;
    }
    let png = out.dir.join("report.png");
    chromium::screenshot(&out.html, &anchor, &png, (1280, 1600), &out.dir)?;
    eprintln!("screenshot: {}", png.display());
    Ok(())
}

/// Every timeline of a run with a fault shades the fault's window: behind
/// all its lanes, from where the fault began to where it ended on the
/// timeline's time axis.
fn fault_windows_shaded(out: &Outputs) -> Result<(), String> {
    let page = measure::measure(&out.html, &out.dir)?;
    let scenario = &runs(&out.json)[0]["scenarios"][0];
    let windows = scenario["fault_windows"].as_array().ok_or("no fault windows")?;
    if windows.is_empty() || page.violations.is_empty() {
        return Err(format!(
            "{FAULT_STRATEGY} in {FAULT_SCENARIO}: {} windows, {} violations drawn",
            windows.len(),
            page.violations.len()
        ));
    }
    let at = |e: &Value, k: &str| e[k].as_u64().unwrap_or_default();
    for d in &page.violations {
        let n: usize = d
            .anchor
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or("anchor")?;
        let v = &scenario["violations"][n];
        check_drawn(d, v)?;
        let events = v["events"].as_array().ok_or("no events")?;
        let t0 = events.iter().map(|e| at(e, "invoke_us")).min().unwrap_or(0);
        let t1 = events.iter().map(|e| at(e, "return_us")).max().unwrap_or(0).max(t0 + 1);
        let in_force: Vec<&Value> = windows
            .iter()
            .filter(|w| at(w, "from_us") < t1 && w["to_us"].as_u64().is_none_or(|to| to > t0))
            .collect();
        if d.faults.len() != in_force.len() {
            return Err(format!(
                "{}: {} faults shaded, {} in force",
                d.anchor,
                d.faults.len(),
                in_force.len()
            ));
        }
        let (first, last) = (d.lanes.first().ok_or("no lane")?, d.lanes.last().ok_or("no lane")?);
        let (track, top, bottom) = (&first.track, first.track.y, last.track.y + last.track.h);
        let x = |t: u64| track.x + (t.clamp(t0, t1) - t0) as f64 / (t1 - t0) as f64 * track.w;
        for (f, w) in d.faults.iter().zip(in_force) {
            let from = x(at(w, "from_us"));
            let to = w["to_us"].as_u64().map_or(track.x + track.w, x);
            // At least a sliver wide, however short the fault.
            let placed = (f.x - from).abs() <= 2.0 && (f.x + f.w - to).abs() <= 2.0_f64.max(track.w * 0.004);
            if !placed || f.y > top + 1.0 || f.y + f.h < bottom - 1.0 || f.name.is_empty() {
                return Err(format!(
                    "{}: fault {f:?} should span x {from:.1}..{to:.1}, y {top:.1}..{bottom:.1}",
                    d.anchor
                ));
            }
        }
    }
    if page.violations.iter().all(|d| d.faults.is_empty()) {
        return Err(format!("no timeline of {FAULT_SCENARIO} shades its fault"));
    }
    Ok(())
}

/// A violation as drawn against the same violation in the JSON report:
/// one lane per client, one bar per request, each inside its lane, with a
/// width, a colour and the resource id it named.
fn check_drawn(drawn: &measure::Drawn, json: &Value) -> Result<(), String> {
    let events = json["events"].as_array().ok_or("violation without events")?;
    let invariant = json["invariant"].as_str().unwrap_or_default();
    if drawn.invariant != invariant || !drawn.header.contains(invariant) {
        return Err(format!("{}: drawn as {:?}, is {invariant}", drawn.anchor, drawn.header));
    }
    let clients: BTreeSet<String> = events.iter().map(|e| e["client"].to_string()).collect();
    let lanes: BTreeSet<String> = drawn.lanes.iter().map(|l| l.client.clone()).collect();
    if drawn.lanes.len() != clients.len() || lanes != clients {
        return Err(format!(
            "{}: lanes for clients {lanes:?}, the violation has {clients:?}",
            drawn.anchor
        ));
    }
    let bars: Vec<&measure::Bar> = drawn.lanes.iter().flat_map(|l| &l.bars).collect();
    if bars.len() != events.len() {
        return Err(format!(
            "{}: {} bars for {} requests",
            drawn.anchor,
            bars.len(),
            events.len()
        ));
    }
    let ids: BTreeSet<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    let drawn_ids: BTreeSet<&str> = bars.iter().filter_map(|b| b.id.as_deref()).collect();
    if drawn_ids != ids {
        return Err(format!(
            "{}: bars name {drawn_ids:?}, the history {ids:?}",
            drawn.anchor
        ));
    }
    let mut colours = std::collections::BTreeMap::new();
    for lane in &drawn.lanes {
        if lane.label != format!("client {}", lane.client) || lane.track.w < 300.0 {
            return Err(format!("{}: lane {lane:?}", drawn.anchor));
        }
        for b in &lane.bars {
            let t = &lane.track;
            let inside =
                b.x >= t.x - 0.5 && b.x + b.w <= t.x + t.w + 0.5 && b.y >= t.y - 0.5 && b.y + b.h <= t.y + t.h + 0.5;
            let coloured = !b.colour.is_empty() && b.colour != "rgba(0, 0, 0, 0)" && b.colour != "transparent";
            if !b.visible || b.w < 2.0 || b.h < 10.0 || !inside || !coloured {
                return Err(format!("{}: bar {b:?} in track {t:?}", drawn.anchor));
            }
            // The id first; whose request it was may follow.
            if b.id
                .as_ref()
                .is_some_and(|id| b.text != *id && !b.text.starts_with(&format!("{id} (tenant ")))
            {
                return Err(format!("{}: bar labelled {:?}, named {:?}", drawn.anchor, b.text, b.id));
            }
            if colours
                .insert(b.kind.clone(), b.colour.clone())
                .is_some_and(|c| c != b.colour)
            {
                return Err(format!("{}: {} bars in two colours", drawn.anchor, b.kind));
            }
        }
    }
    let known = ["created", "replayed", "in-flight", "key-reused", "error", "timeout"];
    if let Some(k) = colours.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!("{}: bar kind {k}", drawn.anchor));
    }
    Ok(())
}

fn suite_junit_structure(out: &Outputs) -> Result<(), String> {
    junit::validate_xsd(&out.junit)?;
    let xml = std::fs::read_to_string(&out.junit).map_err(|e| e.to_string())?;
    let root = junit::parse(&xml)?;
    let cases = junit::check(&root)?;
    let run = &runs(&out.json)[0];
    let scenarios = run["scenarios"].as_array().ok_or("no scenarios")?;
    if cases.len() != scenarios.len() {
        return Err(format!("{} test cases for {} scenarios", cases.len(), scenarios.len()));
    }
    let mut failed = 0;
    for s in scenarios {
        let name = s["scenario"].as_str().unwrap_or_default();
        let (_, case) = cases
            .iter()
            .find(|(_, c)| c.attrs.get("name").map(String::as_str) == Some(name))
            .ok_or_else(|| format!("no test case {name}"))?;
        if case.attr("classname")? != "idemproof.memory" {
            return Err(format!("{name}: classname {}", case.attr("classname")?));
        }
        let outcome = case
            .children
            .iter()
            .find(|c| c.name != "system-out")
            .map(|c| c.name.as_str());
        let violations = s["violations"].as_array().map_or(0, Vec::len);
        let want = match s["status"]["kind"].as_str() {
            Some("ran") if violations == 0 => None,
            Some("ran") => Some("failure"),
            Some("skipped") => Some("skipped"),
            _ => Some("error"),
        };
        if outcome != want {
            return Err(format!("{name}: test case outcome {outcome:?}, expected {want:?}"));
        }
        if want == Some("failure") {
            failed += 1;
            let failure = case.elements("failure").next().ok_or("no failure")?;
            if !failure
                .attr("message")?
                .starts_with(&format!("{violations} violations"))
            {
                return Err(format!("{name}: message {:?}", failure.attr("message")?));
            }
            // Every violation with its whole timeline, as text.
            for v in s["violations"].as_array().into_iter().flatten() {
                for line in v["timeline"].as_array().into_iter().flatten() {
                    let line = line.as_str().unwrap_or_default();
                    if !failure.text.contains(line) {
                        return Err(format!("{name}: the failure lacks the timeline line {line:?}"));
                    }
                }
            }
            if !failure.text.contains(&format!("--scenario {name} --seed {SEED}")) {
                return Err(format!("{name}: no replay command in the failure"));
            }
        }
    }
    if failed == 0 || !xml.contains(CAUGHT_IN) {
        return Err("no failing test case".into());
    }
    Ok(())
}

fn mutants_html_links_every_catch(out: &Outputs) -> Result<(), String> {
    let html = std::fs::read_to_string(&out.html).map_err(|e| e.to_string())?;
    self_contained(&html)?;
    let page = measure::measure(&out.html, &out.dir)?;
    let rows = out.json["rows"].as_array().ok_or("no rows")?;
    let catches: usize = rows.iter().map(|r| r["caught_by"].as_array().map_or(0, Vec::len)).sum();
    if catches == 0 {
        return Err(format!("nothing caught by {CAUGHT_IN}"));
    }
    if page.links.len() != catches {
        return Err(format!("{} catch links for {catches} catches", page.links.len()));
    }
    for link in &page.links {
        if !link
            .target
            .as_deref()
            .is_some_and(|c| c.split(' ').any(|c| c == "violation"))
        {
            return Err(format!("link {} ({}) leads to {:?}", link.href, link.text, link.target));
        }
        let anchor = link.href.trim_start_matches('#');
        let (run, rest) = anchor
            .strip_prefix('r')
            .and_then(|a| a.split_once('-'))
            .ok_or_else(|| format!("anchor {anchor}"))?;
        let (scenario, n) = rest.rsplit_once('-').ok_or_else(|| format!("anchor {anchor}"))?;
        let json = runs(&out.json)
            .get(run.parse::<usize>().map_err(|e| e.to_string())?)
            .and_then(|r| r["scenarios"].as_array())
            .and_then(|s| s.iter().find(|s| s["scenario"] == scenario))
            .map(|s| &s["violations"][n.parse::<usize>().unwrap_or(usize::MAX)])
            .ok_or_else(|| format!("{anchor} is in no run"))?;
        let drawn = page
            .violations
            .iter()
            .find(|v| v.anchor == anchor)
            .ok_or_else(|| format!("{anchor} not drawn"))?;
        if !link.text.ends_with(drawn.invariant.as_str()) {
            return Err(format!("link {:?} leads to a {} violation", link.text, drawn.invariant));
        }
        check_drawn(drawn, json)?;
    }
    let png = out.dir.join("mutants.png");
    chromium::screenshot(&out.html, "", &png, (1280, 900), &out.dir)
}

fn mutants_junit_structure(out: &Outputs) -> Result<(), String> {
    junit::validate_xsd(&out.junit)?;
    let xml = std::fs::read_to_string(&out.junit).map_err(|e| e.to_string())?;
    let root = junit::parse(&xml)?;
    let cases = junit::check(&root)?;
    let rows = out.json["rows"].as_array().ok_or("no rows")?;
    if cases.len() != rows.len() {
        return Err(format!("{} test cases for {} rows", cases.len(), rows.len()));
    }
    for row in rows {
        let name = format!(
            "{} on {}",
            row["strategy"].as_str().unwrap_or_default(),
            row["target"].as_str().unwrap_or_default()
        );
        let (_, case) = cases
            .iter()
            .find(|(_, c)| c.attrs.get("name") == Some(&name))
            .ok_or_else(|| format!("no test case {name}"))?;
        let caught = row["caught"].as_bool().unwrap_or_default();
        let correct = row["strategy"] == "correct";
        let failed = case.elements("failure").next().is_some() || case.elements("error").next().is_some();
        // Caught broken strategies and a clean correct one pass.
        if failed != (caught == correct) {
            return Err(format!("{name}: caught {caught}, failed {failed}"));
        }
    }
    Ok(())
}

fn load_html(runtime: &Runtime) -> Result<(), Failed> {
    let dir = scratch("load")?;
    let html = dir.join("report.html");
    let args = [
        "idemproof",
        "load",
        "--target",
        "memory",
        "--connections",
        "2",
        "--duration",
        "300ms",
        "--warmup",
        "100ms",
        "--rate",
        "20",
        "--workload",
        "keyed",
        "--no-external",
        "--no-legacy",
        "--out",
        &dir.display().to_string(),
        "--html",
        &html.display().to_string(),
    ];
    let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
    let code = runtime.block_on(cli::run(cli));
    if code != ExitCode::SUCCESS {
        return Err(format!("load exited {code:?}").into());
    }
    let page = std::fs::read_to_string(&html).map_err(|e| e.to_string())?;
    self_contained(&page)?;
    // Both loops of the workload, and their latency curves.
    for needle in ["<td>keyed</td>", "closed x2", "open @ 20/s", "<svg", "p99.9 ms"] {
        if !page.contains(needle) {
            return Err(format!("the load report lacks {needle:?}").into());
        }
    }
    Ok(())
}
