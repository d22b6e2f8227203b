//! The harness, reduced in size, as part of `cargo test`: every scenario
//! against the in-memory target and against two service replicas on
//! Postgres (crash and database restart included) must run clean, the
//! reference service as a black box (`url=`) too, and the mutants table
//! must show every broken strategy caught; the same for the deployments
//! endpoint (through its shipped target file) and, for the mutants table,
//! on the partitioned schema. Which scenarios run where, and how many rows
//! the tables have, follow from the scenario, strategy and capability
//! lists.
//!
//! Replicas of the service are this test binary re-executed, hence the
//! custom `main` (libtest-mimic) that first checks whether it is one.

use std::sync::Arc;

use idemproof_harness::check::Invariant;
use idemproof_harness::contract::{Contract, Endpoint, ReadSql};
use idemproof_harness::deploy::{ProcessReplica, ServiceSettings, Target};
use idemproof_harness::mutants;
use idemproof_harness::postgres::{SKIP_VAR, docker_opted_out};
use idemproof_harness::report::{RunReport, Status};
use idemproof_harness::scenario::Scenario;
use idemproof_harness::suite::{self, Environment, Sizes};
use idemproof_service::config::DEV_AUTH_SECRET;
use idemproof_service::mutants::Strategy;
use idemproof_service::store::postgres::Schema;
use libtest_mimic::{Arguments, Failed, Trial};

/// Fixed so a failure here replays exactly with `idemproof suite --seed`.
const SEED: u64 = 20_261_129;

/// Where each broken strategy is caught (docs/harness.md's measured
/// table): a mutants trial runs each only there, and the correct strategy
/// on all of them ([`catching`]). A race caught by `storm` gets a second,
/// deterministic catcher; `db-error` is the scenario built to catch its
/// strategy every time (docs/harness.md says how), and runs for over ten
/// seconds, so no second one. `crash` needs a kill inside a claim's work;
/// on a loaded machine it missed a claim-first strategy on two replicas
/// (deployments), so those get `db-drop` too, which catches them in the
/// full table as well. That keeps a table to about a minute and a half
/// per target.
fn catchers(strategy: Strategy) -> Vec<Scenario> {
    match strategy {
        Strategy::Correct => catching(),
        Strategy::Legacy => vec![Scenario::Storm, Scenario::CrossTenant],
        Strategy::Unscoped => vec![Scenario::CrossTenant],
        Strategy::NoLease => vec![Scenario::Crash, Scenario::DbDrop],
        Strategy::CacheFailures => vec![Scenario::DbError],
        Strategy::SkipFingerprint => vec![Scenario::EditResubmit],
        Strategy::SplitLock => vec![Scenario::Storm, Scenario::EditResubmit],
        Strategy::UserUnscoped => vec![Scenario::CrossTenant],
        Strategy::LeaseEqualsTtl => vec![Scenario::Crash, Scenario::DbDrop],
        Strategy::EmptyFingerprintOnComplete => vec![Scenario::DoubleClick],
        Strategy::LoserGets5xx => vec![Scenario::Storm, Scenario::DoubleClick],
        Strategy::Completed409 => vec![Scenario::DoubleClick],
        Strategy::GetThenSet | Strategy::OverwriteWinner | Strategy::CheckRunStore | Strategy::TornReplay => {
            vec![Scenario::DoubleClick, Scenario::Storm]
        }
        Strategy::ReclaimLive => vec![Scenario::DoubleClick, Scenario::StalledOwner],
        Strategy::CacheClientErrors => vec![Scenario::FixResubmit],
        Strategy::OrderSensitiveFingerprint => vec![Scenario::ReorderedRetry],
        Strategy::FastPathSkipsValidation => vec![Scenario::EditResubmit],
        Strategy::NoFencing => vec![Scenario::StalledOwner],
    }
}

/// Every scenario that catches some broken strategy, in suite order.
fn catching() -> Vec<Scenario> {
    Scenario::all()
        .iter()
        .copied()
        .filter(|s| Strategy::broken().any(|b| catchers(b).contains(s)))
        .collect()
}

/// Scenarios the deployments endpoint runs beside its mutants table (whose
/// correct row runs [`catching`]): the retry paths. The database faults
/// beyond those that catch a strategy test the store under both endpoints
/// alike and run on agents.
const DEPLOYMENTS_ALSO: [Scenario; 5] = [
    Scenario::DoubleClick,
    Scenario::TimeoutRetry,
    Scenario::Refresh,
    Scenario::Replicas,
    Scenario::LostAck,
];

fn main() -> std::process::ExitCode {
    idemproof_harness::deploy::child::run_if_child();
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

    let targets = [Target::Memory, Target::Postgres { replicas: 2 }];
    let deployments = ServiceSettings {
        endpoint: Endpoint::Deployments,
        ..settings()
    };
    let mut trials = Vec::new();
    for &scenario in Scenario::all() {
        for target in &targets {
            if runs_on(scenario, target, &settings()) {
                trials.push(scenario_trial(&runtime, &env, target.clone(), settings(), scenario));
            }
        }
    }
    for scenario in DEPLOYMENTS_ALSO {
        for target in &targets {
            if runs_on(scenario, target, &deployments) {
                trials.push(scenario_trial(
                    &runtime,
                    &env,
                    target.clone(),
                    deployments.clone(),
                    scenario,
                ));
            }
        }
    }
    trials.push(url_trial(&runtime));
    trials.push(sql_oracle_trial(&runtime, &env));
    trials.push(load_smoke_trial(&runtime));
    for target in &targets {
        trials.push(mutants_trial(&runtime, &env, target.clone(), settings()));
        trials.push(mutants_trial(&runtime, &env, target.clone(), deployments.clone()));
    }
    trials.push(partitioned_trial(&runtime, &env));
    trials.push(only_their_bug_trial(&runtime, &env));
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

/// Whether `scenario` can run on `target` with the reference contract of
/// `settings`' endpoint.
fn runs_on(scenario: Scenario, target: &Target, settings: &ServiceSettings) -> bool {
    let principals = match Contract::reference_for(settings.endpoint) {
        Ok(c) => (c.principals.tenants.len(), c.principals.users.len()),
        Err(_) => (0, 0),
    };
    scenario
        .runs_on(target.capabilities(), principals.0, principals.1)
        .is_ok()
}

/// Runs `f` against the environment, failing loudly if Postgres was
/// needed but could not start, ignoring the trial if the developer opted
/// out of Docker.
fn trial<F>(
    runtime: &Arc<tokio::runtime::Runtime>,
    env: &Arc<Result<Environment, String>>,
    name: String,
    target: Target,
    f: F,
) -> Trial
where
    F: FnOnce(Arc<tokio::runtime::Runtime>, &Environment, Target) -> Result<(), Failed> + Send + 'static,
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
    target: Target,
    settings: ServiceSettings,
    scenario: Scenario,
) -> Trial {
    let name = format!("{}::{scenario}", kind(&target, &settings));
    trial(runtime, env, name, target, move |runtime, env, target| {
        assert_clean(&smoke_run(&runtime, env, &target, &settings, scenario)?)
    })
}

/// `scenario` alone on `target` at the smoke sizes.
fn smoke_run(
    runtime: &tokio::runtime::Runtime,
    env: &Environment,
    target: &Target,
    settings: &ServiceSettings,
    scenario: Scenario,
) -> Result<RunReport, Failed> {
    runtime
        .block_on(suite::run(
            target,
            env,
            settings,
            &Sizes::smoke(SEED),
            &[scenario],
            false,
        ))
        .map_err(|e| Failed::from(format!("{}: {e:#}", settings.strategy)))
}

fn assert_clean(report: &RunReport) -> Result<(), Failed> {
    for s in &report.scenarios {
        if !matches!(s.status, Status::Ran) {
            return Err(format!("{} did not run: {:?}", s.scenario, s.status).into());
        }
        // Every scenario must have got resources through (a 201 may be
        // seen by no client when every original outlived its client's
        // timeout).
        if s.stats.created + s.stats.replayed == 0 {
            return Err(format!("{} got nothing through in {} requests", s.scenario, s.stats.requests).into());
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

/// The mutants table on `target` with `settings`' endpoint and schema:
/// every broken strategy caught where [`catchers`] says, the correct one
/// clean there, with resources through in every scenario.
fn mutants_trial(
    runtime: &Arc<tokio::runtime::Runtime>,
    env: &Arc<Result<Environment, String>>,
    target: Target,
    settings: ServiceSettings,
) -> Trial {
    let name = format!("{}::mutants_are_all_caught", kind(&target, &settings));
    trial(runtime, env, name, target, move |runtime, env, target| {
        let report = runtime
            .block_on(mutants::run(
                std::slice::from_ref(&target),
                env,
                &settings,
                &mutants_sizes(),
                catchers,
                false,
            ))
            .map_err(|e| Failed::from(format!("{e:#}")))?;
        mutants::print(&report);
        let expected_rows = mutants::strategies()
            .filter(|s| mutants::exists_on(*s, &target))
            .count();
        if report.rows.len() != expected_rows {
            return Err(format!("{} strategies ran, expected {expected_rows}", report.rows.len()).into());
        }
        let correct = report.rows.iter().position(|r| r.strategy == Strategy::Correct);
        assert_clean(&report.runs[correct.ok_or("the correct strategy did not run")?])?;
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

/// The harness against the schema declared `PARTITION BY HASH
/// (organization_id)` (docs/scaling.md), on two replicas: the scenarios
/// that catch a broken strategy run clean with the correct one, and the
/// two strategies whose bug is in the claim's scope, `legacy` and
/// `unscoped`, are caught there as on the plain schema. (The others break
/// the lease and failure handling, which run the same statements on both
/// schemas; the plain schema's table covers them.)
fn partitioned_trial(runtime: &Arc<tokio::runtime::Runtime>, env: &Arc<Result<Environment, String>>) -> Trial {
    let target = Target::Postgres { replicas: 2 };
    let settings = ServiceSettings {
        schema: Schema::Partitioned,
        ..settings()
    };
    let name = format!("{}::catches_and_runs_clean", kind(&target, &settings));
    trial(runtime, env, name, target, move |runtime, env, target| {
        for strategy in [Strategy::Correct, Strategy::Legacy, Strategy::Unscoped] {
            let settings = ServiceSettings {
                strategy,
                ..settings.clone()
            };
            let report = runtime
                .block_on(suite::run(
                    &target,
                    env,
                    &settings,
                    &mutants_sizes(),
                    &catchers(strategy),
                    false,
                ))
                .map_err(|e| Failed::from(format!("{e:#}")))?;
            if let Some(s) = report.scenarios.iter().find(|s| !matches!(s.status, Status::Ran)) {
                return Err(format!("{strategy}: {} did not run: {:?}", s.scenario, s.status).into());
            }
            if let Some(s) = report
                .scenarios
                .iter()
                .find(|s| !s.final_state.iter().any(|f| f.contains("partitioned")))
            {
                return Err(format!("{} read its final state from {:?}", s.scenario, s.final_state).into());
            }
            match strategy {
                Strategy::Correct => assert_clean(&report)?,
                _ if report.violations() == 0 => {
                    return Err(format!("{strategy} escaped on the partitioned schema").into());
                }
                _ => {}
            }
        }
        Ok(())
    })
}

/// The broken strategies whose bug an identical retry, made after the
/// original's answer, meets: the completed key's replay is refused (as
/// another payload's, or with 409).
const SEQUENTIAL_RETRY_BUGS: [Strategy; 2] = [Strategy::EmptyFingerprintOnComplete, Strategy::Completed409];

/// Each broken strategy is broken where its bug is, and only there. A
/// strategy that failed everywhere (a lookup that never finds, a record
/// never written) would be caught by any scenario, and its row in the
/// mutants table would prove nothing about the scenario built for it.
/// Under `lost-ack` every retry is sequential and identical (same
/// principal, same payload, after the original committed), so every
/// strategy whose bug needs a race, another principal, another payload,
/// a failure or a crash must run clean, as the teams that shipped them
/// saw in their own tests; those of [`SEQUENTIAL_RETRY_BUGS`] must be
/// caught. On Postgres, where their statements run.
fn only_their_bug_trial(runtime: &Arc<tokio::runtime::Runtime>, env: &Arc<Result<Environment, String>>) -> Trial {
    let target = Target::Postgres { replicas: 1 };
    let name = format!(
        "{}::broken_strategies_pass_a_sequential_retry",
        kind(&target, &settings())
    );
    trial(runtime, env, name, target, move |runtime, env, target| {
        let mut wrong = Vec::new();
        for strategy in Strategy::broken().filter(|s| mutants::exists_on(*s, &target)) {
            let settings = ServiceSettings { strategy, ..settings() };
            let report = smoke_run(&runtime, env, &target, &settings, Scenario::LostAck)?;
            if SEQUENTIAL_RETRY_BUGS.contains(&strategy) {
                if report.violations() == 0 {
                    wrong.push(format!("{strategy} escaped its own bug"));
                }
            } else if let Err(e) = assert_clean(&report) {
                wrong.push(format!("{strategy}: {}", e.message().unwrap_or_default()));
            }
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(wrong.join("\n").into())
        }
    })
}

/// The reduced sizes with four storm keys rather than one: a race that
/// one key of sixteen clients wins now and then (`split-lock`, `legacy`
/// in memory) is won on all four far less often.
fn mutants_sizes() -> Sizes {
    Sizes {
        keys: 32,
        ..Sizes::smoke(SEED)
    }
}

/// `memory`, `postgres`, then the endpoint and schema when not the
/// defaults: `postgres::deployments`, `postgres::partitioned`.
fn kind(target: &Target, settings: &ServiceSettings) -> String {
    let base = if target.needs_postgres() { "postgres" } else { "memory" };
    std::iter::once(base.to_owned())
        .chain(settings.label(target.needs_postgres()).split(", ").map(str::to_owned))
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("::")
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
        // Each workload once in the closed loop and once in the open loop.
        let expected = 2 * opts.workloads.len();
        if report.runs.len() != expected {
            return Err(format!("{} runs, expected {expected}", report.runs.len()).into());
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
/// cannot look inside, through the shipped target file and the HTTP fault
/// proxy. Every scenario a black box can take runs clean (`lost-ack`
/// included); the rest say why they are skipped.
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
            let target = Target::parse(&format!("url={}", app.url)).map_err(|e| Failed::from(format!("{e:#}")))?;
            let env = Environment::start(false).await.map_err(Failed::from)?;
            let report = suite::run(&target, &env, &settings(), &Sizes::smoke(SEED), Scenario::all(), false)
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
            let expected: Vec<String> = Scenario::all()
                .iter()
                .filter(|s| runs_on(**s, &target, &settings()))
                .map(|s| s.name())
                .collect();
            if !expected.contains(&Scenario::LostAck.name()) || ran != expected {
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

/// A black box's final state from a SQL count on its own database (the
/// side-effect oracle of a target file's `read.sql`): the reference service
/// as a process over Postgres behind `url=`, its file's list replaced by a
/// count query. The legacy design's storm duplicates are counted there;
/// the correct service has none.
fn sql_oracle_trial(runtime: &Arc<tokio::runtime::Runtime>, env: &Arc<Result<Environment, String>>) -> Trial {
    let name = "postgres::sql_count_oracle".to_owned();
    trial(
        runtime,
        env,
        name,
        Target::Postgres { replicas: 1 },
        move |runtime, env, _| {
            runtime.block_on(async {
                fn fail(e: impl std::fmt::Debug) -> Failed {
                    Failed::from(format!("{e:?}"))
                }
                let pg = env.postgres.as_ref().ok_or_else(|| Failed::from("no Postgres"))?;
                for strategy in [Strategy::Correct, Strategy::Legacy] {
                    let db = pg.create_database().await.map_err(fail)?;
                    let db_url = pg.url(&db);
                    let settings = ServiceSettings { strategy, ..settings() };
                    let mut replica = ProcessReplica::start(Some(&db_url), &settings).await.map_err(fail)?;
                    let mut contract = Contract::reference().map_err(fail)?;
                    contract.read.list = None;
                    contract.read.sql = Some(ReadSql {
                        url: db_url,
                        count: "SELECT count(*) FROM agents WHERE idempotency_key = {key} \
                            AND organization_id = {tenant}::bigint AND user_id = {user}::bigint"
                            .into(),
                    });
                    contract.semantics = settings.semantics;
                    let target = Target::url(contract, &format!("http://127.0.0.1:{}", replica.port));
                    // Eight storm keys: the legacy race needs a few tries.
                    let sizes = Sizes {
                        keys: 64,
                        ..Sizes::smoke(SEED)
                    };
                    let report = suite::run(&target, env, &settings, &sizes, &[Scenario::Storm], false).await;
                    replica.kill().await;
                    let report = report.map_err(fail)?;
                    let storm = &report.scenarios[0];
                    if !storm.final_state.iter().any(|s| s == "SQL count") {
                        return Err(format!("the final state was read by {:?}", storm.final_state).into());
                    }
                    let extra = storm.violations.iter().any(|v| v.invariant == Invariant::NoExtraAgents);
                    match strategy {
                        Strategy::Correct => assert_clean(&report)?,
                        _ if !extra => {
                            return Err(format!(
                                "{strategy}: no duplicate counted ({} violations)",
                                report.violations()
                            )
                            .into());
                        }
                        _ => {}
                    }
                }
                Ok(())
            })
        },
    )
}
