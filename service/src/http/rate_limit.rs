//! Per-organisation request rates (GCRA, from the `governor` crate): one
//! organisation flooding the API cannot starve the others. Off unless
//! `RATE_LIMIT_PER_ORG` is set; a request over its organisation's quota
//! gets 429 with `Retry-After` before its body is read.
//!
//! The quota is per organisation, not per user or token: it is the
//! tenant that shares the service with other tenants. It is checked
//! after authentication and membership, so nobody can spend another
//! organisation's quota with requests it would refuse anyway.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// How often the limiter forgets organisations that are back to a full
/// bucket (their state is indistinguishable from a new one).
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// The per-organisation limiter.
pub struct OrgRateLimiter {
    limiter: DefaultKeyedRateLimiter<i64>,
    clock: DefaultClock,
}

impl OrgRateLimiter {
    /// `per_second` requests per second per organisation, in bursts of up
    /// to `burst` (0: `per_second`); `None` when `per_second` is 0 (off).
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        Some(Self {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            clock: DefaultClock::default(),
        })
    }

    /// Admits one request of `organization_id`, or says how long until
    /// the next one would be admitted.
    pub fn check(&self, organization_id: i64) -> Result<(), Duration> {
        self.limiter
            .check_key(&organization_id)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets idle organisations; run every [`PRUNE_INTERVAL`].
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Organisations currently tracked.
    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_off() {
        assert!(OrgRateLimiter::new(0, 10).is_none());
    }

    #[test]
    fn a_burst_is_admitted_then_refused_per_organisation() {
        let limiter = OrgRateLimiter::new(1, 3).expect("on");
        for _ in 0..3 {
            assert_eq!(limiter.check(1), Ok(()));
        }
        let wait = limiter.check(1).expect_err("over the burst");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        assert_eq!(limiter.check(2), Ok(()), "another organisation has its own quota");
        assert_eq!(limiter.tracked(), 2);
    }

    #[test]
    fn pruning_forgets_organisations_back_to_a_full_bucket_only() {
        // 1000 per second in bursts of one: a bucket is full again 1 ms
        // after its one request; a bucket with no token left is not.
        let limiter = OrgRateLimiter::new(1000, 1).expect("on");
        assert_eq!(limiter.check(1), Ok(()));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(limiter.check(2), Ok(()));
        assert_eq!(limiter.tracked(), 2);
        limiter.prune();
        assert_eq!(
            limiter.tracked(),
            1,
            "organisation 1 is idle again, organisation 2 is not"
        );
    }
}
