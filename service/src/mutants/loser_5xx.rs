//! `loser-gets-5xx`: the loser of a race for a key, instead of waiting for
//! the original, getting 409 or replaying it, fails as if the store were
//! down, so a client's duplicate of an in-flight request answers 503.
//! Like the libraries it stands for, every request claims the key before
//! its work (no one-step path), and a pause between the claim and the
//! completing write stands for the handler's work (in memory the two are
//! otherwise microseconds apart), so a race has a loser to fail.
//!
//! Real bugs: idempot-js #181; accept-io/midas #14.

use async_trait::async_trait;
use idemproof_models::{Fingerprint, LeaseToken, Scope, Timestamp};

use std::time::Duration;

use crate::store::{ClaimOutcome, KeyStore, Layer, Lease, OneStep, Resource, Resources, StoreError};

/// The handler's work between claiming a key and completing it.
const WORK: Duration = Duration::from_millis(5);

pub(super) struct LoserGets5xx;

#[async_trait]
impl Layer for LoserGets5xx {
    async fn claim(
        &self,
        next: &dyn KeyStore,
        scope: &Scope,
        fingerprint: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        match next.claim(scope, fingerprint, token, now).await? {
            ClaimOutcome::InFlight { .. } => Err(StoreError::unavailable(std::io::Error::other(
                "lost the race for the key",
            ))),
            other => Ok(other),
        }
    }

    /// Every request goes through a claim.
    async fn insert_one_step<R: Resource>(
        &self,
        _next: &dyn Resources<R>,
        _scope: &Scope,
        _fingerprint: Fingerprint,
        _new: &R::New,
        _now: Timestamp,
    ) -> Result<OneStep<R>, StoreError> {
        Ok(OneStep::Taken)
    }

    async fn insert_completing<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        lease: &Lease,
        new: &R::New,
        now: Timestamp,
    ) -> Result<R, StoreError> {
        tokio::time::sleep(WORK).await;
        next.insert_completing(lease, new, now).await
    }
}
