//! `index_lookup`: what finding and recording an idempotency key costs as
//! the table grows to 10k, 100k, 1M and 10M keys, under three designs:
//!
//! - `unique_scope`: this project's `idempotency_keys` table, whose primary
//!   key `idempotency_keys_scope` on (organization_id, user_id, endpoint,
//!   key) both finds a key and arbitrates concurrent claims. Measured
//!   through the real `PgStore`: the replay lookup is its `claim` on a
//!   completed key (one `SELECT` by scope), the first-time claim is its
//!   `claim` on a new key (that `SELECT` missing, then one `INSERT ... ON
//!   CONFLICT` whose conflict check is the primary key).
//! - `legacy_key_index`: the legacy design, the key in a column of `agents`
//!   with a non-unique index on that column alone. Measured through the
//!   real legacy store (`Strategy::Legacy`), whose one-step path is the
//!   legacy check-then-insert: the replay lookup is that lookup finding
//!   the agent (a `SELECT ... WHERE idempotency_key = $1`), the first-time
//!   claim is the lookup missing plus the agent `INSERT`.
//! - `no_index`: the same legacy store after dropping its index, i.e. what
//!   a key column nobody indexed costs: every lookup scans the table.
//!
//! Two groups, each a log-log line chart of latency against table size per
//! design (`target/criterion/<group>/report/lines.svg`): `index_lookup_replay`
//! (an existing key: what every replay pays) and `index_lookup_first_claim`
//! (a new key: establishing it is new, and recording it; the commit waits
//! for the WAL flush, as in production).
//!
//! Each (design, size) gets its own database in the one container, filled
//! by one `INSERT ... SELECT generate_series` and vacuumed and analysed;
//! `EXPLAIN` then checks that the first two designs use their index and the
//! third scans, and panics with the plan if not. The first-time claims of a
//! sample are deleted (and the table vacuumed) after the sample, untimed,
//! so a table keeps its nominal size: without that the 10k tables would
//! grow by a tenth or more during their own measurement.
//!
//! Timing: 30 samples over 3 s for the indexed designs; the no-index scans
//! (up to a few hundred ms at 1M) take 10 flat samples over 5 s, and stop
//! at 1M: at 10M a scan would take over a second per lookup, for a line
//! whose slope the first three points already give.

use idemproof_testkit::bench as support;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{AxisScale, BenchmarkGroup, BenchmarkId, Criterion, PlotConfiguration, SamplingMode};
use idemproof_harness::postgres::PgServer;
use idemproof_models::{LeaseToken, Terms};
use idemproof_service::http::agents::CREATE_ENDPOINT;
use idemproof_service::mutants::Strategy;
use idemproof_service::store::postgres::{PgStore, Schema};
use idemproof_service::store::{ClaimOutcome, OneStep, Stores};
use sqlx::PgPool;
use tokio::runtime::Runtime;

/// Keys already in the table when a bench runs.
const SIZES: [i64; 4] = [10_000, 100_000, 1_000_000, 10_000_000];

/// The largest table a design without an index is measured on.
const LARGEST_SCANNED: i64 = 1_000_000;

/// Replay lookups visit rows `1 + i * STRIDE mod size`: a prime that
/// divides no size, so successive lookups land on distant heap pages.
const STRIDE: i64 = 999_983;

/// The legacy store's index, as `service/src/mutants/legacy.rs` creates it.
const LEGACY_INDEX: &str = "agents_idempotency_key_legacy";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Design {
    UniqueScope,
    LegacyKeyIndex,
    NoIndex,
}

impl Design {
    const ALL: [Design; 3] = [Design::UniqueScope, Design::LegacyKeyIndex, Design::NoIndex];

    fn name(self) -> &'static str {
        match self {
            Design::UniqueScope => "unique_scope",
            Design::LegacyKeyIndex => "legacy_key_index",
            Design::NoIndex => "no_index",
        }
    }

    /// The table sizes this design is measured on.
    fn sizes(self) -> impl Iterator<Item = i64> {
        SIZES
            .into_iter()
            .filter(move |&size| self != Design::NoIndex || size <= LARGEST_SCANNED)
    }

    /// Scans cost milliseconds to hundreds of them: fewer, flat samples
    /// keep the 1M case to seconds instead of minutes.
    fn configure(self, group: &mut BenchmarkGroup<'_, WallTime>) {
        match self {
            Design::NoIndex => group
                .sample_size(10)
                .sampling_mode(SamplingMode::Flat)
                .measurement_time(Duration::from_secs(5)),
            _ => group
                .sample_size(30)
                .sampling_mode(SamplingMode::Auto)
                .measurement_time(Duration::from_secs(3)),
        };
    }
}

/// One design filled to one size, in its own database.
struct Fixture {
    design: Design,
    size: i64,
    /// Setup, checks and untimed clean-up.
    admin: PgPool,
    /// The real stores of the design.
    stores: Stores,
}

impl Fixture {
    async fn new(server: &PgServer, design: Design, size: i64) -> Self {
        let url = server.fresh_database().await.expect("a fresh database");
        let admin = support::admin_pool(&url).await;
        let terms = Terms::default();
        let stores = match design {
            Design::UniqueScope => PgStore::connect(&url, 2, terms, Schema::Plain)
                .await
                .expect("PgStore")
                .stores(),
            Design::LegacyKeyIndex | Design::NoIndex => {
                let backend = Strategy::Legacy
                    .postgres(&url, 2, terms, Schema::Plain)
                    .await
                    .expect("legacy store");
                Strategy::Legacy.stores(&backend, |s| s).expect("legacy stores")
            }
        };
        // Dropped before filling, so the table never had it.
        if design == Design::NoIndex {
            support::exec(&admin, &format!("DROP INDEX {LEGACY_INDEX}")).await;
        }
        let started = Instant::now();
        match design {
            Design::UniqueScope => support::insert_keys(&admin, 1, size, false).await,
            _ => support::insert_agents(&admin, 1, size).await,
        }
        let fixture = Self {
            design,
            size,
            admin,
            stores,
        };
        support::vacuum_analyze(&fixture.admin, fixture.table()).await;
        eprintln!(
            "index_lookup: {}/{size} filled in {:.1} s",
            design.name(),
            started.elapsed().as_secs_f64()
        );
        fixture.check_plans().await;
        fixture
    }

    fn table(&self) -> &'static str {
        match self.design {
            Design::UniqueScope => "idempotency_keys",
            _ => "agents",
        }
    }

    /// Explains the lookup each store runs, with a seeded key (a replay)
    /// and a fresh one (a first claim), and this project's claim upsert.
    /// The SQL mirrors `SELECT_KEY` and `CLAIM` in
    /// `service/src/store/postgres/queries.rs` and the lookup in
    /// `service/src/mutants/legacy.rs`; keep them in step.
    async fn check_plans(&self) {
        let label = format!("{}/{}", self.design.name(), self.size);
        let (seeded, fresh) = (support::scope(self.size / 2), support::scope(support::NEW_KEYS_FROM));
        let (must, must_not): (&[&str], &[&str]) = match self.design {
            Design::UniqueScope => (&["Index Scan using idempotency_keys_scope"], &["Seq Scan"]),
            Design::LegacyKeyIndex => (&[LEGACY_INDEX], &["Seq Scan"]),
            Design::NoIndex => (&["Seq Scan on agents"], &["Index"]),
        };
        for (what, scope) in [("replay lookup", &seeded), ("first claim lookup", &fresh)] {
            let lookup = match self.design {
                Design::UniqueScope => sqlx::query(
                    "EXPLAIN SELECT fingerprint, lease_token, lease_expires_at, resource_id, created_at, expires_at
                       FROM idempotency_keys
                      WHERE organization_id = $1 AND user_id = $2 AND endpoint = $3 AND key = $4",
                )
                .bind(scope.organization_id)
                .bind(scope.user_id)
                .bind(CREATE_ENDPOINT)
                .bind(scope.key.as_str().to_owned()),
                _ => sqlx::query("EXPLAIN SELECT * FROM agents WHERE idempotency_key = $1 ORDER BY id LIMIT 1")
                    .bind(scope.key.as_str().to_owned()),
            };
            let plan = support::plan(&self.admin, lookup).await;
            support::require_plan(&format!("{label} {what}"), &plan, must, must_not);
            let node = plan.lines().find(|l| l.contains(" on ")).unwrap_or_default().trim();
            eprintln!("index_lookup: {label} {what} plan: {node}");
        }
        if self.design == Design::UniqueScope {
            // The claim's write: its conflict check is the primary key's own
            // uniqueness probe, which EXPLAIN names as the arbiter.
            let upsert = support::plan(
                &self.admin,
                sqlx::query(
                    "EXPLAIN INSERT INTO idempotency_keys AS k
                         (organization_id, user_id, endpoint, key, fingerprint,
                          lease_token, lease_expires_at, resource_id, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, decode(repeat('00', 32), 'hex'),
                             gen_random_uuid(), now(), NULL, now(), now())
                     ON CONFLICT ON CONSTRAINT idempotency_keys_scope DO UPDATE
                     SET lease_token = EXCLUDED.lease_token
                     WHERE k.resource_id IS NOT NULL AND k.expires_at <= EXCLUDED.created_at",
                )
                .bind(fresh.organization_id)
                .bind(fresh.user_id)
                .bind(CREATE_ENDPOINT)
                .bind(fresh.key.as_str().to_owned()),
            )
            .await;
            support::require_plan(
                &format!("{label} first claim upsert"),
                &upsert,
                &["Conflict Arbiter Indexes: idempotency_keys_scope"],
                &[],
            );
        }
    }

    /// The design's lookup of the existing key of row `g`, which must
    /// answer with a replay: for every design, one lookup by key (this
    /// project's claim; the legacy check before its insert).
    async fn replay(&self, g: i64) {
        let (scope, now) = (support::scope(g), chrono::Utc::now());
        if self.design == Design::UniqueScope {
            let found = self
                .stores
                .keys
                .claim(&scope, support::fingerprint(), LeaseToken::random(), now)
                .await
                .expect("lookup");
            assert!(matches!(found, ClaimOutcome::Replay(_)), "seeded key {g}: {found:?}");
        } else {
            let found = self
                .stores
                .agents
                .insert_one_step(&scope, support::fingerprint(), &support::new_agent(Some(g)), now)
                .await
                .expect("lookup");
            assert!(matches!(found, OneStep::Replayed(_)), "seeded key {g}: {found:?}");
        }
    }

    /// Claims the new key of row `g` as the design does; returns what to
    /// delete afterwards (`g` itself, or the legacy agent's id).
    async fn first_claim(&self, g: i64) -> i64 {
        let (scope, now) = (support::scope(g), chrono::Utc::now());
        if self.design == Design::UniqueScope {
            let claimed = self
                .stores
                .keys
                .claim(&scope, support::fingerprint(), LeaseToken::random(), now)
                .await
                .expect("claim");
            assert!(matches!(claimed, ClaimOutcome::Acquired), "new key {g}: {claimed:?}");
            return g;
        }
        // The legacy design records nothing: the agent row is the record.
        match self
            .stores
            .agents
            .insert_one_step(&scope, support::fingerprint(), &support::new_agent(Some(g)), now)
            .await
            .expect("insert")
        {
            OneStep::Created(agent) => agent.id,
            other => panic!("new key {g}: {other:?}"),
        }
    }

    /// Deletes what a sample's first claims wrote, then vacuums, so the
    /// next sample sees the nominal table again (dead rows would still be
    /// scanned by `no_index`).
    async fn forget(&self, written: &[i64]) {
        let delete_keys = format!(
            "DELETE FROM idempotency_keys k USING unnest($1::bigint[]) AS g
              WHERE (k.organization_id, k.user_id, k.endpoint, k.key) = ({}, $2, {})",
            support::SEED_ORG_USER_SQL,
            support::SEED_KEY_SQL
        );
        let delete = match self.design {
            Design::UniqueScope => sqlx::query(&delete_keys).bind(written).bind(CREATE_ENDPOINT),
            _ => sqlx::query("DELETE FROM agents WHERE id = ANY($1)").bind(written),
        };
        let deleted = delete.execute(&self.admin).await.expect("clean-up");
        assert_eq!(deleted.rows_affected(), written.len() as u64, "clean-up missed rows");
        support::exec(&self.admin, &format!("VACUUM (PARALLEL 0) {}", self.table())).await;
    }
}

/// Sizes and latencies both span two to three orders of magnitude: on
/// log-log axes a scan is a rising line and an index lookup a flat one.
fn log_log() -> PlotConfiguration {
    PlotConfiguration::default().summary_scale(AxisScale::Logarithmic)
}

fn replay(c: &mut Criterion, rt: &Runtime, fixtures: &[Fixture]) {
    let mut group = c.benchmark_group("index_lookup_replay");
    group.plot_config(log_log());
    for fixture in fixtures {
        fixture.design.configure(&mut group);
        let mut i = 0;
        group.bench_with_input(
            BenchmarkId::new(fixture.design.name(), fixture.size),
            fixture,
            |b, fixture| {
                b.to_async(rt).iter(|| {
                    i += 1;
                    fixture.replay(1 + (i * STRIDE) % fixture.size)
                });
            },
        );
    }
    group.finish();
}

fn first_claim(c: &mut Criterion, rt: &Runtime, fixtures: &[Fixture]) {
    let mut group = c.benchmark_group("index_lookup_first_claim");
    group.plot_config(log_log());
    // Every claim gets a key never used before, in this run or any other
    // (each run starts from fresh databases).
    let mut next = support::NEW_KEYS_FROM;
    for fixture in fixtures {
        fixture.design.configure(&mut group);
        group.bench_with_input(
            BenchmarkId::new(fixture.design.name(), fixture.size),
            fixture,
            |b, fixture| {
                b.to_async(rt).iter_custom(|iters| {
                    let first = next;
                    next += iters as i64;
                    async move {
                        let mut written = Vec::with_capacity(iters as usize);
                        let started = Instant::now();
                        for g in first..first + iters as i64 {
                            written.push(fixture.first_claim(g).await);
                        }
                        let elapsed = started.elapsed();
                        fixture.forget(&written).await;
                        elapsed
                    }
                });
            },
        );
    }
    group.finish();
}

fn main() {
    let rt = support::runtime();
    let server = support::start_postgres(&rt);
    let fixtures: Vec<Fixture> = rt.block_on(async {
        let mut fixtures = Vec::new();
        for design in Design::ALL {
            for size in design.sizes() {
                fixtures.push(Fixture::new(&server, design, size).await);
            }
        }
        // Flush the bulk loads now rather than in a checkpoint mid-bench.
        support::exec(&fixtures[0].admin, "CHECKPOINT").await;
        fixtures
    });
    let mut c = support::criterion();
    replay(&mut c, &rt, &fixtures);
    first_claim(&mut c, &rt, &fixtures);
    c.final_summary();
    rt.block_on(async move {
        // Pools close inside the runtime, then the container goes.
        drop(fixtures);
        server.remove().await;
    });
}
