//! The per-organisation cap on API requests in flight
//! (`MAX_IN_FLIGHT_PER_ORG`): fairness the rate limit does not give. A
//! rate bounds how often a tenant may start requests, not how many of
//! its slow ones (large bodies, waits on in-flight keys, a slow database)
//! pile up at once; without this cap one tenant could hold every one of
//! the `MAX_IN_FLIGHT` slots and every other tenant would be shed with
//! 503. With it, a tenant at its cap gets 429 `too_many_in_flight` for
//! its next request, at once, before its body is read, and the others
//! keep the rest of the slots.
//!
//! A slot is taken in the gate, after authentication and membership (so
//! nobody can spend another tenant's slots), and given back when the
//! request's handling ends: for a creation, which runs detached from its
//! connection, when the creation ends, not when the client hangs up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// In-flight counts per organisation.
#[derive(Debug)]
pub struct TenantInFlight {
    limit: usize,
    /// Only organisations with requests in flight have an entry.
    counts: Arc<Mutex<HashMap<i64, usize>>>,
}

/// One request's slot; dropping it gives the slot back.
#[derive(Debug)]
pub struct Slot {
    organization_id: i64,
    counts: Arc<Mutex<HashMap<i64, usize>>>,
}

impl TenantInFlight {
    /// At most `limit` requests per organisation; `None` when `limit` is 0
    /// (no cap).
    pub fn new(limit: usize) -> Option<Self> {
        (limit > 0).then(|| Self {
            limit,
            counts: Arc::default(),
        })
    }

    /// The cap.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A slot for a request of `organization_id`, unless it is at its cap.
    pub fn enter(&self, organization_id: i64) -> Option<Slot> {
        let mut counts = lock(&self.counts);
        let count = counts.entry(organization_id).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Slot {
            organization_id,
            counts: self.counts.clone(),
        })
    }

    /// Requests of `organization_id` in flight.
    pub fn in_flight(&self, organization_id: i64) -> usize {
        lock(&self.counts).get(&organization_id).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        if let Some(count) = counts.get_mut(&self.organization_id) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.organization_id);
            }
        }
    }
}

fn lock(counts: &Mutex<HashMap<i64, usize>>) -> MutexGuard<'_, HashMap<i64, usize>> {
    // Every change is a single counter update: a poisoned map is intact.
    counts.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_off() {
        assert!(TenantInFlight::new(0).is_none());
    }

    #[test]
    fn each_organisation_has_its_own_slots_given_back_on_drop() {
        let cap = TenantInFlight::new(2).expect("on");
        assert_eq!(cap.limit(), 2);
        let a = cap.enter(1).expect("first");
        let b = cap.enter(1).expect("second");
        assert!(cap.enter(1).is_none(), "at the cap");
        let other = cap.enter(2).expect("another organisation is not affected");
        assert_eq!((cap.in_flight(1), cap.in_flight(2)), (2, 1));
        drop(a);
        let c = cap.enter(1).expect("a slot given back is free again");
        drop((b, c, other));
        assert_eq!((cap.in_flight(1), cap.in_flight(2)), (0, 0));
        assert!(lock(&cap.counts).is_empty(), "idle organisations leave no entry");
    }
}
