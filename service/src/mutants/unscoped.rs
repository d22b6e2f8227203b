//! `unscoped`: keys scoped by endpoint and key only, as if every tenant
//! and user shared one key space; replays are looked up by id alone, so a
//! key reused in another tenant returns that tenant's resource.

use async_trait::async_trait;
use idemproof_models::{Fingerprint, LeaseToken, Scope, Timestamp};

use super::Backend;
use crate::store::{ClaimOutcome, KeyStore, Layer, Lease, OneStep, Resource, Resources, StoreError};

pub(super) struct Unscoped {
    /// Where replays are looked up, tenant or not.
    backend: Backend,
}

impl Unscoped {
    pub(super) fn new(backend: Backend) -> Self {
        Self { backend }
    }
}

fn unscoped(scope: &Scope) -> Scope {
    Scope {
        organization_id: 0,
        user_id: 0,
        ..scope.clone()
    }
}

fn unscoped_lease(lease: &Lease) -> Lease {
    Lease {
        scope: unscoped(&lease.scope),
        token: lease.token,
    }
}

#[async_trait]
impl Layer for Unscoped {
    async fn claim(
        &self,
        next: &dyn KeyStore,
        scope: &Scope,
        fingerprint: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        next.claim(&unscoped(scope), fingerprint, token, now).await
    }

    async fn release(&self, next: &dyn KeyStore, lease: &Lease) -> Result<(), StoreError> {
        next.release(&unscoped_lease(lease)).await
    }

    async fn insert_one_step<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        scope: &Scope,
        fingerprint: Fingerprint,
        new: &R::New,
        now: Timestamp,
    ) -> Result<OneStep<R>, StoreError> {
        next.insert_one_step(&unscoped(scope), fingerprint, new, now).await
    }

    async fn insert_completing<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        lease: &Lease,
        new: &R::New,
        now: Timestamp,
    ) -> Result<R, StoreError> {
        next.insert_completing(&unscoped_lease(lease), new, now).await
    }

    /// The replay lookup forgets the tenant too.
    async fn get<R: Resource>(&self, _next: &dyn Resources<R>, _org: i64, id: i64) -> Result<Option<R>, StoreError> {
        self.backend.any_tenant(id).await
    }
}
