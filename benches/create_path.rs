//! `create_path`: what one agent creation costs at the store level, by
//! path, on one Postgres server with durable settings (every commit waits
//! for the WAL flush). Answers "what does an idempotency key add to a
//! create?" and "how does that compare with the legacy design?".
//!
//! Benchmarks of group `create_path` (violin plot in
//! `target/criterion/create_path/report/`):
//! - `unkeyed`: `agents.insert(&new, now)`, one `INSERT`;
//! - `keyed_one_step`: `agents.insert_one_step`, the path of every key with
//!   no record: one statement inserts the completed key and the agent;
//! - `keyed_two_phase_dead_record`: `keys.claim` then
//!   `agents.insert_completing(&lease, &new, now)`, the path of a key whose
//!   record is dead (expired): the claim reads the record and takes it over
//!   with an upsert, and the completion inserts the agent. (The service
//!   first tries `insert_one_step`, which finds the dead record and writes
//!   nothing; that round trip is not included.)
//! - `legacy_lookup_then_insert`: the legacy store's one-step path, a
//!   lookup by key through its non-unique index then the `INSERT`;
//! - `replay_one_step`: what the service does for a completed key:
//!   `insert_one_step`, whose insert finds the key taken (writing nothing)
//!   and whose read of the key joined with its agent answers the replay;
//! - `replay_via_claim`: `keys.claim` (a read; returns `Replay`) then
//!   `agents.get(org, id)`: the end of the long way, taken by a duplicate
//!   that waited for its original (and by every replay before the one-step
//!   statement answered replays).
//!
//! Every keyed creation uses a key never used before; the replay reuses one.
//! Each design has its own database in the one container, both holding the
//! same 100k agents beforehand (and this project's, their 100k keys), so
//! the indexes are as deep as in a service that has been running a while,
//! and neither design's inserts maintain the other design's index.
//! Timing: 30 samples over 4 s each.

use idemproof_testkit::bench as support;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::Criterion;
use idemproof_harness::postgres::PgServer;
use idemproof_models::{Scope, Terms};
use idemproof_service::mutants::Strategy;
use idemproof_service::store::postgres::{PgStore, Schema};
use idemproof_service::store::{ClaimOutcome, Lease, OneStep, Stores};
use sqlx::PgPool;
use tokio::runtime::Runtime;

/// Agents (and keys) present before the first measurement.
const BACKGROUND: i64 = 100_000;

struct Setup {
    /// This project's stores.
    store: Stores,
    /// Setup access to the store's database (dead records).
    admin: PgPool,
    /// The legacy design, in a database of its own.
    legacy: Stores,
    /// A completed key, for the replay path.
    completed: Scope,
}

impl Setup {
    async fn new(server: &PgServer) -> Self {
        let terms = Terms::default();
        let url = server.fresh_database().await.expect("a fresh database");
        let store = PgStore::connect(&url, 2, terms, Schema::Plain)
            .await
            .expect("PgStore")
            .stores();
        let admin = support::admin_pool(&url).await;
        support::insert_agents(&admin, 1, BACKGROUND).await;
        support::insert_keys(&admin, 1, BACKGROUND, false).await;
        support::vacuum_analyze(&admin, "agents").await;
        support::vacuum_analyze(&admin, "idempotency_keys").await;

        let legacy_url = server.fresh_database().await.expect("a fresh database");
        let backend = Strategy::Legacy
            .postgres(&legacy_url, 2, terms, Schema::Plain)
            .await
            .expect("legacy store");
        let legacy = Strategy::Legacy.stores(&backend, |s| s).expect("legacy stores");
        let legacy_admin = support::admin_pool(&legacy_url).await;
        support::insert_agents(&legacy_admin, 1, BACKGROUND).await;
        support::vacuum_analyze(&legacy_admin, "agents").await;
        support::exec(&admin, "CHECKPOINT").await;

        // The replay key, completed the way the service completes a new key.
        let g = support::NEW_KEYS_FROM - 1;
        let completed = support::scope(g);
        let created = store
            .agents
            .insert_one_step(
                &completed,
                support::fingerprint(),
                &support::new_agent(Some(g)),
                Utc::now(),
            )
            .await
            .expect("create");
        assert!(matches!(created, OneStep::Created(_)), "the replay key is new");
        Self {
            store,
            admin,
            legacy,
            completed,
        }
    }
}

async fn unkeyed(store: &Stores) {
    store
        .agents
        .insert(&support::new_agent(None), Utc::now())
        .await
        .expect("create");
}

async fn keyed_one_step(store: &Stores, g: i64) {
    let created = store
        .agents
        .insert_one_step(
            &support::scope(g),
            support::fingerprint(),
            &support::new_agent(Some(g)),
            Utc::now(),
        )
        .await
        .expect("create");
    assert!(matches!(created, OneStep::Created(_)), "key {g} is new");
}

/// `claim` then the insert completing the claim: the two-phase path of a
/// key whose record is dead.
async fn two_phase(store: &Stores, g: i64) {
    let (scope, token, now) = (support::scope(g), support::token(g as u128), Utc::now());
    let claimed = store
        .keys
        .claim(&scope, support::fingerprint(), token, now)
        .await
        .expect("claim");
    assert!(matches!(claimed, ClaimOutcome::Acquired), "key {g}: {claimed:?}");
    store
        .agents
        .insert_completing(&Lease { scope, token }, &support::new_agent(Some(g)), now)
        .await
        .expect("create");
}

/// The path of every replay: the one-step insert finds the key taken, and
/// one read of the key and its agent answers; nothing is written.
async fn replay_one_step(store: &Stores, scope: &Scope) {
    let g = support::NEW_KEYS_FROM - 1;
    let replayed = store
        .agents
        .insert_one_step(scope, support::fingerprint(), &support::new_agent(Some(g)), Utc::now())
        .await
        .expect("one step");
    assert!(
        matches!(replayed, OneStep::Replayed(_)),
        "the key is completed: {replayed:?}"
    );
}

/// The rest of the long way, once the key has completed: what a duplicate
/// that waited for an in-flight original does.
async fn replay_via_claim(store: &Stores, scope: &Scope) {
    let id = match store
        .keys
        .claim(scope, support::fingerprint(), support::token(0), Utc::now())
        .await
        .expect("claim")
    {
        ClaimOutcome::Replay(id) => id,
        other => panic!("expected a replay, got {other:?}"),
    };
    let agent = store.agents.get(scope.organization_id, id).await.expect("load");
    assert!(agent.is_some(), "the replayed agent exists");
}

fn create_path(c: &mut Criterion, rt: &Runtime, setup: &Setup) {
    let mut group = c.benchmark_group("create_path");
    group.sample_size(30).measurement_time(Duration::from_secs(4));
    // One counter for every keyed bench: no key is ever used twice.
    let mut next = support::NEW_KEYS_FROM;
    let mut new_key = move || {
        next += 1;
        next
    };
    let store = &setup.store;

    group.bench_function("unkeyed", |b| b.to_async(rt).iter(|| unkeyed(store)));
    group.bench_function("keyed_one_step", |b| {
        b.to_async(rt).iter(|| keyed_one_step(store, new_key()))
    });
    group.bench_function("keyed_two_phase_dead_record", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let keys: Vec<i64> = (0..iters).map(|_| new_key()).collect();
            async move {
                // Untimed: give each key an expired record, in one statement
                // (the counter hands out consecutive numbers).
                support::insert_keys(&setup.admin, keys[0], keys[keys.len() - 1], true).await;
                let started = Instant::now();
                for g in keys {
                    two_phase(store, g).await;
                }
                started.elapsed()
            }
        })
    });
    group.bench_function("legacy_lookup_then_insert", |b| {
        b.to_async(rt).iter(|| keyed_one_step(&setup.legacy, new_key()))
    });
    group.bench_function("replay_one_step", |b| {
        b.to_async(rt).iter(|| replay_one_step(store, &setup.completed))
    });
    group.bench_function("replay_via_claim", |b| {
        b.to_async(rt).iter(|| replay_via_claim(store, &setup.completed))
    });
    group.finish();
}

fn main() {
    let rt = support::runtime();
    let server = support::start_postgres(&rt);
    let setup = rt.block_on(Setup::new(&server));
    let mut c = support::criterion();
    create_path(&mut c, &rt, &setup);
    c.final_summary();
    rt.block_on(async move {
        // Pools close inside the runtime, then the container goes.
        drop(setup);
        server.remove().await;
    });
}
