//! The harness, reduced in size, as part of `cargo test`: every scenario
//! against the in-memory target and against two service replicas on
//! Postgres (crash and database restart included) must run clean, and the
//! mutants table must show every broken strategy caught.
//!
//! Replicas of the service are this test binary re-executed, hence the
//! custom `main` (libtest-mimic) that first checks whether it is one.

use std::sync::Arc;

use idemproof_harness::mutants;
use idemproof_harness::postgres::{SKIP_VAR, docker_opted_out};
use idemproof_harness::report::{RunReport, Status};
use idemproof_harness::scenario::Scenario;
use idemproof_harness::suite::{self, Environment, Sizes};
use idemproof_harness::target::{ServiceSettings, TargetSpec};
use idemproof_service::config::DEV_AUTH_SECRET;
use libtest_mimic::{Arguments, Failed, Trial};

/// Fixed so a failure here replays exactly with `idemproof suite --seed`.
const SEED: u64 = 20_261_129;

/// The scenarios that catch the broken strategies (see docs/harness.md);
/// running only these keeps the mutants table to a few minutes.
const CATCHING: [Scenario; 6] = [
    Scenario::Storm,
    Scenario::EditResubmit,
    Scenario::CrossTenant,
    Scenario::Crash,
    Scenario::DbDrop,
    Scenario::DbError,
];

fn main() -> std::process::ExitCode {
    idemproof_harness::child::run_if_child();
    let mut args = Arguments::from_args();
    // Timing-sensitive fault scenarios share two cores: one at a time.
    args.test_threads.get_or_insert(1);
    let runtime = Arc::new(tokio::runtime::Runtime::new().expect("tokio runtime"));

    let env = if docker_opted_out() || args.list {
        Ok(Environment { postgres: None })
    } else {
        runtime.block_on(Environment::start(true))
    };
    let env = Arc::new(env);

    let mut trials = Vec::new();
    for scenario in Scenario::ALL {
        if scenario != Scenario::Replicas {
            trials.push(scenario_trial(&runtime, &env, TargetSpec::Memory, scenario));
        }
        trials.push(scenario_trial(
            &runtime,
            &env,
            TargetSpec::Postgres { replicas: 2 },
            scenario,
        ));
    }
    trials.push(url_trial(&runtime));
    trials.push(load_smoke_trial(&runtime));
    trials.push(mutants_trial(&runtime, &env, TargetSpec::Memory));
    trials.push(mutants_trial(&runtime, &env, TargetSpec::Postgres { replicas: 2 }));
    if docker_opted_out() {
        eprintln!("note: {SKIP_VAR}=1: Postgres-backed harness runs are skipped (never do this in CI)");
    }

    let conclusion = libtest_mimic::run(&args, trials);
    if let Ok(env) = Arc::try_unwrap(env)
        && let Ok(env) = env
    {
        runtime.block_on(env.stop());
    }
    conclusion.exit_code()
}

fn settings() -> ServiceSettings {
    ServiceSettings::new(DEV_AUTH_SECRET.to_owned())
}

/// Runs `f` against the environment, failing loudly if Postgres was
/// needed but could not start, ignoring the trial if the developer opted
/// out of Docker.
fn trial<F>(
    runtime: &Arc<tokio::runtime::Runtime>,
    env: &Arc<Result<Environment, String>>,
    name: String,
    target: TargetSpec,
    f: F,
) -> Trial
where
    F: FnOnce(Arc<tokio::runtime::Runtime>, &Environment, TargetSpec) -> Result<(), Failed> + Send + 'static,
{
    let ignored = target.needs_postgres() && docker_opted_out();
    let (runtime, env) = (runtime.clone(), env.clone());
    Trial::test(name, move || match env.as_ref() {
        Ok(env) => f(runtime, env, target),
        Err(why) => Err(Failed::from(why.clone())),
    })
    .with_ignored_flag(ignored)
}

fn scenario_trial(
    runtime: &Arc<tokio::runtime::Runtime>,
    env: &Arc<Result<Environment, String>>,
    target: TargetSpec,
    scenario: Scenario,
) -> Trial {
    let name = format!("{}::{scenario}", kind(&target));
    trial(runtime, env, name, target, move |runtime, env, target| {
        let report = runtime
            .block_on(suite::run(
                &target,
                env,
                &settings(),
                &Sizes::smoke(SEED),
                &[scenario],
                false,
            ))
            .map_err(|e| Failed::from(format!("{e:#}")))?;
        assert_clean(&report)
    })
}

fn assert_clean(report: &RunReport) -> Result<(), Failed> {
    for s in &report.scenarios {
        if !matches!(s.status, Status::Ran) {
            return Err(format!("{} did not run: {:?}", s.scenario, s.status).into());
        }
        // Every scenario must have got agents through (a 201 may be seen by
        // no client when every original outlived its client's timeout).
        if s.stats.created + s.stats.replayed == 0 {
            return Err(format!("{} got no agent through in {} requests", s.scenario, s.stats.requests).into());
        }
        if let Some(v) = s.violations.first() {
            return Err(format!(
                "{} violations in {} (seed {}); first: {} {}\n{}",
                s.violations.len(),
                s.scenario,
                report.seed,
                v.invariant,
                v.detail,
                v.timeline.join("\n")
            )
            .into());
        }
    }
    Ok(())
}

fn mutants_trial(
    runtime: &Arc<tokio::runtime::Runtime>,
    env: &Arc<Result<Environment, String>>,
    target: TargetSpec,
) -> Trial {
    let name = format!("{}::mutants_are_all_caught", kind(&target));
    trial(runtime, env, name, target, move |runtime, env, target| {
        let report = runtime
            .block_on(mutants::run(
                std::slice::from_ref(&target),
                env,
                &settings(),
                &Sizes::smoke(SEED),
                &CATCHING,
                false,
            ))
            .map_err(|e| Failed::from(format!("{e:#}")))?;
        mutants::print(&report);
        let expected_rows = if target.needs_postgres() { 6 } else { 7 };
        if report.rows.len() != expected_rows {
            return Err(format!("{} strategies ran, expected {expected_rows}", report.rows.len()).into());
        }
        if !report.passed {
            let bad: Vec<_> = report
                .rows
                .iter()
                .filter(|r| !r.as_expected())
                .map(|r| format!("{} (caught: {}, violations: {})", r.strategy, r.caught, r.violations))
                .collect();
            return Err(format!("not as expected: {}", bad.join(", ")).into());
        }
        Ok(())
    })
}

fn kind(target: &TargetSpec) -> &'static str {
    if target.needs_postgres() { "postgres" } else { "memory" }
}

/// The load mode end to end, tiny: every workload in both loops and a
/// small storm against a service process on the in-memory store, every
/// answer as expected, the service's CPU metered.
fn load_smoke_trial(runtime: &Arc<tokio::runtime::Runtime>) -> Trial {
    use idemproof_harness::load::{self, LoadOptions, LoadTarget, Workload};
    let runtime = runtime.clone();
    Trial::test("memory::load_smoke", move || {
        let out = std::env::temp_dir().join(format!("idemproof-load-smoke-{}", std::process::id()));
        let opts = LoadOptions {
            target: LoadTarget::Memory,
            connections: 2,
            duration: std::time::Duration::from_millis(500),
            warmup: std::time::Duration::from_millis(100),
            rate: Some(50.0),
            workloads: vec![Workload::Unkeyed, Workload::Keyed, Workload::Replay, Workload::Mixed],
            external: false,
            legacy: false,
            open: true,
            storm: vec![8],
            wake: false,
            seed: SEED,
            secret: DEV_AUTH_SECRET.to_owned(),
            out: out.clone(),
        };
        let report = runtime
            .block_on(load::run(&opts))
            .map_err(|e| Failed::from(format!("{e:#}")))?;
        load::latency_svg(&report, &out.join("load.svg")).map_err(|e| Failed::from(e.to_string()))?;
        let _ = std::fs::remove_dir_all(&out);
        if report.runs.len() != 8 {
            return Err(format!("{} runs, expected 4 workloads x 2 loops", report.runs.len()).into());
        }
        for run in &report.runs {
            let m = &run.measured;
            let metered = m
                .cpu
                .is_some_and(|c| c.service_us.is_some() && c.generator_us.is_some());
            if m.ok == 0 || m.errors > 0 || m.p50_ms <= 0.0 || m.p99_ms < m.p50_ms || !metered {
                return Err(format!("{} ({}): {m:?}", run.workload.name(), run.mode).into());
            }
        }
        match report.storms.as_slice() {
            [storm] if storm.created == storm.rounds as u64 && storm.other == 0 && storm.cpu.is_some() => {}
            storms => return Err(format!("storms: {storms:?}").into()),
        }
        Ok(())
    })
}

/// `--target url=`: the harness against a service it did not start and
/// cannot look inside, checking through the API alone. Every scenario that
/// needs no fault injection runs clean; the rest say why they are skipped.
fn url_trial(runtime: &Arc<tokio::runtime::Runtime>) -> Trial {
    let runtime = runtime.clone();
    Trial::test("url::black_box_suite", move || {
        runtime.block_on(async {
            let config = idemproof_service::Config {
                bind: "127.0.0.1:0".parse().expect("address"),
                auth_secret: Some(DEV_AUTH_SECRET.to_owned()),
                ..idemproof_service::Config::default()
            };
            let app = idemproof_service::Application::build(config)
                .await
                .map_err(|e| Failed::from(e.to_string()))?
                .spawn();
            let target = TargetSpec::Url(app.url.clone());
            let env = Environment::start(false).await.map_err(Failed::from)?;
            let report = suite::run(&target, &env, &settings(), &Sizes::smoke(SEED), &Scenario::ALL, false)
                .await
                .map_err(|e| Failed::from(format!("{e:#}")));
            drop(app);
            let report = report?;
            let ran: Vec<_> = report
                .scenarios
                .iter()
                .filter(|s| matches!(s.status, Status::Ran))
                .map(|s| s.scenario.as_str())
                .collect();
            let expected = [
                "double-click",
                "timeout-retry",
                "storm",
                "refresh",
                "edit-resubmit",
                "cross-tenant",
            ];
            if ran != expected {
                return Err(format!("ran {ran:?}, expected {expected:?}").into());
            }
            let ran_report = RunReport {
                scenarios: report
                    .scenarios
                    .iter()
                    .filter(|s| matches!(s.status, Status::Ran))
                    .cloned()
                    .collect(),
                ..report
            };
            assert_clean(&ran_report)
        })
    })
}
