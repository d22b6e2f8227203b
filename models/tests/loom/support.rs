//! What every loom model shares: a table with fixed terms, scopes and
//! tokens, a loom-visible wake-up signal, the request loop the service's
//! idempotency layer runs around the table, the one-step creation path
//! with a record of whether its work ran, the tally of outcomes a model
//! reached, and the runner that counts and reports explored interleavings.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Duration};
use idemproof_models::claim_table::shard_of;
use idemproof_models::{
    Claim, ClaimTable, Fingerprint, IdempotencyKey, KeyRecord, KeyState, LeaseToken, Scope, Terms, Timestamp, Waker,
};
use loom::sync::{Arc, Condvar, Mutex};

/// Lease of every table, in seconds of the injected clock.
pub const LEASE_SECS: i64 = 30;
/// TTL of every table: longer than the lease, as in any deployment.
pub const TTL_SECS: i64 = 100;

/// The one payload fingerprint of models that do not test mismatches.
pub const FP: Fingerprint = Fingerprint([1; 32]);
/// Another payload, for models where a key is reused with a different one.
pub const OTHER_FP: Fingerprint = Fingerprint([2; 32]);

/// An instant `secs` after a fixed origin. Time is an argument of every
/// table call (the injected clock), so leases and TTLs never depend on how
/// long loom takes.
pub fn at(secs: i64) -> Timestamp {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("valid timestamp")
}

/// The terms of every table.
pub fn terms() -> Terms {
    Terms {
        lease: Duration::seconds(LEASE_SECS),
        ttl: Duration::seconds(TTL_SECS),
    }
}

/// An empty table, shared by the model's threads.
pub fn table() -> Arc<ClaimTable<u32>> {
    Arc::new(ClaimTable::new(terms()))
}

/// The scope of `key` for user 1 of organisation `org`.
pub fn scope(org: i64, key: &str) -> Scope {
    Scope {
        organization_id: org,
        user_id: 1,
        endpoint: "POST /api/v1/agents".into(),
        key: IdempotencyKey::parse(key).expect("valid key"),
    }
}

/// `n` scopes of organisation 1 whose keys all hash to one shard of the
/// table, so the model's threads meet on one shard lock.
pub fn sharing_a_shard(n: usize) -> Vec<Scope> {
    let first = shard_of(&scope(1, "k0"));
    (0..)
        .map(|i| scope(1, &format!("k{i}")))
        .filter(|s| shard_of(s) == first)
        .take(n)
        .collect()
}

/// `n` scopes of organisation 1, each in a shard of its own, so the
/// model's threads share only what spans the table (the record count, and
/// the passes that reap or make room shard after shard).
pub fn apart(n: usize) -> Vec<Scope> {
    let mut seen = BTreeSet::new();
    (0..)
        .map(|i| scope(1, &format!("k{i}")))
        .filter(|s| seen.insert(shard_of(s)))
        .take(n)
        .collect()
}

/// A fixed token. Deterministic on purpose: loom replays each model many
/// times and expects the same choices every time.
pub fn token(n: u128) -> LeaseToken {
    LeaseToken(uuid::Uuid::from_u128(n))
}

/// A one-shot wake-up a thread can block on. Built on loom's mutex and
/// condvar, so a waiter whose wake-up is lost blocks forever and loom
/// reports the deadlock.
pub struct Signal {
    fired: Mutex<bool>,
    changed: Condvar,
}

impl Signal {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            fired: Mutex::new(false),
            changed: Condvar::new(),
        })
    }

    /// A table waker that fires `signal`.
    pub fn waker(signal: &Arc<Self>) -> Waker {
        let signal = signal.clone();
        Box::new(move || {
            *signal.fired.lock().expect("signal lock") = true;
            signal.changed.notify_all();
        })
    }

    /// Blocks until fired.
    pub fn wait(&self) {
        let mut fired = self.fired.lock().expect("signal lock");
        while !*fired {
            fired = self.changed.wait(fired).expect("signal lock");
        }
    }

    pub fn fired(&self) -> bool {
        *self.fired.lock().expect("signal lock")
    }
}

/// How a request carrying the model's key ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Its work produced `result`, which the key now holds (stored in one
    /// step, or by completing its claim).
    Owned(u32),
    /// It got another request's stored result.
    Replayed(u32),
}

/// The way a [`request`] went, for models that check which paths their
/// interleavings reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// It created on the one-step path.
    pub one_step: bool,
    /// How many times it was told "in flight" and waited for a wake-up.
    pub waits: usize,
}

/// The synchronous core of the service's request loop
/// (`Idempotency::execute`): first the one-step path, which creates if the
/// key has no record at all; otherwise claim with a new token,
/// registering a waker; on "in flight" block until the waker fires, then
/// claim again (the one-step path is tried only once, as in the service);
/// on acquiring, do the work and complete. `first_token` numbers the
/// tokens of successive attempts.
pub fn request(table: &ClaimTable<u32>, scope: &Scope, first_token: u128, now: Timestamp, result: u32) -> Ended {
    request_traced(table, scope, first_token, now, result).0
}

/// [`request`], also telling which way it went.
pub fn request_traced(
    table: &ClaimTable<u32>,
    scope: &Scope,
    first_token: u128,
    now: Timestamp,
    result: u32,
) -> (Ended, Route) {
    let mut route = Route {
        one_step: false,
        waits: 0,
    };
    if let Some(created) = create_one_step(table, scope, FP, now, result).created {
        route.one_step = true;
        return (Ended::Owned(created), route);
    }
    let mut attempt = first_token;
    loop {
        let tok = token(attempt);
        attempt += 1;
        let changed = Signal::new();
        match table.claim(scope, FP, tok, now, Some(Signal::waker(&changed))) {
            Claim::Acquired => {
                let stored = table.complete(scope, tok, || Ok::<_, Infallible>(result));
                assert_eq!(stored, Ok(result), "a new owner must be able to complete");
                return (Ended::Owned(result), route);
            }
            Claim::Replay(stored) => return (Ended::Replayed(stored), route),
            Claim::InFlight { .. } => {
                changed.wait();
                route.waits += 1;
            }
            Claim::Mismatch { .. } => panic!("the model sends a single payload"),
            Claim::Full { .. } => panic!("the model's table is unbounded"),
        }
    }
}

/// How one call of [`ClaimTable::create_one_step`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OneStep {
    /// What it returned: the stored result, or `None` (the key had a record).
    pub created: Option<u32>,
    /// Whether its work ran. Tracked apart from the return value, so that
    /// work run and then thrown away (a side effect with no record, like an
    /// orphan agent) is visible.
    pub worked: bool,
}

/// The one-step path for a key with no record, as the in-memory store calls it: work
/// that produces `result`, stored as the key's completed outcome at `now`.
pub fn create_one_step(
    table: &ClaimTable<u32>,
    scope: &Scope,
    fingerprint: Fingerprint,
    now: Timestamp,
    result: u32,
) -> OneStep {
    let mut worked = false;
    let created = table.create_one_step(scope, fingerprint, now, || {
        worked = true;
        Ok::<_, Infallible>(result)
    });
    OneStep {
        created: created.unwrap_or_else(|never| match never {}),
        worked,
    }
}

/// The record a key holds after a request with `fingerprint` at `now`
/// completed with `result`: its TTL counts from `now`.
pub fn completed(fingerprint: Fingerprint, now: Timestamp, result: u32) -> KeyRecord<u32> {
    KeyRecord {
        fingerprint,
        state: KeyState::Completed { result },
        created_at: now,
        expires_at: now + Duration::seconds(TTL_SECS),
    }
}

/// Which outcomes a model reached over all its interleavings. A model
/// that checks a case it never reaches passes vacuously; asserting that
/// each outcome it is about was reached at least once rules that out.
#[derive(Clone, Default)]
pub struct Reached(std::sync::Arc<std::sync::Mutex<BTreeSet<String>>>);

impl Reached {
    /// Notes that one interleaving ended in `outcome`. A std mutex on
    /// purpose, like the execution counter: it is bookkeeping outside the
    /// model and must not become a loom operation.
    pub fn note(&self, outcome: impl Into<String>) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(outcome.into());
    }

    /// Fails unless every outcome in `wanted` was reached.
    pub fn assert_all(&self, model: &str, wanted: &[&str]) {
        let reached = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let missing: Vec<&&str> = wanted.iter().filter(|w| !reached.contains(**w)).collect();
        assert!(
            missing.is_empty(),
            "{model}: no interleaving reached {missing:?} (reached {reached:?})"
        );
    }
}

/// Runs `model` under loom and reports how many interleavings (loom
/// executions) it explored.
pub fn explore(name: &str, model: impl Fn() + Send + Sync + 'static) -> usize {
    let (explored, panicked) = run(model);
    if let Some(message) = panicked {
        panic!("{name}: {message}");
    }
    report(name, explored, "all passed");
    explored
}

/// Runs `model` under loom expecting a violation; returns the panic message
/// of the first failing interleaving, or `None` if loom found none.
pub fn explore_expecting_violation(name: &str, model: impl Fn() + Send + Sync + 'static) -> Option<String> {
    let (explored, panicked) = run(model);
    let verdict = if panicked.is_some() {
        "violation found (expected)"
    } else {
        "NO violation found"
    };
    report(name, explored, verdict);
    panicked
}

fn run(model: impl Fn() + Send + Sync + 'static) -> (usize, Option<String>) {
    // A std atomic on purpose: it counts executions from outside the model
    // and must not become a loom operation itself.
    let explored = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = explored.clone();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        loom::model(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            model();
        });
    }));
    let panicked = outcome.err().map(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "panicked".to_owned())
    });
    (explored.load(Ordering::Relaxed), panicked)
}

fn report(name: &str, explored: usize, verdict: &str) {
    let bound = std::env::var("LOOM_MAX_PREEMPTIONS").unwrap_or_else(|_| "unbounded".into());
    // Written to the stderr handle rather than with `eprintln!`, which the
    // test harness captures: CI logs should show the counts of passing runs.
    let _ = writeln!(
        std::io::stderr(),
        "loom model `{name}`: {explored} interleavings explored \
         (LOOM_MAX_PREEMPTIONS={bound}): {verdict}"
    );
}
