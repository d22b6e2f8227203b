//! `memory`: the reference service in the harness's own process, over the
//! in-memory store behind the fault-emulating [`FaultState`] layer; the final
//! state is read from the store itself, in the table of the resource the
//! endpoint under attack creates.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use idemproof_service::clock::SystemClock;
use idemproof_service::domain::agent::Agent;
use idemproof_service::domain::deployment::Deployment;
use idemproof_service::mutants::Backend as StrategyBackend;
use idemproof_service::store::Resource;
use idemproof_service::store::memory::MemoryStore;
use idemproof_service::{Application, Running};
use serde::Serialize;

use super::{Backend, Capabilities, FaultState, ServiceSettings, count_judged, resource_json};
use crate::client::ApiClient;
use crate::contract::Endpoint;
use crate::fault::Fault;
use crate::history::final_state::{FinalState, Judged};

/// The in-process deployment.
pub struct InProcess {
    url: String,
    /// The store under the strategy and the faults, read directly.
    memory: Arc<MemoryStore>,
    faults: Arc<FaultState>,
    /// Which resource the final state is about.
    endpoint: Endpoint,
    /// Stops serving when dropped.
    app: Option<Running>,
}

impl InProcess {
    /// Starts a fresh service on a fresh store.
    pub async fn start(settings: &ServiceSettings, seed: u64) -> anyhow::Result<Self> {
        let config = settings.config();
        let faults = Arc::new(FaultState::new(seed));
        let backend = settings.strategy.memory(config.terms());
        let stores = settings.strategy.stores(&backend, |s| s.layer(faults.clone()))?;
        let StrategyBackend::Memory(memory) = backend else {
            anyhow::bail!("the memory target got another backend");
        };
        let strategy = settings.strategy;
        let app = Application::build_with(config, stores, Arc::new(SystemClock))
            .await?
            .map_routes(|routes| strategy.front(routes))
            .spawn();
        Ok(Self {
            url: app.url.clone(),
            memory,
            faults,
            endpoint: settings.endpoint,
            app: Some(app),
        })
    }
}

#[async_trait(?Send)]
impl Backend for InProcess {
    fn urls(&self) -> Vec<String> {
        vec![self.url.clone()]
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::in_process()
    }

    async fn apply(&mut self, fault: Fault) -> anyhow::Result<()> {
        let faults = &self.faults;
        match fault {
            Fault::Crash(_) => faults.crash(),
            Fault::Restart(_) => faults.restart(),
            Fault::DbDown => faults.set_outage(true),
            Fault::DbUp => faults.set_outage(false),
            Fault::DbSlow(latency) => faults.set_latency(latency),
            Fault::DbDrop => faults.set_drop_rate(0.3),
            Fault::FailInserts(n) => faults.fail_next_creates(n),
            Fault::SlowWork(delay) => faults.set_work_delay(delay),
            Fault::Heal => {
                faults.restart();
                faults.fail_next_creates(0);
                faults.set_work_delay(Duration::ZERO);
                faults.set_outage(false);
                faults.set_latency(Duration::ZERO);
                faults.set_drop_rate(0.0);
            }
            Fault::DropFirstAnswers | Fault::ResetFirstAnswers | Fault::DelayAnswers(_) => {
                anyhow::bail!("{fault:?} is the HTTP proxy's")
            }
        }
        Ok(())
    }

    async fn inspect(&self, judged: &Judged, _client: &ApiClient) -> anyhow::Result<FinalState> {
        Ok(match self.endpoint {
            Endpoint::Agents => self.read::<Agent>(judged),
            Endpoint::Deployments => self.read::<Deployment>(judged),
        })
    }

    async fn stop(&mut self) {
        self.faults.stop();
        drop(self.app.take());
    }
}

impl InProcess {
    /// The judged part of `R`'s table.
    fn read<R: Resource + Serialize>(&self, judged: &Judged) -> FinalState {
        let mut view = FinalState {
            comparable: true,
            sources: vec!["store".into()],
            ..FinalState::default()
        };
        let rows: Vec<serde_json::Value> = self.memory.table::<R>().all().iter().map(resource_json).collect();
        let by_id: HashMap<String, &serde_json::Value> = rows.iter().map(|r| (r["id"].to_string(), r)).collect();
        for id in judged.acknowledged.keys() {
            view.acknowledged
                .insert(id.clone(), by_id.get(id).map(|r| (*r).clone()));
        }
        let mut counts: HashMap<(String, String, String), usize> = HashMap::new();
        for r in &rows {
            let tenant = r["organization_id"].to_string();
            if let Some(key) = r["idempotency_key"].as_str()
                && judged.tenants.contains(&tenant)
            {
                *counts
                    .entry((tenant, r["user_id"].to_string(), key.to_owned()))
                    .or_default() += 1;
            }
        }
        view.duplicates = count_judged(judged, counts);
        view
    }
}
