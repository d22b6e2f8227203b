//! `fast-path-skips-validation`: a key that completed is answered from a
//! fast path (a cache in front of the record) that never compares the
//! payload; only the slow path, a claim, does. A reused key with an
//! edited payload therefore replays the original resource whenever the
//! original already finished, and is refused only while it runs.
//! Real bugs: Powertools for AWS Lambda (TypeScript) #2058 and #1499,
//! (Java) #2260: the local-cache hit returned without validating the
//! payload hash.

use async_trait::async_trait;
use idemproof_models::{Fingerprint, KeyState, Scope, Timestamp};

use super::Backend;
use crate::store::{Layer, OneStep, Resource, Resources, StoreError};

pub(super) struct FastPathSkipsValidation {
    backend: Backend,
}

impl FastPathSkipsValidation {
    pub(super) fn new(backend: Backend) -> Self {
        Self { backend }
    }
}

#[async_trait]
impl Layer for FastPathSkipsValidation {
    async fn insert_one_step<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        scope: &Scope,
        fingerprint: Fingerprint,
        new: &R::New,
        now: Timestamp,
    ) -> Result<OneStep<R>, StoreError> {
        let taken = match next.insert_one_step(scope, fingerprint, new, now).await? {
            OneStep::Taken => OneStep::Taken,
            done => return Ok(done),
        };
        // The fast path: whatever payload completed the key, its result.
        if let Some(record) = self.backend.record(scope).await?
            && !record.is_dead(now)
            && let KeyState::Completed { result } = record.state
            && let Some(original) = next.get(scope.organization_id, result).await?
        {
            return Ok(OneStep::Replayed(original));
        }
        Ok(taken)
    }
}
