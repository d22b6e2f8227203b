//! The database faults, each over steady keyed load (emulated at the store
//! boundary for the memory target):
//! - `db-restart`: the database stops at 30 % of the window, starts at 50 %;
//! - `db-slow`: 60 ms added to every exchange from 20 % to 60 %;
//! - `db-drop`: connections cut every 100 ms from 20 % to 60 %.
//!
//! During a fault only clean 503s and 409s are allowed; afterwards every
//! client must get through, with no duplicate and nothing lost.

use std::time::Duration;

use super::{Ctx, Scenario, continuous, fault_retry};
use crate::driver::Plan;
use crate::target::Fault;

fn with_faults(ctx: &Ctx, scenario: Scenario, faults: Vec<(Duration, Fault)>) -> Result<Plan, String> {
    if !ctx.caps.db_faults {
        return Err("this target's database cannot be reached by the harness".into());
    }
    let mut plan = Plan::default();
    continuous(ctx, scenario, fault_retry(ctx), &mut plan);
    plan.faults = faults;
    Ok(plan)
}

pub fn restart(ctx: &Ctx) -> Result<Plan, String> {
    let d = ctx.duration;
    with_faults(
        ctx,
        Scenario::DbRestart,
        vec![(d * 3 / 10, Fault::DbDown), (d / 2, Fault::DbUp), (d, Fault::Heal)],
    )
}

pub fn slow(ctx: &Ctx) -> Result<Plan, String> {
    let d = ctx.duration;
    with_faults(
        ctx,
        Scenario::DbSlow,
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
        vec![(d / 5, Fault::DbDrop), (d * 3 / 5, Fault::Heal)],
    )
}
