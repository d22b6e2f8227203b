//! `timeout-retry`: the client's timeout is shorter than the server's
//! latency, so it gives up on requests the server is still working on and
//! retries with the same key, backing off (each attempt waiting longer).
//! Retries arrive while the original is in flight (wait, then replay, or
//! 409) or after it finished (replay); a service that cancels work when
//! the client leaves lets the retry create instead. Either way each key
//! ends with exactly one agent, and the client eventually gets it.

use std::time::Duration;

use rand::RngExt;

use super::{Ctx, ORGS, Scenario, payload, submission};
use crate::driver::Plan;
use crate::history::RetryPolicy;
use crate::target::Fault;

/// Latency injected between service and store.
const LATENCY: Duration = Duration::from_millis(20);

pub fn plan(ctx: &Ctx) -> Result<Plan, String> {
    let mut rng = ctx.rng(Scenario::TimeoutRetry);
    let mut plan = Plan {
        window: ctx.duration,
        ..Plan::default()
    };
    // Where the harness controls latency, make the server slow; against a
    // black box, make the client impatient instead.
    let timeouts = if ctx.caps.db_faults {
        plan.faults = vec![(Duration::ZERO, Fault::DbSlow(LATENCY)), (ctx.duration, Fault::Heal)];
        20..100
    } else {
        1..15
    };
    let spread = ctx.duration.as_millis().max(1) as u64 * 2 / 3;
    for k in 0..ctx.keys.max(1) {
        let org = ORGS[k % ORGS.len()];
        let key = ctx.key(Scenario::TimeoutRetry, format_args!("{k}"));
        let mut s = submission(k, org, 1, Some(key), payload(format!("timeout {k}"), &mut rng));
        s.retry = RetryPolicy {
            attempts: 30,
            timeout: Duration::from_millis(rng.random_range(timeouts.clone())),
            backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            give_up_after: ctx.patient(),
            same_replica: false,
        };
        s.replica = k % ctx.caps.replicas.max(1);
        plan.single(s, Duration::from_millis(rng.random_range(0..=spread)), None);
    }
    Ok(plan)
}
