//! `reordered-retry`: the client's retry sends the same fields in another
//! order and spacing (another JSON library, a re-serialised draft). It is
//! the same request: JSON objects are unordered, so it must get the
//! original resource, never a "key reused" refusal. Catches fingerprints
//! of the raw body text.

use std::time::Duration;

use super::{Ctx, Scenario, submission};
use crate::client::Wording;
use crate::driver::{Chain, Plan};
use crate::history::Expect;

pub fn plan(ctx: &Ctx) -> Plan {
    let mut rng = ctx.rng(Scenario::ReorderedRetry);
    let mut plan = Plan {
        window: ctx.duration,
        ..Plan::default()
    };
    for k in 0..ctx.keys.max(1) {
        let who = ctx.principal(k, k % 2);
        let key = ctx.key(Scenario::ReorderedRetry, format_args!("{k}"));
        let form = ctx.form(format_args!("reordered {k}"), &mut rng);
        let first = plan.submit(submission(k, who, Some(key.clone()), form.clone()));
        let mut retry = submission(k, who, Some(key), form);
        retry.wording = Wording::Reordered;
        retry.expect = Expect::SameAgentAs(first);
        let retry = plan.submit(retry);
        plan.chains.push(Chain {
            start: Duration::from_millis(k as u64 % 100),
            group: None,
            gap: Duration::from_millis(5),
            steps: vec![first, retry],
        });
    }
    plan
}
