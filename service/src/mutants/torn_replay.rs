//! `torn-replay`: the stored response is written in two steps, the
//! record first and what it names second, and each step commits on its
//! own. A replay that lands between them finds a completed key whose
//! result is not there yet and answers 500 (the service's answer to a
//! record pointing at nothing). Real bug: an ASGI idempotency
//! middleware's Redis backend (body and status in two writes), seen
//! answering 500.
//!
//! Emulated over the correct stores: for a short while after a creation
//! commits, its resource reads as missing, and the creating request
//! answers only once that second step is done.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use idemproof_models::{Fingerprint, Scope, Timestamp};

use crate::store::{Layer, Lease, OneStep, Resource, Resources, StoreError};

/// Between the two writes: the second write's round trip and the work
/// between them.
const BETWEEN_WRITES: Duration = Duration::from_millis(5);

#[derive(Default)]
pub(super) struct TornReplay {
    /// `(table, id)` of resources whose record is written and whose second
    /// write is not.
    half_written: Mutex<HashSet<(&'static str, i64)>>,
}

impl TornReplay {
    fn half_written(&self) -> MutexGuard<'_, HashSet<(&'static str, i64)>> {
        self.half_written.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_half_written<R: Resource>(&self, id: i64) -> bool {
        self.half_written().contains(&(R::TABLE, id))
    }

    /// The second write: the resource becomes readable after a while.
    async fn second_write<R: Resource>(&self, created: R) -> R {
        let at = (R::TABLE, created.id());
        self.half_written().insert(at);
        tokio::time::sleep(BETWEEN_WRITES).await;
        self.half_written().remove(&at);
        created
    }
}

#[async_trait]
impl Layer for TornReplay {
    async fn insert_one_step<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        scope: &Scope,
        fingerprint: Fingerprint,
        new: &R::New,
        now: Timestamp,
    ) -> Result<OneStep<R>, StoreError> {
        Ok(match next.insert_one_step(scope, fingerprint, new, now).await? {
            OneStep::Created(created) => OneStep::Created(self.second_write(created).await),
            OneStep::Replayed(original) if self.is_half_written::<R>(original.id()) => {
                return Err(StoreError::Dangling(original.id()));
            }
            other => other,
        })
    }

    async fn insert_completing<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        lease: &Lease,
        new: &R::New,
        now: Timestamp,
    ) -> Result<R, StoreError> {
        let created = next.insert_completing(lease, new, now).await?;
        Ok(self.second_write(created).await)
    }

    async fn get<R: Resource>(&self, next: &dyn Resources<R>, org: i64, id: i64) -> Result<Option<R>, StoreError> {
        if self.is_half_written::<R>(id) {
            return Ok(None);
        }
        next.get(org, id).await
    }
}
