//! A completed key's replay answered with something else. The correct
//! design gives every identical retry of a completed key its original
//! result; these strategies do not:
//!
//! - `empty-fingerprint-on-complete`: completing a key stores its record
//!   without the payload's fingerprint, so every later request for the
//!   key, the client's own identical retry included, compares unequal and
//!   is refused as "another payload" (422 in reject mode). Real bug:
//!   Powertools for AWS Lambda (TypeScript) #5705, the validation hash
//!   dropped when the record is completed; also seen in a FastAPI
//!   middleware.
//! - `completed-409`: every record, completed or not, acts as a lock, so a
//!   duplicate of a completed request is told the key is in use (409).
//!   Real bug: django-idempotency-key.
//!
//! Emulated over the correct stores: a claim's "completed with this
//! payload" answer becomes the strategy's, and a one-step replay goes the
//! long way to that claim.

use async_trait::async_trait;
use idemproof_models::{Fingerprint, LeaseToken, Scope, Timestamp};

use crate::store::{ChangeSignal, ClaimOutcome, KeyStore, Layer, OneStep, Resource, Resources, StoreError};

/// What a completed key's replay becomes.
#[derive(Clone, Copy)]
pub(super) enum Instead {
    /// A mismatch with the original (`empty-fingerprint-on-complete`).
    Mismatch,
    /// "In flight", with a lease already over so nothing is awaited past
    /// the service's wait (`completed-409`).
    InFlight,
}

pub(super) struct ReplayRefused(pub(super) Instead);

#[async_trait]
impl Layer for ReplayRefused {
    async fn claim(
        &self,
        next: &dyn KeyStore,
        scope: &Scope,
        fingerprint: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        Ok(match (next.claim(scope, fingerprint, token, now).await?, self.0) {
            (ClaimOutcome::Replay(id), Instead::Mismatch) => ClaimOutcome::Mismatch { original: Some(id) },
            (ClaimOutcome::Replay(_), Instead::InFlight) => ClaimOutcome::InFlight {
                lease_expires_at: now,
                change: ChangeSignal::Poll,
            },
            (other, _) => other,
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
