//! The broken strategies that replace the claim itself, and so need the
//! concrete backend: `legacy` (look the key up among the agents, insert if
//! absent) and `split-lock` (decide and insert under two lock
//! acquisitions). Everything they do not change is forwarded.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use idemproof_models::{Decision, Fingerprint, LeaseToken, Scope, Timestamp};

use super::Strategy;
use crate::domain::agent::{Agent, NewAgent};
use crate::store::memory::MemoryStore;
use crate::store::postgres::PgStore;
use crate::store::{ChangeSignal, ClaimOutcome, Fresh, Lease, Store, StoreError};

/// In memory, the gap between the legacy lookup and its insert stands for
/// the database round trip that separated them in the original system.
const LOOKUP_TO_INSERT: Duration = Duration::from_millis(1);

/// The concrete store underneath.
enum Backend {
    Memory(Arc<MemoryStore>),
    Postgres(PgStore),
}

/// A store whose claim is one of the broken ones.
pub(super) struct Replaced {
    strategy: Strategy,
    backend: Backend,
    /// The same store, for everything forwarded.
    inner: Arc<dyn Store>,
}

impl Replaced {
    /// `legacy` or `split-lock` over the memory store.
    pub(super) fn memory(strategy: Strategy, store: Arc<MemoryStore>) -> Self {
        Self {
            strategy,
            inner: store.clone(),
            backend: Backend::Memory(store),
        }
    }

    /// `legacy` over Postgres, with the legacy design's non-unique index on
    /// the key alone.
    pub(super) async fn postgres(strategy: Strategy, store: PgStore) -> anyhow::Result<Self> {
        sqlx::query("CREATE INDEX IF NOT EXISTS agents_idempotency_key_legacy ON agents (idempotency_key)")
            .execute(store.pool())
            .await?;
        Ok(Self {
            strategy,
            inner: Arc::new(store.clone()),
            backend: Backend::Postgres(store),
        })
    }

    /// The legacy lookup: any agent created with this key, in any tenant.
    async fn agent_with_key(&self, key: &str) -> Result<Option<i64>, StoreError> {
        match &self.backend {
            Backend::Memory(store) => Ok(store.agent_with_key(key).map(|a| a.id)),
            Backend::Postgres(store) => {
                sqlx::query_scalar("SELECT id FROM agents WHERE idempotency_key = $1 ORDER BY id LIMIT 1")
                    .bind(key)
                    .fetch_optional(store.pool())
                    .await
                    .map_err(StoreError::unavailable)
            }
        }
    }
}

#[async_trait]
impl Store for Replaced {
    async fn claim(
        &self,
        scope: &Scope,
        fp: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        match (self.strategy, &self.backend) {
            (Strategy::SplitLock, Backend::Memory(store)) => {
                let claims = store.claims();
                Ok(match claims.decide_only(scope, &fp, now) {
                    Decision::Claim => {
                        // Any await between the two halves (logging, metrics,
                        // a cache) widens the window; this one stands for all.
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
            _ => Ok(match self.agent_with_key(scope.key.as_str()).await? {
                Some(id) => ClaimOutcome::Replay(id),
                None => ClaimOutcome::Acquired,
            }),
        }
    }

    /// No one-step path: every request goes through the broken claim.
    async fn create_agent_fresh(
        &self,
        _scope: &Scope,
        _fp: Fingerprint,
        _agent: &NewAgent,
        _now: Timestamp,
    ) -> Result<Fresh<Agent>, StoreError> {
        Ok(Fresh::Taken)
    }

    async fn create_agent(&self, agent: &NewAgent, lease: Option<&Lease>, now: Timestamp) -> Result<Agent, StoreError> {
        match (self.strategy, &self.backend) {
            (Strategy::SplitLock, _) => self.inner.create_agent(agent, lease, now).await,
            // Legacy: no claim to complete, just insert.
            (_, Backend::Memory(_)) => {
                tokio::time::sleep(LOOKUP_TO_INSERT).await;
                self.inner.create_agent(agent, None, now).await
            }
            (_, Backend::Postgres(_)) => self.inner.create_agent(agent, None, now).await,
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        match self.strategy {
            Strategy::Legacy => Ok(()),
            _ => self.inner.release(lease).await,
        }
    }

    async fn reap_expired(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        self.inner.reap_expired(now, limit).await
    }

    async fn agent(&self, organization_id: i64, id: i64) -> Result<Option<Agent>, StoreError> {
        match self.strategy {
            // Legacy returned whatever agent its unscoped lookup found.
            Strategy::Legacy => self.inner.agent_by_id(id).await,
            _ => self.inner.agent(organization_id, id).await,
        }
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
