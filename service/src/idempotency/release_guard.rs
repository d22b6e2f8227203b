//! Releases a claim whose request did not finish: the work failed, or
//! the task running it was torn down half-way (a panic, a runtime shutting
//! down). Requests are detached from their connection, so a client hanging
//! up is not one of these.

use std::sync::Arc;

use crate::store::{Lease, Store};

/// Releases `lease` on drop unless disarmed.
pub(super) struct ReleaseGuard {
    /// `None` once disarmed or released.
    armed: Option<(Arc<dyn Store>, Lease)>,
}

impl ReleaseGuard {
    pub(super) fn new(store: Arc<dyn Store>, lease: Lease) -> Self {
        Self {
            armed: Some((store, lease)),
        }
    }

    /// The claim was completed (or is no longer ours): nothing to release.
    pub(super) fn disarm(mut self) {
        self.armed = None;
    }

    /// Releases now and waits for it. A failed release is logged: the
    /// lease bounds how long the key stays blocked.
    pub(super) async fn release(mut self) {
        if let Some((store, lease)) = self.armed.take() {
            release_logged(store, lease).await;
        }
    }
}

impl Drop for ReleaseGuard {
    fn drop(&mut self) {
        if let Some((store, lease)) = self.armed.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(release_logged(store, lease));
        }
    }
}

async fn release_logged(store: Arc<dyn Store>, lease: Lease) {
    if let Err(e) = store.release(&lease).await {
        tracing::warn!(
            error = %e,
            organization_id = lease.scope.organization_id,
            user_id = lease.scope.user_id,
            key = %lease.scope.key,
            "could not release an idempotency claim; it expires with its lease"
        );
    }
}
