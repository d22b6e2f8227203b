//! The idempotency machinery, generic over the endpoint. A handler with a
//! key names its scope (organisation, user, endpoint, key), fingerprints
//! its normalised payload and calls [`Idempotency::begin`], which answers
//! what to do next:
//!
//! ```text
//! match idempotency.begin(resources, &scope, fingerprint, &new).await? {
//!     Begun::Created(resource) => 201,       // the one-step path created it
//!     Begun::Replayed(resource) => 200,      // an earlier request did
//!     Begun::Claimed(claim) => 201 with claim.complete(resources, &new).await?,
//! }
//! ```
//!
//! `begin` first takes the one-step path ([`Resources::insert_one_step`]):
//! for a key with no record the resource and the key's completed record
//! commit together, and a completed key is replayed without a claim. Any
//! other key goes the long way: claim the scope, and turn every other state
//! of the key into a replay, a mismatch or a wait. A [`Claim`] is the key
//! held by this request; completing it inserts the resource atomically with
//! the key's completion, and dropping it unfinished releases the key.
//!
//! Callers must not be cancelled half-way by a client hanging up, or a
//! claim would be orphaned until its lease ends: the creation routes run
//! detached from their connection (`http::detached`), so a retry replays
//! the result instead.

mod claim;
#[cfg(test)]
mod counting_tests;
mod policy;

use std::sync::Arc;
use std::time::Duration;

use idemproof_models::{Fingerprint, LeaseToken, Scope};
use tokio::time::Instant;

pub use self::claim::Claim;
pub use self::policy::{InFlightMode, MismatchMode, Policy};
use crate::clock::Clock;
use crate::metrics::{Metrics, WaitEnd};
use crate::store::{ChangeSignal, ClaimOutcome, KeyStore, Lease, OneStep, Resource, Resources, StoreError};

/// First and largest pause between polls of an in-flight key whose owner
/// may be another process and whose store cannot notify.
const POLL_FIRST: Duration = Duration::from_millis(5);
const POLL_MAX: Duration = Duration::from_millis(100);
/// The longest a duplicate trusts a store's notification before it looks
/// again: a notification lost with a database connection would otherwise
/// hold it until the owner's lease or its own wait ends.
const NOTIFY_BACKSTOP: Duration = Duration::from_secs(1);

/// What [`Idempotency::begin`] found for a request.
pub enum Begun<R> {
    /// The key was new: the one-step path created `R` and completed the key.
    Created(R),
    /// An earlier request with the same key and payload created `R`.
    Replayed(R),
    /// This request holds the key now and must complete it.
    Claimed(Claim),
}

/// A successful idempotent request.
#[derive(Debug)]
pub enum Executed<R> {
    /// This request created the resource.
    Created(R),
    /// An earlier request with the same key did; this is its result.
    Replayed(R),
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

/// Runs idempotent requests over one key store.
#[derive(Clone)]
pub struct Idempotency {
    /// Where keys live.
    keys: Arc<dyn KeyStore>,
    /// Source of claim timestamps.
    clock: Arc<dyn Clock>,
    /// Duplicate handling.
    policy: Policy,
    /// Where waits for an in-flight original are recorded, if anywhere.
    metrics: Option<Arc<Metrics>>,
}

impl Idempotency {
    /// Machinery over `keys`.
    pub fn new(keys: Arc<dyn KeyStore>, clock: Arc<dyn Clock>, policy: Policy) -> Self {
        Self {
            keys,
            clock,
            policy,
            metrics: None,
        }
    }

    /// The same machinery, recording in `metrics` how long duplicates
    /// wait for their in-flight original.
    pub fn observed(self, metrics: Arc<Metrics>) -> Self {
        Self {
            metrics: Some(metrics),
            ..self
        }
    }

    /// Starts a request carrying a key: creates `new` in one step if the
    /// key is new, finds the earlier result if there is one (waiting for an
    /// in-flight original as the policy says), or claims the key for this
    /// request.
    pub async fn begin<R: Resource>(
        &self,
        resources: &dyn Resources<R>,
        scope: &Scope,
        fingerprint: Fingerprint,
        new: &R::New,
    ) -> Result<Begun<R>, Refused> {
        // A key with no record: one atomic write, no claim ever visible. A
        // failure here wrote nothing, so there is nothing to release.
        match resources
            .insert_one_step(scope, fingerprint, new, self.clock.now())
            .await?
        {
            OneStep::Created(created) => return Ok(Begun::Created(created)),
            OneStep::Replayed(original) => return Ok(Begun::Replayed(original)),
            OneStep::Taken => {}
        }
        let mut waited = None;
        let begun = self.the_long_way(resources, scope, fingerprint, &mut waited).await;
        if let (Some(since), Some(metrics)) = (waited, &self.metrics) {
            let end = match &begun {
                Ok(Begun::Replayed(_)) => WaitEnd::Replayed,
                Ok(Begun::Claimed(_) | Begun::Created(_)) => WaitEnd::Claimed,
                Err(Refused::InFlight) => WaitEnd::GaveUp,
                Err(Refused::Mismatch) => WaitEnd::Mismatch,
                Err(Refused::Store(_)) => WaitEnd::Error,
            };
            metrics.operational.duplicate_waited(since.elapsed(), end);
        }
        begun
    }

    /// Claims the key, or turns its state into a replay, a mismatch or a
    /// wait; `waited` is set when the first wait for an in-flight
    /// original begins.
    async fn the_long_way<R: Resource>(
        &self,
        resources: &dyn Resources<R>,
        scope: &Scope,
        fingerprint: Fingerprint,
        waited: &mut Option<Instant>,
    ) -> Result<Begun<R>, Refused> {
        let deadline = Instant::now() + self.policy.wait;
        let mut poll = POLL_FIRST;
        loop {
            let token = LeaseToken::random();
            let now = self.clock.now();
            let (lease_expires_at, change) = match self.keys.claim(scope, fingerprint, token, now).await? {
                ClaimOutcome::Acquired => {
                    let lease = Lease {
                        scope: scope.clone(),
                        token,
                    };
                    return Ok(Begun::Claimed(Claim::new(self.keys.clone(), self.clock.clone(), lease)));
                }
                ClaimOutcome::Replay(id) => return replay(resources, scope, id).await,
                ClaimOutcome::Mismatch { original } => match (self.policy.mismatch, original) {
                    (MismatchMode::Reject, _) => return Err(Refused::Mismatch),
                    (MismatchMode::Replay, Some(id)) => return replay(resources, scope, id).await,
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
            waited.get_or_insert_with(Instant::now);
            match change {
                // Wake on the owner's change, on its lease running out (a
                // new claim then takes the key over), at our deadline, or
                // at the backstop.
                ChangeSignal::Notified(changed) => {
                    let lease_left = (lease_expires_at - now).to_std().unwrap_or(Duration::ZERO);
                    let until = deadline.min(Instant::now() + lease_left.min(NOTIFY_BACKSTOP));
                    let _ = tokio::time::timeout_at(until, changed).await;
                }
                ChangeSignal::Poll => {
                    tokio::time::sleep_until(deadline.min(Instant::now() + poll)).await;
                    poll = (poll * 2).min(POLL_MAX);
                }
            }
        }
    }
}

/// The resource an earlier request created, in the scope's organisation.
async fn replay<R: Resource>(resources: &dyn Resources<R>, scope: &Scope, id: i64) -> Result<Begun<R>, Refused> {
    match resources.get(scope.organization_id, id).await? {
        Some(found) => Ok(Begun::Replayed(found)),
        None => Err(Refused::Store(StoreError::Dangling(id))),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use idemproof_models::{Fingerprint, IdempotencyKey, LeaseToken, Scope, Terms};
    use serde_json::json;

    use super::*;
    use crate::clock::ManualClock;
    use crate::domain::agent::{Agent, CreateEnvelope, NewAgent};
    use crate::store::memory::MemoryStore;

    /// A memory store whose key `k` holds an abandoned claim, and a
    /// request for it: the one-step path refuses (there is a record), so
    /// `begin` takes the key over and hands the claim to the caller.
    async fn claimed() -> (Arc<MemoryStore>, Scope, Claim, NewAgent) {
        let memory = Arc::new(MemoryStore::new(Terms::default()));
        let clock = Arc::new(ManualClock::new());
        let stores = memory.stores();
        let spec = CreateEnvelope::from_json(&json!({"name": "Bot"})).expect("valid").spec;
        let scope = Scope {
            organization_id: 1,
            user_id: 1,
            endpoint: "POST /things".into(),
            key: IdempotencyKey::parse("k").expect("key"),
        };
        let fingerprint: Fingerprint = spec.fingerprint();
        let dead = stores
            .keys
            .claim(&scope, fingerprint, LeaseToken::random(), clock.now())
            .await
            .expect("claim");
        assert!(matches!(dead, ClaimOutcome::Acquired));
        clock.advance(std::time::Duration::from_secs(31));
        let policy = Policy {
            wait: Duration::from_secs(1),
            in_flight: InFlightMode::Reject,
            mismatch: MismatchMode::Reject,
        };
        let machinery = Idempotency::new(stores.keys.clone(), clock, policy);
        let new = NewAgent {
            organization_id: 1,
            user_id: 1,
            idempotency_key: Some("k".into()),
            spec,
        };
        let Ok(Begun::Claimed(claim)) = machinery.begin(&*stores.agents, &scope, fingerprint, &new).await else {
            panic!("the abandoned claim is taken over");
        };
        assert_eq!(claim.lease().scope, scope);
        (memory, scope, claim, new)
    }

    #[tokio::test]
    async fn a_claim_completes_with_its_resource() {
        let (memory, scope, claim, new) = claimed().await;
        let agent = claim.complete(&*memory.stores().agents, &new).await.expect("complete");
        let record = memory.claims().record(&scope).expect("a record");
        assert_eq!(record.state, idemproof_models::KeyState::Completed { result: agent.id });
        assert_eq!(memory.table::<Agent>().all(), [agent]);
    }

    #[tokio::test]
    async fn a_claim_released_or_dropped_frees_the_key_at_once() {
        let (memory, scope, claim, _) = claimed().await;
        claim.release().await;
        assert!(memory.claims().record(&scope).is_none(), "released");

        let (memory, scope, claim, _) = claimed().await;
        drop(claim);
        // The release runs as a task of its own: let it.
        for _ in 0..100 {
            if memory.claims().record(&scope).is_none() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(memory.claims().record(&scope).is_none(), "released on drop");
        assert!(memory.table::<Agent>().all().is_empty(), "nothing created");
    }
}
