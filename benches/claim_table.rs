//! `claim_table`: the in-memory store's claim logic
//! (`idemproof_models::ClaimTable`) on its own, with 1, 2 and 4 real
//! threads hitting the same key or different keys. It answers what the
//! table's locking costs under contention: the table is split into
//! `claim_table::SHARDS` shards by a hash of the scope, so different keys
//! seldom share a lock, while every request for one key still meets on
//! its shard's lock.
//!
//! Two groups, each a (log-scale) line chart against the number of threads
//! (`target/criterion/<group>/report/lines.svg`, throughput in
//! `lines_throughput.svg`):
//! - `claim_table_claim_complete`: `claim`, then `complete` when acquired
//!   (the two-phase path);
//! - `claim_table_create_one_step`: `create_one_step` (the one-step path of a
//!   key), falling back to `claim` when the key has a record, as the
//!   service does.
//!
//! `different_keys`: every operation uses a key never seen before, so each
//! one creates a record. `same_key`: all threads use one key; the first
//! operation creates it and every later one is a replay, as in a storm of
//! duplicates of one request. With one thread either is uncontended.
//!
//! One iteration is one operation on every thread, so the reported time is
//! the latency of one operation as each thread sees it, and the throughput
//! (`Throughput::Elements(threads)`) counts the operations of all threads.
//! Each sample starts from an empty table (with `different_keys` it grows
//! by one record per operation, its resizes included, as a live table
//! grows) and spawns its threads before the clock starts; keys are built
//! beforehand too, so only table work is timed. No fixed setup per sample
//! on purpose: criterion sizes samples from their whole wall time, and a
//! pre-filled table made it pick one iteration per sample.
//! Timing: 50 samples over 2 s each. On a 2-core machine, 4 threads are
//! oversubscribed: that case shows the cost of waiting on a descheduled
//! lock holder.

use idemproof_testkit::bench as support;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{AxisScale, BenchmarkId, Criterion, PlotConfiguration, Throughput};
use idemproof_models::{Claim, ClaimTable, Fingerprint, Scope, Terms, Timestamp};

const THREADS: [usize; 3] = [1, 2, 4];

/// What a completed key stands for (an agent id).
const RESULT: i64 = 42;

#[derive(Debug, Clone, Copy)]
enum Op {
    ClaimComplete,
    OneStep,
}

#[derive(Debug, Clone, Copy)]
enum Keys {
    Different,
    Same,
}

impl Keys {
    fn name(self) -> &'static str {
        match self {
            Keys::Different => "different_keys",
            Keys::Same => "same_key",
        }
    }
}

/// One operation; `n` numbers it, for a unique lease token.
fn operate(table: &ClaimTable<i64>, op: Op, scope: &Scope, fingerprint: Fingerprint, n: u128, now: Timestamp) {
    let claim = |table: &ClaimTable<i64>| match table.claim(scope, fingerprint, support::token(n), now, None) {
        Claim::Acquired => {
            table
                .complete(scope, support::token(n), || Ok::<_, ()>(RESULT))
                .expect("the owner completes");
        }
        // Someone else's claim or result: nothing to do here (a service
        // would wait, or answer with the replay).
        Claim::Replay(_) | Claim::InFlight { .. } => {}
        Claim::Mismatch { .. } => panic!("one payload throughout, yet a mismatch"),
        Claim::Full { .. } => panic!("the benchmarked table is unbounded"),
    };
    match op {
        Op::ClaimComplete => claim(table),
        Op::OneStep => {
            let created = table
                .create_one_step(scope, fingerprint, now, || Ok::<_, ()>(RESULT))
                .expect("infallible work");
            if created.is_none() {
                claim(table);
            }
        }
    }
}

/// Runs `iters` operations on each of `threads` threads at once and
/// returns the wall time from the common start to the last thread's end.
fn run(op: Op, keys: Keys, threads: usize, iters: u64) -> Duration {
    let table = ClaimTable::new(Terms::default());
    // Hashing the payload is the caller's work, not the table's.
    let (fingerprint, now) = (support::fingerprint(), chrono::Utc::now());
    // Per thread, the scope of each operation: distinct ranges of fresh
    // keys, or one key shared by all.
    let work: Vec<Vec<Scope>> = (0..threads)
        .map(|t| match keys {
            Keys::Different => {
                let base = support::NEW_KEYS_FROM + (t as i64) * 100_000_000;
                (0..iters as i64).map(|i| support::scope(base + i)).collect()
            }
            Keys::Same => vec![support::scope(support::NEW_KEYS_FROM)],
        })
        .collect();
    let start = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = work
            .iter()
            .enumerate()
            .map(|(t, scopes)| {
                let (table, start) = (&table, &start);
                s.spawn(move || {
                    start.wait();
                    for i in 0..iters {
                        let scope = &scopes[(i as usize) % scopes.len()];
                        let n = ((t as u128) << 64) | u128::from(i);
                        // Requests arrive at distinct instants; with one
                        // shared `now` every expiry-index comparison would
                        // fall through to comparing scopes.
                        let at = now + chrono::Duration::nanoseconds(i as i64);
                        operate(table, op, scope, fingerprint, n, at);
                    }
                })
            })
            .collect();
        start.wait();
        let started = Instant::now();
        for handle in handles {
            handle.join().expect("bench thread");
        }
        started.elapsed()
    })
}

fn bench(c: &mut Criterion, group_name: &str, op: Op) {
    let mut group = c.benchmark_group(group_name);
    group.sample_size(50).measurement_time(Duration::from_secs(2));
    // Replays and creations differ by an order of magnitude.
    group.plot_config(PlotConfiguration::default().summary_scale(AxisScale::Logarithmic));
    for keys in [Keys::Different, Keys::Same] {
        for threads in THREADS {
            group.throughput(Throughput::Elements(threads as u64));
            group.bench_with_input(BenchmarkId::new(keys.name(), threads), &threads, |b, &threads| {
                b.iter_custom(|iters| run(op, keys, threads, iters));
            });
        }
    }
    group.finish();
}

fn main() {
    let mut c = support::criterion();
    bench(&mut c, "claim_table_claim_complete", Op::ClaimComplete);
    bench(&mut c, "claim_table_create_one_step", Op::OneStep);
    c.final_summary();
}
