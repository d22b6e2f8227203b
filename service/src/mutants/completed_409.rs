//! `completed-409`: a duplicate of a request that already completed is
//! told the key is in use (409) instead of getting the original's result,
//! as if every record, completed or not, were a lock. The correct design
//! answers 409 only while the original is in flight.
//!
//! Emulated over the correct stores: a claim's "completed with this
//! payload" answer becomes "in flight", whose lease has already run out so
//! nothing is awaited past the service's wait; the one-step path's replay
//! goes the long way to that claim.
//!
//! Real bug: django-idempotency-key.

use async_trait::async_trait;
use idemproof_models::{Fingerprint, LeaseToken, Scope, Timestamp};

use crate::store::{ChangeSignal, ClaimOutcome, KeyStore, Layer, OneStep, Resource, Resources, StoreError};

pub(super) struct Completed409;

#[async_trait]
impl Layer for Completed409 {
    async fn claim(
        &self,
        next: &dyn KeyStore,
        scope: &Scope,
        fingerprint: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        Ok(match next.claim(scope, fingerprint, token, now).await? {
            ClaimOutcome::Replay(_) => ClaimOutcome::InFlight {
                lease_expires_at: now,
                change: ChangeSignal::Poll,
            },
            other => other,
        })
    }

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
