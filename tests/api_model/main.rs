//! API-level properties of the in-process service (in-memory store,
//! manual clock), see `docs/verification.md`:
//!
//! - random sessions of HTTP requests (keys, payloads, tenants and users
//!   from small pools, malformed requests included) get exactly the
//!   responses the reference model predicts, and the store holds exactly
//!   what the model holds after each one;
//! - arbitrary bytes in the body, headers, query and path never get a 5xx
//!   or kill a handler, and never write.
//!
//! Each case runs on a fresh service. `IDEMPROOF_SOAK=1` or
//! `PROPTEST_CASES=N` runs more cases; failing seeds land in
//! `proptest-regressions/api_*.txt` and are replayed first.

mod bytes;
mod client;
mod reference;
mod session;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use idemproof_service::domain::agent::Agent;
use idemproof_testkit::app::Backend;
use idemproof_testkit::budget;
use proptest::collection::vec;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use proptest_state_machine::ReferenceStateMachine;
use reqwest::StatusCode;
use tokio::runtime::Runtime;

use crate::reference::{ApiModel, Expected, MAX_BODY_BYTES, TTL_SECS};
use crate::session::Session;
use idemproof_testkit::app::{TestApp, test_config};

/// Longest session of one case.
const MAX_STEPS: usize = 40;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn runner(cases: u32, regressions: &'static str) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regressions))),
        ..Config::default()
    })
}

/// Written to the stderr handle, which the test harness does not capture,
/// so CI logs show what each property explored.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[test]
fn sessions_get_exactly_the_responses_the_model_predicts() {
    let runtime = runtime();
    let (cases, requests) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let outcomes = Mutex::new(BTreeMap::<String, usize>::new());
    let started = Instant::now();
    let result = runner(
        budget::case_count(256, 10_000),
        concat!(env!("CARGO_MANIFEST_DIR"), "/proptest-regressions/api_model.txt"),
    )
    .run(
        &ApiModel::sequential_strategy(1..=MAX_STEPS),
        |(mut model, steps, seen)| {
            cases.fetch_add(1, Ordering::Relaxed);
            runtime.block_on(async {
                let mut session = Session::start().await;
                for step in steps {
                    // Tells the shrinker how far the case got before failing.
                    if let Some(seen) = &seen {
                        seen.fetch_add(1, Ordering::SeqCst);
                    }
                    model = ApiModel::apply(model, &step);
                    if let Some(label) = label(model.expected.as_ref()) {
                        requests.fetch_add(1, Ordering::Relaxed);
                        *outcomes
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(label)
                            .or_default() += 1;
                    }
                    session.apply(&model, &step).await;
                    session.check(&model).await;
                }
            });
            Ok(())
        },
    );
    let outcomes = outcomes.into_inner().unwrap_or_else(|p| p.into_inner());
    report(&format!(
        "api model: {} sessions ({} requests) in {:.1?} (TTL {TTL_SECS}s, body limit {MAX_BODY_BYTES}); responses: {}",
        cases.load(Ordering::Relaxed),
        requests.load(Ordering::Relaxed),
        started.elapsed(),
        outcomes
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// A response kind, for the report.
fn label(expected: Option<&Expected>) -> Option<String> {
    Some(match expected? {
        Expected::Created(_) => "201".into(),
        Expected::Replayed(_) => "200 replay".into(),
        Expected::Problem(status, code) => format!("{status} {code}"),
        Expected::Shown(_) => "200 show".into(),
        Expected::Listed(_) => "200 list".into(),
        Expected::Nothing => return None,
    })
}

#[test]
fn arbitrary_bytes_never_get_a_5xx_nor_write() {
    let runtime = runtime();
    let (cases, requests) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let started = Instant::now();
    let result = runner(
        budget::case_count(512, 20_000),
        concat!(env!("CARGO_MANIFEST_DIR"), "/proptest-regressions/api_bytes.txt"),
    )
    .run(&vec(bytes::fuzz(), 1..8), |fuzzes| {
        cases.fetch_add(1, Ordering::Relaxed);
        requests.fetch_add(fuzzes.len(), Ordering::Relaxed);
        runtime.block_on(async {
            let mut config = test_config();
            config.max_body_bytes = MAX_BODY_BYTES;
            let app = TestApp::spawn_on(Backend::Memory.fixture(&config).await, config).await;
            let memory = app.memory.clone().expect("the in-memory store");
            for fuzz in &fuzzes {
                let (request, allowed) = bytes::request(&app, fuzz);
                // `send` itself fails the case on a 5xx other than 503, or
                // if the connection drops (a panicking handler).
                let reply = app.send(request).await;
                bytes::check(fuzz, &reply, allowed);
            }
            let stored = memory.table::<Agent>().all();
            assert!(stored.is_empty(), "refused requests wrote agents: {stored:?}");
            assert!(memory.claims().is_empty(), "refused requests wrote key records");
            assert!(
                app.all_agents(1).await.is_empty(),
                "the API lists agents nobody created"
            );
            let health = app.send(app.client.get(format!("{}/healthz", app.base))).await;
            assert_eq!(health.status, StatusCode::OK, "the service is still up");
        });
        Ok(())
    });
    report(&format!(
        "bytes fuzz: {} cases ({} requests) in {:.1?}",
        cases.load(Ordering::Relaxed),
        requests.load(Ordering::Relaxed),
        started.elapsed()
    ));
    if let Err(e) = result {
        panic!("{e}");
    }
}
