//! Waking duplicates that wait for an in-flight key, in every process at
//! once: the statements that end a claim (completing it, releasing it)
//! call `pg_notify` on [`CHANNEL`] with the key's [`tag`], which Postgres
//! delivers at commit to every session listening, so to every replica's
//! listener. Each store keeps one listening connection and the waiters of
//! this process by tag.
//!
//! A waiter registers before the claim's read, so no commit can fall
//! between the read that found the key in flight and the registration: a
//! commit before the read shows in the read, one after it is notified.
//! Notifications can still be lost while the listening connection is
//! down; every waiter is woken when that is noticed (a woken waiter only
//! claims again), and the wait has a backstop of its own
//! (`idempotency::NOTIFY_BACKSTOP`). Only the claim path notifies: a key
//! created in one step has no claim anyone could wait on, so the common
//! path pays nothing (NOTIFY serialises commits on a global lock).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use idemproof_models::Scope;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::health::SessionLosses;

/// The channel every store notifies and listens on.
pub(super) const CHANNEL: &str = "idemproof_keys";

/// The payload naming `scope`: its four parts, spaced. Two scopes could
/// only share one if an endpoint held a space-separated suffix of a key;
/// a shared tag wakes a waiter for nothing, which is harmless.
pub(super) fn tag(scope: &Scope) -> String {
    format!(
        "{} {} {} {}",
        scope.organization_id,
        scope.user_id,
        scope.endpoint,
        scope.key.as_str()
    )
}

/// Waiters by tag.
#[derive(Default)]
pub(super) struct Waiters {
    by_tag: Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>,
}

impl Waiters {
    /// A signal fired when `tag`'s claim ends (or when notifications may
    /// have been lost).
    pub(super) fn register(&self, tag: &str) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        lock(&self.by_tag).entry(tag.to_owned()).or_default().push(tx);
        rx
    }

    /// Drops the signals of `tag` nobody waits on any more.
    pub(super) fn forget(&self, tag: &str) {
        let mut by_tag = lock(&self.by_tag);
        if let Some(waiting) = by_tag.get_mut(tag) {
            waiting.retain(|tx| !tx.is_closed());
            if waiting.is_empty() {
                by_tag.remove(tag);
            }
        }
    }

    fn wake(&self, tag: &str) {
        let woken = lock(&self.by_tag).remove(tag);
        for tx in woken.into_iter().flatten() {
            let _ = tx.send(());
        }
    }

    fn wake_all(&self) {
        let woken = std::mem::take(&mut *lock(&self.by_tag));
        for tx in woken.into_values().flatten() {
            let _ = tx.send(());
        }
    }
}

fn lock<T>(map: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every change is one insert or removal: a poisoned map is intact.
    map.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The listening connection's task; it ends when the last store handle
/// holding it drops.
pub(super) struct Listening(JoinHandle<()>);

impl Drop for Listening {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts listening on the database of `options` for `waiters`, on a
/// connection of its own (not one of the pool's, which would hold a slot
/// forever); returns once the `LISTEN` is in place, so that every later
/// claim is covered.
pub(super) async fn listen(
    options: &PgConnectOptions,
    waiters: &Arc<Waiters>,
    losses: &Arc<SessionLosses>,
) -> Result<Listening, sqlx::Error> {
    // A pool of one, for its reconnection: the listener opens the
    // connection again through it when it is lost.
    let own = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_with(options.clone())
        .await?;
    let mut listener = PgListener::connect_with(&own).await?;
    listener.listen(CHANNEL).await?;
    let waiters: Weak<Waiters> = Arc::downgrade(waiters);
    let losses = Arc::clone(losses);
    Ok(Listening(tokio::spawn(async move {
        loop {
            let received = listener.try_recv().await;
            let Some(waiters) = waiters.upgrade() else {
                return;
            };
            // The connection was lost (it is opened again, and the channel
            // listened to, on the next call): anything may have been
            // missed. The server dropped a session of ours, so others may
            // be dead too (`health.rs`).
            let lost = || {
                losses.heard();
                waiters.wake_all();
            };
            match received {
                Ok(Some(notification)) => waiters.wake(notification.payload()),
                Ok(None) => lost(),
                Err(e) => {
                    tracing::warn!(error = %e, "the key notification listener failed; retrying");
                    lost();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_reaches_every_waiter_of_its_tag_and_only_them() {
        let waiters = Waiters::default();
        let mut a1 = waiters.register("a");
        let mut a2 = waiters.register("a");
        let mut b = waiters.register("b");
        waiters.wake("a");
        assert!(a1.try_recv().is_ok() && a2.try_recv().is_ok());
        assert!(b.try_recv().is_err(), "b is still waiting");
        waiters.wake_all();
        assert!(b.try_recv().is_ok());
        assert!(lock(&waiters.by_tag).is_empty());
    }

    /// A tag per scope: a completion wakes the waiters of its own key,
    /// not every waiter of the process.
    #[test]
    fn scopes_that_differ_in_any_part_have_their_own_tags() {
        let scope = |organization_id, user_id, endpoint: &str, key: &str| Scope {
            organization_id,
            user_id,
            endpoint: endpoint.into(),
            key: idemproof_models::IdempotencyKey::parse(key).expect("key"),
        };
        let base = scope(1, 2, "POST /a", "k");
        assert_eq!(tag(&base), tag(&scope(1, 2, "POST /a", "k")));
        let others = [
            scope(9, 2, "POST /a", "k"),
            scope(1, 9, "POST /a", "k"),
            scope(1, 2, "POST /b", "k"),
            scope(1, 2, "POST /a", "j"),
        ];
        for other in &others {
            assert_ne!(tag(&base), tag(other), "{other:?}");
        }
    }

    #[test]
    fn every_notifying_statement_names_the_channel() {
        assert!(super::super::queries::RELEASE.contains(&format!("pg_notify('{CHANNEL}'")));
    }

    #[test]
    fn a_waiter_that_gave_up_is_forgotten() {
        let waiters = Waiters::default();
        let gone = waiters.register("a");
        let kept = waiters.register("a");
        drop(gone);
        waiters.forget("a");
        assert_eq!(lock(&waiters.by_tag)["a"].len(), 1);
        drop(kept);
        waiters.forget("a");
        assert!(lock(&waiters.by_tag).is_empty());
    }
}
