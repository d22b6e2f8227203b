//! The in-memory store's claim logic: one mutex-protected map from scope to
//! record, where deciding and writing happen under a single lock
//! acquisition. Synchronous and runtime-free so that loom can check it; the
//! async service wraps it (waiting is done through [`Waker`] callbacks).
//!
//! A table may be bounded ([`ClaimTable::bounded`]): it then never holds
//! more than that many records. A key with no record that would go past
//! the bound first makes room by removing dead records (the ones reaping
//! would remove), under the same lock; if every record is alive the key
//! is refused ([`Claim::Full`]). A live record is never dropped to make
//! room, and keys that have a record (replays, mismatches, in-flight
//! duplicates, takeovers of a dead claim) are decided as always.

use std::collections::{BTreeSet, HashMap};

use crate::key::{Fingerprint, LeaseToken, Scope};
use crate::record::{Decision, KeyRecord, KeyState, Terms, Timestamp, decide};
use crate::sync::{Mutex, MutexGuard};

/// Called once when the in-progress record a request is waiting on changes
/// (completed, released, taken over or reaped). Registered under the same
/// lock that decided "in flight", so a completion can never slip in between
/// the decision and the registration: no lost wake-ups.
pub type Waker = Box<dyn FnOnce() + Send>;

/// Outcome of [`ClaimTable::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim<R> {
    /// The caller owns the key and must complete or release it.
    Acquired,
    /// The key completed with the same payload; here is its result.
    Replay(R),
    /// The key was used with another payload.
    Mismatch {
        /// The original result, if it completed.
        original: Option<R>,
    },
    /// Another request owns the key. If a waker was given it is registered.
    InFlight {
        /// When the owner's claim becomes abandoned.
        lease_expires_at: Timestamp,
    },
    /// The key has no record and the table is at its bound with live
    /// records only: nothing was stored.
    Full {
        /// When the first record reaches its expiry, so reaping can make
        /// room (`None` for a table bounded at zero).
        room_at: Option<Timestamp>,
    },
}

/// Why [`ClaimTable::complete`] did not store a result.
#[derive(Debug, PartialEq, Eq)]
pub enum CompleteError<E> {
    /// The caller's claim is gone (its lease expired and the key was taken
    /// over, released or reaped): the work was not run.
    NotOwner,
    /// The work itself failed; the claim is left in place for the caller to
    /// release.
    Work(E),
}

/// Thread-safe table of idempotency records.
pub struct ClaimTable<R> {
    /// Lease and TTL applied to every claim.
    terms: Terms,
    /// Most records held at once.
    max_records: usize,
    /// Records and their expiry index, always changed together.
    inner: Mutex<Inner<R>>,
}

struct Inner<R> {
    /// The records, keyed by scope.
    slots: HashMap<Scope, Slot<R>>,
    /// `(expires_at, scope)` of every record, so reaping visits only the
    /// expired ones instead of scanning the table.
    by_expiry: BTreeSet<(Timestamp, Scope)>,
}

struct Slot<R> {
    record: KeyRecord<R>,
    /// Requests waiting for this in-progress record to change.
    waiters: Vec<Waker>,
}

/// Dead records removed at most per attempt to make room, so a full table
/// of expired keys is emptied in steps rather than under one long lock.
pub const ROOM_REAP_BATCH: usize = 64;

impl<R: Clone> ClaimTable<R> {
    /// An empty, unbounded table.
    pub fn new(terms: Terms) -> Self {
        Self::bounded(terms, usize::MAX)
    }

    /// An empty table holding at most `max_records` records.
    pub fn bounded(terms: Terms, max_records: usize) -> Self {
        Self {
            terms,
            max_records,
            inner: Mutex::new(Inner {
                slots: HashMap::new(),
                by_expiry: BTreeSet::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<R>> {
        // A panic while holding the lock cannot leave a half-written
        // record (every mutation is a single insert/remove), so a poisoned
        // lock is still consistent.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Decides what a request with `fingerprint` gets for `scope` at `now`
    /// and, when the key is free, claims it for `token` in the same
    /// critical section. When the key is in flight and `waker` is given, it
    /// is called once that claim changes.
    pub fn claim(
        &self,
        scope: &Scope,
        fingerprint: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
        waker: Option<Waker>,
    ) -> Claim<R> {
        let mut inner = self.lock();
        let decision = decide(inner.slots.get(scope).map(|s| &s.record), &fingerprint, now);
        let mut woken = Vec::new();
        if matches!(decision, Decision::Claim)
            && !inner.slots.contains_key(scope)
            && !inner.room(now, self.max_records, &mut woken)
        {
            let room_at = inner.by_expiry.first().map(|(expires_at, _)| *expires_at);
            drop(inner);
            wake(woken);
            return Claim::Full { room_at };
        }
        woken.extend(match decision {
            Decision::Claim => {
                let record = KeyRecord::claimed(fingerprint, token, now, self.terms);
                inner.put(scope.clone(), record)
            }
            Decision::InFlight { .. } => {
                if let (Some(w), Some(slot)) = (waker, inner.slots.get_mut(scope)) {
                    slot.waiters.push(w);
                }
                Vec::new()
            }
            Decision::Replay(_) | Decision::Mismatch { .. } => Vec::new(),
        });
        drop(inner);
        wake(woken);
        match decision {
            Decision::Claim => Claim::Acquired,
            Decision::Replay(r) => Claim::Replay(r),
            Decision::Mismatch { original } => Claim::Mismatch { original },
            Decision::InFlight { lease_expires_at } => Claim::InFlight { lease_expires_at },
        }
    }

    /// BROKEN ON PURPOSE: the first half of a check-then-insert claim. It
    /// decides under the lock, then lets go of it; [`Self::insert_claim`]
    /// writes under a second acquisition, so two requests can both see the
    /// key free and both claim it. Only for the loom suite's teeth and the
    /// harness's `split-lock` mutant; never used by the real stores.
    #[cfg(any(loom, feature = "mutants"))]
    pub fn decide_only(&self, scope: &Scope, fingerprint: &Fingerprint, now: Timestamp) -> Decision<R> {
        decide(self.lock().slots.get(scope).map(|s| &s.record), fingerprint, now)
    }

    /// BROKEN ON PURPOSE: the second half of [`Self::decide_only`]; claims
    /// `scope` unconditionally.
    #[cfg(any(loom, feature = "mutants"))]
    pub fn insert_claim(&self, scope: &Scope, fingerprint: Fingerprint, token: LeaseToken, now: Timestamp) {
        let record = KeyRecord::claimed(fingerprint, token, now, self.terms);
        let woken = self.lock().put(scope.clone(), record);
        wake(woken);
    }

    /// The one-step path for a key with no record at all: runs `work` and
    /// stores its result as the key's completed outcome, in one critical
    /// section, so no claim is ever visible. Returns `Ok(None)` without
    /// running `work` if `scope` has any record (even a dead one), or if
    /// the table is full of live records: the caller then goes through
    /// [`Self::claim`], which decides (and answers [`Claim::Full`] for the
    /// latter). `work` runs under the table lock, so it must be short and
    /// must not touch this table.
    pub fn create_one_step<E>(
        &self,
        scope: &Scope,
        fingerprint: Fingerprint,
        now: Timestamp,
        work: impl FnOnce() -> Result<R, E>,
    ) -> Result<Option<R>, E> {
        let mut inner = self.lock();
        if inner.slots.contains_key(scope) {
            return Ok(None);
        }
        let mut woken = Vec::new();
        if !inner.room(now, self.max_records, &mut woken) {
            drop(inner);
            wake(woken);
            return Ok(None);
        }
        let result = match work() {
            Ok(result) => result,
            Err(e) => {
                drop(inner);
                wake(woken);
                return Err(e);
            }
        };
        let record = KeyRecord {
            fingerprint,
            state: KeyState::Completed { result: result.clone() },
            created_at: now,
            expires_at: now + self.terms.ttl,
        };
        // Nobody can be waiting on a scope that had no record.
        woken.extend(inner.put(scope.clone(), record));
        drop(inner);
        wake(woken);
        Ok(Some(result))
    }

    /// If `token` still owns `scope`, runs `work` and stores its result as
    /// the key's outcome, atomically: no other request can observe the key
    /// between the work and the completion, and a caller whose claim was
    /// taken over never runs its work. `work` runs under the table lock, so
    /// it must be short and must not touch this table.
    pub fn complete<E>(
        &self,
        scope: &Scope,
        token: LeaseToken,
        work: impl FnOnce() -> Result<R, E>,
    ) -> Result<R, CompleteError<E>> {
        let mut inner = self.lock();
        let Some(slot) = inner.slots.get_mut(scope) else {
            return Err(CompleteError::NotOwner);
        };
        if slot.record.token() != Some(token) {
            return Err(CompleteError::NotOwner);
        }
        let result = work().map_err(CompleteError::Work)?;
        slot.record.state = KeyState::Completed { result: result.clone() };
        let woken = std::mem::take(&mut slot.waiters);
        drop(inner);
        wake(woken);
        Ok(result)
    }

    /// Gives up the claim `token` holds on `scope` (the work failed, or the
    /// request was cancelled), so that a retry can claim the key at once.
    /// Returns whether there was such a claim.
    pub fn release(&self, scope: &Scope, token: LeaseToken) -> bool {
        let mut inner = self.lock();
        let owned = inner
            .slots
            .get(scope)
            .is_some_and(|slot| slot.record.token() == Some(token));
        if !owned {
            return false;
        }
        let woken = inner.remove(scope);
        drop(inner);
        wake(woken);
        true
    }

    /// Removes up to `limit` records that are dead at `now` (completed and
    /// past their TTL, or abandoned), oldest expiry first. Returns how many
    /// were removed.
    pub fn reap_expired(&self, now: Timestamp, limit: usize) -> usize {
        let mut woken = Vec::new();
        let reaped = self.lock().reap(now, limit, &mut woken);
        wake(woken);
        reaped
    }

    /// Whether a key with no record could be stored at `now`, after making
    /// room by removing dead records if the table is at its bound.
    pub fn has_room(&self, now: Timestamp) -> bool {
        let mut woken = Vec::new();
        let room = self.lock().room(now, self.max_records, &mut woken);
        wake(woken);
        room
    }

    /// A copy of the record stored for `scope`, dead or alive.
    pub fn record(&self, scope: &Scope) -> Option<KeyRecord<R>> {
        self.lock().slots.get(scope).map(|s| s.record.clone())
    }

    /// Number of stored records, dead ones included until reaped.
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    /// Whether the table holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<R> Inner<R> {
    /// Whether one more record fits under `max`, removing up to
    /// [`ROOM_REAP_BATCH`] dead records first if it does not; their
    /// waiters go to `woken`.
    fn room(&mut self, now: Timestamp, max: usize, woken: &mut Vec<Waker>) -> bool {
        if self.slots.len() < max {
            return true;
        }
        self.reap(now, ROOM_REAP_BATCH, woken);
        self.slots.len() < max
    }

    /// Removes up to `limit` records dead at `now`, oldest expiry first;
    /// their waiters go to `woken`. Returns how many were removed.
    fn reap(&mut self, now: Timestamp, limit: usize, woken: &mut Vec<Waker>) -> usize {
        let due: Vec<Scope> = self
            .by_expiry
            .iter()
            .take_while(|(expires_at, _)| *expires_at <= now)
            .map(|(_, scope)| scope)
            .filter(|scope| self.slots.get(*scope).is_some_and(|s| s.record.is_dead(now)))
            .take(limit)
            .cloned()
            .collect();
        for scope in &due {
            woken.extend(self.remove(scope));
        }
        due.len()
    }

    /// Stores `record` for `scope`, replacing any previous one; returns the
    /// replaced record's waiters so the caller can wake them.
    fn put(&mut self, scope: Scope, record: KeyRecord<R>) -> Vec<Waker> {
        let woken = self.remove(&scope);
        self.by_expiry.insert((record.expires_at, scope.clone()));
        self.slots.insert(
            scope,
            Slot {
                record,
                waiters: Vec::new(),
            },
        );
        woken
    }

    fn remove(&mut self, scope: &Scope) -> Vec<Waker> {
        match self.slots.remove(scope) {
            Some(slot) => {
                self.by_expiry.remove(&(slot.record.expires_at, scope.clone()));
                slot.waiters
            }
            None => Vec::new(),
        }
    }
}

/// Wakers run outside the lock: they may do anything, including claiming.
fn wake(wakers: Vec<Waker>) {
    for w in wakers {
        w();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use chrono::{DateTime, Duration};

    use super::*;
    use crate::key::IdempotencyKey;

    fn t(secs: i64) -> Timestamp {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid timestamp")
    }

    fn table() -> ClaimTable<u32> {
        ClaimTable::new(Terms {
            lease: Duration::seconds(30),
            ttl: Duration::seconds(100),
        })
    }

    fn scope(org: i64, key: &str) -> Scope {
        Scope {
            organization_id: org,
            user_id: 1,
            endpoint: "POST /things".into(),
            key: IdempotencyKey::parse(key).expect("valid key"),
        }
    }

    fn counter() -> (Arc<AtomicUsize>, impl Fn() -> Waker) {
        let n = Arc::new(AtomicUsize::new(0));
        let m = n.clone();
        (n, move || {
            let m = m.clone();
            Box::new(move || {
                m.fetch_add(1, Ordering::SeqCst);
            })
        })
    }

    #[test]
    fn claim_complete_replay() {
        let table = table();
        let (s, fp, tok) = (scope(1, "k"), Fingerprint([1; 32]), LeaseToken::random());
        assert_eq!(table.claim(&s, fp, tok, t(0), None), Claim::Acquired);
        assert_eq!(table.complete(&s, tok, || Ok::<_, ()>(7)), Ok(7));
        assert_eq!(table.claim(&s, fp, LeaseToken::random(), t(1), None), Claim::Replay(7));
        assert_eq!(
            table.claim(&s, Fingerprint([2; 32]), LeaseToken::random(), t(1), None),
            Claim::Mismatch { original: Some(7) }
        );
    }

    #[test]
    fn the_one_step_path_completes_only_absent_keys() {
        let table = table();
        let (s, fp) = (scope(1, "k"), Fingerprint([1; 32]));
        assert_eq!(table.create_one_step(&s, fp, t(0), || Ok::<_, ()>(7)), Ok(Some(7)));
        assert_eq!(table.claim(&s, fp, LeaseToken::random(), t(1), None), Claim::Replay(7));
        let mut ran = false;
        let again = table.create_one_step(&s, fp, t(2), || {
            ran = true;
            Ok::<_, ()>(8)
        });
        assert_eq!(again, Ok(None));
        assert!(!ran, "an existing record sends the caller the long way");
        assert_eq!(
            table.create_one_step(&scope(1, "j"), fp, t(0), || Err::<u32, _>("down")),
            Err("down")
        );
        assert!(table.record(&scope(1, "j")).is_none(), "failed work stores nothing");
        // Expiry counts from creation, as for claims.
        assert_eq!(table.record(&s).map(|r| r.expires_at), Some(t(100)));
    }

    #[test]
    fn waiters_are_woken_once_by_completion() {
        let table = table();
        let (s, fp, tok) = (scope(1, "k"), Fingerprint([1; 32]), LeaseToken::random());
        let (woken, waker) = counter();
        table.claim(&s, fp, tok, t(0), None);
        let other = LeaseToken::random();
        assert!(matches!(
            table.claim(&s, fp, other, t(1), Some(waker())),
            Claim::InFlight { .. }
        ));
        assert_eq!(woken.load(Ordering::SeqCst), 0);
        table.complete(&s, tok, || Ok::<_, ()>(7)).expect("owner completes");
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        table.release(&s, tok);
        assert_eq!(woken.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_taken_over_owner_cannot_complete() {
        let table = table();
        let (s, fp) = (scope(1, "k"), Fingerprint([1; 32]));
        let (old, new) = (LeaseToken::random(), LeaseToken::random());
        let (woken, waker) = counter();
        table.claim(&s, fp, old, t(0), None);
        table.claim(&s, fp, LeaseToken::random(), t(1), Some(waker()));
        assert_eq!(table.claim(&s, fp, new, t(30), None), Claim::Acquired);
        assert_eq!(woken.load(Ordering::SeqCst), 1, "takeover wakes waiters");
        let mut ran = false;
        let late = table.complete(&s, old, || {
            ran = true;
            Ok::<_, ()>(1)
        });
        assert_eq!(late, Err(CompleteError::NotOwner));
        assert!(!ran, "a late owner's work never runs");
        assert!(!table.release(&s, old));
        assert_eq!(table.complete(&s, new, || Ok::<_, ()>(2)), Ok(2));
    }

    #[test]
    fn failed_work_leaves_the_claim_for_release() {
        let table = table();
        let (s, fp, tok) = (scope(1, "k"), Fingerprint([1; 32]), LeaseToken::random());
        table.claim(&s, fp, tok, t(0), None);
        assert_eq!(
            table.complete(&s, tok, || Err::<u32, _>("db down")),
            Err(CompleteError::Work("db down"))
        );
        assert!(table.release(&s, tok));
        assert_eq!(table.claim(&s, fp, LeaseToken::random(), t(1), None), Claim::Acquired);
    }

    #[test]
    fn scopes_are_independent() {
        let table = table();
        let fp = Fingerprint([1; 32]);
        for org in 1..=3 {
            assert_eq!(
                table.claim(&scope(org, "k"), fp, LeaseToken::random(), t(0), None),
                Claim::Acquired
            );
        }
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn reaping_removes_only_dead_records_in_expiry_order() {
        let table = table();
        let fp = Fingerprint([1; 32]);
        let done = scope(1, "done");
        let tok = LeaseToken::random();
        table.claim(&done, fp, tok, t(0), None);
        table.complete(&done, tok, || Ok::<_, ()>(1)).expect("completes");
        let abandoned = scope(1, "abandoned");
        table.claim(&abandoned, fp, LeaseToken::random(), t(10), None);
        let fresh = scope(1, "fresh");
        let tok2 = LeaseToken::random();
        table.claim(&fresh, fp, tok2, t(50), None);
        table.complete(&fresh, tok2, || Ok::<_, ()>(2)).expect("completes");

        assert_eq!(table.reap_expired(t(99), 10), 0, "nothing past its TTL yet");
        assert_eq!(table.reap_expired(t(100), 10), 1);
        assert!(table.record(&done).is_none());
        assert_eq!(table.reap_expired(t(110), 10), 1);
        assert!(table.record(&abandoned).is_none());
        assert!(table.record(&fresh).is_some());
        assert_eq!(table.reap_expired(t(1000), 10), 1);
        assert!(table.is_empty());
    }

    #[test]
    fn a_bounded_table_refuses_new_keys_only_when_every_record_is_alive() {
        let table = ClaimTable::<u32>::bounded(
            Terms {
                lease: Duration::seconds(30),
                ttl: Duration::seconds(100),
            },
            2,
        );
        let fp = Fingerprint([1; 32]);
        assert_eq!(
            table.create_one_step(&scope(1, "a"), fp, t(0), || Ok::<_, ()>(1)),
            Ok(Some(1))
        );
        let b = LeaseToken::random();
        assert_eq!(table.claim(&scope(1, "b"), fp, b, t(10), None), Claim::Acquired);
        // Full of live records: a new key is refused both ways, nothing runs.
        let mut ran = false;
        let one_step = table.create_one_step(&scope(1, "c"), fp, t(20), || {
            ran = true;
            Ok::<_, ()>(3)
        });
        assert_eq!((one_step, ran), (Ok(None), false));
        assert_eq!(
            table.claim(&scope(1, "c"), fp, LeaseToken::random(), t(20), None),
            Claim::Full { room_at: Some(t(100)) }
        );
        assert_eq!(table.len(), 2);
        assert!(!table.has_room(t(20)));
        // Keys with a record are decided as always.
        assert_eq!(
            table.claim(&scope(1, "a"), fp, LeaseToken::random(), t(20), None),
            Claim::Replay(1)
        );
        assert!(matches!(
            table.claim(&scope(1, "b"), fp, LeaseToken::random(), t(20), None),
            Claim::InFlight { .. }
        ));
        assert_eq!(table.complete(&scope(1, "b"), b, || Ok::<_, ()>(2)), Ok(2));
        // Once `a` is dead, a new key makes room by removing it, and only it.
        assert!(table.has_room(t(100)));
        assert_eq!(
            table.create_one_step(&scope(1, "c"), fp, t(100), || Ok::<_, ()>(3)),
            Ok(Some(3))
        );
        assert!(table.record(&scope(1, "a")).is_none());
        assert_eq!(table.record(&scope(1, "b")).map(|r| r.expires_at), Some(t(110)));
        assert_eq!(table.len(), 2);
        // Taking over a dead record needs no room.
        assert_eq!(
            table.claim(&scope(1, "b"), fp, LeaseToken::random(), t(110), None),
            Claim::Acquired
        );
    }

    #[test]
    fn reaping_is_batched() {
        let table = table();
        let fp = Fingerprint([1; 32]);
        for i in 0..5 {
            table.claim(&scope(1, &format!("k{i}")), fp, LeaseToken::random(), t(0), None);
        }
        assert_eq!(table.reap_expired(t(200), 2), 2);
        assert_eq!(table.reap_expired(t(200), 2), 2);
        assert_eq!(table.reap_expired(t(200), 2), 1);
        assert!(table.is_empty());
    }
}
