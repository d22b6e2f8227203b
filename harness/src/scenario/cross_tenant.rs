//! `cross-tenant`: one key string used at the same moment by four
//! organisations and two users in each. Every (organisation, user) gets
//! its own agent; no response may ever show another tenant's agent. On
//! every other key all tenants submit the very same form (a shared
//! template), so a service that forgot the tenant in its key scope cannot
//! hide behind a payload mismatch: it replays another tenant's agent.

use std::time::Duration;

use super::{Ctx, Scenario, submission};
use crate::driver::Plan;
use crate::history::Expect;

/// At most this many tenants and users per tenant take part.
const TENANTS: usize = 4;
const USERS: usize = 2;

pub fn plan(ctx: &Ctx) -> Result<Plan, String> {
    let (tenants, users) = (ctx.tenants.min(TENANTS), ctx.users.min(USERS));
    if tenants * users < 2 {
        return Err("needs at least two principals (tenants or users) in the target file".into());
    }
    let mut rng = ctx.rng(Scenario::CrossTenant);
    let mut plan = Plan {
        window: ctx.duration,
        ..Plan::default()
    };
    for k in 0..(ctx.keys / 2).max(1) {
        let key = ctx.key(Scenario::CrossTenant, format_args!("{k}"));
        let template = ctx.form(format_args!("template {k}"), &mut rng);
        for t in 0..tenants {
            for u in 0..users {
                let body = if k % 2 == 0 {
                    template.clone()
                } else {
                    ctx.form(format_args!("tenant {t}/{u} key {k}"), &mut rng)
                };
                let mut s = submission(t, (t, u), Some(key.clone()), body);
                s.expect = Expect::Created;
                s.replica = t % ctx.caps.replicas.max(1);
                plan.single(s, Duration::from_millis(k as u64 % 100), Some(k));
            }
        }
    }
    Ok(plan)
}
