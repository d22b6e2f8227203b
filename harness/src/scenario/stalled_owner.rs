//! `stalled-owner`: each key's first request stalls in its work (a slow
//! call to another service) for twice the lease; its client's second tab
//! sends the same request after one and a quarter leases, when the first
//! one's claim has expired and may be taken over. Whatever happens, the
//! key ends with one resource and every success names it: a service that
//! lets the stalled owner commit after losing its claim (no fencing), or
//! that takes live claims over, creates two.

use std::time::Duration;

use rand::RngExt;

use super::{Ctx, Scenario, submission};
use crate::driver::Plan;
use crate::fault::Fault;
use crate::history::RetryPolicy;

pub fn plan(ctx: &Ctx) -> Result<Plan, String> {
    if !ctx.caps.db_faults {
        return Err("the harness cannot slow this target's work".into());
    }
    let mut rng = ctx.rng(Scenario::StalledOwner);
    let lease = ctx.semantics.lease.max(Duration::from_millis(100));
    let stall = lease * 2;
    let second = lease * 5 / 4;
    // Both requests of a key may do the stalled work, the first one twice
    // if it commits after losing its claim.
    let window = second + stall * 2 + ctx.semantics.wait;
    let mut plan = Plan {
        window,
        faults: vec![(Duration::ZERO, Fault::SlowWork(stall)), (window, Fault::Heal)],
        ..Plan::default()
    };
    let retry = RetryPolicy {
        attempts: 3,
        timeout: window + Duration::from_secs(5),
        give_up_after: window * 2,
        ..RetryPolicy::default()
    };
    for k in 0..ctx.keys.max(1) {
        let who = ctx.principal(k, 0);
        let key = ctx.key(Scenario::StalledOwner, format_args!("{k}"));
        let form = ctx.form(format_args!("stalled {k}"), &mut rng);
        let start = Duration::from_millis(rng.random_range(0..50));
        for (tab, at) in [(0, start), (1, start + second)] {
            let mut s = submission(2 * k + tab, who, Some(key.clone()), form.clone());
            s.retry = retry;
            s.replica = (k + tab) % ctx.caps.replicas.max(1);
            plan.single(s, at, None);
        }
    }
    Ok(plan)
}
