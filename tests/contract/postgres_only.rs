//! What only Postgres can show: the constraints doing the work (and all of
//! them tenant-first, so the schema can be distributed by tenant), and a
//! real database failure leaving nothing half-written, the replay cache
//! answering without the database, waiting duplicates woken by Postgres
//! notifications. Each case runs on the plain and on the
//! partitioned schema.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use idemproof_models::{LeaseToken, Terms};
use idemproof_service::clock::Clock;
use idemproof_service::domain::agent::CreateEnvelope;
use idemproof_service::store::postgres::PgStore;
use idemproof_service::store::{ChangeSignal, ClaimOutcome};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};

use idemproof_testkit::app::{Backend, TestApp};
use idemproof_testkit::cases;
use idemproof_testkit::runner::{Backends, Case};

pub fn cases() -> Vec<(&'static str, Backends, Case)> {
    cases![Backends::PostgresOnly =>
        scope_is_a_unique_constraint_leading_with_organization_id,
        every_unique_constraint_leads_with_organization_id,
        the_partitioned_schema_is_partitioned_by_tenant,
        a_failing_insert_answers_503_and_leaves_nothing_behind,
        reaping_can_walk_the_expiry_index,
        a_completed_key_replays_from_the_cache_while_the_database_is_unreachable,
        a_waiting_duplicate_is_notified_when_the_claim_ends,
        creations_queued_for_a_full_pool_are_counted_then_served,
        sequential_creations_reuse_their_connections,
        a_dropped_store_stops_listening,
        a_refused_write_runs_once_and_keeps_its_connection,
        the_store_keeps_the_terms_it_was_opened_with,
    ]
}

async fn scope_is_a_unique_constraint_leading_with_organization_id(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let pool = app.pool.as_ref().expect("postgres");
    let columns = unique_indexes(pool, "idempotency_keys").await;
    assert_eq!(columns, [vec!["organization_id", "user_id", "endpoint", "key"]]);
    // The database itself refuses a second row for one scope.
    let insert = "INSERT INTO idempotency_keys (organization_id, user_id, endpoint, key, fingerprint, resource_id, created_at, expires_at)
                  VALUES (1, 1, 'e', 'k', decode(repeat('00', 32), 'hex'), 1, now(), now())";
    sqlx::query(insert).execute(pool).await.expect("first row");
    let second = sqlx::query(insert).execute(pool).await.expect_err("duplicate scope");
    let code = second
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("23505"));
}

/// The columns of every unique index of `table` (its partitions' included).
async fn unique_indexes(pool: &sqlx::PgPool, table: &str) -> Vec<Vec<String>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, a.attname::text
           FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid
           CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
          WHERE i.indisunique
            AND (i.indrelid = $1::regclass
                 OR i.indrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = $1::regclass))
          ORDER BY c.relname, k.ord",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .expect("index columns");
    let mut indexes: Vec<(String, Vec<String>)> = Vec::new();
    for (index, column) in rows {
        match indexes.last_mut() {
            Some((name, columns)) if *name == index => columns.push(column),
            _ => indexes.push((index, vec![column])),
        }
    }
    let mut columns: Vec<Vec<String>> = indexes.into_iter().map(|(_, c)| c).collect();
    columns.dedup();
    columns
}

/// Citus's rule for a distribution column, which `PARTITION BY HASH`
/// enforces too: a unique constraint the tenant does not lead cannot be
/// checked on one shard. Every table of tenant data keeps it; the
/// readiness probe's table holds no tenant data and no unique constraint
/// at all (a table local to the coordinator on Citus).
async fn every_unique_constraint_leads_with_organization_id(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let pool = app.pool.as_ref().expect("postgres");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
            AND c.relname NOT IN ('_sqlx_migrations', 'readiness_probe')
          ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("tables");
    assert_eq!(tables, ["agents", "deployments", "idempotency_keys"]);
    assert!(unique_indexes(pool, "readiness_probe").await.is_empty());
    for table in &tables {
        let indexes = unique_indexes(pool, table).await;
        assert!(!indexes.is_empty(), "{table} has a primary key");
        for columns in indexes {
            assert_eq!(columns[0], "organization_id", "{table}: unique index on {columns:?}");
        }
    }
}

/// On the partitioned schema every table is partitioned by hash of the
/// tenant; on the plain one none is.
async fn the_partitioned_schema_is_partitioned_by_tenant(backend: Backend) {
    let partitioned = matches!(backend, Backend::Partitioned(_));
    let app = TestApp::spawn(&backend, |_| {}).await;
    let pool = app.pool.as_ref().expect("postgres");
    let keys: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, pg_get_partkeydef(c.oid)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND c.relkind = 'p'
          ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("partition keys");
    let want: Vec<(String, String)> = if partitioned {
        ["agents", "deployments", "idempotency_keys"]
            .map(|t| (t.to_owned(), "HASH (organization_id)".to_owned()))
            .to_vec()
    } else {
        Vec::new()
    };
    assert_eq!(keys, want);
}

async fn a_failing_insert_answers_503_and_leaves_nothing_behind(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let pool = app.pool.as_ref().expect("postgres");
    // Break agent inserts for real (the table is empty, so the constraint
    // is valid): the statement fails and nothing of it stays.
    sqlx::query("ALTER TABLE agents ADD CONSTRAINT no_inserts CHECK (false)")
        .execute(pool)
        .await
        .expect("break inserts");
    let body = json!({"name": "Bot"});
    let failed = app.create(1, 1, Some("k"), &body).await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE, "{failed:?}");
    assert!(
        !failed.body.to_string().contains("no_inserts"),
        "internals leaked: {failed:?}"
    );
    assert_eq!(app.rows("agents").await, Some(0));
    assert_eq!(app.rows("idempotency_keys").await, Some(0), "the claim was released");
    sqlx::query("ALTER TABLE agents DROP CONSTRAINT no_inserts")
        .execute(pool)
        .await
        .expect("repair");
    assert_eq!(app.create(1, 1, Some("k"), &body).await.status, StatusCode::CREATED);
}

async fn reaping_can_walk_the_expiry_index(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let pool = app.pool.as_ref().expect("postgres");
    let mut conn = pool.acquire().await.expect("connection");
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .expect("set");
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT ctid FROM idempotency_keys
          WHERE expires_at <= now() AND (resource_id IS NOT NULL OR lease_expires_at <= now())
          ORDER BY expires_at LIMIT 1000 FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("explain");
    let plan = plan.join("\n");
    // On the partitioned schema, one scan of each partition's index.
    assert!(
        plan.lines()
            .any(|l| l.contains("Index Scan") && l.contains("idempotency_keys") && l.contains("expires_at")),
        "{plan}"
    );
    sqlx::query("RESET enable_seqscan")
        .execute(&mut *conn)
        .await
        .expect("reset");
}

/// The replay cache at work, seen from outside: with the database gone
/// (its pool closed), a replay of a key this process completed is still
/// answered, and only that: another payload, another key and a key near
/// its expiry need the database (503). With the cache off the replay
/// needs it too.
async fn a_completed_key_replays_from_the_cache_while_the_database_is_unreachable(backend: Backend) {
    for cache in [true, false] {
        let app = TestApp::spawn(&backend, |c| {
            if !cache {
                c.replay_cache_bytes = 0;
            }
        })
        .await;
        let body = json!({"name": "Bot"});
        let first = app.create(1, 1, Some("k"), &body).await;
        assert_eq!(first.status, StatusCode::CREATED);
        app.pg.as_ref().expect("postgres").close().await;

        let again = app.create(1, 1, Some("k"), &body).await;
        if cache {
            assert_eq!(again.status, StatusCode::OK, "{again:?}");
            assert_eq!(again.header("idempotent-replayed"), Some("true"));
            assert_eq!(again.agent(), first.agent(), "the original, unchanged");
        } else {
            assert_eq!(again.status, StatusCode::SERVICE_UNAVAILABLE, "{again:?}");
        }
        let edited = app.create(1, 1, Some("k"), &json!({"name": "Other"})).await;
        assert_eq!(edited.status, StatusCode::SERVICE_UNAVAILABLE, "{edited:?}");
        let fresh = app.create(1, 1, Some("new"), &body).await;
        assert_eq!(fresh.status, StatusCode::SERVICE_UNAVAILABLE, "{fresh:?}");
        // Five seconds before the key expires, the cache leaves it to the
        // database (another replica's clock may be ahead).
        let ttl = app.config.idempotency_ttl;
        app.clock.advance(ttl - Duration::from_secs(5));
        let late = app.create(1, 1, Some("k"), &body).await;
        assert_eq!(late.status, StatusCode::SERVICE_UNAVAILABLE, "cache {cache}: {late:?}");
    }
}

/// A duplicate of an in-flight key is told when the claim ends, completed
/// or released, by the notification its statement sends at commit (which
/// reaches every process listening; here the one it came from). Without
/// it the signal would only fire at the backstop, never within the
/// generous bound below, which only keeps a broken notification from
/// hanging the test.
async fn a_waiting_duplicate_is_notified_when_the_claim_ends(backend: Backend) {
    const BOUND: Duration = Duration::from_secs(20);
    let app = TestApp::spawn(&backend, |_| {}).await;
    let body = json!({"name": "Bot"});
    for (key, complete) in [("completed", true), ("released", false)] {
        let (lease, new) = crate::lifecycle::claim_like_an_original(&app, key, &body).await;
        let fingerprint = CreateEnvelope::from_json(&body).expect("valid").spec.fingerprint();
        let waiting = app
            .stores
            .keys
            .claim(&lease.scope, fingerprint, LeaseToken::random(), app.clock.now())
            .await
            .expect("claim");
        let ClaimOutcome::InFlight {
            change: ChangeSignal::Notified(mut changed),
            ..
        } = waiting
        else {
            panic!("{key}: a duplicate is in flight with a signal: {waiting:?}");
        };
        assert!(changed.try_recv().is_err(), "{key}: not before the claim ends");
        if complete {
            app.stores
                .agents
                .insert_completing(&lease, &new, app.clock.now())
                .await
                .expect("complete");
        } else {
            app.stores.keys.release(&lease).await.expect("release");
        }
        tokio::time::timeout(BOUND, changed)
            .await
            .unwrap_or_else(|_| panic!("{key}: the waiter was never notified"))
            .expect("notified, not dropped");
    }
}

/// A pool with every connection out: creations queue for one (for up to
/// five seconds), `/metrics` counts them as waiting, and each is served
/// once a connection is back.
async fn creations_queued_for_a_full_pool_are_counted_then_served(backend: Backend) {
    const QUEUED: usize = 3;
    let app = Arc::new(TestApp::spawn(&backend, |c| c.database_max_connections = 1).await);
    let pg = app.pg.clone().expect("a Postgres store");
    let held = pg.hold().await.expect("the only connection");
    let creations: Vec<_> = (0..QUEUED)
        .map(|i| {
            let app = Arc::clone(&app);
            tokio::spawn(async move {
                app.create(1, 1, Some(&format!("queued-{i}")), &json!({"name": "q"}))
                    .await
            })
        })
        .collect();
    let mut waiting = 0.0;
    for _ in 0..200 {
        waiting = app.metric("idemproof_db_pool_waiting").await;
        if waiting >= QUEUED as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        waiting >= QUEUED as f64,
        "{waiting} waiting for {QUEUED} queued creations"
    );
    assert_eq!(app.metric("idemproof_db_pool_connections_in_use").await, 1.0);
    drop(held);
    for creation in creations {
        let reply = creation.await.expect("task");
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    }
    assert_eq!(app.all_agents(1).await.len(), QUEUED);
    assert_eq!(app.metric("idemproof_db_pool_waiting").await, 0.0);
}

/// A connection outlives its statements: one creation after another runs
/// on the sessions the pool already has, not on a new one each (which
/// would cost a connection set-up, a server process and an
/// authentication per request). Every client session of the database is
/// sampled after each creation; over all of them no more are ever seen
/// than the service's pool, its listener and the test's own pool hold.
async fn sequential_creations_reuse_their_connections(backend: Backend) {
    let app = TestApp::spawn(&backend, |c| c.database_max_connections = 2).await;
    let pool = app.pool.as_ref().expect("postgres");
    let mut seen = HashSet::new();
    let creations = 10 * app.config.database_max_connections;
    for i in 0..creations {
        let reply = app.create(1, 1, Some(&format!("k{i}")), &json!({"name": "Bot"})).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        seen.extend(sessions(pool).await);
    }
    // The pool's connections, the listener's, and this test pool's others.
    let most = app.config.database_max_connections as usize + 1 + pool.size() as usize;
    assert!(
        seen.len() <= most,
        "{} sessions over {creations} creations, at most {most} expected",
        seen.len()
    );
}

/// Each store keeps a session listening for key notifications; it must
/// end with the store, or every store a process opened and dropped (a
/// test, a reconnect) would hold a server session for good.
async fn a_dropped_store_stops_listening(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let pool = app.pool.as_ref().expect("postgres");
    let (server, schema) = backend.postgres().expect("a Postgres backend");
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .expect("database name");
    let listening = async || -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .fetch_one(pool)
        .await
        .expect("count the listening sessions")
    };
    let before = listening().await;
    assert!(before >= 1, "the app's own store listens");
    let store = PgStore::connect(&server.url(&db), 1, app.config.terms(), schema)
        .await
        .expect("a second store");
    assert_eq!(listening().await, before + 1, "the second store listens");
    drop(store);
    // The session ends once the server reads the closed socket: bounded
    // polls, no claim on how long that takes.
    for _ in 0..200 {
        if listening().await == before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "the dropped store's session still listens: {} listening",
        listening().await
    );
}

/// A write the database refuses (here a trigger raising a check
/// violation) may have done anything a statement can, so it is not run
/// again; and the refusal says nothing about the connection, which stays
/// in the pool. The trigger counts its runs on a sequence, which no
/// rollback undoes. No probe or reaper shares the pool while its
/// sessions are compared.
async fn a_refused_write_runs_once_and_keeps_its_connection(backend: Backend) {
    let app = TestApp::spawn(&backend, |c| {
        c.readiness_interval = Duration::from_secs(3600);
        c.idempotency_reap_interval = Duration::from_secs(3600);
    })
    .await;
    let (server, _) = backend.postgres().expect("a Postgres backend");
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(app.pool.as_ref().expect("postgres"))
        .await
        .expect("database name");
    let mut admin = PgConnection::connect(&server.url(&db)).await.expect("admin");
    let body = json!({"name": "Bot"});
    let first = app.create(1, 1, Some("first"), &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    let before = sessions(&mut admin).await;
    admin
        .execute(
            "CREATE SEQUENCE insert_runs;
             CREATE FUNCTION refuse_insert() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN PERFORM nextval('insert_runs'); RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation'; END $$;
             CREATE TRIGGER refuse BEFORE INSERT ON agents FOR EACH ROW EXECUTE FUNCTION refuse_insert();",
        )
        .await
        .expect("refuse agent inserts");
    for key in [Some("refused"), None] {
        let refused = app.create(1, 1, key, &body).await;
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{key:?}: {refused:?}");
    }
    let runs: i64 = sqlx::query_scalar("SELECT last_value FROM insert_runs")
        .fetch_one(&mut admin)
        .await
        .expect("the trigger's runs");
    assert_eq!(runs, 2, "each refused creation's insert ran once");
    admin
        .execute("DROP TRIGGER refuse ON agents")
        .await
        .expect("accept agent inserts");
    let created = app.create(1, 1, Some("refused"), &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let after = sessions(&mut admin).await;
    assert_eq!(after, before, "sessions opened or closed since the refusals");
    let _ = admin.close().await;
}

/// The lease and TTL a store is opened with are the ones it reports
/// (the broken strategies write their records with what it reports) and
/// the ones its key records carry. Neither is the default here, so a
/// store that lost them shows.
async fn the_store_keeps_the_terms_it_was_opened_with(backend: Backend) {
    let app = TestApp::spawn(&backend, |c| {
        c.idempotency_lease = Duration::from_secs(7);
        c.idempotency_ttl = Duration::from_secs(3600);
    })
    .await;
    let terms = app.config.terms();
    assert_ne!(terms, Terms::default());
    assert_eq!(app.pg.as_ref().expect("postgres").terms(), terms);
    let created = app.create(1, 1, Some("kept-terms"), &json!({"name": "Bot"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let ttl: i64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM expires_at - created_at)::bigint FROM idempotency_keys WHERE key = 'kept-terms'",
    )
    .fetch_one(app.pool.as_ref().expect("postgres"))
    .await
    .expect("the key's record");
    assert_eq!(ttl, terms.ttl.num_seconds());
}

/// The database's client sessions but the one this query runs on, by
/// process id and start time.
async fn sessions<'e>(on: impl sqlx::PgExecutor<'e>) -> HashSet<(i32, String)> {
    sqlx::query_as(
        "SELECT pid, backend_start::text FROM pg_stat_activity
          WHERE datname = current_database() AND backend_type = 'client backend'
            AND pid <> pg_backend_pid()",
    )
    .fetch_all(on)
    .await
    .expect("read the sessions")
    .into_iter()
    .collect()
}
