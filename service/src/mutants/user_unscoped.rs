//! `user-unscoped`: keys scoped by organisation, endpoint and key but not
//! by user, like a key prefix of `method:path:key` per tenant: two users
//! of one organisation whose browsers make the same key share one record,
//! so one user's retry is answered with the other user's resource.
//!
//! Real bug: @node-idempotency/core builds its cache key from the method,
//! the path and the client's key only.

use async_trait::async_trait;
use idemproof_models::{Fingerprint, LeaseToken, Scope, Timestamp};

use crate::store::{ClaimOutcome, KeyStore, Layer, Lease, OneStep, Resource, Resources, StoreError};

pub(super) struct UserUnscoped;

/// The scope with every user folded into one.
fn without_user(scope: &Scope) -> Scope {
    Scope {
        user_id: 0,
        ..scope.clone()
    }
}

fn without_user_lease(lease: &Lease) -> Lease {
    Lease {
        scope: without_user(&lease.scope),
        token: lease.token,
    }
}

#[async_trait]
impl Layer for UserUnscoped {
    async fn claim(
        &self,
        next: &dyn KeyStore,
        scope: &Scope,
        fingerprint: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        next.claim(&without_user(scope), fingerprint, token, now).await
    }

    async fn release(&self, next: &dyn KeyStore, lease: &Lease) -> Result<(), StoreError> {
        next.release(&without_user_lease(lease)).await
    }

    async fn insert_one_step<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        scope: &Scope,
        fingerprint: Fingerprint,
        new: &R::New,
        now: Timestamp,
    ) -> Result<OneStep<R>, StoreError> {
        next.insert_one_step(&without_user(scope), fingerprint, new, now).await
    }

    async fn insert_completing<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        lease: &Lease,
        new: &R::New,
        now: Timestamp,
    ) -> Result<R, StoreError> {
        next.insert_completing(&without_user_lease(lease), new, now).await
    }
}
