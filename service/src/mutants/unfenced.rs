//! Completion without fencing: a request whose claim was taken over still
//! commits its work, inserting its resource and setting the key to name
//! it over the new owner's. Stacked under [`super::claim_first::ClaimFirst`]
//! (every request claims before its work, as the libraries do, and the
//! work takes a while).
//!
//! - `no-fencing`: the lease is the service's, so only an owner stalled
//!   past it is taken over, and its late commit duplicates the new
//!   owner's work. The `idempotent` crate's fencing tokens exist for this.
//! - `reclaim-live`: the in-progress record has no expiry of its own, so a
//!   duplicate treats every claim it finds as orphaned and takes it over
//!   while its owner still runs: the work runs twice. Real bugs:
//!   Powertools for AWS Lambda (Python) #8386, (TypeScript) #5678.

use async_trait::async_trait;
use idemproof_models::{Fingerprint, KeyRecord, LeaseToken, Scope, Terms, Timestamp};

use super::Backend;
use super::records::{Write, complete_unfenced};
use crate::store::{ClaimOutcome, KeyStore, Layer, Lease, Resource, Resources, StoreError};

/// Which claims a duplicate takes over.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum TakesOver {
    /// Only those past their lease (`no-fencing`).
    Expired,
    /// Any, the owner still running or not (`reclaim-live`).
    Live,
}

pub(super) struct Unfenced {
    backend: Backend,
    terms: Terms,
    takes_over: TakesOver,
}

impl Unfenced {
    pub(super) fn new(backend: Backend, takes_over: TakesOver) -> Self {
        let terms = backend.terms();
        Self {
            backend,
            terms,
            takes_over,
        }
    }
}

#[async_trait]
impl Layer for Unfenced {
    async fn claim(
        &self,
        next: &dyn KeyStore,
        scope: &Scope,
        fingerprint: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        match next.claim(scope, fingerprint, token, now).await? {
            ClaimOutcome::InFlight { .. } if self.takes_over == TakesOver::Live => {
                let record = KeyRecord::claimed(fingerprint, token, now, self.terms);
                self.backend.put(scope, &record, Write::Overwrite).await?;
                Ok(ClaimOutcome::Acquired)
            }
            other => Ok(other),
        }
    }

    async fn insert_completing<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        lease: &Lease,
        new: &R::New,
        now: Timestamp,
    ) -> Result<R, StoreError> {
        complete_unfenced(&self.backend, next, lease, new, now).await
    }
}
