//! `double-click`: each form submitted twice, the second click 1 to 30 ms
//! after the first. Guards against the classic duplicate from an impatient
//! user: both clicks must name the same agent.

use std::time::Duration;

use rand::RngExt;

use super::{Ctx, Scenario, submission};
use crate::driver::Plan;

pub fn plan(ctx: &Ctx) -> Plan {
    let mut rng = ctx.rng(Scenario::DoubleClick);
    let mut plan = Plan {
        window: ctx.duration,
        ..Plan::default()
    };
    let spread = ctx.duration.as_millis().max(1) as u64 / 2;
    for k in 0..ctx.keys {
        let who = ctx.principal(k, k % 3);
        let key = ctx.key(Scenario::DoubleClick, format_args!("{k}"));
        let body = ctx.form(format_args!("double-click {k}"), &mut rng);
        let first = Duration::from_millis(rng.random_range(0..=spread));
        let second = first + Duration::from_millis(rng.random_range(1..=30));
        for start in [first, second] {
            let s = submission(k, who, Some(key.clone()), body.clone());
            plan.single(s, start, None);
        }
    }
    plan
}
