//! What the bench binaries share: criterion's configuration, the runtime and
//! the one Postgres container per binary, and synthetic keys that SQL can
//! generate in bulk and Rust can recompute one at a time.
//!
//! Keys are a pure function of a number `g`: tables are filled with one
//! `INSERT ... SELECT ... FROM generate_series` ([`SEED_KEY_SQL`]), and a
//! bench finds row `g` again through [`seed_key`] without reading anything
//! back. Their first eight hex digits come from a multiplicative hash, so
//! consecutive `g` land far apart in a B-tree, as random client UUIDs do.

use std::time::Duration;

use criterion::{Criterion, PlottingBackend};
use idemproof_harness::postgres::PgServer;
use idemproof_models::{Fingerprint, IdempotencyKey, LeaseToken, Scope};
use idemproof_service::domain::agent::{AgentSpec, DEFAULT_AGENT_TYPE, NewAgent};
use idemproof_service::http::agents::CREATE_ENDPOINT;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Executor, Postgres, Row};
use tokio::runtime::Runtime;

/// First `g` of keys that benches create; seeded rows use `1..=size`, so a
/// "new" key can never hit a seeded row.
pub const NEW_KEYS_FROM: i64 = 1_000_000_000;

/// [`seed_key`] in SQL, over a bigint named `g`.
pub const SEED_KEY_SQL: &str =
    "lpad(to_hex((g * 2654435761) % 4294967296), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(g), 12, '0')";

/// The key of row `g`: UUID-shaped (36 characters, like the keys browsers
/// send), unique per `g`. `g` must stay below 3.4e9 so that SQL's bigint
/// product cannot overflow.
pub fn seed_key(g: i64) -> String {
    assert!((0..3_400_000_000).contains(&g), "key number {g} out of range");
    format!("{:08x}-0000-4000-8000-{g:012x}", (g * 2_654_435_761) % 4_294_967_296)
}

/// Tenant of row `g`: keys spread over 100 organisations...
pub fn seed_org(g: i64) -> i64 {
    1 + g % 100
}

/// ...and 1000 users, as [`SEED_ORG_USER_SQL`] writes them.
pub fn seed_user(g: i64) -> i64 {
    1 + g % 1000
}

/// [`seed_org`] and [`seed_user`] in SQL.
pub const SEED_ORG_USER_SQL: &str = "1 + g % 100, 1 + g % 1000";

/// The agent-creation scope of row `g`.
pub fn scope(g: i64) -> Scope {
    Scope {
        organization_id: seed_org(g),
        user_id: seed_user(g),
        endpoint: CREATE_ENDPOINT.to_owned(),
        key: IdempotencyKey::parse(&seed_key(g)).expect("seed keys are valid keys"),
    }
}

/// A lease token that costs nothing to make: the in-memory benches would
/// otherwise time the operating system's random number generator.
pub fn token(n: u128) -> LeaseToken {
    LeaseToken(sqlx::types::Uuid::from_u128(n))
}

/// The payload every bench creates (a typical small form).
pub fn spec() -> AgentSpec {
    AgentSpec {
        name: "Support bot".to_owned(),
        description: Some("Answers billing questions".to_owned()),
        system_prompt: None,
        config: serde_json::Map::new(),
        widget_config: serde_json::Map::new(),
        agent_type: DEFAULT_AGENT_TYPE.to_owned(),
        industry: None,
        auto_optimize: false,
    }
}

/// The fingerprint of [`spec`].
pub fn fingerprint() -> Fingerprint {
    spec().fingerprint()
}

/// The agent a request for row `g` creates; `None`: a request without key.
pub fn new_agent(g: Option<i64>) -> NewAgent {
    NewAgent {
        organization_id: g.map_or(1, seed_org),
        user_id: g.map_or(1, seed_user),
        idempotency_key: g.map(seed_key),
        spec: spec(),
    }
}

/// Criterion as every bench binary uses it: SVG plots through plotters
/// whether or not gnuplot is installed (same files on every machine), and a
/// 1 s warm-up (the default 3 s buys nothing for these steady loops).
/// Command-line flags still override both.
pub fn criterion() -> Criterion {
    Criterion::default()
        .plotting_backend(PlottingBackend::Plotters)
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args()
}

/// The bench's own runtime. One thread: each bench awaits one database
/// round trip at a time, and a second worker would only compete with
/// Postgres for the two cores.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The binary's one Postgres container, with durable settings (fsync on),
/// so commits cost what they cost in production. Without Docker this exits
/// with the harness's message, which says how to get it.
pub fn start_postgres(rt: &Runtime) -> PgServer {
    match rt.block_on(PgServer::start_for_benchmarks()) {
        Ok(server) => server,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::exit(1);
        }
    }
}

/// A pool for setup and checks, without the store's statement timeout
/// (filling a table with a million rows may take longer than a lease).
pub async fn admin_pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .expect("connect to the bench database")
}

/// Runs one statement given as text (DDL, maintenance).
pub async fn exec(pool: &PgPool, sql: &str) {
    pool.execute(sql)
        .await
        .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"));
}

/// Writes completed `idempotency_keys` rows for `g` in `from..=to`, in one
/// statement. `expired`: their TTL ended a day ago (dead records, which a
/// new request takes over through a claim).
pub async fn insert_keys(pool: &PgPool, from: i64, to: i64, expired: bool) {
    let (created, expires) = if expired {
        ("now() - interval '2 days'", "now() - interval '1 day'")
    } else {
        ("now()", "now() + interval '1 day'")
    };
    let sql = format!(
        "INSERT INTO idempotency_keys
             (organization_id, user_id, endpoint, key, fingerprint, resource_id, created_at, expires_at)
         SELECT {SEED_ORG_USER_SQL}, $1, {SEED_KEY_SQL}, $2, g, {created}, {expires}
           FROM generate_series($3::bigint, $4::bigint) AS g"
    );
    sqlx::query(&sql)
        .bind(CREATE_ENDPOINT)
        .bind(&fingerprint().0[..])
        .bind(from)
        .bind(to)
        .execute(pool)
        .await
        .expect("insert idempotency keys");
}

/// Writes agents carrying the keys of `g` in `from..=to`, in one statement
/// (what the legacy design stored: the key as a column of `agents`).
pub async fn insert_agents(pool: &PgPool, from: i64, to: i64) {
    let sql = format!(
        "INSERT INTO agents
             (organization_id, user_id, name, description, agent_type, idempotency_key, created_at)
         SELECT {SEED_ORG_USER_SQL}, 'Support bot ' || g, 'Answers billing questions', $1,
                {SEED_KEY_SQL}, now()
           FROM generate_series($2::bigint, $3::bigint) AS g"
    );
    sqlx::query(&sql)
        .bind(DEFAULT_AGENT_TYPE)
        .bind(from)
        .bind(to)
        .execute(pool)
        .await
        .expect("insert agents");
}

/// `VACUUM (ANALYZE)`: statistics for the planner, and the visibility map
/// and hint bits set now, so the first measured reads do not pay for
/// writing them after a bulk load. No parallel workers: their shared
/// memory would not fit a container's 64 MB `/dev/shm` at 10M rows.
pub async fn vacuum_analyze(pool: &PgPool, table: &str) {
    exec(pool, &format!("VACUUM (ANALYZE, PARALLEL 0) {table}")).await;
}

/// The plan Postgres chooses for `query` (an `EXPLAIN ...` with its
/// parameters bound), one line per plan node.
pub async fn plan(pool: &PgPool, query: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>) -> String {
    let rows = query.fetch_all(pool).await.expect("EXPLAIN");
    rows.iter()
        .map(|row| row.get::<String, _>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Panics with the whole plan unless it mentions every one of `must` and
/// none of `must_not`: a bench measuring the wrong plan should not run.
pub fn require_plan(what: &str, plan: &str, must: &[&str], must_not: &[&str]) {
    let missing: Vec<_> = must.iter().filter(|m| !plan.contains(**m)).collect();
    let present: Vec<_> = must_not.iter().filter(|m| plan.contains(**m)).collect();
    assert!(
        missing.is_empty() && present.is_empty(),
        "{what}: unexpected plan (missing {missing:?}, present {present:?}):\n{plan}"
    );
}

/// The first line of a plan: its top node, for the bench's log.
pub fn plan_head(plan: &str) -> &str {
    plan.lines().next().unwrap_or_default().trim()
}
