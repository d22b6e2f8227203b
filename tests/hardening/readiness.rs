//! `/readyz` says whether the service can create: it turns unready when
//! writes fail (a read-only database, a full data disk, a full in-memory
//! store: `memory_bound.rs`) and ready again when they work, and a pool
//! that is merely busy does not move it. Each case waits for a verdict
//! in bounded polls of the fast probe configured here; none asserts how
//! long the verdict took.

use std::time::Duration;

use idemproof_harness::deploy::DbProxy;
use idemproof_service::Config;
use idemproof_service::store::postgres::{PgStore, Schema};
use idemproof_testkit::app::{Backend, Fixture, TestApp};
use idemproof_testkit::cases;
use idemproof_testkit::runner::{Backends, Case};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};

use crate::small_disk::SmallDisk;

pub fn cases() -> Vec<(&'static str, Backends, Case)> {
    cases![Backends::PostgresOnly =>
        readyz_follows_a_read_only_database,
        sessions_that_started_read_only_do_not_outlive_the_outage,
        readyz_follows_a_database_that_refuses_connections,
        readyz_follows_a_database_that_accepts_but_never_answers,
        readyz_follows_a_full_data_disk,
        a_busy_pool_does_not_move_readyz,
    ]
}

/// Probes every 50 ms; two failures in a row make the service unready,
/// two successes ready again.
pub fn fast_probes(config: &mut Config) {
    config.readiness_interval = Duration::from_millis(50);
    config.readiness_probe_timeout = Duration::from_millis(500);
    config.readiness_fail_after = 2;
    config.readiness_recover_after = 2;
}

/// Most polls of `/readyz` a case makes while waiting for a verdict.
const POLLS: usize = 400;

/// Polls `/readyz` until it answers `want` (at most [`POLLS`] times,
/// 50 ms apart); fails the case otherwise.
pub async fn wait_for_readyz(app: &TestApp, want: StatusCode) {
    for _ in 0..POLLS {
        let reply = app.readyz().await;
        if reply.status == want {
            if want == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(reply.code(), "not_ready", "{reply:?}");
                assert_eq!(reply.header("retry-after"), Some("1"));
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What the probes saw, for the failure's reader.
    let text = app.metrics_text().await;
    let seen: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("idemproof_readiness") || l.starts_with("idemproof_db_pool"))
        .collect();
    panic!(
        "/readyz never answered {want}; the probes' metrics:\n{}",
        seen.join("\n")
    );
}

/// Ends every connection to `db` but the caller's, so the service's pool
/// reconnects and picks up the database's new settings.
async fn reconnect_everyone(admin: &mut PgConnection, db: &str) {
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(db)
    .execute(&mut *admin)
    .await
    .expect("terminate the service's connections");
}

/// Makes `db` read-only for every session started from now on, or
/// writable again (sessions already open keep what they started with).
async fn read_only(admin: &mut PgConnection, db: &str, on: bool) {
    let change = if on {
        "SET default_transaction_read_only = on"
    } else {
        "RESET default_transaction_read_only"
    };
    admin
        .execute(format!("ALTER DATABASE {db} {change}").as_str())
        .await
        .expect("change the database's default_transaction_read_only");
}

/// A ready service with fast probes on `backend`'s Postgres, the name of
/// its database, and an administrator's connection to the server.
async fn ready_with_admin(backend: &Backend) -> (TestApp, String, PgConnection) {
    let (server, _) = backend.postgres().expect("a Postgres backend");
    let app = TestApp::spawn(backend, fast_probes).await;
    wait_for_readyz(&app, StatusCode::OK).await;
    let pool = app.pool.as_ref().expect("a pool");
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .expect("database name");
    let admin = PgConnection::connect(&server.url("postgres")).await.expect("admin");
    (app, db, admin)
}

async fn readyz_follows_a_read_only_database(backend: Backend) {
    let (app, db, mut admin) = ready_with_admin(&backend).await;
    read_only(&mut admin, &db, true).await;
    reconnect_everyone(&mut admin, &db).await;
    wait_for_readyz(&app, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(app.metric("idemproof_ready").await, 0.0);
    // What readiness predicted: creations fail (and write nothing), reads
    // are still served.
    let body = json!({"name": "read-only"});
    let refused = app.create(1, 1, Some("during-read-only"), &body).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{refused:?}");
    assert_eq!(refused.code(), "service_unavailable");
    assert!(app.all_agents(1).await.is_empty());
    read_only(&mut admin, &db, false).await;
    reconnect_everyone(&mut admin, &db).await;
    wait_for_readyz(&app, StatusCode::OK).await;
    let created = app.create(1, 1, Some("during-read-only"), &body).await;
    assert_eq!(
        created.status,
        StatusCode::CREATED,
        "the refused key was kept: {created:?}"
    );
    let _ = admin.close().await;
}

/// The database made writable again while the service's sessions live
/// on (no one ends them, as a failover back or an operator's `RESET`
/// would not). A session keeps the read-only default it started with, so
/// every pooled one that started during the outage would refuse its next
/// write. The first refusal closes each session opened before it, and the
/// refused write runs again on a new one: no creation fails once the
/// database is writable.
async fn sessions_that_started_read_only_do_not_outlive_the_outage(backend: Backend) {
    let (app, db, mut admin) = ready_with_admin(&backend).await;
    read_only(&mut admin, &db, true).await;
    reconnect_everyone(&mut admin, &db).await;
    wait_for_readyz(&app, StatusCode::SERVICE_UNAVAILABLE).await;
    // Several sessions opened during the outage, idle in the pool.
    let pg = app.pg.clone().expect("a Postgres store");
    let held = futures::future::try_join_all((0..4).map(|_| pg.hold()))
        .await
        .expect("connections during the outage");
    drop(held);
    read_only(&mut admin, &db, false).await;
    for key in ["first-after-outage", "second-after-outage"] {
        let created = app.create(1, 1, Some(key), &json!({"name": key})).await;
        assert_eq!(created.status, StatusCode::CREATED, "{key}: {created:?}");
    }
    let unkeyed = app.create(1, 1, None, &json!({"name": "unkeyed"})).await;
    assert_eq!(unkeyed.status, StatusCode::CREATED, "{unkeyed:?}");
    wait_for_readyz(&app, StatusCode::OK).await;
    assert_eq!(app.all_agents(1).await.len(), 3);
    let _ = admin.close().await;
}

/// An outage as the pool sees it: the server is up, the service's
/// database refuses every new connection. The pool is not busy (it has
/// no connection to be busy with), so the probes fail.
async fn readyz_follows_a_database_that_refuses_connections(backend: Backend) {
    let (app, db, mut admin) = ready_with_admin(&backend).await;
    admin
        .execute(format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false").as_str())
        .await
        .expect("refuse connections");
    reconnect_everyone(&mut admin, &db).await;
    wait_for_readyz(&app, StatusCode::SERVICE_UNAVAILABLE).await;
    let refused = app.create(1, 1, Some("during-outage"), &json!({"name": "n"})).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{refused:?}");
    admin
        .execute(format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true").as_str())
        .await
        .expect("accept connections again");
    wait_for_readyz(&app, StatusCode::OK).await;
    let created = app.create(1, 1, Some("during-outage"), &json!({"name": "n"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let _ = admin.close().await;
}

/// A ready service with `config` over a store on the database at `url`.
async fn ready_on(url: &str, schema: Schema, config: Config) -> TestApp {
    let store = PgStore::connect(url, config.database_max_connections, config.terms(), schema)
        .await
        .expect("connect to the case's database");
    let fixture = Fixture {
        stores: store.stores(),
        memory: None,
        pg: Some(store),
    };
    let app = TestApp::spawn_on(fixture, config).await;
    wait_for_readyz(&app, StatusCode::OK).await;
    app
}

/// A server that accepts connections and never answers them (overloaded,
/// or a path that drops its replies), reached through a proxy whose
/// upstream turns silent and which severs every session: the probe gets
/// no connection in time, yet the pool has room and nothing it holds is
/// in use, so this is an outage, not a busy pool.
async fn readyz_follows_a_database_that_accepts_but_never_answers(backend: Backend) {
    let (server, schema) = backend.postgres().expect("a Postgres backend");
    let db = server.create_database().await.expect("a database");
    let proxy = DbProxy::start(server.addr()).await.expect("a proxy");
    let mut config = idemproof_testkit::app::test_config();
    fast_probes(&mut config);
    let url = format!("postgres://postgres@{}/{db}", proxy.addr);
    let app = ready_on(&url, schema, config).await;
    // Never accepted, never read: the kernel completes the handshake and
    // the startup message waits in its queue.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a silent port");
    proxy.set_upstream(silent.local_addr().expect("its address"));
    proxy.sever_all();
    wait_for_readyz(&app, StatusCode::SERVICE_UNAVAILABLE).await;
    proxy.set_upstream(server.addr());
    wait_for_readyz(&app, StatusCode::OK).await;
    drop(silent);
    let created = app.create(1, 1, Some("after-silence"), &json!({"name": "n"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
}

/// A real full disk: the database lives in a tablespace on a small tmpfs
/// of a container of its own, which a table of filler fills until
/// Postgres answers "could not extend file: No space left on device".
/// WAL stays on the main volume, so this is the common case of a full
/// data disk: whatever needs a new page fails, and the probe (which always
/// does) fails with it.
async fn readyz_follows_a_full_data_disk(backend: Backend) {
    let (_, schema) = backend.postgres().expect("a Postgres backend");
    let disk = SmallDisk::start().await;
    let url = disk.database_url().await;
    let mut config = idemproof_testkit::app::test_config();
    fast_probes(&mut config);
    // Fewer probes than one page of the probe table holds (about 140 rows)
    // over the whole case: a probe that only appended to a page it already
    // has would keep succeeding on the full disk, and the case would fail.
    config.readiness_interval = Duration::from_millis(250);
    let app = ready_on(&url, schema, config).await;
    let mut filler = PgConnection::connect(&url).await.expect("filler connection");
    let filled = disk.fill(&mut filler).await;
    assert!(filled > 0, "nothing fitted before the disk was full");
    wait_for_readyz(&app, StatusCode::SERVICE_UNAVAILABLE).await;
    // What readiness predicted: a creation needs new pages and fails.
    let body = json!({"name": "disk full"});
    let refused = app.create(1, 1, Some("during-full-disk"), &body).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{refused:?}");
    assert!(app.all_agents(1).await.is_empty());
    disk.free(&mut filler).await;
    wait_for_readyz(&app, StatusCode::OK).await;
    let created = app.create(1, 1, Some("during-full-disk"), &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let _ = filler.close().await;
    drop(app);
    disk.remove().await;
}

async fn a_busy_pool_does_not_move_readyz(backend: Backend) {
    let app = TestApp::spawn(&backend, |c| {
        fast_probes(c);
        c.database_max_connections = 2;
    })
    .await;
    wait_for_readyz(&app, StatusCode::OK).await;
    let pg = app.pg.clone().expect("a Postgres store");
    // Every connection of the service's pool, held: a pool as busy as one
    // can be.
    let held = [
        pg.hold().await.expect("first connection"),
        pg.hold().await.expect("second connection"),
    ];
    let busy = r#"idemproof_readiness_probes_total{result="busy"}"#;
    let failed = r#"idemproof_readiness_probes_total{result="failed"}"#;
    let (busy_before, failed_before) = (app.metric(busy).await, app.metric(failed).await);
    let needed = f64::from(app.config.readiness_fail_after) + 1.0;
    let mut seen = 0.0;
    for _ in 0..POLLS {
        assert_eq!(
            app.readyz().await.status,
            StatusCode::OK,
            "a busy pool made the service unready"
        );
        seen = app.metric(busy).await - busy_before;
        if seen >= needed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen >= needed, "only {seen} busy probes while the pool was held");
    assert_eq!(
        app.metric(failed).await,
        failed_before,
        "a busy probe counted as a failure"
    );
    assert_eq!(app.metric("idemproof_ready").await, 1.0);
    drop(held);
    let wrote = r#"idemproof_readiness_probes_total{result="wrote"}"#;
    let wrote_before = app.metric(wrote).await;
    for _ in 0..POLLS {
        if app.metric(wrote).await > wrote_before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(app.metric(wrote).await > wrote_before, "the probe never wrote again");
    assert_eq!(app.readyz().await.status, StatusCode::OK);
}
