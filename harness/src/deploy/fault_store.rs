//! Fault emulation at the store boundary, for the in-process memory
//! target where there is no database connection to slow down or sever and
//! no separate process to kill. Each fault mimics what the service would
//! see from its real counterpart:
//!
//! - outage (`db-restart`): every store call fails;
//! - slow (`db-slow`, `timeout-retry`): every store call is delayed;
//! - drop (`db-drop`): each store call fails with some probability;
//! - failing inserts (`db-error`): the next creations fail, as a
//!   serialization failure or a constraint at the insert would;
//! - crash (`crash`): requests in flight never complete and never release
//!   their claims (a killed process cannot), and nothing answers until the
//!   restart. Records survive, as they would in a shared database.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use idemproof_models::{Fingerprint, LeaseToken, Scope, Timestamp};
use idemproof_service::readiness::Probe;
use idemproof_service::store::{
    ClaimOutcome, KeyStore, Layer, Lease, Listed, OneStep, PageBound, Resource, Resources, StoreError,
};
use rand::{RngExt, SeedableRng};

use crate::SeededRng;

/// The faults in force; shared between the store and the harness.
pub struct FaultState {
    outage: AtomicBool,
    crashed: AtomicBool,
    /// Bumped by every crash: a request that saw another epoch before its
    /// write died with the process.
    epoch: AtomicU64,
    /// Delay before every store call, in microseconds. Atomics, not locks:
    /// replicas keep this wrapper in their hot path during load runs.
    latency_us: AtomicU64,
    /// Extra time every creation takes (`crash`), as work between the
    /// claim and the write would.
    work_delay_us: AtomicU64,
    /// Failure probability per call (`f64` bits; 0 when off).
    drop_rate: AtomicU64,
    /// The drop decisions' seeded source, locked only while dropping.
    drop_rng: Mutex<SeededRng>,
    /// The next this-many one-step creations fail.
    failing_one_step: AtomicU32,
    /// The next this-many creations under a claim fail.
    failing_claimed: AtomicU32,
    /// The next this-many creations of either kind fail (`db-error`).
    failing_any: AtomicU32,
    /// Claims of requests that died in a crash: never released.
    dead: Mutex<HashSet<LeaseToken>>,
    /// Set when the deployment stops, so requests "frozen" by a crash end
    /// with it instead of lingering as tasks.
    stopped: tokio::sync::watch::Sender<bool>,
}

impl FaultState {
    /// No faults; `seed` drives the drop decisions.
    pub fn new(seed: u64) -> Self {
        Self {
            outage: AtomicBool::new(false),
            crashed: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            latency_us: AtomicU64::new(0),
            work_delay_us: AtomicU64::new(0),
            drop_rate: AtomicU64::new(0f64.to_bits()),
            drop_rng: Mutex::new(SeededRng::seed_from_u64(seed)),
            failing_one_step: AtomicU32::new(0),
            failing_claimed: AtomicU32::new(0),
            failing_any: AtomicU32::new(0),
            dead: Mutex::new(HashSet::new()),
            stopped: tokio::sync::watch::channel(false).0,
        }
    }

    /// The next `n` one-step creations (keys with no record) fail, as a
    /// database error at the insert would make them.
    pub fn fail_next_one_step_creates(&self, n: u32) {
        self.failing_one_step.store(n, Ordering::SeqCst);
    }

    /// The next `n` creations under a claim (keys going the long way) fail.
    pub fn fail_next_claimed_creates(&self, n: u32) {
        self.failing_claimed.store(n, Ordering::SeqCst);
    }

    /// The next `n` creations of either kind fail, as the database's
    /// trigger does for the Postgres target (`db-error`); 0 disarms.
    pub fn fail_next_creates(&self, n: u32) {
        self.failing_any.store(n, Ordering::SeqCst);
    }

    /// The deployment is gone: requests frozen by a crash may end.
    pub fn stop(&self) {
        self.stopped.send_replace(true);
    }

    /// Every store call fails while on.
    pub fn set_outage(&self, on: bool) {
        self.outage.store(on, Ordering::SeqCst);
    }

    /// Delay added before every store call (and once more inside a create).
    pub fn set_latency(&self, latency: Duration) {
        self.latency_us.store(micros(latency), Ordering::SeqCst);
    }

    /// Extra time every creation takes, between its start and its write.
    pub fn set_work_delay(&self, delay: Duration) {
        self.work_delay_us.store(micros(delay), Ordering::SeqCst);
    }

    /// Probability that a store call fails.
    pub fn set_drop_rate(&self, rate: f64) {
        self.drop_rate.store(rate.to_bits(), Ordering::SeqCst);
    }

    /// The process "dies": requests in flight never finish, nothing answers.
    pub fn crash(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.crashed.store(true, Ordering::SeqCst);
    }

    /// The process is back.
    pub fn restart(&self) {
        self.crashed.store(false, Ordering::SeqCst);
    }

    fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_us.load(Ordering::Relaxed))
    }

    /// Applies the faults that act before a call reaches the store.
    async fn before(&self) -> Result<u64, StoreError> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        let latency = self.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if self.crashed.load(Ordering::SeqCst) || self.outage.load(Ordering::SeqCst) {
            return Err(injected("store unreachable"));
        }
        let rate = f64::from_bits(self.drop_rate.load(Ordering::Relaxed));
        if rate > 0.0 && self.drop_rng.lock().unwrap_or_else(|p| p.into_inner()).random::<f64>() < rate {
            return Err(injected("connection dropped"));
        }
        Ok(epoch)
    }

    fn died_since(&self, epoch: u64) -> bool {
        self.epoch.load(Ordering::SeqCst) != epoch
    }

    /// The injected latency once more, standing for the work itself,
    /// plus the work delay.
    async fn work_delay(&self) {
        let latency = self.latency() + Duration::from_micros(self.work_delay_us.load(Ordering::Relaxed));
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }

    /// A request that died with the process: never answers (until the
    /// deployment stops, so it does not outlive it as a task).
    async fn frozen<T>(&self) -> Result<T, StoreError> {
        let _ = self.stopped.subscribe().wait_for(|stopped| *stopped).await;
        Err(injected("the process died with this request"))
    }

    /// The faults of a creation, before its write: the work takes the
    /// injected latency once more, and a crash meanwhile kills the request
    /// (its claim, if any, is never released). Then the pending failures of
    /// `kind`, and of either kind, are consumed.
    async fn creating(&self, epoch: u64, lease: Option<&Lease>, kind: &AtomicU32) -> Result<(), StoreError> {
        self.work_delay().await;
        if self.died_since(epoch) {
            if let Some(lease) = lease {
                self.dead.lock().unwrap_or_else(|p| p.into_inner()).insert(lease.token);
            }
            return self.frozen().await;
        }
        take_one(kind)?;
        take_one(&self.failing_any)
    }
}

/// Consumes one pending failure from `counter`, if any.
fn take_one(counter: &AtomicU32) -> Result<(), StoreError> {
    match counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) {
        Ok(_) => Err(injected("insert failed")),
        Err(_) => Ok(()),
    }
}

fn injected(what: &str) -> StoreError {
    StoreError::unavailable(std::io::Error::other(format!("injected fault: {what}")))
}

#[async_trait]
impl Layer for FaultState {
    async fn claim(
        &self,
        next: &dyn KeyStore,
        scope: &Scope,
        fp: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        self.before().await?;
        next.claim(scope, fp, token, now).await
    }

    async fn release(&self, next: &dyn KeyStore, lease: &Lease) -> Result<(), StoreError> {
        let dead = self
            .dead
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&lease.token);
        if dead {
            return Ok(()); // a killed process releases nothing
        }
        self.before().await?;
        next.release(lease).await
    }

    async fn reap_expired(&self, next: &dyn KeyStore, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        self.before().await?;
        next.reap_expired(now, limit).await
    }

    /// The readiness probe meets the same faults as every other call.
    async fn probe_write(&self, next: &dyn KeyStore, now: Timestamp, patience: Duration) -> Probe {
        match self.before().await {
            Ok(_) => next.probe_write(now, patience).await,
            Err(_) => Probe::Failed,
        }
    }

    async fn insert<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        new: &R::New,
        now: Timestamp,
    ) -> Result<R, StoreError> {
        let epoch = self.before().await?;
        self.creating(epoch, None, &self.failing_claimed).await?;
        next.insert(new, now).await
    }

    async fn insert_one_step<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        scope: &Scope,
        fp: Fingerprint,
        new: &R::New,
        now: Timestamp,
    ) -> Result<OneStep<R>, StoreError> {
        let epoch = self.before().await?;
        // The one-step write is atomic: a crash during it writes nothing,
        // as a rolled-back transaction would.
        self.creating(epoch, None, &self.failing_one_step).await?;
        next.insert_one_step(scope, fp, new, now).await
    }

    async fn insert_completing<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        lease: &Lease,
        new: &R::New,
        now: Timestamp,
    ) -> Result<R, StoreError> {
        let epoch = self.before().await?;
        self.creating(epoch, Some(lease), &self.failing_claimed).await?;
        next.insert_completing(lease, new, now).await
    }

    async fn get<R: Resource>(&self, next: &dyn Resources<R>, org: i64, id: i64) -> Result<Option<R>, StoreError> {
        self.before().await?;
        next.get(org, id).await
    }

    async fn list<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        org: i64,
        parent: Option<i64>,
        after: Option<i64>,
        bound: PageBound,
    ) -> Result<Listed<R>, StoreError> {
        self.before().await?;
        next.list(org, parent, after, bound).await
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
