//! The completed keys this process has seen, so that a replay is answered
//! without a round trip. Safe because a completed record never changes
//! while it lives: nothing completes it again, nothing releases it, and
//! a claim may only overwrite it once it is dead (`decide`, and the
//! `CLAIM` statement's `WHERE`, both say so). So the cache answers only
//! what the database would answer: the same rule (`decide`) on the same
//! record, and only while the record is live with a margin to spare
//! ([`CLOCK_MARGIN`]), since another replica's clock decides when it may
//! take the key over. Anything else (a miss, another payload, a record
//! near its end) goes to the database as before.
//!
//! Bounded in bytes (a resource's size as JSON, plus its key; least
//! recently used out first; a resource over a sixteenth of the budget is
//! not kept), one cache per kind of resource and per
//! [`super::PgStore::stores`].

use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::Duration;
use hashlink::LruCache;
use idemproof_models::{Decision, Fingerprint, KeyRecord, KeyState, Scope, Timestamp, decide};

/// How long before its expiry a cached record stops being answered from
/// here: more than replicas' clocks may differ by, so that no replica can
/// have taken the key over while this one still replays it.
pub(super) const CLOCK_MARGIN: Duration = Duration::seconds(5);

/// A completed key and the resource it names.
struct Entry<R> {
    fingerprint: Fingerprint,
    resource: R,
    created_at: Timestamp,
    expires_at: Timestamp,
    /// What it counts against the budget.
    bytes: usize,
}

/// The entries and what they weigh.
struct Entries<R> {
    by_scope: LruCache<Scope, Entry<R>>,
    bytes: usize,
}

/// Completed keys by scope; `None` when switched off (budget 0).
pub(super) struct ReplayCache<R> {
    entries: Option<Mutex<Entries<R>>>,
    /// The most bytes the entries may weigh.
    budget: usize,
}

impl<R: Clone + serde::Serialize> ReplayCache<R> {
    /// A cache of at most `budget` bytes (0: none).
    pub(super) fn new(budget: usize) -> Self {
        let entries = Entries {
            by_scope: LruCache::new_unbounded(),
            bytes: 0,
        };
        Self {
            entries: (budget > 0).then(|| Mutex::new(entries)),
            budget,
        }
    }

    /// The resource a request for `scope` with `fingerprint` at `now` is
    /// replayed, if the key is cached, completed with that payload, and
    /// live past `now + CLOCK_MARGIN`.
    pub(super) fn replay(&self, scope: &Scope, fingerprint: &Fingerprint, now: Timestamp) -> Option<R> {
        let mut entries = lock(self.entries.as_ref()?);
        let entry = entries.by_scope.get(scope)?;
        if now + CLOCK_MARGIN >= entry.expires_at {
            entries.remove(scope);
            return None;
        }
        let record = KeyRecord {
            fingerprint: entry.fingerprint,
            state: KeyState::Completed { result: () },
            created_at: entry.created_at,
            expires_at: entry.expires_at,
        };
        match decide(Some(&record), fingerprint, now) {
            Decision::Replay(()) => Some(entry.resource.clone()),
            _ => None,
        }
    }

    /// Remembers that `scope` completed with `fingerprint`, naming
    /// `resource`, from `created_at` to `expires_at`.
    pub(super) fn completed(
        &self,
        scope: &Scope,
        fingerprint: Fingerprint,
        resource: &R,
        created_at: Timestamp,
        expires_at: Timestamp,
    ) {
        let Some(entries) = &self.entries else {
            return;
        };
        let json = serde_json::to_vec(resource).map_or(usize::MAX, |json| json.len());
        let bytes = json.saturating_add(scope.endpoint.len() + scope.key.as_str().len() + KEY_OVERHEAD);
        if bytes > self.budget / 16 {
            return;
        }
        let entry = Entry {
            fingerprint,
            resource: resource.clone(),
            created_at,
            expires_at,
            bytes,
        };
        let mut entries = lock(entries);
        entries.remove(scope);
        while entries.bytes + bytes > self.budget {
            let Some((_, oldest)) = entries.by_scope.remove_lru() else {
                break;
            };
            entries.bytes -= oldest.bytes;
        }
        entries.bytes += bytes;
        entries.by_scope.insert(scope.clone(), entry);
    }
}

/// What an entry weighs besides its resource's JSON and its key's text:
/// the scope's ids, the fingerprint, the times, the map's own slot.
const KEY_OVERHEAD: usize = 128;

impl<R> Entries<R> {
    fn remove(&mut self, scope: &Scope) {
        if let Some(entry) = self.by_scope.remove(scope) {
            self.bytes -= entry.bytes;
        }
    }
}

fn lock<T>(entries: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every change is one insert or removal: a poisoned map is intact.
    entries.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use idemproof_models::IdempotencyKey;

    use super::*;

    fn scope(key: &str) -> Scope {
        Scope {
            organization_id: 1,
            user_id: 1,
            endpoint: "POST /api/v1/agents".into(),
            key: IdempotencyKey::parse(key).expect("key"),
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::UNIX_EPOCH + Duration::seconds(1_700_000_000 + secs)
    }

    const A: Fingerprint = Fingerprint([1; 32]);
    const B: Fingerprint = Fingerprint([2; 32]);

    #[test]
    fn a_live_completed_key_replays_its_payload_only() {
        let cache = ReplayCache::new(1 << 20);
        cache.completed(&scope("k"), A, &7, at(0), at(100));
        assert_eq!(cache.replay(&scope("k"), &A, at(10)), Some(7));
        assert_eq!(
            cache.replay(&scope("k"), &B, at(10)),
            None,
            "another payload asks the database"
        );
        assert_eq!(cache.replay(&scope("other"), &A, at(10)), None);
    }

    #[test]
    fn a_key_near_its_end_is_left_to_the_database() {
        let cache = ReplayCache::new(1 << 20);
        cache.completed(&scope("k"), A, &7, at(0), at(100));
        let last = at(100) - CLOCK_MARGIN - Duration::milliseconds(1);
        assert_eq!(cache.replay(&scope("k"), &A, last), Some(7));
        assert_eq!(cache.replay(&scope("k"), &A, at(100) - CLOCK_MARGIN), None);
        let entries = lock(cache.entries.as_ref().expect("on"));
        assert!(entries.by_scope.is_empty() && entries.bytes == 0, "and forgotten");
    }

    /// The weight of one entry of `scope(key)` naming a one-digit number.
    fn weight(key: &str) -> usize {
        1 + scope(key).endpoint.len() + key.len() + KEY_OVERHEAD
    }

    #[test]
    fn the_least_recently_used_key_goes_first() {
        // Room for sixteen one-letter keys (each exactly a sixteenth).
        let cache = ReplayCache::new(16 * weight("a"));
        let keys: Vec<String> = ('a'..='p').map(String::from).collect();
        for key in &keys {
            cache.completed(&scope(key), A, &1, at(0), at(100));
        }
        assert_eq!(
            cache.replay(&scope("a"), &A, at(1)),
            Some(1),
            "a is now the most recent"
        );
        cache.completed(&scope("q"), A, &2, at(0), at(100));
        assert_eq!(
            cache.replay(&scope("b"), &A, at(1)),
            None,
            "b was the least recently used"
        );
        for key in keys.iter().filter(|k| *k != "b") {
            assert_eq!(cache.replay(&scope(key), &A, at(1)), Some(1), "{key}");
        }
        assert_eq!(cache.replay(&scope("q"), &A, at(1)), Some(2));
        // Completing a key again replaces its entry; the weight stays.
        cache.completed(&scope("q"), A, &3, at(0), at(100));
        assert_eq!(cache.replay(&scope("q"), &A, at(1)), Some(3));
        assert_eq!(lock(cache.entries.as_ref().expect("on")).bytes, 16 * weight("a"));
    }

    #[test]
    fn a_large_resource_is_not_kept_and_zero_is_off() {
        let cache = ReplayCache::new(16 * weight("a"));
        cache.completed(&scope("a"), A, &"x".repeat(weight("a")), at(0), at(100));
        assert_eq!(cache.replay(&scope("a"), &A, at(1)), None);
        let off = ReplayCache::new(0);
        off.completed(&scope("a"), A, &1, at(0), at(100));
        assert_eq!(off.replay(&scope("a"), &A, at(1)), None);
    }
}
