//! Runs the state machine against one backend with proptest: where failing
//! seeds are persisted, and the per-case loop (a fresh store, then operation, check,
//! operation, check...), which follows proptest-state-machine's
//! `StateMachineTest::test_sequential` but can reach the shared runtime and
//! Postgres store of the binary.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use proptest_state_machine::ReferenceStateMachine;
use tokio::runtime::Runtime;

use crate::reference::{Expected, Model, Op, StoreModel};
use crate::system::{Backend, Subject, Sut};

/// Longest operation sequence of one case.
const MAX_OPS: usize = 40;

/// Checks the store of `backend` against the model over `cases` random
/// operation sequences. Failing seeds are appended to `regressions` (a
/// committed file) and replayed first on every later run.
pub fn run<R: Subject>(
    runtime: &Runtime,
    backend: &Backend,
    cases: u32,
    regressions: &'static str,
) -> Result<String, String> {
    let config = Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regressions))),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let executed = AtomicUsize::new(0);
    let ops = AtomicUsize::new(0);
    let tally = Tally::default();
    let started = Instant::now();
    let result = runner.run(
        &StoreModel::sequential_strategy(1..=MAX_OPS),
        |(model, sequence, seen)| {
            executed.fetch_add(1, Ordering::Relaxed);
            ops.fetch_add(sequence.len(), Ordering::Relaxed);
            runtime.block_on(run_case::<R>(backend, model, sequence, seen, &tally));
            Ok(())
        },
    );
    let summary = format!(
        "{} cases ({} operations) in {:.1?}; outcomes: {}",
        executed.load(Ordering::Relaxed),
        ops.load(Ordering::Relaxed),
        started.elapsed(),
        tally.render()
    );
    result.map(|()| summary).map_err(|e| e.to_string())
}

async fn run_case<R: Subject>(
    backend: &Backend,
    mut model: Model,
    sequence: Vec<Op>,
    seen: Option<Arc<AtomicUsize>>,
    tally: &Tally,
) {
    let mut sut = Sut::<R>::init(backend).await;
    sut.check(&model).await;
    for op in sequence {
        // Tells the shrinker how far the case got before failing.
        if let Some(seen) = &seen {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        let before = model.clone();
        model = StoreModel::apply(model, &op);
        tally.add(&before, &op, &model);
        sut.apply(&model, &op).await;
        sut.check(&model).await;
    }
}

/// How often each kind of outcome was exercised, so a run shows that the
/// interesting paths (takeovers, lost leases, boundary reaps) were reached.
#[derive(Default)]
struct Tally(Mutex<BTreeMap<&'static str, usize>>);

impl Tally {
    fn add(&self, before: &Model, op: &Op, after: &Model) {
        let label = match (op, &after.expected) {
            (Op::Claim { scope, .. }, Some(Expected::Acquired { .. })) if before.records.contains_key(scope) => {
                "takeover of a dead record"
            }
            (_, Some(Expected::Acquired { .. })) => "claim of an absent key",
            (Op::OneStep { .. }, Some(Expected::Created { .. })) => "one-step creation",
            (Op::OneStep { scope, .. }, Some(Expected::HasRecord))
                if before.records.get(scope).is_some_and(|r| r.holds(before.now)) =>
            {
                "one-step path refused by a live record"
            }
            (Op::OneStep { .. }, Some(Expected::HasRecord)) => "one-step path refused by a dead record",
            (Op::OneStep { .. }, Some(Expected::Replay { .. })) => "one-step replay",
            (_, Some(Expected::Replay { .. })) => "replay",
            (_, Some(Expected::Mismatch { original: Some(_) })) => "mismatch on a completed key",
            (_, Some(Expected::Mismatch { original: None })) => "mismatch on an in-flight key",
            (_, Some(Expected::InFlight { .. })) => "in flight",
            (Op::Complete { .. }, Some(Expected::Created { .. })) => "completion",
            (_, Some(Expected::Created { .. })) => "keyless creation",
            (_, Some(Expected::LeaseLost)) => "completion after losing the key",
            (Op::Fail { lease }, _) if before.records.values().any(|r| r.holds_lease(*lease)) => "release",
            (Op::Fail { .. }, _) => "release of a lost claim",
            (_, Some(Expected::Reaped(0))) => "reap of nothing",
            (_, Some(Expected::Reaped(_))) => "reap",
            (_, Some(Expected::Found(Some(_)))) => "lookup in the right tenant",
            (_, Some(Expected::Found(None))) => "lookup in another tenant",
            (Op::AdvanceTo { .. }, _) => "clock to a lease or TTL end",
            _ => "clock advance",
        };
        *self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(label)
            .or_default() += 1;
    }

    fn render(&self) -> String {
        let counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        counts
            .iter()
            .map(|(label, n)| format!("{label} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
