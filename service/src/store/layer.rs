//! Changing how the stores behave without re-implementing them: a broken
//! strategy (`crate::mutants`) or the harness's fault emulation is a
//! [`Layer`] that overrides only the calls it changes. Every method's
//! default passes the call on to `next`, the store underneath, so the
//! forwarding is written once, here, and [`super::Stores::layer`] puts a
//! layer in front of every store at once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use idemproof_models::{Fingerprint, LeaseToken, Scope, Timestamp};

use super::{ClaimOutcome, KeyStore, Lease, Listed, OneStep, PageBound, PoolUse, Resource, Resources, StoreError};
use crate::readiness::Probe;

/// A change to some store calls. Resource calls are generic, so one layer
/// applies to every kind of resource.
#[async_trait]
pub trait Layer: Send + Sync + 'static {
    /// [`KeyStore::claim`].
    async fn claim(
        &self,
        next: &dyn KeyStore,
        scope: &Scope,
        fingerprint: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        next.claim(scope, fingerprint, token, now).await
    }

    /// [`KeyStore::release`].
    async fn release(&self, next: &dyn KeyStore, lease: &Lease) -> Result<(), StoreError> {
        next.release(lease).await
    }

    /// [`KeyStore::reap_expired`].
    async fn reap_expired(&self, next: &dyn KeyStore, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        next.reap_expired(now, limit).await
    }

    /// [`KeyStore::probe_write`].
    async fn probe_write(&self, next: &dyn KeyStore, now: Timestamp, patience: Duration) -> Probe {
        next.probe_write(now, patience).await
    }

    /// [`Resources::insert`].
    async fn insert<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        new: &R::New,
        now: Timestamp,
    ) -> Result<R, StoreError> {
        next.insert(new, now).await
    }

    /// [`Resources::insert_one_step`].
    async fn insert_one_step<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        scope: &Scope,
        fingerprint: Fingerprint,
        new: &R::New,
        now: Timestamp,
    ) -> Result<OneStep<R>, StoreError> {
        next.insert_one_step(scope, fingerprint, new, now).await
    }

    /// [`Resources::insert_completing`].
    async fn insert_completing<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        lease: &Lease,
        new: &R::New,
        now: Timestamp,
    ) -> Result<R, StoreError> {
        next.insert_completing(lease, new, now).await
    }

    /// [`Resources::get`].
    async fn get<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        organization_id: i64,
        id: i64,
    ) -> Result<Option<R>, StoreError> {
        next.get(organization_id, id).await
    }

    /// [`Resources::list`].
    async fn list<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        organization_id: i64,
        parent: Option<i64>,
        after: Option<i64>,
        bound: PageBound,
    ) -> Result<Listed<R>, StoreError> {
        next.list(organization_id, parent, after, bound).await
    }
}

/// The store `next` seen through `layer`.
pub struct Layered<L, S: ?Sized> {
    layer: Arc<L>,
    next: Arc<S>,
}

impl<L, S: ?Sized> Layered<L, S> {
    /// `next` behind `layer`.
    pub fn new(layer: Arc<L>, next: Arc<S>) -> Self {
        Self { layer, next }
    }
}

#[async_trait]
impl<L: Layer> KeyStore for Layered<L, dyn KeyStore> {
    async fn claim(
        &self,
        scope: &Scope,
        fingerprint: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        self.layer.claim(&*self.next, scope, fingerprint, token, now).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.layer.release(&*self.next, lease).await
    }

    async fn reap_expired(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        self.layer.reap_expired(&*self.next, now, limit).await
    }

    async fn probe_write(&self, now: Timestamp, patience: Duration) -> Probe {
        self.layer.probe_write(&*self.next, now, patience).await
    }

    fn pool_use(&self) -> Option<PoolUse> {
        self.next.pool_use()
    }
}

#[async_trait]
impl<L: Layer, R: Resource> Resources<R> for Layered<L, dyn Resources<R>> {
    async fn insert(&self, new: &R::New, now: Timestamp) -> Result<R, StoreError> {
        self.layer.insert(&*self.next, new, now).await
    }

    async fn insert_one_step(
        &self,
        scope: &Scope,
        fingerprint: Fingerprint,
        new: &R::New,
        now: Timestamp,
    ) -> Result<OneStep<R>, StoreError> {
        self.layer
            .insert_one_step(&*self.next, scope, fingerprint, new, now)
            .await
    }

    async fn insert_completing(&self, lease: &Lease, new: &R::New, now: Timestamp) -> Result<R, StoreError> {
        self.layer.insert_completing(&*self.next, lease, new, now).await
    }

    async fn get(&self, organization_id: i64, id: i64) -> Result<Option<R>, StoreError> {
        self.layer.get(&*self.next, organization_id, id).await
    }

    async fn list(
        &self,
        organization_id: i64,
        parent: Option<i64>,
        after: Option<i64>,
        bound: PageBound,
    ) -> Result<Listed<R>, StoreError> {
        self.layer
            .list(&*self.next, organization_id, parent, after, bound)
            .await
    }
}

#[cfg(test)]
mod tests {
    use idemproof_models::Terms;

    use super::*;
    use crate::domain::agent::{CreateEnvelope, NewAgent};
    use crate::store::memory::MemoryStore;

    /// A layer that changes nothing.
    struct Nothing;
    impl Layer for Nothing {}

    /// A key store that is down and reports a pool: what a layer must pass
    /// on untouched.
    struct Down {
        pool: PoolUse,
    }

    #[async_trait]
    impl KeyStore for Down {
        async fn claim(
            &self,
            _: &Scope,
            _: Fingerprint,
            _: LeaseToken,
            _: Timestamp,
        ) -> Result<ClaimOutcome, StoreError> {
            Err(StoreError::LeaseLost)
        }
        async fn release(&self, _: &Lease) -> Result<(), StoreError> {
            Err(StoreError::LeaseLost)
        }
        async fn reap_expired(&self, _: Timestamp, _: u32) -> Result<u64, StoreError> {
            Err(StoreError::LeaseLost)
        }
        async fn probe_write(&self, _: Timestamp, _: Duration) -> Probe {
            Probe::Failed
        }
        fn pool_use(&self) -> Option<PoolUse> {
            Some(self.pool)
        }
    }

    /// A layer whose probes fail, whatever the store says.
    struct Unreachable;
    #[async_trait]
    impl Layer for Unreachable {
        async fn probe_write(&self, _: &dyn KeyStore, _: Timestamp, _: Duration) -> Probe {
            Probe::Failed
        }
    }

    #[tokio::test]
    async fn a_layer_that_changes_nothing_passes_the_store_through() {
        let pool = PoolUse {
            in_use: 3,
            idle: 2,
            waiting: 5,
            max: 8,
        };
        let down: Arc<dyn KeyStore> = Arc::new(Down { pool });
        let seen = Layered::new(Arc::new(Nothing), down);
        assert_eq!(seen.pool_use(), Some(pool), "the pool underneath is reported");
        assert_eq!(
            seen.probe_write(Timestamp::UNIX_EPOCH, Duration::ZERO).await,
            Probe::Failed,
            "a failed probe stays failed"
        );
        let lease = Lease {
            scope: Scope {
                organization_id: 1,
                user_id: 1,
                endpoint: "POST /things".into(),
                key: idemproof_models::IdempotencyKey::parse("k").expect("key"),
            },
            token: LeaseToken::random(),
        };
        assert!(
            matches!(seen.release(&lease).await, Err(StoreError::LeaseLost)),
            "a release reaches the store"
        );
        assert!(
            matches!(
                seen.reap_expired(Timestamp::UNIX_EPOCH, 10).await,
                Err(StoreError::LeaseLost)
            ),
            "a reap reaches the store"
        );
    }

    #[tokio::test]
    async fn a_layer_that_changes_nothing_passes_resources_through() {
        let stores = Arc::new(MemoryStore::new(Terms::default()))
            .stores()
            .layer(Arc::new(Nothing));
        let body = serde_json::json!({"name": "Bot"});
        let new = NewAgent {
            organization_id: 1,
            user_id: 1,
            idempotency_key: None,
            spec: CreateEnvelope::from_json(&body).expect("valid body").spec,
        };
        let agent = stores.agents.insert(&new, Timestamp::UNIX_EPOCH).await.expect("insert");
        let found = stores.agents.get(1, agent.id).await.expect("get");
        assert_eq!(found.as_ref(), Some(&agent), "a read reaches the store");
        let bound = PageBound {
            rows: 10,
            bytes: 1 << 20,
        };
        let listed = stores.agents.list(1, None, None, bound).await.expect("list");
        assert_eq!(listed.items, [agent], "a listing reaches the store");
    }

    #[tokio::test]
    async fn a_layer_decides_what_the_store_behind_it_answers() {
        let memory: Arc<dyn KeyStore> = Arc::new(MemoryStore::new(Terms::default()));
        let patience = Duration::from_secs(1);
        assert_eq!(memory.probe_write(Timestamp::UNIX_EPOCH, patience).await, Probe::Wrote);
        let seen = Layered::new(Arc::new(Unreachable), memory);
        assert_eq!(seen.probe_write(Timestamp::UNIX_EPOCH, patience).await, Probe::Failed);
        assert_eq!(seen.pool_use(), None, "the in-memory store has no pool");
    }
}
