//! The broken strategies that wrap any store: each method says, strategy
//! by strategy, how it deviates from plain forwarding.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use idemproof_models::{Fingerprint, LeaseToken, Scope, Timestamp};

use super::Strategy;
use crate::domain::agent::{Agent, NewAgent};
use crate::store::{ClaimOutcome, Fresh, Lease, Store, StoreError};

/// Resource id standing for "a cached failure" under `cache-failures`.
const CACHED_FAILURE: i64 = -1;

/// A store with one of `unscoped`, `skip-fingerprint`, `cache-failures`
/// or `no-lease` applied on top.
pub(super) struct Wrapped {
    strategy: Strategy,
    inner: Arc<dyn Store>,
    /// `cache-failures`: scopes whose creation failed, answered with the
    /// failure from then on (like a response cache that stores 5xx).
    failed: Mutex<HashSet<Scope>>,
}

impl Wrapped {
    pub(super) fn new(strategy: Strategy, inner: Arc<dyn Store>) -> Self {
        Self {
            strategy,
            inner,
            failed: Mutex::new(HashSet::new()),
        }
    }

    /// `unscoped`: every tenant and user share one key space.
    fn scope(&self, scope: &Scope) -> Scope {
        match self.strategy {
            Strategy::Unscoped => Scope {
                organization_id: 0,
                user_id: 0,
                ..scope.clone()
            },
            _ => scope.clone(),
        }
    }

    /// `skip-fingerprint`: every payload looks the same.
    fn fingerprint(&self, fp: Fingerprint) -> Fingerprint {
        match self.strategy {
            Strategy::SkipFingerprint => Fingerprint([0; 32]),
            _ => fp,
        }
    }

    fn lease(&self, lease: &Lease) -> Lease {
        Lease {
            scope: self.scope(&lease.scope),
            token: lease.token,
        }
    }

    fn failed(&self) -> std::sync::MutexGuard<'_, HashSet<Scope>> {
        self.failed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember_failure<T>(&self, scope: &Scope, result: &Result<T, StoreError>) {
        if self.strategy == Strategy::CacheFailures && matches!(result, Err(StoreError::Unavailable(_))) {
            self.failed().insert(scope.clone());
        }
    }
}

#[async_trait]
impl Store for Wrapped {
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
        self.inner
            .claim(&self.scope(scope), self.fingerprint(fp), token, now)
            .await
    }

    async fn create_agent_fresh(
        &self,
        scope: &Scope,
        fp: Fingerprint,
        agent: &NewAgent,
        now: Timestamp,
    ) -> Result<Fresh<Agent>, StoreError> {
        // `no-lease` commits every claim before the work: no one-step path.
        // A cached failure is replayed by the claim path.
        if self.strategy == Strategy::NoLease || self.failed().contains(scope) {
            return Ok(Fresh::Taken);
        }
        let created = self
            .inner
            .create_agent_fresh(&self.scope(scope), self.fingerprint(fp), agent, now)
            .await;
        self.remember_failure(scope, &created);
        created
    }

    async fn create_agent(&self, agent: &NewAgent, lease: Option<&Lease>, now: Timestamp) -> Result<Agent, StoreError> {
        let wrapped = lease.map(|l| self.lease(l));
        let created = self.inner.create_agent(agent, wrapped.as_ref(), now).await;
        if let Some(lease) = lease {
            self.remember_failure(&lease.scope, &created);
        }
        created
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.inner.release(&self.lease(lease)).await
    }

    async fn reap_expired(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        self.inner.reap_expired(now, limit).await
    }

    async fn agent(&self, organization_id: i64, id: i64) -> Result<Option<Agent>, StoreError> {
        match self.strategy {
            _ if id == CACHED_FAILURE => Err(StoreError::unavailable(std::io::Error::other(
                "replayed cached failure",
            ))),
            // The replay lookup forgets the tenant too.
            Strategy::Unscoped => self.inner.agent_by_id(id).await,
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
