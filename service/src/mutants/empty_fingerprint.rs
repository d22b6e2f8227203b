//! `empty-fingerprint-on-complete`: completing a key stores its record
//! without the payload's fingerprint, so from then on every request for
//! the key, the client's own identical retry included, compares unequal
//! and is refused as "another payload" (422 in reject mode).
//!
//! Emulated over the correct stores: every answer that says "completed
//! with this payload" (a one-step replay, a claim's replay) becomes what an
//! empty stored fingerprint makes of it, a mismatch with the original.
//!
//! Real bug: Powertools for AWS Lambda (TypeScript) #5705, the payload
//! validation hash dropped when the record is completed; also seen in a
//! FastAPI idempotency middleware.

use async_trait::async_trait;
use idemproof_models::{Fingerprint, LeaseToken, Scope, Timestamp};

use crate::store::{ClaimOutcome, KeyStore, Layer, OneStep, Resource, Resources, StoreError};

pub(super) struct EmptyFingerprint;

#[async_trait]
impl Layer for EmptyFingerprint {
    async fn claim(
        &self,
        next: &dyn KeyStore,
        scope: &Scope,
        fingerprint: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        Ok(match next.claim(scope, fingerprint, token, now).await? {
            ClaimOutcome::Replay(id) => ClaimOutcome::Mismatch { original: Some(id) },
            other => other,
        })
    }

    /// A one-step replay goes the long way, to the claim's mismatch.
    async fn insert_one_step<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        scope: &Scope,
        fingerprint: Fingerprint,
        new: &R::New,
        now: Timestamp,
    ) -> Result<OneStep<R>, StoreError> {
        Ok(match next.insert_one_step(scope, fingerprint, new, now).await? {
            OneStep::Replayed(_) => OneStep::Taken,
            other => other,
        })
    }
}
