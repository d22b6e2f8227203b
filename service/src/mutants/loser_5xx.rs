//! `loser-gets-5xx`: the loser of a race for a key, instead of waiting for
//! the original, getting 409 or replaying it, fails as if the store were
//! down, so a client's duplicate of an in-flight request answers 503.
//! Stacked under [`super::claim_first::ClaimFirst`], like the libraries it
//! stands for: every request claims the key before its work, and the work
//! takes a while, so a race has a loser to fail.
//!
//! Real bugs: idempot-js #181; accept-io/midas #14.

use async_trait::async_trait;
use idemproof_models::{Fingerprint, LeaseToken, Scope, Timestamp};

use crate::store::{ClaimOutcome, KeyStore, Layer, StoreError};

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
}
