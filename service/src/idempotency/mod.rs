//! The idempotency machinery, generic over the endpoint. Every key first
//! takes the one-step path: for a new key the endpoint's write and the
//! key's completed record commit together; a completed key is replayed
//! without a claim. Any other key goes the long way: claim the scope, run
//! the endpoint's create step under the claim, and turn every other state
//! of the key into a replay, a mismatch or a wait. An endpoint adopts it by
//! naming its scope, fingerprinting its normalised payload and passing
//! three closures (see `http::agents::create`).

mod release_guard;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use idemproof_models::{Fingerprint, LeaseToken, Scope};
use tokio::time::Instant;

use self::release_guard::ReleaseGuard;
use crate::clock::Clock;
use crate::config::{InFlightMode, MismatchMode};
use crate::store::{ChangeSignal, ClaimOutcome, Fresh, Lease, Store, StoreError};

/// First and largest pause between polls of an in-flight key whose owner
/// may be another process (the Postgres store cannot notify).
const POLL_FIRST: Duration = Duration::from_millis(5);
const POLL_MAX: Duration = Duration::from_millis(100);

/// How the machinery treats duplicates.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Longest a duplicate waits for an in-flight original.
    pub wait: Duration,
    /// Wait for in-flight originals, or refuse at once.
    pub in_flight: InFlightMode,
    /// Refuse a reused key with another payload, or replay the original.
    pub mismatch: MismatchMode,
}

/// A successful idempotent request.
#[derive(Debug)]
pub enum Executed<T> {
    /// This request did the work.
    Created(T),
    /// An earlier request with the same key did; this is its result.
    Replayed(T),
}

/// Why an idempotent request did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The key was used with another payload (422).
    #[error("idempotency key reused with a different payload")]
    Mismatch,
    /// Another request with this key is still running (409).
    #[error("a request with this idempotency key is in flight")]
    InFlight,
    /// The store failed (503); any claim taken was released.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs idempotent requests against one store.
#[derive(Clone)]
pub struct Idempotency {
    /// Where keys live.
    store: Arc<dyn Store>,
    /// Source of claim timestamps.
    clock: Arc<dyn Clock>,
    /// Duplicate handling.
    policy: Policy,
}

impl Idempotency {
    /// Machinery over `store`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, policy: Policy) -> Self {
        Self { store, clock, policy }
    }

    /// Runs one request carrying a key. `fresh` is the one-step path (see
    /// [`Store::create_agent_fresh`]; an endpoint without one passes a
    /// closure answering `Ok(Fresh::Taken)`); `create` does
    /// the work under a claim and must complete it atomically with its own
    /// write (see [`Store::create_agent`]); `load` fetches the result of an
    /// earlier request by resource id for a replay.
    ///
    /// The request runs as its own task, detached from the connection: if
    /// the client gives up (a timeout, a closed tab) the work still runs to
    /// its end, so the client's retry finds a result to replay rather than
    /// a claim orphaned half-way (which would block the key for a lease).
    pub async fn execute<T, F, FF, C, CF, L, LF>(
        &self,
        scope: Scope,
        fingerprint: Fingerprint,
        fresh: F,
        create: C,
        load: L,
    ) -> Result<Executed<T>, Refused>
    where
        T: Send + 'static,
        F: FnOnce(Scope) -> FF + Send + 'static,
        FF: Future<Output = Result<Fresh<T>, StoreError>> + Send + 'static,
        C: FnOnce(Lease) -> CF + Send + 'static,
        CF: Future<Output = Result<T, StoreError>> + Send + 'static,
        L: FnOnce(i64) -> LF + Send + 'static,
        LF: Future<Output = Result<Option<T>, StoreError>> + Send + 'static,
    {
        let this = self.clone();
        tokio::spawn(async move { this.run(scope, fingerprint, fresh, create, load).await })
            .await
            .unwrap_or_else(|e| Err(Refused::Store(StoreError::unavailable(e))))
    }

    async fn run<T, F, FF, C, CF, L, LF>(
        &self,
        scope: Scope,
        fingerprint: Fingerprint,
        fresh: F,
        create: C,
        load: L,
    ) -> Result<Executed<T>, Refused>
    where
        F: FnOnce(Scope) -> FF,
        FF: Future<Output = Result<Fresh<T>, StoreError>>,
        C: FnOnce(Lease) -> CF,
        CF: Future<Output = Result<T, StoreError>>,
        L: FnOnce(i64) -> LF,
        LF: Future<Output = Result<Option<T>, StoreError>>,
    {
        // A new key: one atomic write, no claim ever visible. A failure here
        // wrote nothing, so there is nothing to release.
        match fresh(scope.clone()).await? {
            Fresh::Created(created) => return Ok(Executed::Created(created)),
            Fresh::Replayed(original) => return Ok(Executed::Replayed(original)),
            Fresh::Taken => {}
        }
        let deadline = Instant::now() + self.policy.wait;
        let mut poll = POLL_FIRST;
        loop {
            let token = LeaseToken::random();
            let now = self.clock.now();
            let outcome = self.store.claim(&scope, fingerprint, token, now).await?;
            let (lease_expires_at, change) = match outcome {
                ClaimOutcome::Acquired => {
                    return self.run_claimed(Lease { scope, token }, create).await;
                }
                ClaimOutcome::Replay(id) => return replay(id, load).await,
                ClaimOutcome::Mismatch { original } => match (self.policy.mismatch, original) {
                    (MismatchMode::Reject, _) => return Err(Refused::Mismatch),
                    (MismatchMode::Replay, Some(id)) => return replay(id, load).await,
                    // Replay mode with nothing to replay yet: the original
                    // is in flight, so wait for it like a duplicate would.
                    (MismatchMode::Replay, None) => (now, ChangeSignal::Poll),
                },
                ClaimOutcome::InFlight {
                    lease_expires_at,
                    change,
                } => (lease_expires_at, change),
            };
            if self.policy.in_flight == InFlightMode::Reject || Instant::now() >= deadline {
                return Err(Refused::InFlight);
            }
            match change {
                // Wake on the owner's change, on its lease running out (a
                // new claim then takes the key over), or at our deadline.
                ChangeSignal::Notified(changed) => {
                    let lease_left = (lease_expires_at - now).to_std().unwrap_or(Duration::ZERO);
                    let until = deadline.min(Instant::now() + lease_left);
                    let _ = tokio::time::timeout_at(until, changed).await;
                }
                ChangeSignal::Poll => {
                    tokio::time::sleep_until(deadline.min(Instant::now() + poll)).await;
                    poll = (poll * 2).min(POLL_MAX);
                }
            }
        }
    }

    /// Does the work under a fresh claim. If the work fails, or this future
    /// is torn down half-way, the claim is released so a retry can proceed;
    /// failures are never stored.
    async fn run_claimed<T, C, CF>(&self, lease: Lease, create: C) -> Result<Executed<T>, Refused>
    where
        C: FnOnce(Lease) -> CF,
        CF: Future<Output = Result<T, StoreError>>,
    {
        let guard = ReleaseGuard::new(self.store.clone(), lease.clone());
        match create(lease).await {
            Ok(created) => {
                guard.disarm();
                Ok(Executed::Created(created))
            }
            // Our lease ran out and another request took the key over: it
            // will produce the one result; a retry will replay it.
            Err(StoreError::LeaseLost) => {
                guard.disarm();
                Err(Refused::InFlight)
            }
            Err(e) => {
                guard.release().await;
                Err(Refused::Store(e))
            }
        }
    }
}

async fn replay<T, L, LF>(id: i64, load: L) -> Result<Executed<T>, Refused>
where
    L: FnOnce(i64) -> LF,
    LF: Future<Output = Result<Option<T>, StoreError>>,
{
    match load(id).await? {
        Some(found) => Ok(Executed::Replayed(found)),
        None => Err(Refused::Store(StoreError::Dangling(id))),
    }
}
