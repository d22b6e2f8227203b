//! The server dropping the service's sessions while they idle in its pool
//! (a restart, a failover, `pg_terminate_backend`). The pool tests a
//! connection before use only when it may be dead, not on every checkout
//! (service/src/store/postgres/health.rs), so these cases show that what
//! comes after such a loss still finds live connections.

use reqwest::StatusCode;
use serde_json::json;
use sqlx::{Connection, PgConnection};

use idemproof_service::store::KeyStore;
use idemproof_testkit::app::{Backend, TestApp};
use idemproof_testkit::cases;
use idemproof_testkit::runner::{Backends, Case};

pub fn cases() -> Vec<(&'static str, Backends, Case)> {
    cases![Backends::PostgresOnly =>
        after_every_idle_session_is_dropped_reads_and_creations_succeed,
    ]
}

/// Connections left idle in the service's pool by this case.
const IDLE: usize = 3;

async fn after_every_idle_session_is_dropped_reads_and_creations_succeed(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let body = json!({"name": "before"});
    let before = app.create(1, 1, Some("before"), &body).await;
    assert_eq!(before.status, StatusCode::CREATED, "{before:?}");
    let pg = app.pg.as_ref().expect("postgres");
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pg.pool())
        .await
        .expect("database name");
    // The service's request connections, several of them open and idle.
    let held = futures::future::try_join_all((0..IDLE).map(|_| pg.hold()))
        .await
        .expect("connections");
    drop(held);
    let idle = pg.pool_use().expect("a pool").idle;
    assert!(idle as usize >= IDLE, "{idle} idle");

    let (server, _) = backend.postgres().expect("a Postgres backend");
    let mut admin = PgConnection::connect(&server.url("postgres")).await.expect("admin");
    let dropped: Vec<bool> =
        sqlx::query_scalar("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(&db)
            .fetch_all(&mut admin)
            .await
            .expect("terminate the service's sessions");
    assert!(
        dropped.iter().filter(|d| **d).count() > IDLE,
        "every pooled session and the listener's: {dropped:?}"
    );

    // At once, with no time for anything to notice: a read (retried on
    // another connection), then creations, which are never retried.
    let listed = app.all_agents(1).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let keyed = app.create(1, 1, Some("after"), &json!({"name": "after"})).await;
    assert_eq!(keyed.status, StatusCode::CREATED, "{keyed:?}");
    let unkeyed = app.create(1, 1, None, &json!({"name": "unkeyed"})).await;
    assert_eq!(unkeyed.status, StatusCode::CREATED, "{unkeyed:?}");
    let replayed = app.create(1, 1, Some("before"), &body).await;
    assert_eq!(
        replayed.body["data"], before.body["data"],
        "the first key still replays"
    );
    assert_eq!(app.all_agents(1).await.len(), 3);
    let _ = admin.close().await;
}
