//! Tests: how `begin` waits for an in-flight original and how a claim leaves the
//! key store once it is done, seen through a key store that counts the
//! calls it gets (the answers alone would not tell a busy loop from a
//! sleep, nor a needless release from none).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use idemproof_models::{Fingerprint, IdempotencyKey, KeyState, LeaseToken, Scope, Terms, Timestamp};
use serde_json::json;

use super::*;
use crate::clock::ManualClock;
use crate::domain::agent::{Agent, CreateEnvelope, NewAgent};
use crate::readiness::Probe;
use crate::store::memory::MemoryStore;

/// The in-memory store, counting claims and releases; with `poll` it
/// cannot notify, like a store whose owner may be another process.
struct Counting {
    inner: Arc<MemoryStore>,
    poll: bool,
    claims: AtomicUsize,
    releases: AtomicUsize,
}

#[async_trait]
impl KeyStore for Counting {
    async fn claim(
        &self,
        scope: &Scope,
        fingerprint: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        self.claims.fetch_add(1, Ordering::SeqCst);
        Ok(match self.inner.claim(scope, fingerprint, token, now).await? {
            ClaimOutcome::InFlight { lease_expires_at, .. } if self.poll => ClaimOutcome::InFlight {
                lease_expires_at,
                change: ChangeSignal::Poll,
            },
            outcome => outcome,
        })
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.releases.fetch_add(1, Ordering::SeqCst);
        self.inner.release(lease).await
    }

    async fn reap_expired(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        self.inner.reap_expired(now, limit).await
    }

    async fn probe_write(&self, now: Timestamp, patience: Duration) -> Probe {
        self.inner.probe_write(now, patience).await
    }
}

/// One key `k` of one user, its payload, and the machinery over a
/// counting store.
struct Fixture {
    memory: Arc<MemoryStore>,
    keys: Arc<Counting>,
    clock: Arc<ManualClock>,
    scope: Scope,
    fingerprint: Fingerprint,
    new: NewAgent,
}

impl Fixture {
    fn new(poll: bool) -> Self {
        let memory = Arc::new(MemoryStore::new(Terms::default()));
        let keys = Arc::new(Counting {
            inner: memory.clone(),
            poll,
            claims: AtomicUsize::new(0),
            releases: AtomicUsize::new(0),
        });
        let spec = CreateEnvelope::from_json(&json!({"name": "Bot"})).expect("valid").spec;
        let scope = Scope {
            organization_id: 1,
            user_id: 1,
            endpoint: "POST /things".into(),
            key: IdempotencyKey::parse("k").expect("key"),
        };
        let fingerprint = spec.fingerprint();
        let new = NewAgent {
            organization_id: 1,
            user_id: 1,
            idempotency_key: Some("k".into()),
            spec,
        };
        Self {
            memory,
            keys,
            clock: Arc::new(ManualClock::new()),
            scope,
            fingerprint,
            new,
        }
    }

    fn machinery(&self, in_flight: InFlightMode, wait: Duration) -> Idempotency {
        let policy = Policy {
            wait,
            in_flight,
            mismatch: MismatchMode::Reject,
        };
        Idempotency::new(self.keys.clone(), self.clock.clone(), policy)
    }

    /// Another request claims the key now (not through the counting
    /// store) and never finishes.
    async fn held_by_another(&self) -> LeaseToken {
        let token = LeaseToken::random();
        let outcome = self
            .memory
            .claim(&self.scope, self.fingerprint, token, self.clock.now())
            .await
            .expect("claim");
        assert!(matches!(outcome, ClaimOutcome::Acquired));
        token
    }

    async fn begin(&self, machinery: &Idempotency) -> Result<Begun<Agent>, Refused> {
        let agents = self.memory.stores().agents;
        // Only a guard against hanging: every case here ends well within it.
        tokio::time::timeout(
            Duration::from_secs(60),
            machinery.begin(&*agents, &self.scope, self.fingerprint, &self.new),
        )
        .await
        .expect("begin ends by its deadline")
    }

    fn claims(&self) -> usize {
        self.keys.claims.load(Ordering::SeqCst)
    }

    fn releases(&self) -> usize {
        self.keys.releases.load(Ordering::SeqCst)
    }

    /// Lets spawned tasks (a dropped claim's release) run.
    async fn settle() {
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
    }
}

#[tokio::test]
async fn a_duplicate_sleeps_until_the_owner_changes_or_its_wait_ends() {
    let f = Fixture::new(false);
    f.held_by_another().await;
    // The owner's lease has 30 s left, the wait 200 ms: nothing changes.
    let machinery = f.machinery(InFlightMode::Wait, Duration::from_millis(200));
    assert!(matches!(f.begin(&machinery).await, Err(Refused::InFlight)));
    assert_eq!(
        f.claims(),
        2,
        "one claim before the wait, one at its end, none in between"
    );
}

#[tokio::test]
async fn in_reject_mode_a_duplicate_is_refused_without_waiting() {
    let f = Fixture::new(false);
    f.held_by_another().await;
    let machinery = f.machinery(InFlightMode::Reject, Duration::from_secs(30));
    assert!(matches!(f.begin(&machinery).await, Err(Refused::InFlight)));
    assert_eq!(f.claims(), 1);
}

#[tokio::test]
async fn a_duplicate_polls_a_store_that_cannot_notify_with_a_growing_pause() {
    let f = Fixture::new(true);
    f.held_by_another().await;
    let machinery = f.machinery(InFlightMode::Wait, Duration::from_millis(200));
    assert!(matches!(f.begin(&machinery).await, Err(Refused::InFlight)));
    // Pauses of 5, 10, 20, 40 and 80 ms, then the rest of the wait: seven
    // claims at most (fewer if the machine is slow), two at least.
    let claims = f.claims();
    assert!((2..=7).contains(&claims), "{claims} claims");
}

#[tokio::test]
async fn a_completed_claim_leaves_the_key_store_alone() {
    let f = Fixture::new(false);
    // An abandoned claim: the one-step path refuses, `begin` takes it over.
    f.held_by_another().await;
    f.clock.advance(Duration::from_secs(31));
    let machinery = f.machinery(InFlightMode::Reject, Duration::from_secs(1));
    let Ok(Begun::Claimed(claim)) = f.begin(&machinery).await else {
        panic!("the abandoned claim is taken over");
    };
    let agent = claim
        .complete(&*f.memory.stores().agents, &f.new)
        .await
        .expect("complete");
    Fixture::settle().await;
    assert_eq!(f.releases(), 0, "nothing to release");
    let record = f.memory.claims().record(&f.scope).expect("a record");
    assert_eq!(record.state, KeyState::Completed { result: agent.id });
}

#[tokio::test]
async fn a_claim_taken_over_answers_in_flight_and_leaves_the_new_owner_alone() {
    let f = Fixture::new(false);
    f.held_by_another().await;
    f.clock.advance(Duration::from_secs(31));
    let machinery = f.machinery(InFlightMode::Reject, Duration::from_secs(1));
    let Ok(Begun::Claimed(claim)) = f.begin(&machinery).await else {
        panic!("the abandoned claim is taken over");
    };
    // This claim stalls past its own lease, and a retry takes the key.
    f.clock.advance(Duration::from_secs(31));
    let retry = f.held_by_another().await;
    let answer = claim.complete(&*f.memory.stores().agents, &f.new).await;
    assert!(matches!(answer, Err(Refused::InFlight)), "{answer:?}");
    Fixture::settle().await;
    assert_eq!(f.releases(), 0, "the key is the retry's now");
    let record = f.memory.claims().record(&f.scope).expect("a record");
    assert_eq!(record.token(), Some(retry));
    assert!(f.memory.table::<Agent>().all().is_empty(), "nothing created");
}
