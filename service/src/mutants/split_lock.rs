//! `split-lock`: the in-memory claim decides under one lock acquisition
//! and writes under another, so two requests can both find the key free
//! and both create (the check-then-insert race, in process). No one-step
//! path (it is stacked over [`super::claim_first::ClaimFirst`]): every
//! request goes through the broken claim.

use std::sync::Arc;

use async_trait::async_trait;
use idemproof_models::{Decision, Fingerprint, LeaseToken, Scope, Timestamp};

use super::claim_first::polled;
use crate::store::memory::MemoryStore;
use crate::store::{ClaimOutcome, KeyStore, Layer, StoreError};

pub(super) struct SplitLock {
    memory: Arc<MemoryStore>,
}

impl SplitLock {
    pub(super) fn new(memory: Arc<MemoryStore>) -> Self {
        Self { memory }
    }
}

#[async_trait]
impl Layer for SplitLock {
    async fn claim(
        &self,
        _next: &dyn KeyStore,
        scope: &Scope,
        fingerprint: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        let claims = self.memory.claims();
        let decision = claims.decide_only(scope, &fingerprint, now);
        if decision == Decision::Claim {
            // Any await between the two halves (logging, metrics, a
            // cache) widens the window; this one stands for all.
            tokio::task::yield_now().await;
            claims.insert_claim(scope, fingerprint, token, now);
        }
        Ok(polled(decision))
    }
}
