//! A claim held by this request: what the long way hands the endpoint when
//! the key is its to complete. The claim releases itself if the request
//! does not finish: the work failed, or the task running it was torn down
//! half-way (a panic, a runtime shutting down). Creation requests are
//! detached from their connection (`http::detached`), so a client hanging
//! up is not one of these.

use std::sync::Arc;

use super::Refused;
use crate::clock::Clock;
use crate::store::{KeyStore, Lease, Resource, Resources, StoreError};

/// This request holds the key: do the work, then [`Claim::complete`] it.
pub struct Claim {
    /// The scope and the token proving ownership.
    lease: Lease,
    /// Timestamps the completion.
    clock: Arc<dyn Clock>,
    /// Releases on drop unless disarmed.
    guard: ReleaseGuard,
}

impl Claim {
    pub(super) fn new(keys: Arc<dyn KeyStore>, clock: Arc<dyn Clock>, lease: Lease) -> Self {
        Self {
            guard: ReleaseGuard(Some((keys, lease.clone()))),
            lease,
            clock,
        }
    }

    /// The claim, for an endpoint that completes it itself.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Inserts the resource and completes the key with it, atomically. If
    /// the insert fails the claim is released, so a retry can proceed:
    /// failures are never stored. If the lease ran out and another request
    /// took the key over, nothing was written and the answer is "in
    /// flight": the new owner produces the one result, a retry replays it.
    pub async fn complete<R: Resource>(self, resources: &dyn Resources<R>, new: &R::New) -> Result<R, Refused> {
        match resources.insert_completing(&self.lease, new, self.clock.now()).await {
            Ok(created) => {
                self.guard.disarm();
                Ok(created)
            }
            Err(StoreError::LeaseLost) => {
                self.guard.disarm();
                Err(Refused::InFlight)
            }
            Err(e) => {
                self.guard.release().await;
                Err(Refused::Store(e))
            }
        }
    }

    /// Gives the key up at once: the endpoint's work failed before the
    /// insert. (Dropping the claim does the same, in the background.)
    pub async fn release(self) {
        self.guard.release().await;
    }
}

/// Releases its lease on drop unless disarmed; `None` once disarmed or
/// released.
struct ReleaseGuard(Option<(Arc<dyn KeyStore>, Lease)>);

impl ReleaseGuard {
    /// The claim was completed (or is no longer ours): nothing to release.
    fn disarm(mut self) {
        self.0 = None;
    }

    /// Releases now and waits for it. A failed release is logged: the
    /// lease bounds how long the key stays blocked.
    async fn release(mut self) {
        if let Some((keys, lease)) = self.0.take() {
            release_logged(keys, lease).await;
        }
    }
}

impl Drop for ReleaseGuard {
    fn drop(&mut self) {
        if let Some((keys, lease)) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(release_logged(keys, lease));
        }
    }
}

async fn release_logged(keys: Arc<dyn KeyStore>, lease: Lease) {
    if let Err(e) = keys.release(&lease).await {
        tracing::warn!(
            error = %e,
            organization_id = lease.scope.organization_id,
            user_id = lease.scope.user_id,
            endpoint = %lease.scope.endpoint,
            key = %lease.scope.key,
            "could not release an idempotency claim; it expires with its lease"
        );
    }
}
