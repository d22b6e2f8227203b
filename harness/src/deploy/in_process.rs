//! `memory`: the reference service in the harness's own process, over the
//! in-memory store behind the fault-emulating [`FaultState`] layer; the final
//! state is read from the store itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use idemproof_service::clock::SystemClock;
use idemproof_service::domain::agent::Agent;
use idemproof_service::mutants::Backend as StrategyBackend;
use idemproof_service::store::memory::MemoryStore;
use idemproof_service::{Application, Running};

use super::{Backend, Capabilities, FaultState, ServiceSettings, agent_json, count_judged};
use crate::client::ApiClient;
use crate::fault::Fault;
use crate::history::final_state::{FinalState, Judged};

/// The in-process deployment.
pub struct InProcess {
    url: String,
    /// The store under the strategy and the faults, read directly.
    memory: Arc<MemoryStore>,
    faults: Arc<FaultState>,
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
        let app = Application::build_with(config, stores, Arc::new(SystemClock))
            .await?
            .spawn();
        Ok(Self {
            url: app.url.clone(),
            memory,
            faults,
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
        let mut view = FinalState {
            comparable: true,
            sources: vec!["store".into()],
            ..FinalState::default()
        };
        let agents = self.memory.table::<Agent>().all();
        for id in judged.acknowledged.keys() {
            let agent = agents.iter().find(|a| a.id.to_string() == *id);
            view.acknowledged.insert(id.clone(), agent.map(agent_json));
        }
        let mut counts: HashMap<(String, String, String), usize> = HashMap::new();
        for a in &agents {
            let tenant = a.organization_id.to_string();
            if let Some(key) = &a.idempotency_key
                && judged.tenants.contains(&tenant)
            {
                *counts.entry((tenant, a.user_id.to_string(), key.clone())).or_default() += 1;
            }
        }
        view.duplicates = count_judged(judged, counts);
        Ok(view)
    }

    async fn stop(&mut self) {
        self.faults.stop();
        drop(self.app.take());
    }
}
