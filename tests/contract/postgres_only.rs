//! What only Postgres can show: the constraint doing the work, and a real
//! database failure leaving nothing half-written.

use reqwest::StatusCode;
use serde_json::json;

use crate::cases;
use crate::support::app::{Backend, TestApp};
use crate::support::runner::{Backends, Case};

pub fn cases() -> Vec<(&'static str, Backends, Case)> {
    cases![Backends::PostgresOnly =>
        scope_is_a_unique_constraint_leading_with_organization_id,
        a_failing_insert_answers_503_and_leaves_nothing_behind,
        reaping_can_walk_the_expiry_index,
    ]
}

async fn scope_is_a_unique_constraint_leading_with_organization_id(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let pool = app.pool.as_ref().expect("postgres");
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text
           FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid
           CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
          WHERE i.indrelid = 'idempotency_keys'::regclass AND i.indisunique
          ORDER BY k.ord",
    )
    .fetch_all(pool)
    .await
    .expect("index columns");
    assert_eq!(columns, ["organization_id", "user_id", "endpoint", "key"]);
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

async fn a_failing_insert_answers_503_and_leaves_nothing_behind(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let pool = app.pool.as_ref().expect("postgres");
    // Break agent inserts for real: the claim succeeds, the insert fails.
    sqlx::query("ALTER TABLE agents ADD CONSTRAINT no_inserts CHECK (false) NOT VALID")
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
    assert!(plan.contains("idempotency_keys_expires_at"), "{plan}");
    sqlx::query("RESET enable_seqscan")
        .execute(&mut *conn)
        .await
        .expect("reset");
}
