//! The in-memory store's bounds: how many key records it holds (enforced
//! by the claim table, under its lock) and how many bytes of resources
//! (a budget every resource table draws from, reserved before a row is
//! stored, so concurrent creations can never overdraw it).

use std::sync::atomic::{AtomicUsize, Ordering};

/// What one stored resource costs besides its JSON: the row's struct, its
/// strings' headers and its share of the table's B-tree, estimated.
pub const ROW_OVERHEAD_BYTES: usize = 256;

/// Room for the smallest resource (an agent with only a name is about
/// 300 bytes of JSON): below this the store cannot take any creation.
pub const SMALLEST_ROW_BYTES: usize = 1_024;

/// Seconds a client refused for want of resource room is told to wait. No
/// resource is ever deleted, so waiting alone does not make room: this
/// only paces retries while an operator restarts or moves to Postgres.
pub const RESOURCES_FULL_RETRY_SECS: u64 = 60;

/// Bounds of an in-memory store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Most idempotency records held at once, live or dead.
    pub max_keys: usize,
    /// Most bytes of resources: each counted as its compact JSON plus
    /// [`ROW_OVERHEAD_BYTES`].
    pub max_resource_bytes: usize,
}

impl MemoryLimits {
    /// No bound at all (tests and benchmarks that want none).
    pub const UNBOUNDED: Self = Self {
        max_keys: usize::MAX,
        max_resource_bytes: usize::MAX,
    };
}

/// A byte budget shared by every resource table of one store.
#[derive(Debug)]
pub struct Budget {
    max: usize,
    used: AtomicUsize,
}

impl Budget {
    /// An empty budget of `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            used: AtomicUsize::new(0),
        }
    }

    /// Takes `bytes` from the budget if they fit, atomically.
    pub fn try_reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.max)
            })
            .is_ok()
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.max.saturating_sub(self.used.load(Ordering::Acquire))
    }

    /// Bytes taken.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_is_all_or_nothing() {
        let budget = Budget::new(100);
        assert!(budget.try_reserve(60));
        assert!(!budget.try_reserve(41), "over the budget: nothing taken");
        assert_eq!(budget.remaining(), 40);
        assert!(budget.try_reserve(40));
        assert_eq!((budget.used(), budget.remaining()), (100, 0));
        assert!(!budget.try_reserve(1));
        assert!(Budget::new(usize::MAX).try_reserve(usize::MAX));
    }

    #[test]
    fn concurrent_reservations_never_overdraw() {
        let budget = std::sync::Arc::new(Budget::new(1_000));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let budget = budget.clone();
                std::thread::spawn(move || (0..100).filter(|_| budget.try_reserve(3)).count())
            })
            .collect();
        let granted: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
        assert_eq!(granted, 1_000 / 3);
        assert_eq!(budget.used(), 3 * granted);
    }
}
