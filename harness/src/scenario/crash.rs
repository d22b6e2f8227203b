//! `crash`: steady keyed load; at 30 % of the window replica 0 is killed
//! with `kill -9` (emulated in process for the memory target: in-flight
//! requests die between claim and completion and release nothing), at 50 %
//! it starts again. Clients keep retrying. Exactly one agent per key,
//! nothing acknowledged lost, and no key blocked past the lease.

use std::time::Duration;

use super::{Ctx, Scenario, continuous, fault_retry};
use crate::driver::Plan;
use crate::target::Fault;

pub fn plan(ctx: &Ctx) -> Result<Plan, String> {
    if !ctx.caps.crash {
        return Err("this target's processes cannot be killed".into());
    }
    let mut plan = Plan::default();
    continuous(ctx, Scenario::Crash, fault_retry(ctx), &mut plan);
    let d = ctx.duration;
    plan.faults = vec![
        // A little latency keeps requests in flight when the kill lands.
        (Duration::ZERO, Fault::DbSlow(Duration::from_millis(5))),
        (d * 3 / 10, Fault::Crash(0)),
        (d / 2, Fault::Restart(0)),
        (d, Fault::Heal),
    ];
    Ok(plan)
}
