//! `cross-tenant`: one key string used at the same moment by four
//! organisations and two users in each. Every (organisation, user) gets
//! its own agent; no response may ever show another tenant's agent. On
//! every other key all tenants submit the very same form (a shared
//! template), so a service that forgot the tenant in its key scope cannot
//! hide behind a payload mismatch: it replays another tenant's agent.

use std::time::Duration;

use super::{Ctx, ORGS, Scenario, payload, submission};
use crate::driver::Plan;
use crate::history::Expect;

pub fn plan(ctx: &Ctx) -> Plan {
    let mut rng = ctx.rng(Scenario::CrossTenant);
    let mut plan = Plan {
        window: ctx.duration,
        ..Plan::default()
    };
    for k in 0..(ctx.keys / 2).max(1) {
        let key = ctx.key(Scenario::CrossTenant, format_args!("{k}"));
        let template = payload(format!("template {k}"), &mut rng);
        for (t, &org) in ORGS.iter().enumerate() {
            for user in 1..=2 {
                let body = if k % 2 == 0 {
                    template.clone()
                } else {
                    payload(format!("tenant {org}/{user} key {k}"), &mut rng)
                };
                let mut s = submission(t, org, user, Some(key.clone()), body);
                s.expect = Expect::Created;
                s.replica = t % ctx.caps.replicas.max(1);
                plan.single(s, Duration::from_millis(k as u64 % 100), Some(k));
            }
        }
    }
    plan
}
