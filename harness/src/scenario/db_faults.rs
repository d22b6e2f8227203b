//! The database faults, each over steady keyed load (emulated at the store
//! boundary for the memory target):
//! - `db-restart`: the database stops at 30 % of the window, starts at 50 %;
//! - `db-slow`: 60 ms added to every exchange from 20 % to 60 %;
//! - `db-drop`: connections cut every 100 ms from 20 % to 60 %;
//! - `db-error`: the database rejects the first inserts (one per client)
//!   with a serialization failure; the fault is gone at 50 %. Clients
//!   retry on the replica they started on (session affinity), so a
//!   replica that remembers the failure against the key is caught.
//!
//! During a fault only clean 503s and 409s are allowed; afterwards every
//! client must get through, with no duplicate and nothing lost.

use std::time::Duration;

use super::{Ctx, Scenario, continuous, fault_retry};
use crate::driver::Plan;
use crate::fault::Fault;
use crate::history::RetryPolicy;

fn with_faults(
    ctx: &Ctx,
    scenario: Scenario,
    retry: RetryPolicy,
    faults: Vec<(Duration, Fault)>,
) -> Result<Plan, String> {
    if !ctx.caps.db_faults {
        return Err("this target's database cannot be reached by the harness".into());
    }
    let mut plan = Plan::default();
    continuous(ctx, scenario, retry, &mut plan);
    plan.faults = faults;
    Ok(plan)
}

pub fn restart(ctx: &Ctx) -> Result<Plan, String> {
    let d = ctx.duration;
    with_faults(
        ctx,
        Scenario::DbRestart,
        fault_retry(ctx),
        vec![(d * 3 / 10, Fault::DbDown), (d / 2, Fault::DbUp), (d, Fault::Heal)],
    )
}

pub fn slow(ctx: &Ctx) -> Result<Plan, String> {
    let d = ctx.duration;
    with_faults(
        ctx,
        Scenario::DbSlow,
        fault_retry(ctx),
        vec![
            (d / 5, Fault::DbSlow(Duration::from_millis(60))),
            (d * 3 / 5, Fault::Heal),
        ],
    )
}

pub fn drop(ctx: &Ctx) -> Result<Plan, String> {
    let d = ctx.duration;
    with_faults(
        ctx,
        Scenario::DbDrop,
        fault_retry(ctx),
        vec![(d / 5, Fault::DbDrop), (d * 3 / 5, Fault::Heal)],
    )
}

pub fn error(ctx: &Ctx) -> Result<Plan, String> {
    let d = ctx.duration;
    let failing = u32::try_from(ctx.clients.max(1)).unwrap_or(u32::MAX);
    let retry = RetryPolicy {
        same_replica: true,
        ..fault_retry(ctx)
    };
    with_faults(
        ctx,
        Scenario::DbError,
        retry,
        vec![(Duration::ZERO, Fault::FailInserts(failing)), (d / 2, Fault::Heal)],
    )
}
