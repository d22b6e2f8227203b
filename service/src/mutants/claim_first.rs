//! What the broken designs share: most libraries they stand for have no
//! one-step path (every request claims its key, works, then completes),
//! and a claim they decide by reading the record answers a waiting
//! duplicate by polling. A strategy stacks [`ClaimFirst`] over its own
//! layer rather than writing these again.

use std::time::Duration;

use async_trait::async_trait;
use idemproof_models::{Decision, Fingerprint, Scope, Timestamp};

use crate::store::{ChangeSignal, ClaimOutcome, Layer, Lease, OneStep, Resource, Resources, StoreError};

/// The handler's work between a claim and its completion. In memory the
/// two are otherwise microseconds apart, so a race would rarely have a
/// loser, a stalled owner nothing to stall; this stands for the work.
pub(super) const WORK: Duration = Duration::from_millis(5);

/// No one-step path: every request goes through a claim; with `work`,
/// the completing write comes [`WORK`] after it.
pub(super) struct ClaimFirst {
    /// Pause for [`WORK`] before completing.
    pub(super) work: bool,
}

#[async_trait]
impl Layer for ClaimFirst {
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
        if self.work {
            tokio::time::sleep(WORK).await;
        }
        next.insert_completing(lease, new, now).await
    }
}

/// What a claim decided by reading the record answers: `Claim` is
/// `Acquired` (the caller has written its claim), and a duplicate of an
/// in-flight key polls, since nothing tells it when the owner finishes.
pub(super) fn polled(decision: Decision<i64>) -> ClaimOutcome {
    match decision {
        Decision::Claim => ClaimOutcome::Acquired,
        Decision::Replay(id) => ClaimOutcome::Replay(id),
        Decision::Mismatch { original } => ClaimOutcome::Mismatch { original },
        Decision::InFlight { lease_expires_at } => ClaimOutcome::InFlight {
            lease_expires_at,
            change: ChangeSignal::Poll,
        },
    }
}
