//! `get-then-set`: the claim is a read and an unconditional write (GET,
//! then SET) rather than one set-if-absent: two duplicates that both read
//! before either writes both take the key, both run, and both answer 201;
//! the completion is as unconditional as the claim, so later replays name
//! whichever finished last. A duplicate that arrives after the write does
//! see the claim and waits, so only close races show it.
//! Real bug: express-idempotency-redis-adapter.

use std::time::Duration;

use async_trait::async_trait;
use idemproof_models::{Decision, Fingerprint, KeyRecord, LeaseToken, Scope, Terms, Timestamp, decide};

use super::Backend;
use super::claim_first::polled;
use super::records::{Write, complete_unfenced};
use crate::store::{ClaimOutcome, KeyStore, Layer, Lease, Resource, Resources, StoreError};

/// In memory, the gap between the read and the write stands for the
/// round trip between the GET and the SET.
const GET_TO_SET: Duration = Duration::from_millis(1);

pub(super) struct GetThenSet {
    backend: Backend,
    terms: Terms,
}

impl GetThenSet {
    pub(super) fn new(backend: Backend) -> Self {
        let terms = backend.terms();
        Self { backend, terms }
    }
}

#[async_trait]
impl Layer for GetThenSet {
    async fn claim(
        &self,
        _next: &dyn KeyStore,
        scope: &Scope,
        fingerprint: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        let found = self.backend.record(scope).await?;
        let decision = decide(found.as_ref(), &fingerprint, now);
        if decision == Decision::Claim {
            if let Backend::Memory(_) = self.backend {
                tokio::time::sleep(GET_TO_SET).await;
            }
            let record = KeyRecord::claimed(fingerprint, token, now, self.terms);
            self.backend.put(scope, &record, Write::Overwrite).await?;
        }
        Ok(polled(decision))
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
