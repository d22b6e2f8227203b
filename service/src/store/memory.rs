//! The embedded store: agents in a map, keys in an
//! [`idemproof_models::ClaimTable`]. Fast and dependency-free; everything
//! is lost when the process exits, so it suits development, tests and
//! single-process experiments, not deployments.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

use async_trait::async_trait;
use idemproof_models::{
    Claim, ClaimTable, CompleteError, Decision, Fingerprint, LeaseToken, Scope, Terms, Timestamp, decide,
};
use tokio::sync::oneshot;

use super::{ChangeSignal, ClaimOutcome, Fresh, Lease, Store, StoreError};
use crate::domain::agent::{Agent, NewAgent};

/// In-process store.
pub struct MemoryStore {
    /// Idempotency records; its lock is taken before `agents`' when both
    /// are needed (completion inserts the agent under it).
    claims: ClaimTable<i64>,
    /// Agents by `(organization_id, id)`: per-tenant lookups and ordered
    /// listing are both range queries.
    agents: Mutex<Agents>,
}

#[derive(Default)]
struct Agents {
    by_org: BTreeMap<(i64, i64), Agent>,
    last_id: i64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new(terms: Terms) -> Self {
        Self {
            claims: ClaimTable::new(terms),
            agents: Mutex::new(Agents::default()),
        }
    }

    /// The idempotency records, for inspection by tests.
    pub fn claims(&self) -> &ClaimTable<i64> {
        &self.claims
    }

    /// Any agent created with idempotency key `key`, in any organisation:
    /// the legacy design's lookup, kept for the `mutants` strategies.
    #[cfg(feature = "mutants")]
    pub(crate) fn agent_with_key(&self, key: &str) -> Option<Agent> {
        self.agents()
            .by_org
            .values()
            .find(|a| a.idempotency_key.as_deref() == Some(key))
            .cloned()
    }

    fn agents(&self) -> std::sync::MutexGuard<'_, Agents> {
        self.agents.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, new: &NewAgent, now: Timestamp) -> Agent {
        let mut agents = self.agents();
        agents.last_id += 1;
        let spec = &new.spec;
        let agent = Agent {
            id: agents.last_id,
            organization_id: new.organization_id,
            user_id: new.user_id,
            name: spec.name.clone(),
            description: spec.description.clone(),
            system_prompt: spec.system_prompt.clone(),
            config: spec.config.clone().into(),
            widget_config: spec.widget_config.clone().into(),
            agent_type: spec.agent_type.clone(),
            industry: spec.industry.clone(),
            auto_optimize: spec.auto_optimize,
            idempotency_key: new.idempotency_key.clone(),
            created_at: now,
        };
        agents.by_org.insert((agent.organization_id, agent.id), agent.clone());
        agent
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn claim(
        &self,
        scope: &Scope,
        fingerprint: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        let (tx, rx) = oneshot::channel();
        let waker = Box::new(move || {
            let _ = tx.send(());
        });
        Ok(match self.claims.claim(scope, fingerprint, token, now, Some(waker)) {
            Claim::Acquired => ClaimOutcome::Acquired,
            Claim::Replay(id) => ClaimOutcome::Replay(id),
            Claim::Mismatch { original } => ClaimOutcome::Mismatch { original },
            Claim::InFlight { lease_expires_at } => ClaimOutcome::InFlight {
                lease_expires_at,
                change: ChangeSignal::Notified(rx),
            },
        })
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.claims.release(&lease.scope, lease.token);
        Ok(())
    }

    async fn reap_expired(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        Ok(self.claims.reap_expired(now, limit as usize) as u64)
    }

    async fn create_agent_fresh(
        &self,
        scope: &Scope,
        fingerprint: Fingerprint,
        new: &NewAgent,
        now: Timestamp,
    ) -> Result<Fresh<Agent>, StoreError> {
        let mut created = None;
        let fresh = self.claims.create_fresh(scope, fingerprint, now, || {
            let agent = self.insert(new, now);
            let id = agent.id;
            created = Some(agent);
            Ok::<_, std::convert::Infallible>(id)
        });
        match fresh {
            Ok(Some(_)) => Ok(Fresh::Created(created.expect("create_fresh ran the work"))),
            // A completed record does not change until it expires, so a
            // second look decides as a claim would.
            Ok(None) => match decide(self.claims.record(scope).as_ref(), &fingerprint, now) {
                Decision::Replay(id) => Ok(self
                    .agent(new.organization_id, id)
                    .await?
                    .map_or(Fresh::Taken, Fresh::Replayed)),
                _ => Ok(Fresh::Taken),
            },
            Err(never) => match never {},
        }
    }

    async fn create_agent(&self, new: &NewAgent, lease: Option<&Lease>, now: Timestamp) -> Result<Agent, StoreError> {
        let Some(lease) = lease else {
            return Ok(self.insert(new, now));
        };
        let mut created = None;
        let completed = self.claims.complete(&lease.scope, lease.token, || {
            let agent = self.insert(new, now);
            let id = agent.id;
            created = Some(agent);
            Ok::<_, std::convert::Infallible>(id)
        });
        match (completed, created) {
            (Ok(_), Some(agent)) => Ok(agent),
            (Err(CompleteError::NotOwner), _) => Err(StoreError::LeaseLost),
            (Ok(id), None) => Err(StoreError::Dangling(id)),
            (Err(CompleteError::Work(never)), _) => match never {},
        }
    }

    async fn agent(&self, organization_id: i64, id: i64) -> Result<Option<Agent>, StoreError> {
        Ok(self.agents().by_org.get(&(organization_id, id)).cloned())
    }

    async fn agents(&self, organization_id: i64, after: Option<i64>, limit: u32) -> Result<Vec<Agent>, StoreError> {
        let start = match after {
            Some(after) => Bound::Excluded((organization_id, after)),
            None => Bound::Included((organization_id, i64::MIN)),
        };
        Ok(self
            .agents()
            .by_org
            .range((start, Bound::Included((organization_id, i64::MAX))))
            .take(limit as usize)
            .map(|(_, a)| a.clone())
            .collect())
    }

    async fn agent_by_id(&self, id: i64) -> Result<Option<Agent>, StoreError> {
        Ok(self.agents().by_org.values().find(|a| a.id == id).cloned())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
