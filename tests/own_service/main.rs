//! The harness used the way a user would from their own `cargo test`: a
//! service it has never seen (`shop.rs`, nothing like the reference API)
//! described by a target file (`orders.toml`) and run as an axum `Router`
//! in process (no socket). The correct implementation must run clean, fast or slow;
//! each deliberately broken one must be caught, by the scenario and
//! invariant that catch that bug; `check-target` must understand the file.

mod shop;

use std::path::Path;
use std::time::Duration;

use idemproof_harness::check::Invariant;
use idemproof_harness::check_target;
use idemproof_harness::contract::Contract;
use idemproof_harness::deploy::Target;
use idemproof_harness::report::{RunReport, Status};
use idemproof_harness::scenario::Scenario;
use idemproof_harness::testing::Harness;
use shop::{Options, Variant};

fn contract() -> Contract {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/own_service/orders.toml");
    match Contract::from_file(&path) {
        Ok(c) => c,
        Err(e) => panic!("{e:#}"),
    }
}

fn options(variant: Variant) -> Options {
    Options {
        variant,
        work: Duration::from_millis(5),
    }
}

async fn run(options: Options, scenarios: &[Scenario]) -> RunReport {
    match Harness::router(contract(), shop::app(options))
        .scenarios(scenarios)
        .run()
        .await
    {
        Ok(report) => report,
        Err(e) => panic!("the harness could not run: {e:#}"),
    }
}

/// Every scenario a black box with this file's principals can take.
fn black_box_scenarios() -> Vec<Scenario> {
    let c = contract();
    let caps = Target::router(c.clone(), axum::Router::new()).capabilities();
    Scenario::all()
        .iter()
        .copied()
        .filter(|s| {
            s.runs_on(caps, c.principals.tenants.len(), c.principals.users.len())
                .is_ok()
        })
        .collect()
}

/// Each scenario that should run did, got orders through, and held.
fn assert_ran_clean(report: &RunReport, scenarios: &[Scenario]) {
    report.assert_clean();
    for scenario in scenarios {
        let name = scenario.name();
        let Some(s) = report.scenarios.iter().find(|s| s.scenario == name) else {
            panic!("{name} is missing from the report");
        };
        assert!(matches!(s.status, Status::Ran), "{name}: {:?}", s.status);
        assert!(s.stats.created > 0, "{name} created nothing: {:?}", s.stats);
        assert!(!s.final_state.is_empty(), "{name} did not read the final state");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_correct_service_runs_clean() {
    let scenarios = black_box_scenarios();
    // The file's black box takes the fault proxy's scenario too.
    assert!(scenarios.contains(&Scenario::LostAck));
    let report = run(options(Variant::Correct), Scenario::all()).await;
    assert_ran_clean(&report, &scenarios);
    let lost = report.scenarios.iter().find(|s| s.scenario == Scenario::LostAck.name());
    assert!(lost.is_some_and(|s| s.stats.lost > 0), "lost-ack lost no answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_correct_service_runs_clean() {
    // Each order takes 150 ms: the calibrated retry budgets must follow.
    let slow = Options {
        variant: Variant::Correct,
        work: Duration::from_millis(150),
    };
    let scenarios = [Scenario::TimeoutRetry, Scenario::LostAck, Scenario::DoubleClick];
    let report = run(slow, &scenarios).await;
    assert_ran_clean(&report, &scenarios);
    let latency = report.latency.map(|l| l.typical);
    assert!(latency >= Some(slow.work), "calibrated {latency:?}");
}

/// Runs the scenario that catches `variant` and asserts `invariant` broke.
async fn assert_caught(variant: Variant, scenario: Scenario, invariant: Invariant) {
    let report = run(options(variant), &[scenario]).await;
    assert_eq!(
        report.failures(),
        0,
        "{}",
        idemproof_harness::report::violations_text(&report, 1)
    );
    let found: Vec<Invariant> = report
        .scenarios
        .iter()
        .flat_map(|s| s.violations.iter().map(|v| v.invariant))
        .collect();
    assert!(
        found.contains(&invariant),
        "{variant:?} in {scenario}: expected {invariant}, found {found:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_then_insert_is_caught() {
    assert_caught(Variant::CheckThenInsert, Scenario::Storm, Invariant::AtMostOneCreation).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unscoped_tokens_are_caught() {
    assert_caught(Variant::Unscoped, Scenario::CrossTenant, Invariant::TenantIsolation).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skipped_fingerprint_is_caught() {
    assert_caught(
        Variant::NoFingerprint,
        Scenario::EditResubmit,
        Invariant::MismatchRefused,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_retries_refused_as_reused_are_caught() {
    assert_caught(
        Variant::EmptyFingerprintOnComplete,
        Scenario::DoubleClick,
        Invariant::IdenticalRetryHonoured,
    )
    .await;
}

async fn check_target(variant: Variant) -> check_target::Findings {
    match check_target::run_router(std::sync::Arc::new(contract()), shop::app(options(variant))).await {
        Ok(f) => f,
        Err(e) => panic!("{e:#}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_target_understands_the_file() {
    let findings = check_target(Variant::Correct).await;
    findings.print();
    assert_eq!(findings.problems(), 0);
    assert!(findings.id.as_deref().is_some_and(|id| id.starts_with("ord_")));
    // And says so when the service does not do what the file says.
    let broken = check_target(Variant::EmptyFingerprintOnComplete).await;
    assert!(broken.problems() > 0);
}
