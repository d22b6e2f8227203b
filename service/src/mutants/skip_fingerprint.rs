//! `skip-fingerprint`: replays skip the payload comparison, as if every
//! payload looked the same, so a reused key with another payload replays
//! the original instead of being refused.

use async_trait::async_trait;
use idemproof_models::{Fingerprint, LeaseToken, Scope, Timestamp};

use crate::store::{ClaimOutcome, KeyStore, Layer, OneStep, Resource, Resources, StoreError};

pub(super) struct SkipFingerprint;

/// Every payload's fingerprint.
const SAME: Fingerprint = Fingerprint([0; 32]);

#[async_trait]
impl Layer for SkipFingerprint {
    async fn claim(
        &self,
        next: &dyn KeyStore,
        scope: &Scope,
        _fingerprint: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        next.claim(scope, SAME, token, now).await
    }

    async fn insert_one_step<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        scope: &Scope,
        _fingerprint: Fingerprint,
        new: &R::New,
        now: Timestamp,
    ) -> Result<OneStep<R>, StoreError> {
        next.insert_one_step(scope, SAME, new, now).await
    }
}
