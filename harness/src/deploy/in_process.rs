//! `memory`: the reference service in the harness's own process, over the
//! in-memory store behind the fault-emulating [`FaultStore`]; the final
//! state is read from the store itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use idemproof_service::Application;
use idemproof_service::clock::SystemClock;
use idemproof_service::store::Store;
use tokio::sync::oneshot;

use super::{Backend, Capabilities, FaultState, FaultStore, ServiceSettings, agent_json, count_judged};
use crate::client::ApiClient;
use crate::fault::Fault;
use crate::history::final_state::{FinalState, Judged};

/// The in-process deployment.
pub struct InProcess {
    url: String,
    store: Arc<dyn Store>,
    faults: Arc<FaultState>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl InProcess {
    /// Starts a fresh service on a fresh store.
    pub async fn start(settings: &ServiceSettings, seed: u64) -> anyhow::Result<Self> {
        let config = settings.config();
        let faults = Arc::new(FaultState::new(seed));
        let base = settings.strategy.base_memory(config.terms());
        let store = settings
            .strategy
            .decorate(Arc::new(FaultStore::new(base, faults.clone())));
        let app = Application::build_with(config, store.clone(), Arc::new(SystemClock)).await?;
        let url = format!("http://127.0.0.1:{}", app.port());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        Ok(Self {
            url,
            store,
            faults,
            shutdown: Some(tx),
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
        for id in judged.acknowledged.keys() {
            let agent = match id.parse::<i64>() {
                Ok(n) => self.store.agent_by_id(n).await?,
                Err(_) => None,
            };
            view.acknowledged.insert(id.clone(), agent.as_ref().map(agent_json));
        }
        let mut counts: HashMap<(String, String, String), usize> = HashMap::new();
        for tenant in &judged.tenants {
            let Ok(org) = tenant.parse::<i64>() else { continue };
            let mut after = None;
            loop {
                let page = self.store.agents(org, after, 500).await?;
                after = page.last().map(|a| a.id);
                for a in &page {
                    if let Some(key) = &a.idempotency_key {
                        *counts
                            .entry((a.organization_id.to_string(), a.user_id.to_string(), key.clone()))
                            .or_default() += 1;
                    }
                }
                if page.len() < 500 {
                    break;
                }
            }
        }
        view.duplicates = count_judged(judged, counts);
        Ok(view)
    }

    async fn stop(&mut self) {
        self.faults.stop();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
