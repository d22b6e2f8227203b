//! A store wrapper that fails on demand, to test that failures are never
//! pinned to a key and that outages answer 503.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use async_trait::async_trait;
use idemproof_models::{Fingerprint, LeaseToken, Scope, Timestamp};
use idemproof_service::domain::agent::{Agent, NewAgent};
use idemproof_service::store::{ClaimOutcome, Lease, Store, StoreError};

/// Wraps a store; `create_agent` fails while `failing_creates` > 0 and
/// every call fails while `down` is set.
pub struct FaultyStore {
    pub inner: Arc<dyn Store>,
    pub failing_creates: AtomicU32,
    pub down: AtomicBool,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            failing_creates: AtomicU32::new(0),
            down: AtomicBool::new(false),
        }
    }

    /// Fails while `failing_creates` is above zero, counting it down.
    fn fail_a_create(&self) -> Result<(), StoreError> {
        let fail = self
            .failing_creates
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(StoreError::unavailable(std::io::Error::other(
                "injected insert failure",
            )));
        }
        Ok(())
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable(std::io::Error::other("injected outage")));
        }
        Ok(())
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn claim(
        &self,
        scope: &Scope,
        fp: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        self.check()?;
        self.inner.claim(scope, fp, token, now).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.check()?;
        self.inner.release(lease).await
    }

    async fn reap_expired(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.reap_expired(now, limit).await
    }

    async fn create_agent_fresh(
        &self,
        scope: &Scope,
        fp: Fingerprint,
        agent: &NewAgent,
        now: Timestamp,
    ) -> Result<Option<Agent>, StoreError> {
        self.check()?;
        self.fail_a_create()?;
        self.inner.create_agent_fresh(scope, fp, agent, now).await
    }

    async fn create_agent(&self, agent: &NewAgent, lease: Option<&Lease>, now: Timestamp) -> Result<Agent, StoreError> {
        self.check()?;
        self.fail_a_create()?;
        self.inner.create_agent(agent, lease, now).await
    }

    async fn agent(&self, organization_id: i64, id: i64) -> Result<Option<Agent>, StoreError> {
        self.check()?;
        self.inner.agent(organization_id, id).await
    }

    async fn agents(&self, organization_id: i64, after: Option<i64>, limit: u32) -> Result<Vec<Agent>, StoreError> {
        self.check()?;
        self.inner.agents(organization_id, after, limit).await
    }

    async fn agent_by_id(&self, id: i64) -> Result<Option<Agent>, StoreError> {
        self.check()?;
        self.inner.agent_by_id(id).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.check()?;
        self.inner.ping().await
    }
}
