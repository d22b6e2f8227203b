//! The legacy design: look the key up among the agents, insert if nothing
//! is found. No claim, no unique constraint, no tenant scope, no payload
//! check: two concurrent requests both miss and both insert.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use idemproof_models::{Fingerprint, LeaseToken, Scope, Timestamp};

use crate::domain::agent::{Agent, NewAgent};
use crate::store::memory::MemoryStore;
use crate::store::postgres::PgStore;
use crate::store::{ClaimOutcome, Lease, Store, StoreError};

/// In memory, the gap between the lookup and the insert stands for the
/// database round trip that separated them in the original system.
const LOOKUP_TO_INSERT: Duration = Duration::from_millis(1);

/// Legacy design over the in-memory store.
pub struct LegacyMemory {
    inner: Arc<MemoryStore>,
}

impl LegacyMemory {
    pub fn new(inner: Arc<MemoryStore>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl Store for LegacyMemory {
    async fn claim(
        &self,
        scope: &Scope,
        _fp: Fingerprint,
        _token: LeaseToken,
        _now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        Ok(match self.inner.agent_with_key(scope.key.as_str()) {
            Some(agent) => ClaimOutcome::Replay(agent.id),
            None => ClaimOutcome::Acquired,
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

    async fn release(&self, _lease: &Lease) -> Result<(), StoreError> {
        Ok(())
    }

    async fn create_agent(
        &self,
        agent: &NewAgent,
        _lease: Option<&Lease>,
        now: Timestamp,
    ) -> Result<Agent, StoreError> {
        tokio::time::sleep(LOOKUP_TO_INSERT).await;
        self.inner.create_agent(agent, None, now).await
    }

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

/// Legacy design over Postgres, with its non-unique index on the key alone.
pub struct LegacyPg {
    inner: PgStore,
}

impl LegacyPg {
    pub async fn new(inner: PgStore) -> anyhow::Result<Self> {
        sqlx::query("CREATE INDEX IF NOT EXISTS agents_idempotency_key_legacy ON agents (idempotency_key)")
            .execute(inner.pool())
            .await?;
        Ok(Self { inner })
    }
}

#[async_trait]
impl Store for LegacyPg {
    async fn claim(
        &self,
        scope: &Scope,
        _fp: Fingerprint,
        _token: LeaseToken,
        _now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT id FROM agents WHERE idempotency_key = $1 ORDER BY id LIMIT 1")
                .bind(scope.key.as_str())
                .fetch_optional(self.inner.pool())
                .await
                .map_err(StoreError::unavailable)?;
        Ok(match found {
            Some(id) => ClaimOutcome::Replay(id),
            None => ClaimOutcome::Acquired,
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

    async fn release(&self, _lease: &Lease) -> Result<(), StoreError> {
        Ok(())
    }

    async fn create_agent(
        &self,
        agent: &NewAgent,
        _lease: Option<&Lease>,
        now: Timestamp,
    ) -> Result<Agent, StoreError> {
        self.inner.create_agent(agent, None, now).await
    }

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
