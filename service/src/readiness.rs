//! Readiness that reflects whether the service can create, without
//! flapping (a prototype for `/readyz`: not wired in yet, see
//! docs/operations.md, "Not yet bounded").
//!
//! Today `/readyz` pings the store, which answers while every write fails
//! (a read-only database, a full disk). Readiness must instead come from
//! a probe that *writes* (for Postgres: a committed one-row update, which
//! fails on a read-only server and on a full disk once WAL cannot grow),
//! and must not flap when the pool is merely busy. So:
//!
//! - the probe runs in the background every `interval`, never on the
//!   request path, and `/readyz` reads the last verdict (a probe storm
//!   cannot exhaust the pool either);
//! - a probe that could not even get a connection in time is [`Probe::Busy`]:
//!   it says nothing about writes and leaves the verdict as it is;
//! - the verdict turns unready only after `fail_after` failed probes in a
//!   row, and ready again only after `recover_after` successful ones.
//!
//! What the store must provide (phase 2, with the store refactor): one
//! `async fn probe_write(&self) -> Probe` per backend, with its own short
//! pool-acquire timeout mapped to `Busy`.

use std::sync::atomic::{AtomicBool, Ordering};

/// One probe's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
