//! `cache-failures`: a failed creation is remembered against its key and
//! answered with the failure from then on, like a response cache that
//! stores 5xx: the client's retry can never succeed.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use idemproof_models::{Fingerprint, LeaseToken, Scope, Timestamp};

use crate::store::{ClaimOutcome, KeyStore, Layer, Lease, OneStep, Resource, Resources, StoreError};

/// Resource id standing for "a cached failure".
const CACHED_FAILURE: i64 = -1;

#[derive(Default)]
pub(super) struct CacheFailures {
    /// Scopes whose creation failed.
    failed: Mutex<HashSet<Scope>>,
}

impl CacheFailures {
    fn failed(&self) -> MutexGuard<'_, HashSet<Scope>> {
        self.failed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember<T>(&self, scope: &Scope, result: &Result<T, StoreError>) {
        if matches!(result, Err(StoreError::Unavailable(_))) {
            self.failed().insert(scope.clone());
        }
    }
}

#[async_trait]
impl Layer for CacheFailures {
    async fn claim(
        &self,
        next: &dyn KeyStore,
        scope: &Scope,
        fingerprint: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        if self.failed().contains(scope) {
            return Ok(ClaimOutcome::Replay(CACHED_FAILURE));
        }
        next.claim(scope, fingerprint, token, now).await
    }

    async fn insert_one_step<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        scope: &Scope,
        fingerprint: Fingerprint,
        new: &R::New,
        now: Timestamp,
    ) -> Result<OneStep<R>, StoreError> {
        // A cached failure is replayed by the claim path.
        if self.failed().contains(scope) {
            return Ok(OneStep::Taken);
        }
        let created = next.insert_one_step(scope, fingerprint, new, now).await;
        self.remember(scope, &created);
        created
    }

    async fn insert_completing<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        lease: &Lease,
        new: &R::New,
        now: Timestamp,
    ) -> Result<R, StoreError> {
        let created = next.insert_completing(lease, new, now).await;
        self.remember(&lease.scope, &created);
        created
    }

    async fn get<R: Resource>(&self, next: &dyn Resources<R>, org: i64, id: i64) -> Result<Option<R>, StoreError> {
        if id == CACHED_FAILURE {
            return Err(StoreError::unavailable(std::io::Error::other(
                "replayed cached failure",
            )));
        }
        next.get(org, id).await
    }
}
