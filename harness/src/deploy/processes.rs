//! `postgres` and `replicas=N`: service processes (the harness binary,
//! re-executed; see [`super::child`]) sharing one fresh database in the
//! Postgres container, behind a TCP proxy that injects the network faults.
//! Real faults: `kill -9`, `docker stop`/`start`, proxy latency and cut
//! connections, a trigger failing inserts. The final state is read from
//! Postgres directly, not through the proxy, in the table of the resource
//! the endpoint under attack creates.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use idemproof_service::domain::agent::Agent;
use idemproof_service::domain::deployment::Deployment;
use idemproof_service::store::Resource;
use idemproof_service::store::postgres::Schema;
use serde::Serialize;
use sqlx::{Connection, PgPool};
use tokio::task::JoinHandle;

use super::{
    Backend, Capabilities, DbProxy, ProcessReplica, ServiceSettings, count_judged, insert_trigger, resource_json,
};
use crate::client::ApiClient;
use crate::contract::Endpoint;
use crate::fault::Fault;
use crate::history::final_state::{FinalState, Judged};
use crate::postgres::PgServer;

/// Replicas over one database.
pub struct Processes {
    server: Arc<PgServer>,
    /// The scenario's database.
    db: String,
    proxy: DbProxy,
    replicas: Vec<ProcessReplica>,
    severing: Option<JoinHandle<()>>,
    /// Whether the failing-insert trigger may be installed.
    insert_trigger: bool,
    /// Which resource the final state is about.
    endpoint: Endpoint,
    /// How the replicas declared the tables (checked once they are up).
    schema: Schema,
}

impl Processes {
    /// A fresh database and `n` replicas over it.
    pub async fn start(server: Arc<PgServer>, n: usize, settings: &ServiceSettings) -> anyhow::Result<Self> {
        let db = server.create_database().await?;
        let proxy = DbProxy::start(server.addr()).await?;
        let via_proxy = format!("postgres://postgres@{}/{db}", proxy.addr);
        let mut replicas = Vec::new();
        for _ in 0..n {
            replicas.push(ProcessReplica::start(Some(&via_proxy), settings).await?);
        }
        check_schema(&server.url(&db), settings.schema).await?;
        Ok(Self {
            server,
            db,
            proxy,
            replicas,
            severing: None,
            insert_trigger: false,
            endpoint: settings.endpoint,
            schema: settings.schema,
        })
    }
}

impl Processes {
    /// The table of the resource under attack.
    fn table(&self) -> &'static str {
        match self.endpoint {
            Endpoint::Agents => Agent::TABLE,
            Endpoint::Deployments => Deployment::TABLE,
        }
    }
}

#[async_trait(?Send)]
impl Backend for Processes {
    fn urls(&self) -> Vec<String> {
        self.replicas
            .iter()
            .map(|r| format!("http://127.0.0.1:{}", r.port))
            .collect()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::processes(self.replicas.len())
    }

    async fn apply(&mut self, fault: Fault) -> anyhow::Result<()> {
        let n = self.replicas.len();
        match fault {
            Fault::Crash(i) => self.replicas[i % n].kill().await,
            Fault::Restart(i) => self.replicas[i % n].restart().await?,
            Fault::DbDown => self.server.stop().await?,
            Fault::DbUp => {
                let addr = self.server.start_again().await?;
                self.proxy.set_upstream(addr);
            }
            Fault::DbSlow(latency) => self.proxy.set_latency(latency),
            Fault::DbDrop => {
                if self.severing.is_none() {
                    self.severing = Some(tokio::spawn(sever_repeatedly(self.proxy.severer())));
                }
            }
            Fault::FailInserts(count) => {
                self.insert_trigger = true;
                insert_trigger::fail_next(&self.server.url(&self.db), self.table(), count).await?;
            }
            Fault::SlowWork(delay) => {
                for i in 0..n {
                    self.replicas[i].set_work_delay(delay).await?;
                }
            }
            Fault::Heal => {
                if let Some(task) = self.severing.take() {
                    task.abort();
                }
                if std::mem::take(&mut self.insert_trigger) {
                    insert_trigger::disarm(&self.server.url(&self.db), self.table()).await?;
                }
                self.proxy.set_latency(Duration::ZERO);
                for i in 0..n {
                    self.replicas[i].restart().await?;
                    self.replicas[i].set_work_delay(Duration::ZERO).await?;
                }
            }
            Fault::DropFirstAnswers | Fault::ResetFirstAnswers | Fault::DelayAnswers(_) => {
                anyhow::bail!("{fault:?} is the HTTP proxy's")
            }
        }
        Ok(())
    }

    async fn inspect(&self, judged: &Judged, _client: &ApiClient) -> anyhow::Result<FinalState> {
        let mut view = FinalState {
            comparable: true,
            sources: vec![format!("Postgres ({} schema)", crate::value_name(&self.schema))],
            ..FinalState::default()
        };
        // Directly, not through the proxy, and on the current port: a
        // restarted container may have moved.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.server.url(&self.db))
            .await?;
        let pool = &pool;
        match self.endpoint {
            Endpoint::Agents => read_resources::<Agent>(pool, judged, &mut view).await?,
            Endpoint::Deployments => read_resources::<Deployment>(pool, judged, &mut view).await?,
        }
        let keys: Vec<&str> = judged.scopes.keys().map(|(_, _, k)| k.as_str()).collect();
        let stuck: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT organization_id, user_id, key FROM idempotency_keys
              WHERE lease_token IS NOT NULL AND lease_expires_at > now() AND key = ANY($1)",
        )
        .bind(&keys)
        .fetch_all(pool)
        .await?;
        view.in_progress = Some(
            stuck
                .into_iter()
                .filter_map(|(o, u, k)| judged.find(&o.to_string(), &u.to_string(), &k))
                .collect(),
        );
        pool.close().await;
        Ok(view)
    }

    async fn stop(&mut self) {
        if let Some(task) = self.severing.take() {
            task.abort();
        }
        for r in self.replicas.iter_mut() {
            r.kill().await;
        }
    }
}

/// Fails unless the replicas migrated the database as `schema` declares
/// it: a partitioned run that silently ran on plain tables would prove
/// nothing about partitioning.
async fn check_schema(url: &str, schema: Schema) -> anyhow::Result<()> {
    let mut conn = sqlx::postgres::PgConnection::connect(url).await?;
    let partitioned: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_partitioned_table")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    let expected = schema == Schema::Partitioned;
    anyhow::ensure!(
        (partitioned > 0) == expected,
        "the replicas' database has {partitioned} partitioned tables, but the {} schema was asked for",
        crate::value_name(&schema)
    );
    Ok(())
}

/// The acknowledged rows of `R`'s table and its judged keys holding more
/// than one row.
async fn read_resources<R: Resource + Serialize>(
    pool: &PgPool,
    judged: &Judged,
    view: &mut FinalState,
) -> anyhow::Result<()> {
    let ids: Vec<i64> = judged.acknowledged.keys().filter_map(|id| id.parse().ok()).collect();
    let found: Vec<R> = sqlx::query_as(&format!("SELECT * FROM {} WHERE id = ANY($1)", R::TABLE))
        .bind(&ids)
        .fetch_all(pool)
        .await?;
    let found: HashMap<String, R> = found.into_iter().map(|r| (r.id().to_string(), r)).collect();
    for id in judged.acknowledged.keys() {
        view.acknowledged.insert(id.clone(), found.get(id).map(resource_json));
    }
    let keys: Vec<&str> = judged.scopes.keys().map(|(_, _, k)| k.as_str()).collect();
    let counts: Vec<(i64, i64, String, i64)> = sqlx::query_as(&format!(
        "SELECT organization_id, user_id, idempotency_key, count(*) FROM {}
          WHERE idempotency_key = ANY($1) GROUP BY 1, 2, 3",
        R::TABLE
    ))
    .bind(&keys)
    .fetch_all(pool)
    .await?;
    view.duplicates = count_judged(
        judged,
        counts
            .into_iter()
            .map(|(o, u, k, n)| ((o.to_string(), u.to_string(), k), n as usize)),
    );
    Ok(())
}

/// `db-drop` on Postgres: sever every connection every 100 ms.
async fn sever_repeatedly(sever: impl Fn()) {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        sever();
    }
}
