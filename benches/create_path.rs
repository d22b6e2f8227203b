//! `create_path`: what one agent creation costs at the store level, by
//! path, on one Postgres server with durable settings (every commit waits
//! for the WAL flush). Answers "what does an idempotency key add to a
//! create?" and "how does that compare with the legacy design?".
//!
//! Benchmarks of group `create_path` (violin plot in
//! `target/criterion/create_path/report/`):
//! - `unkeyed`: `create_agent(&new, None, now)`, one `INSERT`;
//! - `keyed_one_step`: `create_agent_fresh`, the path of every new key: one
//!   statement inserts the completed key and the agent;
//! - `keyed_two_phase_dead_record`: `claim` then `create_agent(&new,
//!   Some(&lease), now)`, the path of a key whose record is dead (expired):
//!   the claim reads the record and takes it over with an upsert, and the
//!   completion inserts the agent. (The service first tries
//!   `create_agent_fresh`, which finds the dead record and writes nothing;
//!   that round trip is not included.)
//! - `legacy_lookup_then_insert`: the legacy store's `claim` (a lookup by
//!   key through its non-unique index) then `create_agent` (the `INSERT`);
//! - `replay_one_step`: what the service does for a completed key:
//!   `create_agent_fresh`, whose insert finds the key taken (writing
//!   nothing) and whose read of the key joined with its agent answers the
//!   replay;
//! - `replay_via_claim`: `claim` (a read; returns `Replay`) then
//!   `agent(org, id)`: the end of the long way, taken by a duplicate that
//!   waited for its original (and by every replay before the one-step
//!   statement answered replays).
//!
//! Every keyed creation uses a key never used before; the replay reuses one.
//! Each design has its own database in the one container, both holding the
//! same 100k agents beforehand (and this project's, their 100k keys), so
//! the indexes are as deep as in a service that has been running a while,
//! and neither design's inserts maintain the other design's index.
//! Timing: 30 samples over 4 s each.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::Criterion;
use idemproof_harness::postgres::PgServer;
use idemproof_models::{Scope, Terms};
use idemproof_service::mutants::Strategy;
use idemproof_service::store::postgres::PgStore;
use idemproof_service::store::{ClaimOutcome, Fresh, Lease, Store};
use sqlx::PgPool;
use tokio::runtime::Runtime;

/// Agents (and keys) present before the first measurement.
const BACKGROUND: i64 = 100_000;

struct Setup {
    /// This project's store.
    store: PgStore,
    /// Setup access to the store's database (dead records).
    admin: PgPool,
    /// The legacy design, in a database of its own.
    legacy: Arc<dyn Store>,
    /// A completed key, for the replay path.
    completed: Scope,
}

impl Setup {
    async fn new(server: &PgServer) -> Self {
        let terms = Terms::default();
        let url = server.fresh_database().await;
        let store = PgStore::connect(&url, 2, terms).await.expect("PgStore");
        let admin = support::admin_pool(&url).await;
        support::insert_agents(&admin, 1, BACKGROUND).await;
        support::insert_keys(&admin, 1, BACKGROUND, false).await;
        support::vacuum_analyze(&admin, "agents").await;
        support::vacuum_analyze(&admin, "idempotency_keys").await;

        let legacy_url = server.fresh_database().await;
        let legacy = Strategy::Legacy
            .base_postgres(&legacy_url, 2, terms)
            .await
            .expect("legacy store");
        let legacy_admin = support::admin_pool(&legacy_url).await;
        support::insert_agents(&legacy_admin, 1, BACKGROUND).await;
        support::vacuum_analyze(&legacy_admin, "agents").await;
        support::exec(&admin, "CHECKPOINT").await;

        // The replay key, completed the way the service completes a new key.
        let g = support::FRESH_BASE - 1;
        let completed = support::scope(g);
        let created = store
            .create_agent_fresh(
                &completed,
                support::fingerprint(),
                &support::new_agent(Some(g)),
                Utc::now(),
            )
            .await
            .expect("create");
        assert!(matches!(created, Fresh::Created(_)), "the replay key is new");
        Self {
            store,
            admin,
            legacy,
            completed,
        }
    }
}

async fn unkeyed(store: &PgStore) {
    store
        .create_agent(&support::new_agent(None), None, Utc::now())
        .await
        .expect("create");
}

async fn keyed_one_step(store: &PgStore, g: i64) {
    let created = store
        .create_agent_fresh(
            &support::scope(g),
            support::fingerprint(),
            &support::new_agent(Some(g)),
            Utc::now(),
        )
        .await
        .expect("create");
    assert!(matches!(created, Fresh::Created(_)), "key {g} is new");
}

/// `claim` then `create_agent` under the lease: the two-phase path of the
/// legacy store, and of this project's store for a dead record.
async fn two_phase(store: &dyn Store, g: i64) {
    let (scope, token, now) = (support::scope(g), support::token(g as u128), Utc::now());
    let claimed = store
        .claim(&scope, support::fingerprint(), token, now)
        .await
        .expect("claim");
    assert!(matches!(claimed, ClaimOutcome::Acquired), "key {g}: {claimed:?}");
    store
        .create_agent(&support::new_agent(Some(g)), Some(&Lease { scope, token }), now)
        .await
        .expect("create");
}

/// The path of every replay: the one-step insert finds the key taken, and
/// one read of the key and its agent answers; nothing is written.
async fn replay_one_step(store: &PgStore, scope: &Scope) {
    let g = support::FRESH_BASE - 1;
    let fresh = store
        .create_agent_fresh(scope, support::fingerprint(), &support::new_agent(Some(g)), Utc::now())
        .await
        .expect("fresh");
    assert!(matches!(fresh, Fresh::Replayed(_)), "the key is completed: {fresh:?}");
}

/// The rest of the long way, once the key has completed: what a duplicate
/// that waited for an in-flight original does.
async fn replay_via_claim(store: &PgStore, scope: &Scope) {
    let id = match store
        .claim(scope, support::fingerprint(), support::token(0), Utc::now())
        .await
        .expect("claim")
    {
        ClaimOutcome::Replay(id) => id,
        other => panic!("expected a replay, got {other:?}"),
    };
    let agent = store.agent(scope.organization_id, id).await.expect("load");
    assert!(agent.is_some(), "the replayed agent exists");
}

fn create_path(c: &mut Criterion, rt: &Runtime, setup: &Setup) {
    let mut group = c.benchmark_group("create_path");
    group.sample_size(30).measurement_time(Duration::from_secs(4));
    // One counter for every keyed bench: no key is ever used twice.
    let mut next = support::FRESH_BASE;
    let mut fresh_key = move || {
        next += 1;
        next
    };
    let store = &setup.store;

    group.bench_function("unkeyed", |b| b.to_async(rt).iter(|| unkeyed(store)));
    group.bench_function("keyed_one_step", |b| {
        b.to_async(rt).iter(|| keyed_one_step(store, fresh_key()))
    });
    group.bench_function("keyed_two_phase_dead_record", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let keys: Vec<i64> = (0..iters).map(|_| fresh_key()).collect();
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
    let legacy = setup.legacy.as_ref();
    group.bench_function("legacy_lookup_then_insert", |b| {
        b.to_async(rt).iter(|| two_phase(legacy, fresh_key()))
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
