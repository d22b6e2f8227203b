//! `storm`: `storm_clients` clients released together by a barrier on one
//! key, for several keys at once. The widest possible window for a
//! check-then-insert race: exactly one creation per key must survive it.

use std::time::Duration;

use super::{Ctx, Scenario, submission};
use crate::driver::Plan;

pub fn plan(ctx: &Ctx) -> Plan {
    let mut rng = ctx.rng(Scenario::Storm);
    let mut plan = Plan {
        window: ctx.duration,
        ..Plan::default()
    };
    let keys = (ctx.keys / 8).clamp(1, 16);
    for k in 0..keys {
        let who = ctx.principal(k, 0);
        let key = ctx.key(Scenario::Storm, format_args!("{k}"));
        let body = ctx.form(format_args!("storm {k}"), &mut rng);
        for c in 0..ctx.storm_clients {
            let mut s = submission(c, who, Some(key.clone()), body.clone());
            s.replica = c % ctx.caps.replicas.max(1);
            plan.single(s, Duration::ZERO, Some(k));
        }
    }
    plan
}
