//! `torn-replay`: the stored response is written in two steps, the
//! key's record first and what it names second, and each step commits on
//! its own. A replay that lands between them finds a completed key whose
//! result is not there yet and answers 500 (the service's answer to a
//! record pointing at nothing). Real bug: an ASGI idempotency
//! middleware's Redis backend (body and status in two writes), seen
//! answering 500.
//!
//! Emulated over the correct stores: for a while after a creation
//! committed (its first write), its key counts as half written, and the
//! creating request answers only once that second write is done. A
//! replay reads the key in two steps too (the record, then what it
//! names), so one that finds the key half written at its second read
//! fails as a record pointing at nothing would. The window is per
//! process: a replay served by another replica does not see it.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use idemproof_models::{Fingerprint, LeaseToken, Scope, Timestamp};

use crate::store::{ClaimOutcome, KeyStore, Layer, Lease, OneStep, Resource, Resources, StoreError};

/// Between the two writes: the second write's round trip and the work
/// between them, as on a loaded server.
const BETWEEN_WRITES: Duration = Duration::from_millis(20);

/// Between a replay's two reads: one round trip.
const BETWEEN_READS: Duration = Duration::from_millis(2);

#[derive(Default)]
pub(super) struct TornReplay {
    /// Keys whose record may be written while the second write is not.
    torn: Mutex<HashSet<Scope>>,
}

impl TornReplay {
    fn torn(&self) -> MutexGuard<'_, HashSet<Scope>> {
        self.torn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The second write of a creation of `scope`: done a while later.
    async fn second_write(&self, scope: &Scope) {
        self.torn().insert(scope.clone());
        tokio::time::sleep(BETWEEN_WRITES).await;
        self.torn().remove(scope);
    }

    /// The second read of a replay of `scope`, naming `id`.
    async fn second_read(&self, scope: &Scope, id: i64) -> Result<(), StoreError> {
        tokio::time::sleep(BETWEEN_READS).await;
        match self.torn().contains(scope) {
            true => Err(StoreError::Dangling(id)),
            false => Ok(()),
        }
    }
}

#[async_trait]
impl Layer for TornReplay {
    async fn claim(
        &self,
        next: &dyn KeyStore,
        scope: &Scope,
        fingerprint: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        let outcome = next.claim(scope, fingerprint, token, now).await?;
        if let ClaimOutcome::Replay(id) = outcome {
            self.second_read(scope, id).await?;
        }
        Ok(outcome)
    }

    async fn insert_one_step<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        scope: &Scope,
        fingerprint: Fingerprint,
        new: &R::New,
        now: Timestamp,
    ) -> Result<OneStep<R>, StoreError> {
        let done = next.insert_one_step(scope, fingerprint, new, now).await?;
        match &done {
            OneStep::Created(_) => self.second_write(scope).await,
            OneStep::Replayed(original) => self.second_read(scope, original.id()).await?,
            OneStep::Taken => {}
        }
        Ok(done)
    }

    async fn insert_completing<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        lease: &Lease,
        new: &R::New,
        now: Timestamp,
    ) -> Result<R, StoreError> {
        let created = next.insert_completing(lease, new, now).await?;
        self.second_write(&lease.scope).await;
        Ok(created)
    }
}
