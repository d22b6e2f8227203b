//! Which open connections are idle, so that at the connection cap the one
//! idle the longest can be closed to make room for a new one, as nginx
//! does with its idle keep-alive connections when it runs out.
//!
//! Without this, an attacker holding more idle connections than the cap
//! (possible wherever the open-file limit keeps the cap low) would lock
//! every newcomer out until the header timeout cut its connections, and
//! reconnecting at once would keep it so. With it, each newcomer takes
//! the place of the connection idle the longest, which is the attacker's:
//! a normal client sends its request at once and is then busy, not idle.
//!
//! "Idle" means no request is being handled on the connection: it is
//! waiting for (or slowly receiving) a request head, or between requests.
//! A connection whose request is in the handler (its body being read
//! included) is never evicted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;

/// The open connections of one listener.
#[derive(Debug)]
pub struct Registry {
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Tracked>>>,
}

/// One open connection.
#[derive(Debug)]
pub struct Tracked {
    id: u64,
    /// Requests being handled on it (0 or 1 on HTTP/1.1).
    busy: AtomicUsize,
    /// Milliseconds since the registry's epoch at which it last started or
    /// finished a request (or opened).
    last_active_ms: AtomicU64,
    /// Set once it has been chosen, so it is never chosen twice.
    evicted: AtomicBool,
    /// Fired when it is chosen; its task then closes it.
    pub eviction: Notify,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        }
    }
}

impl Registry {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Registers a new connection (idle since now).
    pub fn open(&self) -> Arc<Tracked> {
        let tracked = Arc::new(Tracked {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            busy: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(self.now_ms()),
            evicted: AtomicBool::new(false),
            eviction: Notify::new(),
        });
        self.lock().insert(tracked.id, tracked.clone());
        tracked
    }

    /// Forgets a closed connection.
    pub fn close(&self, tracked: &Tracked) {
        self.lock().remove(&tracked.id);
    }

    /// Marks a request started on `tracked`; the guard marks it finished
    /// when dropped (also if the request is cancelled).
    pub fn busy(self: &Arc<Self>, tracked: &Arc<Tracked>) -> BusyGuard {
        tracked.busy.fetch_add(1, Ordering::AcqRel);
        tracked.last_active_ms.store(self.now_ms(), Ordering::Relaxed);
        BusyGuard {
            registry: self.clone(),
            tracked: tracked.clone(),
        }
    }

    /// Chooses the connection idle the longest and tells it to close;
    /// `false` if none is idle.
    pub fn evict_longest_idle(&self) -> bool {
        let open = self.lock();
        let chosen = open
            .values()
            .filter(|t| t.busy.load(Ordering::Acquire) == 0 && !t.evicted.load(Ordering::Relaxed))
            .min_by_key(|t| t.last_active_ms.load(Ordering::Relaxed));
        match chosen {
            Some(t) if !t.evicted.swap(true, Ordering::AcqRel) => {
                t.eviction.notify_one();
                true
            }
            _ => false,
        }
    }

    /// Connections open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Tracked>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A request in progress on a connection.
pub struct BusyGuard {
    registry: Arc<Registry>,
    tracked: Arc<Tracked>,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.tracked
            .last_active_ms
            .store(self.registry.now_ms(), Ordering::Relaxed);
        self.tracked.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_idle_connection_goes_first_and_busy_ones_never() {
        let registry = Arc::new(Registry::default());
        let oldest = registry.open();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let newer = registry.open();
        assert_eq!(registry.len(), 2);
        let busy = registry.busy(&oldest);
        assert!(registry.evict_longest_idle(), "the newer one is idle");
        assert!(newer.evicted.load(Ordering::Relaxed));
        assert!(!registry.evict_longest_idle(), "the only other one is busy");
        drop(busy);
        assert!(registry.evict_longest_idle(), "idle again once its request finished");
        assert!(!registry.evict_longest_idle(), "nobody is chosen twice");
        registry.close(&oldest);
        assert_eq!(registry.len(), 1, "an evicted connection counts until it closes");
        assert!(!registry.is_empty());
        registry.close(&newer);
        assert!(registry.is_empty());
    }

    /// Eight connections, so that a registry that lost track of time
    /// (every connection idle since the same instant, ties broken by the
    /// map's order) passes only by a 1-in-40320 chance.
    #[test]
    fn connections_go_in_the_order_they_fell_idle() {
        let registry = Arc::new(Registry::default());
        let mut opened = Vec::new();
        for _ in 0..8 {
            opened.push(registry.open());
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        // The first one opened finishes a request last: it is now the one
        // idle the shortest.
        drop(registry.busy(&opened[0]));
        let mut want: Vec<u64> = opened[1..].iter().map(|t| t.id).collect();
        want.push(opened[0].id);
        let mut chosen = Vec::new();
        while registry.evict_longest_idle() {
            let newly = opened
                .iter()
                .find(|t| t.evicted.load(Ordering::Relaxed) && !chosen.contains(&t.id))
                .expect("the one just chosen");
            chosen.push(newly.id);
        }
        assert_eq!(chosen, want);
    }
}
