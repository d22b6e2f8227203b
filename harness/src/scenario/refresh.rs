//! `refresh`: the user reloads the page, which starts a new form session
//! with a new key, and submits the same content again. That is a new
//! agent on purpose; a service that deduplicated by content, or reused a
//! key across sessions, would fail the `Created` expectation.

use std::time::Duration;

use super::{Ctx, Scenario, submission};
use crate::driver::{Chain, Plan};
use crate::history::Expect;

pub fn plan(ctx: &Ctx) -> Plan {
    let mut rng = ctx.rng(Scenario::Refresh);
    let mut plan = Plan {
        window: ctx.duration,
        ..Plan::default()
    };
    for c in 0..ctx.keys.max(1) {
        let who = ctx.principal(c, 0);
        let body = ctx.form(format_args!("refresh {c}"), &mut rng);
        let steps = (0..2)
            .map(|session| {
                let key = ctx.key(Scenario::Refresh, format_args!("{c}-session{session}"));
                let mut s = submission(c, who, Some(key), body.clone());
                s.expect = Expect::Created;
                plan.submit(s)
            })
            .collect();
        plan.chains.push(Chain {
            start: Duration::from_millis(c as u64 % 100),
            group: None,
            gap: Duration::from_millis(5),
            steps,
        });
    }
    plan
}
