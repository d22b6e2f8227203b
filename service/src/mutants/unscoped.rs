//! Keys missing part of their scope:
//!
//! - `unscoped`: scoped by endpoint and key only, as if every tenant and
//!   user shared one key space; replays are looked up by id alone, so a
//!   key reused in another tenant returns that tenant's resource.
//! - `user-unscoped`: scoped by organisation, endpoint and key but not by
//!   user, like a cache key of `method:path:key` per tenant: two users of
//!   one organisation whose browsers made the same key share one record,
//!   so one user's retry is answered with the other user's resource. Real
//!   bug: @node-idempotency/core's key prefix.

use async_trait::async_trait;
use idemproof_models::{Fingerprint, LeaseToken, Scope, Timestamp};

use super::Backend;
use crate::store::{ClaimOutcome, KeyStore, Layer, Lease, OneStep, Resource, Resources, StoreError};

/// What the scope forgets.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Forgets {
    /// The organisation and the user (`unscoped`).
    TenantAndUser,
    /// The user only (`user-unscoped`).
    User,
}

pub(super) struct Unscoped {
    forgets: Forgets,
    /// Where `unscoped` looks replays up, tenant or not.
    backend: Backend,
}

impl Unscoped {
    pub(super) fn new(forgets: Forgets, backend: Backend) -> Self {
        Self { forgets, backend }
    }

    fn scope(&self, scope: &Scope) -> Scope {
        Scope {
            organization_id: match self.forgets {
                Forgets::TenantAndUser => 0,
                Forgets::User => scope.organization_id,
            },
            user_id: 0,
            ..scope.clone()
        }
    }

    fn lease(&self, lease: &Lease) -> Lease {
        Lease {
            scope: self.scope(&lease.scope),
            token: lease.token,
        }
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
        next.claim(&self.scope(scope), fingerprint, token, now).await
    }

    async fn release(&self, next: &dyn KeyStore, lease: &Lease) -> Result<(), StoreError> {
        next.release(&self.lease(lease)).await
    }

    async fn insert_one_step<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        scope: &Scope,
        fingerprint: Fingerprint,
        new: &R::New,
        now: Timestamp,
    ) -> Result<OneStep<R>, StoreError> {
        next.insert_one_step(&self.scope(scope), fingerprint, new, now).await
    }

    async fn insert_completing<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        lease: &Lease,
        new: &R::New,
        now: Timestamp,
    ) -> Result<R, StoreError> {
        next.insert_completing(&self.lease(lease), new, now).await
    }

    /// Without the tenant, the replay lookup forgets it too.
    async fn get<R: Resource>(&self, next: &dyn Resources<R>, org: i64, id: i64) -> Result<Option<R>, StoreError> {
        match self.forgets {
            Forgets::TenantAndUser => self.backend.any_tenant(id).await,
            Forgets::User => next.get(org, id).await,
        }
    }
}
