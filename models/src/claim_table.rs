//! The in-memory store's claim logic: records keyed by scope, spread over
//! [`SHARDS`] independently locked shards by a hash of the scope. Every
//! decision about one scope and the write it leads to happen under a
//! single acquisition of that scope's shard lock, so requests for one key
//! are serialised exactly as with one table-wide lock, while requests for
//! keys in different shards never wait for each other. Synchronous and
//! runtime-free so that loom can check it; the async service wraps it
//! (waiting is done through [`Waker`] callbacks).
//!
//! A table may be bounded ([`ClaimTable::bounded`]): it then never holds
//! more than that many records, over all shards. The bound is kept by one
//! atomic count of records (and of slots reserved for records about to be
//! stored), raised only by a compare-and-swap that refuses at the bound,
//! under the new key's shard lock. A key with no record that would go past
//! the bound first makes room by removing dead records (the ones reaping
//! would remove), visiting the shards one at a time, each under its own lock,
//! then tries once more; if every record is alive the key is refused
//! ([`Claim::Full`]). A live record is never dropped to make room, and
//! keys that have a record (replays, mismatches, in-flight duplicates,
//! takeovers of a dead claim) are decided as always.
//!
//! What spans the table takes no lock spanning it: the count is the atomic
//! above, and reaping and making room visit one shard at a time, so no
//! code path ever holds two shard locks (no lock order to get wrong).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use crate::key::{Fingerprint, LeaseToken, Scope};
use crate::record::{Decision, KeyRecord, KeyState, Terms, Timestamp, decide};
use crate::sync::{AtomicUsize, Mutex, MutexGuard, Ordering};

mod shard;

use shard::Shard;

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

/// How many shards a table has. Fixed rather than derived from the
/// machine's available parallelism, so that which scopes share a shard is
/// the same on every machine (tests and loom models can place scopes in
/// one shard or in two) and a container that misreports its CPUs changes
/// nothing. A power of two, so a scope's shard is a mask of its hash. 64
/// because what matters is how often two requests in flight at once hit
/// the same shard: with 64, two concurrent requests for different keys
/// share one about one time in 64, and even 16 busy threads seldom meet,
/// while the whole set costs 8 KiB per table and each table-wide pass
/// (reaping, making room) 64 uncontended lock acquisitions.
#[cfg(not(loom))]
pub const SHARDS: usize = 64;

/// How many shards a table has in the loom build: 4, the fewest that
/// still lets a model give each of four scopes a shard of its own. Loom
/// explores the interleavings of every pair of operations on one lock, and
/// two racers each visiting 64 shards to make room put the bound model
/// past minutes; nothing in the logic depends on the count beyond which
/// scopes share a shard, which the models choose explicitly.
#[cfg(loom)]
pub const SHARDS: usize = 4;

/// The shard holding `scope`'s record: a hash of the whole scope, so keys
/// of one tenant spread as well as tenants do. The hasher has fixed keys,
/// so the placement is the same for every table in a process (loom replays
/// a model many times and needs the same choices each time); it need not
/// resist chosen collisions, since the worst a client can do by aiming
/// every key at one shard is to get the one-lock table of before. Exposed
/// so tests can pick scopes that share a shard or not.
pub fn shard_of(scope: &Scope) -> usize {
    let mut hasher = DefaultHasher::new();
    scope.hash(&mut hasher);
    // Keep the low bits of the hash: the mask makes the cast lossless.
    (hasher.finish() & (SHARDS as u64 - 1)) as usize
}

/// Thread-safe table of idempotency records.
pub struct ClaimTable<R> {
    /// Lease and TTL applied to every claim.
    terms: Terms,
    /// Most records held at once, over all shards.
    max_records: usize,
    /// Records held over all shards, plus slots reserved (under a shard
    /// lock) for new records about to be stored under that same lock. An
    /// atomic rather than a lock so that different keys share nothing but
    /// this one word; raised only by [`Self::reserve`], which refuses at
    /// `max_records`, so the bound holds with no lock spanning shards.
    /// Every change is a read-modify-write, and those are totally ordered
    /// on one atomic even when relaxed; the count guards no other memory
    /// (the records are under their shard locks), so relaxed suffices.
    count: AtomicUsize,
    /// The shards, indexed by [`shard_of`]; always [`SHARDS`] of them.
    shards: Box<[Padded<Mutex<Shard<R>>>]>,
}

/// A shard's lock on cache lines of its own: neighbouring shards' locks
/// in one line would make threads on different shards invalidate each
/// other's cache line on every acquisition (false sharing), which is the
/// cost sharding removes. 128 bytes, as x86 prefetches lines in pairs.
#[repr(align(128))]
struct Padded<T>(
    /// The padded value.
    T,
);

/// Dead records removed at most per attempt to make room, so a full table
/// of expired keys is emptied in steps rather than all at once.
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
            count: AtomicUsize::new(0),
            shards: (0..SHARDS).map(|_| Padded(Mutex::new(Shard::new()))).collect(),
        }
    }

    /// `scope`'s shard, locked.
    fn lock(&self, scope: &Scope) -> MutexGuard<'_, Shard<R>> {
        lock(&self.shards[shard_of(scope)].0)
    }

    /// Takes one slot for a new record, unless the table is at its bound.
    fn reserve(&self) -> bool {
        self.count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max_records).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back `n` slots: records removed, or a reservation unused.
    fn unreserve(&self, n: usize) {
        self.count.fetch_sub(n, Ordering::Relaxed);
    }

    /// `scope`'s shard, locked, once `scope` may be stored in it:
    /// `Ok((shard, reserved))`, where `reserved` says `scope` has no record
    /// and a slot was reserved for its new one (the caller stores it under
    /// this lock, or gives the slot back); `Err(room_at)` if `scope` has no
    /// record and the table is full of live records even after making room.
    fn lock_with_room(
        &self,
        scope: &Scope,
        now: Timestamp,
    ) -> Result<(MutexGuard<'_, Shard<R>>, bool), Option<Timestamp>> {
        let shard = self.lock(scope);
        if shard.slots.contains_key(scope) {
            return Ok((shard, false));
        }
        if self.reserve() {
            return Ok((shard, true));
        }
        // Making room visits every shard, this one included: let go of it
        // first, then decide afresh (the key may have gained a record).
        drop(shard);
        let room_at = self.sweep(now, ROOM_REAP_BATCH).1;
        let shard = self.lock(scope);
        if shard.slots.contains_key(scope) {
            Ok((shard, false))
        } else if self.reserve() {
            Ok((shard, true))
        } else {
            Err(room_at)
        }
    }

    /// Removes up to `limit` records dead at `now`, oldest expiry first
    /// over the whole table (as the Postgres store does), and wakes their
    /// waiters. Two passes over the shards, each shard under its own lock
    /// only: the first finds the expiry of the `limit`-th oldest dead
    /// record, the second removes the dead records that expired by then
    /// (records changed in between are judged afresh). Returns how many
    /// were removed and the earliest expiry among the records left, when
    /// reaping can next make room.
    fn sweep(&self, now: Timestamp, limit: usize) -> (usize, Option<Timestamp>) {
        let mut due: Vec<Timestamp> = Vec::new();
        for shard in &self.shards {
            due.extend(lock(&shard.0).dead_expiries(now, limit));
        }
        due.sort_unstable();
        // Ties at the cut-off go to the shards visited first, as Postgres
        // breaks them arbitrarily; `limit` still caps the total.
        let until = match limit.min(due.len()) {
            0 => now,
            n => due[n - 1],
        };
        let (mut reaped, mut room_at) = (0, None::<Timestamp>);
        for shard in &self.shards {
            let mut woken = Vec::new();
            let mut shard = lock(&shard.0);
            let removed = shard.reap(now, until, limit - reaped, &mut woken);
            let first = shard.first_expiry();
            drop(shard);
            self.unreserve(removed);
            reaped += removed;
            room_at = match (room_at, first) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            wake(woken);
        }
        (reaped, room_at)
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
        let mut waker = waker;
        if let Some(claim) = self.try_claim(scope, fingerprint, token, now, &mut waker) {
            return claim;
        }
        // Making room visits every shard, this one included, so it runs
        // with no lock held; then the key is decided afresh (it may have
        // gained a record meanwhile).
        let room_at = self.sweep(now, ROOM_REAP_BATCH).1;
        self.try_claim(scope, fingerprint, token, now, &mut waker)
            .unwrap_or(Claim::Full { room_at })
    }

    /// [`Self::claim`] under one acquisition of `scope`'s shard lock, or
    /// `None` (nothing done, `waker` kept) if `scope` has no record and the
    /// table is at its bound. One lookup decides, as the key's record is
    /// needed anyway: a replay costs no more than with a single lock.
    fn try_claim(
        &self,
        scope: &Scope,
        fingerprint: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
        waker: &mut Option<Waker>,
    ) -> Option<Claim<R>> {
        let mut shard = self.lock(scope);
        let existing = shard.slots.get(scope).map(|s| &s.record);
        // A key with no record is always decided `Claim`, so a slot
        // reserved here is always used below.
        if existing.is_none() && !self.reserve() {
            return None;
        }
        let decision = decide(existing, &fingerprint, now);
        let woken = match decision {
            Decision::Claim => {
                let record = KeyRecord::claimed(fingerprint, token, now, self.terms);
                shard.put(scope.clone(), record)
            }
            Decision::InFlight { .. } => {
                if let (Some(w), Some(slot)) = (waker.take(), shard.slots.get_mut(scope)) {
                    slot.waiters.push(w);
                }
                Vec::new()
            }
            Decision::Replay(_) | Decision::Mismatch { .. } => Vec::new(),
        };
        drop(shard);
        wake(woken);
        Some(match decision {
            Decision::Claim => Claim::Acquired,
            Decision::Replay(r) => Claim::Replay(r),
            Decision::Mismatch { original } => Claim::Mismatch { original },
            Decision::InFlight { lease_expires_at } => Claim::InFlight { lease_expires_at },
        })
    }

    /// BROKEN ON PURPOSE: the first half of a check-then-insert claim. It
    /// decides under the lock, then lets go of it; [`Self::insert_claim`]
    /// writes under a second acquisition, so two requests can both see the
    /// key free and both claim it. Only for the loom suite's teeth and the
    /// harness's `split-lock` mutant; never used by the real stores.
    #[cfg(any(loom, feature = "mutants"))]
    pub fn decide_only(&self, scope: &Scope, fingerprint: &Fingerprint, now: Timestamp) -> Decision<R> {
        decide(self.lock(scope).slots.get(scope).map(|s| &s.record), fingerprint, now)
    }

    /// BROKEN ON PURPOSE: the second half of [`Self::decide_only`]; claims
    /// `scope` unconditionally (a new record is counted, bound or not).
    #[cfg(any(loom, feature = "mutants"))]
    pub fn insert_claim(&self, scope: &Scope, fingerprint: Fingerprint, token: LeaseToken, now: Timestamp) {
        let record = KeyRecord::claimed(fingerprint, token, now, self.terms);
        let mut shard = self.lock(scope);
        if !shard.slots.contains_key(scope) {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        let woken = shard.put(scope.clone(), record);
        drop(shard);
        wake(woken);
    }

    /// The one-step path for a key with no record at all: runs `work` and
    /// stores its result as the key's completed outcome, in one critical
    /// section, so no claim is ever visible. Returns `Ok(None)` without
    /// running `work` if `scope` has any record (even a dead one), or if
    /// the table is full of live records: the caller then goes through
    /// [`Self::claim`], which decides (and answers [`Claim::Full`] for the
    /// latter). `work` runs under the lock of `scope`'s shard, so it must
    /// be short and must not touch this table.
    pub fn create_one_step<E>(
        &self,
        scope: &Scope,
        fingerprint: Fingerprint,
        now: Timestamp,
        work: impl FnOnce() -> Result<R, E>,
    ) -> Result<Option<R>, E> {
        let Ok((mut shard, true)) = self.lock_with_room(scope, now) else {
            // A record, or no room: the long way.
            return Ok(None);
        };
        let result = match work() {
            Ok(result) => result,
            Err(e) => {
                self.unreserve(1);
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
        let woken = shard.put(scope.clone(), record);
        drop(shard);
        wake(woken);
        Ok(Some(result))
    }

    /// If `token` still owns `scope`, runs `work` and stores its result as
    /// the key's outcome, atomically: no other request can observe the key
    /// between the work and the completion, and a caller whose claim was
    /// taken over never runs its work. `work` runs under the lock of
    /// `scope`'s shard, so it must be short and must not touch this table.
    pub fn complete<E>(
        &self,
        scope: &Scope,
        token: LeaseToken,
        work: impl FnOnce() -> Result<R, E>,
    ) -> Result<R, CompleteError<E>> {
        let mut shard = self.lock(scope);
        let Some(slot) = shard.slots.get_mut(scope) else {
            return Err(CompleteError::NotOwner);
        };
        if slot.record.token() != Some(token) {
            return Err(CompleteError::NotOwner);
        }
        let result = work().map_err(CompleteError::Work)?;
        slot.record.state = KeyState::Completed { result: result.clone() };
        let woken = std::mem::take(&mut slot.waiters);
        drop(shard);
        wake(woken);
        Ok(result)
    }

    /// Gives up the claim `token` holds on `scope` (the work failed, or the
    /// request was cancelled), so that a retry can claim the key at once.
    /// Returns whether there was such a claim.
    pub fn release(&self, scope: &Scope, token: LeaseToken) -> bool {
        let mut shard = self.lock(scope);
        let owned = shard
            .slots
            .get(scope)
            .is_some_and(|slot| slot.record.token() == Some(token));
        if !owned {
            return false;
        }
        let woken = shard.remove(scope).unwrap_or_default();
        self.unreserve(1);
        drop(shard);
        wake(woken);
        true
    }

    /// Removes up to `limit` records that are dead at `now` (completed and
    /// past their TTL, or abandoned), oldest expiry first. Returns how many
    /// were removed.
    pub fn reap_expired(&self, now: Timestamp, limit: usize) -> usize {
        self.sweep(now, limit).0
    }

    /// Whether a key with no record could be stored at `now`, after making
    /// room by removing dead records if the table is at its bound.
    pub fn has_room(&self, now: Timestamp) -> bool {
        if self.count.load(Ordering::Relaxed) < self.max_records {
            return true;
        }
        self.sweep(now, ROOM_REAP_BATCH);
        self.count.load(Ordering::Relaxed) < self.max_records
    }

    /// A copy of the record stored for `scope`, dead or alive.
    pub fn record(&self, scope: &Scope) -> Option<KeyRecord<R>> {
        self.lock(scope).slots.get(scope).map(|s| s.record.clone())
    }

    /// Number of stored records, dead ones included until reaped (and,
    /// while another thread is storing a new key, its reserved slot).
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether the table holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Locks one shard. A panic while holding the lock cannot leave a
/// half-written record (every mutation is a single insert/remove), so a
/// poisoned lock is still consistent.
fn lock<R>(shard: &Mutex<Shard<R>>) -> MutexGuard<'_, Shard<R>> {
    shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Wakers run outside the lock: they may do anything, including claiming.
fn wake(wakers: Vec<Waker>) {
    for w in wakers {
        w();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::collections::BTreeSet;
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
        assert!(table.is_empty());
        // A claim from long ago, its record expired at t(-100); it stays
        // while there is room.
        let dead = scope(1, "dead");
        table.claim(&dead, fp, LeaseToken::random(), t(-200), None);
        assert!(!table.is_empty());
        assert_eq!(
            table.create_one_step(&scope(1, "a"), fp, t(0), || Ok::<_, ()>(1)),
            Ok(Some(1))
        );
        assert!(
            table.record(&dead).is_some(),
            "room is made only when the table is full"
        );
        // Full now: the next new key removes the dead claim to make room.
        let b = LeaseToken::random();
        assert_eq!(table.claim(&scope(1, "b"), fp, b, t(10), None), Claim::Acquired);
        assert!(table.record(&dead).is_none());
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

    /// The two halves of the deliberately broken split-lock claim do what
    /// the `split-lock` mutant and the loom teeth rely on: a decision that
    /// writes nothing, and an unconditional claim.
    #[cfg(feature = "mutants")]
    #[test]
    fn the_split_lock_halves_decide_without_writing_then_claim_unconditionally() {
        let table = table();
        let fp = Fingerprint([1; 32]);
        let k = scope(1, "k");
        assert_eq!(table.decide_only(&k, &fp, t(0)), Decision::Claim);
        assert!(table.record(&k).is_none(), "deciding writes nothing");
        let token = LeaseToken::random();
        table.insert_claim(&k, fp, token, t(0));
        assert_eq!(table.record(&k).and_then(|r| r.token()), Some(token));
        assert!(matches!(table.decide_only(&k, &fp, t(1)), Decision::InFlight { .. }));
        // The second half claims even a key in flight: that is the bug.
        let second = LeaseToken::random();
        table.insert_claim(&k, fp, second, t(1));
        assert_eq!(table.record(&k).and_then(|r| r.token()), Some(second));
        // A new key counts once, an overwritten one not again.
        assert_eq!(table.len(), 1);
        table.insert_claim(&scope(1, "other"), fp, token, t(1));
        assert_eq!(table.len(), 2);
    }

    /// `n` scopes of organisation 1 whose keys all hash to one shard.
    fn sharing_a_shard(n: usize) -> Vec<Scope> {
        let first = shard_of(&scope(1, "k0"));
        (0..)
            .map(|i| scope(1, &format!("k{i}")))
            .filter(|s| shard_of(s) == first)
            .take(n)
            .collect()
    }

    /// `n` scopes of organisation 1, each in a shard of its own.
    fn apart(n: usize) -> Vec<Scope> {
        let mut seen = BTreeSet::new();
        (0..)
            .map(|i| scope(1, &format!("k{i}")))
            .filter(|s| seen.insert(shard_of(s)))
            .take(n)
            .collect()
    }

    #[test]
    fn scopes_spread_over_every_shard_and_stay_put() {
        let mut per_shard = [0usize; SHARDS];
        for i in 0..SHARDS * 64 {
            let s = scope((i % 7) as i64, &format!("key-{i}"));
            assert_eq!(shard_of(&s), shard_of(&s.clone()), "one scope, one shard");
            per_shard[shard_of(&s)] += 1;
        }
        // 64 scopes per shard on average: a hash that ignored the key, or
        // a mask that kept too few bits, would leave shards empty.
        assert!(per_shard.iter().all(|n| *n > 16), "uneven spread: {per_shard:?}");
        assert_eq!(apart(SHARDS).len(), SHARDS);
    }

    #[test]
    fn the_shard_helpers_pick_what_they_say() {
        let shared = sharing_a_shard(3);
        assert!(shared.iter().all(|s| shard_of(s) == shard_of(&shared[0])));
        let apart = apart(3);
        assert!(
            apart
                .iter()
                .all(|s| shard_of(s) != shard_of(&shared[0]) || s == &shared[0])
        );
    }

    #[test]
    fn room_under_the_bound_is_found_without_reaping() {
        let table: ClaimTable<u32> = ClaimTable::bounded(
            Terms {
                lease: Duration::seconds(30),
                ttl: Duration::seconds(100),
            },
            10,
        );
        let dead = scope(1, "dead");
        table.claim(&dead, Fingerprint([1; 32]), LeaseToken::random(), t(0), None);
        assert!(table.has_room(t(200)));
        // Dead, but left to the reaper: there was room without it.
        assert!(table.record(&dead).is_some());
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn keys_in_one_shard_or_apart_are_decided_alone() {
        for scopes in [sharing_a_shard(3), apart(3)] {
            let table = table();
            let fp = Fingerprint([1; 32]);
            let tokens: Vec<LeaseToken> = scopes.iter().map(|_| LeaseToken::random()).collect();
            for (s, tok) in scopes.iter().zip(&tokens) {
                assert_eq!(table.claim(s, fp, *tok, t(0), None), Claim::Acquired);
            }
            let (woken, waker) = counter();
            assert!(matches!(
                table.claim(&scopes[0], fp, LeaseToken::random(), t(1), Some(waker())),
                Claim::InFlight { .. }
            ));
            assert_eq!(table.complete(&scopes[1], tokens[1], || Ok::<_, ()>(1)), Ok(1));
            assert!(table.release(&scopes[2], tokens[2]));
            assert_eq!(woken.load(Ordering::SeqCst), 0, "other keys woke a waiter");
            assert_eq!(table.len(), 2);
            assert_eq!(table.record(&scopes[0]).and_then(|r| r.token()), Some(tokens[0]));
            assert_eq!(
                table.claim(&scopes[1], fp, LeaseToken::random(), t(2), None),
                Claim::Replay(1)
            );
            assert!(table.record(&scopes[2]).is_none());
        }
    }

    fn bounded(max: usize) -> ClaimTable<u32> {
        ClaimTable::bounded(
            Terms {
                lease: Duration::seconds(30),
                ttl: Duration::seconds(100),
            },
            max,
        )
    }

    #[test]
    fn the_bound_counts_every_shard_and_room_is_made_in_any_shard() {
        let fp = Fingerprint([1; 32]);
        let s = apart(4);
        let table = bounded(2);
        // A dead claim in one shard, a live record in another.
        table.claim(&s[0], fp, LeaseToken::random(), t(-200), None);
        assert_eq!(table.create_one_step(&s[1], fp, t(50), || Ok::<_, ()>(1)), Ok(Some(1)));
        // A third shard's new key finds the table full and removes the dead
        // claim to make room; a fourth's is refused, told when the earliest
        // record left expires.
        assert_eq!(
            table.claim(&s[2], fp, LeaseToken::random(), t(60), None),
            Claim::Acquired
        );
        assert!(table.record(&s[0]).is_none(), "the dead claim made room");
        assert_eq!(
            table.claim(&s[3], fp, LeaseToken::random(), t(60), None),
            Claim::Full { room_at: Some(t(150)) }
        );
        assert_eq!(table.create_one_step(&s[3], fp, t(60), || Ok::<_, ()>(4)), Ok(None));
        assert_eq!(table.len(), 2);
        assert!(!table.has_room(t(60)));
        // The earliest expiry is found whichever shard holds it.
        assert!(table.has_room(t(150)), "the first record is dead by then");
        assert_eq!(table.len(), 1);
        assert!(table.record(&s[1]).is_none());
    }

    #[test]
    fn room_at_is_the_earliest_expiry_of_all_shards() {
        let fp = Fingerprint([1; 32]);
        let s = apart(4);
        // Filled in both orders, so that the earliest record sits in a
        // shard visited before and after the others.
        for order in [[0, 1, 2], [2, 1, 0]] {
            let table = bounded(3);
            for (i, at) in order.iter().zip([10, 20, 30]) {
                table
                    .create_one_step(&s[*i], fp, t(at), || Ok::<_, ()>(0))
                    .expect("stored");
            }
            let earliest = t(10 + 100);
            assert_eq!(
                table.claim(&s[3], fp, LeaseToken::random(), t(40), None),
                Claim::Full {
                    room_at: Some(earliest)
                }
            );
        }
        assert_eq!(
            bounded(0).claim(&s[0], fp, LeaseToken::random(), t(0), None),
            Claim::Full { room_at: None }
        );
    }

    #[test]
    fn slots_come_back_when_work_fails_or_a_claim_is_released() {
        let fp = Fingerprint([1; 32]);
        let s = apart(3);
        let table = bounded(1);
        assert_eq!(
            table.create_one_step(&s[0], fp, t(0), || Err::<u32, _>("down")),
            Err("down")
        );
        assert!(table.is_empty(), "failed work keeps no slot");
        let tok = LeaseToken::random();
        assert_eq!(table.claim(&s[1], fp, tok, t(0), None), Claim::Acquired);
        assert!(!table.release(&s[1], LeaseToken::random()), "not the owner");
        assert_eq!(table.len(), 1);
        assert!(table.release(&s[1], tok));
        assert!(table.is_empty());
        assert_eq!(table.create_one_step(&s[2], fp, t(0), || Ok::<_, ()>(3)), Ok(Some(3)));
        // Replacing a dead record with a new claim keeps the count.
        assert_eq!(
            table.claim(&s[2], fp, LeaseToken::random(), t(100), None),
            Claim::Acquired
        );
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn reaping_spans_shards_within_its_limit() {
        let fp = Fingerprint([1; 32]);
        for scopes in [sharing_a_shard(5), apart(5)] {
            let table = table();
            for s in &scopes {
                table.claim(s, fp, LeaseToken::random(), t(0), None);
            }
            assert_eq!(table.reap_expired(t(200), 3), 3);
            assert_eq!(table.len(), 2);
            assert_eq!(table.reap_expired(t(200), 3), 2);
            assert!(table.is_empty());
            assert!(scopes.iter().all(|s| table.record(s).is_none()));
        }
    }

    #[test]
    fn reaping_takes_the_oldest_dead_records_of_the_whole_table() {
        let fp = Fingerprint([1; 32]);
        let s = apart(4);
        // The oldest in a shard visited first, then last; and a live
        // record among them that is never taken.
        for order in [[0, 1, 2], [2, 1, 0]] {
            let table = table();
            for (i, at) in order.iter().zip([0, 10, 20]) {
                table.claim(&s[*i], fp, LeaseToken::random(), t(at), None);
            }
            let live = LeaseToken::random();
            table.claim(&s[3], fp, live, t(-100), None);
            table.complete(&s[3], live, || Ok::<_, ()>(4)).expect("completes");
            table.claim(&s[3], fp, LeaseToken::random(), t(1000), None);
            assert_eq!(table.reap_expired(t(1000), 1), 1);
            assert!(table.record(&s[order[0]]).is_none(), "the oldest goes first");
            assert_eq!(table.reap_expired(t(1000), 1), 1);
            assert!(table.record(&s[order[1]]).is_none());
            assert!(table.record(&s[order[2]]).is_some());
            assert_eq!(table.reap_expired(t(1000), 0), 0, "a zero limit removes nothing");
            assert_eq!(table.reap_expired(t(1000), 5), 1);
            assert_eq!(table.len(), 1, "the live claim stays");
        }
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
