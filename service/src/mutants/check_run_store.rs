//! No claim at all: look the key up, run the handler, store its result.
//! Two duplicates that both look before either stores both run, and both
//! answer 201 with a resource of their own.
//!
//! - `check-run-store`: the result is stored only if no other result is
//!   (set-if-absent), so later replays name the first to finish. Real
//!   bug: axum-idempotent 0.2 (look up the cached response, else run the
//!   handler and cache its response).
//! - `overwrite-winner`: the result is stored over any other (`SETEX`),
//!   so later replays name the last to finish: the winner's client was
//!   told about a resource the key no longer names. Real bug: idempot-js
//!   #182.
//!
//! Both decide what they find with the shared `decide` rule (replay,
//! mismatch), so the only bug is the missing claim.

use async_trait::async_trait;
use idemproof_models::{Decision, Fingerprint, Scope, Terms, Timestamp, decide};

use super::Backend;
use super::claim_first::WORK;
use super::records::{Write, completed};
use crate::store::{Layer, OneStep, Resource, Resources, StoreError};

pub(super) struct CheckRunStore {
    backend: Backend,
    terms: Terms,
    /// How the result is stored.
    write: Write,
}

impl CheckRunStore {
    pub(super) fn new(backend: Backend, write: Write) -> Self {
        let terms = backend.terms();
        Self { backend, terms, write }
    }
}

#[async_trait]
impl Layer for CheckRunStore {
    async fn insert_one_step<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        scope: &Scope,
        fingerprint: Fingerprint,
        new: &R::New,
        now: Timestamp,
    ) -> Result<OneStep<R>, StoreError> {
        let found = self.backend.record(scope).await?;
        match decide(found.as_ref(), &fingerprint, now) {
            Decision::Claim => {}
            // A replay or a mismatch: the claim path reads the same record
            // and answers it.
            _ => return Ok(OneStep::Taken),
        }
        tokio::time::sleep(WORK).await;
        let created = next.insert(new, now).await?;
        let record = completed(fingerprint, created.id(), now, self.terms);
        self.backend.put(scope, &record, self.write).await?;
        Ok(OneStep::Created(created))
    }
}
