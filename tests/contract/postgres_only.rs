//! What only Postgres can show: the constraints doing the work (and all of
//! them tenant-first, so the schema can be distributed by tenant), and a
//! real database failure leaving nothing half-written. Each case runs on
//! the plain and on the partitioned schema.

use reqwest::StatusCode;
use serde_json::json;

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
