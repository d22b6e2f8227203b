//! One shard of the claim table: the records of the scopes that hash to
//! it, their expiry index and their waiters, always changed together under
//! the shard's lock. A shard knows nothing of the table-wide record count;
//! the table adjusts it from what these methods report.

use std::collections::{BTreeSet, HashMap};

use super::Waker;
use crate::key::Scope;
use crate::record::{KeyRecord, Timestamp};

/// The records of one shard.
pub(super) struct Shard<R> {
    /// The records, keyed by scope.
    pub(super) slots: HashMap<Scope, Slot<R>>,
    /// `(expires_at, scope)` of every record, so reaping visits only the
    /// expired ones instead of scanning the shard.
    by_expiry: BTreeSet<(Timestamp, Scope)>,
}

/// A record and the requests waiting on it.
pub(super) struct Slot<R> {
    /// The key's record.
    pub(super) record: KeyRecord<R>,
    /// Requests waiting for this in-progress record to change.
    pub(super) waiters: Vec<Waker>,
}

impl<R> Shard<R> {
    /// An empty shard.
    pub(super) fn new() -> Self {
        Self {
            slots: HashMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    /// The expiries of the first `limit` records dead at `now`, oldest
    /// first.
    pub(super) fn dead_expiries(&self, now: Timestamp, limit: usize) -> Vec<Timestamp> {
        self.by_expiry
            .iter()
            .take_while(|(expires_at, _)| *expires_at <= now)
            .filter(|(_, scope)| self.slots.get(scope).is_some_and(|s| s.record.is_dead(now)))
            .take(limit)
            .map(|(expires_at, _)| *expires_at)
            .collect()
    }

    /// Removes up to `limit` records dead at `now` that expired at or
    /// before `until`, oldest expiry first; their waiters go to `woken`.
    /// Returns how many were removed.
    pub(super) fn reap(&mut self, now: Timestamp, until: Timestamp, limit: usize, woken: &mut Vec<Waker>) -> usize {
        let due: Vec<Scope> = self
            .by_expiry
            .iter()
            .take_while(|(expires_at, _)| *expires_at <= until)
            .map(|(_, scope)| scope)
            .filter(|scope| self.slots.get(*scope).is_some_and(|s| s.record.is_dead(now)))
            .take(limit)
            .cloned()
            .collect();
        for scope in &due {
            woken.extend(self.remove(scope).unwrap_or_default());
        }
        due.len()
    }

    /// When this shard's first record expires (`None` if it has none).
    pub(super) fn first_expiry(&self) -> Option<Timestamp> {
        self.by_expiry.first().map(|(expires_at, _)| *expires_at)
    }

    /// Stores `record` for `scope`, replacing any previous one; returns the
    /// replaced record's waiters so the caller can wake them. Whether this
    /// adds a record is for the caller to account: it does when `scope` had
    /// none.
    pub(super) fn put(&mut self, scope: Scope, record: KeyRecord<R>) -> Vec<Waker> {
        let woken = self.remove(&scope).unwrap_or_default();
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

    /// Removes `scope`'s record; returns its waiters, or `None` if it had
    /// no record (so the caller knows whether one record fewer is held).
    pub(super) fn remove(&mut self, scope: &Scope) -> Option<Vec<Waker>> {
        let slot = self.slots.remove(scope)?;
        self.by_expiry.remove(&(slot.record.expires_at, scope.clone()));
        Some(slot.waiters)
    }
}
