//! `crash`: steady keyed load; replica 0 is killed with `kill -9` at 25 %
//! of the window and started again at 40 %, then killed again at 60 % and
//! started at 75 % (emulated in process for the memory target: in-flight
//! requests die between claim and completion and release nothing).
//! Store latency and slow work keep requests mid-work when the kill
//! lands. Clients keep retrying. Exactly one agent per key, nothing
//! acknowledged lost, and no key blocked past the lease.

use std::time::Duration;

use super::{Ctx, Scenario, continuous, fault_retry};
use crate::driver::Plan;
use crate::fault::Fault;

/// Over how long client starts are spread: about one request under the
/// injected latency and work.
const STAGGER: Duration = Duration::from_millis(500);

pub fn plan(ctx: &Ctx) -> Result<Plan, String> {
    if !ctx.caps.crash {
        return Err("this target's processes cannot be killed".into());
    }
    let mut plan = Plan::default();
    continuous(ctx, Scenario::Crash, fault_retry(ctx), &mut plan);
    // Clients started together stay in step, and a kill then finds them
    // all in the same phase of their requests (all before their claims,
    // say): spread their starts over one request's duration instead.
    let n = plan.chains.len().max(1) as u32;
    for (i, chain) in plan.chains.iter_mut().enumerate() {
        chain.start = STAGGER * i as u32 / n;
    }
    let d = ctx.duration;
    plan.faults = vec![
        // Latency to the store keeps requests between their claim and
        // their completion when the kill lands, as real database round
        // trips would under load.
        (Duration::ZERO, Fault::DbSlow(Duration::from_millis(20))),
        // Slow work keeps them there most of the time (as a call to another
        // service would): a kill that finds a replica connecting, reading
        // or with its write already sent (the database then finishes it)
        // tests nothing.
        (Duration::ZERO, Fault::SlowWork(Duration::from_millis(250))),
        (d / 4, Fault::Crash(0)),
        (d * 2 / 5, Fault::Restart(0)),
        (d * 3 / 5, Fault::Crash(0)),
        (d * 3 / 4, Fault::Restart(0)),
        (d, Fault::Heal),
    ];
    Ok(plan)
}
