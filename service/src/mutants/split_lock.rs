//! The in-memory claim with its check and its insert under two separate
//! lock acquisitions: both halves are correct alone, the pair is a race.

use std::sync::Arc;

use async_trait::async_trait;
use idemproof_models::{Decision, Fingerprint, LeaseToken, Scope, Timestamp};

use crate::domain::agent::{Agent, NewAgent};
use crate::store::memory::MemoryStore;
use crate::store::{ChangeSignal, ClaimOutcome, Lease, Store, StoreError};

/// Split-lock claims over the in-memory store.
pub struct SplitLockMemory {
    inner: Arc<MemoryStore>,
}

impl SplitLockMemory {
    pub fn new(inner: Arc<MemoryStore>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl Store for SplitLockMemory {
    async fn claim(
        &self,
        scope: &Scope,
        fp: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        let claims = self.inner.claims();
        Ok(match claims.decide_only(scope, &fp, now) {
            Decision::Claim => {
                // Any await between the two halves (logging, metrics, a
                // cache) widens the window; this one stands for all of them.
                tokio::task::yield_now().await;
                claims.insert_claim(scope, fp, token, now);
                ClaimOutcome::Acquired
            }
            Decision::Replay(id) => ClaimOutcome::Replay(id),
            Decision::Mismatch { original } => ClaimOutcome::Mismatch { original },
            Decision::InFlight { lease_expires_at } => ClaimOutcome::InFlight {
                lease_expires_at,
                change: ChangeSignal::Poll,
            },
        })
    }

    /// No one-step path: every request goes through the broken claim.
    async fn create_agent_fresh(
        &self,
        _scope: &Scope,
        _fp: Fingerprint,
        _agent: &NewAgent,
        _now: Timestamp,
    ) -> Result<Option<Agent>, StoreError> {
        Ok(None)
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.inner.release(lease).await
    }

    async fn reap_expired(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        self.inner.reap_expired(now, limit).await
    }

    async fn create_agent(&self, agent: &NewAgent, lease: Option<&Lease>, now: Timestamp) -> Result<Agent, StoreError> {
        self.inner.create_agent(agent, lease, now).await
    }

    async fn agent(&self, organization_id: i64, id: i64) -> Result<Option<Agent>, StoreError> {
        self.inner.agent(organization_id, id).await
    }

    async fn agent_by_id(&self, id: i64) -> Result<Option<Agent>, StoreError> {
        self.inner.agent_by_id(id).await
    }

    async fn agents(&self, organization_id: i64, after: Option<i64>, limit: u32) -> Result<Vec<Agent>, StoreError> {
        self.inner.agents(organization_id, after, limit).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}
