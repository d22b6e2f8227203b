//! Broken strategies that wrap any store.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use idemproof_models::{Fingerprint, LeaseToken, Scope, Timestamp};

use crate::domain::agent::{Agent, NewAgent};
use crate::store::{ClaimOutcome, Lease, Store, StoreError};

/// Resource id standing for "a cached failure" in [`CacheFailures`].
const CACHED_FAILURE: i64 = -1;

/// Scopes keys by endpoint and key only: every tenant and user shares one
/// key space, and a replay returns whatever agent the key first created.
pub struct Unscoped {
    inner: Arc<dyn Store>,
}

impl Unscoped {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self { inner }
    }
}

fn unscoped(scope: &Scope) -> Scope {
    Scope {
        organization_id: 0,
        user_id: 0,
        ..scope.clone()
    }
}

#[async_trait]
impl Store for Unscoped {
    async fn claim(
        &self,
        scope: &Scope,
        fp: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        self.inner.claim(&unscoped(scope), fp, token, now).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let lease = Lease {
            scope: unscoped(&lease.scope),
            token: lease.token,
        };
        self.inner.release(&lease).await
    }

    async fn create_agent_fresh(
        &self,
        scope: &Scope,
        fp: Fingerprint,
        agent: &NewAgent,
        now: Timestamp,
    ) -> Result<Option<Agent>, StoreError> {
        self.inner.create_agent_fresh(&unscoped(scope), fp, agent, now).await
    }

    async fn create_agent(&self, agent: &NewAgent, lease: Option<&Lease>, now: Timestamp) -> Result<Agent, StoreError> {
        let lease = lease.map(|l| Lease {
            scope: unscoped(&l.scope),
            token: l.token,
        });
        self.inner.create_agent(agent, lease.as_ref(), now).await
    }

    /// The replay lookup forgets the tenant too.
    async fn agent(&self, _organization_id: i64, id: i64) -> Result<Option<Agent>, StoreError> {
        self.inner.agent_by_id(id).await
    }

    async fn reap_expired(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        self.inner.reap_expired(now, limit).await
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

/// Compares no payloads: every reuse of a key replays the original.
pub struct SkipFingerprint {
    inner: Arc<dyn Store>,
}

impl SkipFingerprint {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl Store for SkipFingerprint {
    async fn claim(
        &self,
        scope: &Scope,
        _fp: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        self.inner.claim(scope, Fingerprint([0; 32]), token, now).await
    }

    async fn create_agent_fresh(
        &self,
        scope: &Scope,
        _fp: Fingerprint,
        agent: &NewAgent,
        now: Timestamp,
    ) -> Result<Option<Agent>, StoreError> {
        self.inner
            .create_agent_fresh(scope, Fingerprint([0; 32]), agent, now)
            .await
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

/// Remembers every scope whose creation failed and answers its later
/// requests with the same failure, like a response cache that stores 5xx.
pub struct CacheFailures {
    inner: Arc<dyn Store>,
    failed: Mutex<HashSet<Scope>>,
}

impl CacheFailures {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            failed: Mutex::new(HashSet::new()),
        }
    }

    fn failed(&self) -> std::sync::MutexGuard<'_, HashSet<Scope>> {
        self.failed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Store for CacheFailures {
    async fn claim(
        &self,
        scope: &Scope,
        fp: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        if self.failed().contains(scope) {
            return Ok(ClaimOutcome::Replay(CACHED_FAILURE));
        }
        self.inner.claim(scope, fp, token, now).await
    }

    async fn create_agent_fresh(
        &self,
        scope: &Scope,
        fp: Fingerprint,
        agent: &NewAgent,
        now: Timestamp,
    ) -> Result<Option<Agent>, StoreError> {
        if self.failed().contains(scope) {
            return Ok(None); // the claim path replays the cached failure
        }
        let created = self.inner.create_agent_fresh(scope, fp, agent, now).await;
        if let Err(StoreError::Unavailable(_)) = &created {
            self.failed().insert(scope.clone());
        }
        created
    }

    async fn create_agent(&self, agent: &NewAgent, lease: Option<&Lease>, now: Timestamp) -> Result<Agent, StoreError> {
        let created = self.inner.create_agent(agent, lease, now).await;
        if let (Err(StoreError::Unavailable(_)), Some(lease)) = (&created, lease) {
            self.failed().insert(lease.scope.clone());
        }
        created
    }

    async fn agent(&self, organization_id: i64, id: i64) -> Result<Option<Agent>, StoreError> {
        if id == CACHED_FAILURE {
            return Err(StoreError::unavailable(std::io::Error::other(
                "replayed cached failure",
            )));
        }
        self.inner.agent(organization_id, id).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.inner.release(lease).await
    }

    async fn reap_expired(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        self.inner.reap_expired(now, limit).await
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

/// Claims committed before the work, with no one-step path for new keys:
/// the design `no-lease` breaks (paired with a lease that never ends, a
/// claim whose owner died blocks its key forever).
pub struct TwoPhaseOnly {
    inner: Arc<dyn Store>,
}

impl TwoPhaseOnly {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl Store for TwoPhaseOnly {
    async fn claim(
        &self,
        scope: &Scope,
        fp: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        self.inner.claim(scope, fp, token, now).await
    }

    async fn create_agent_fresh(
        &self,
        _scope: &Scope,
        _fp: Fingerprint,
        _agent: &NewAgent,
        _now: Timestamp,
    ) -> Result<Option<Agent>, StoreError> {
        Ok(None)
    }

    async fn create_agent(&self, agent: &NewAgent, lease: Option<&Lease>, now: Timestamp) -> Result<Agent, StoreError> {
        self.inner.create_agent(agent, lease, now).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.inner.release(lease).await
    }

    async fn reap_expired(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        self.inner.reap_expired(now, limit).await
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
