//! Readiness that reflects whether the service can create, without
//! flapping. `/readyz` answers the last verdict of a background write
//! probe ([`run`]); it never touches the store itself.
//!
//! A ping would answer while every write fails (a read-only database, a
//! full disk), so the probe *writes*: [`crate::store::KeyStore::probe_write`],
//! on Postgres a committed write that allocates a fresh page of a table
//! clients never see, in memory a check for room under the store's
//! bounds. And readiness must not flap when the pool is merely busy, so:
//!
//! - the probe runs every `READINESS_INTERVAL`, never on the request path,
//!   so a storm of `/readyz` requests costs nothing and cannot exhaust the
//!   pool;
//! - a probe that could not get a connection within
//!   `READINESS_PROBE_TIMEOUT` because every connection is in use is
//!   [`Probe::Busy`]: it says nothing about writes and leaves the verdict
//!   as it is;
//! - the verdict turns unready only after `READINESS_FAIL_AFTER` failed
//!   probes in a row, and ready again only after `READINESS_RECOVER_AFTER`
//!   successful ones.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::http::metrics::Metrics;
use crate::store::KeyStore;

use std::sync::atomic::{AtomicBool, Ordering};

/// One probe's outcome. Its label in `/metrics` is the variant's name in
/// lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Probe {
    /// A write committed.
    Wrote,
    /// A write was refused or failed (read-only, disk full, down).
    Failed,
    /// No connection in time: no evidence either way.
    Busy,
}

/// The verdict, with hysteresis.
#[derive(Debug)]
pub struct Readiness {
    ready: AtomicBool,
    fail_after: u32,
    recover_after: u32,
    /// Consecutive probes contradicting the current verdict.
    streak: std::sync::Mutex<u32>,
}

impl Readiness {
    /// Starts ready (the start-up connection and migrations succeeded).
    pub fn new(fail_after: u32, recover_after: u32) -> Self {
        Self {
            ready: AtomicBool::new(true),
            fail_after: fail_after.max(1),
            recover_after: recover_after.max(1),
            streak: std::sync::Mutex::new(0),
        }
    }

    /// The current verdict, for `/readyz`.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Takes one probe's outcome into account; returns the verdict.
    pub fn observe(&self, probe: Probe) -> bool {
        let ready = self.is_ready();
        let contradicts = match probe {
            Probe::Busy => return ready,
            Probe::Wrote => !ready,
            Probe::Failed => ready,
        };
        let mut streak = self.streak.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !contradicts {
            *streak = 0;
            return ready;
        }
        *streak += 1;
        let needed = if ready { self.fail_after } else { self.recover_after };
        if *streak >= needed {
            *streak = 0;
            self.ready.store(!ready, Ordering::Relaxed);
            return !ready;
        }
        ready
    }
}

/// How the probe runs and how the verdict moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    /// Time between probes.
    pub interval: Duration,
    /// How long a probe may wait for a connection (then busy) and for its
    /// write (then failed).
    pub timeout: Duration,
    /// Failed probes in a row that make the service unready.
    pub fail_after: u32,
    /// Successful probes in a row that make it ready again.
    pub recover_after: u32,
}

/// Probes `keys` every `settings.interval` until the task is aborted,
/// feeding `readiness` and counting each outcome in `metrics`.
pub async fn run(
    keys: Arc<dyn KeyStore>,
    clock: Arc<dyn Clock>,
    readiness: Arc<Readiness>,
    metrics: Arc<Metrics>,
    settings: ProbeSettings,
) {
    let mut every = tokio::time::interval(settings.interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let probe = keys.probe_write(clock.now(), settings.timeout).await;
        let was = readiness.is_ready();
        let ready = readiness.observe(probe);
        metrics.record_probe(probe, ready);
        if ready != was {
            if ready {
                tracing::info!("ready again: the write probe succeeded");
            } else {
                tracing::warn!("not ready: the write probe keeps failing; creations would fail");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(r: &Readiness, probes: &[Probe]) -> Vec<bool> {
        probes.iter().map(|p| r.observe(*p)).collect()
    }

    #[test]
    fn unready_only_after_consecutive_failures_and_busy_changes_nothing() {
        use Probe::*;
        let r = Readiness::new(3, 2);
        assert_eq!(
            run(&r, &[Failed, Failed, Wrote, Failed, Busy, Failed, Failed]),
            [true, true, true, true, true, true, false]
        );
        assert_eq!(
            run(&r, &[Busy, Busy, Wrote, Failed, Wrote, Wrote]),
            [false, false, false, false, false, true]
        );
    }

    #[test]
    fn a_busy_pool_never_flaps_the_verdict() {
        let r = Readiness::new(1, 1);
        assert!(run(&r, &[Probe::Busy; 100]).into_iter().all(|ready| ready));
    }
}
