//! `edit-resubmit`: the user goes back, edits the form and submits again
//! with the same key. In `reject` mode that is a 422 (the key promised the
//! first payload); in `replay` mode the original agent comes back. One key
//! in four sends both versions at once instead, so the payload check is
//! also exercised while the original is in flight.

use std::time::Duration;

use super::{Ctx, Scenario, submission};
use crate::contract::Mismatch;
use crate::driver::{Chain, Plan};
use crate::history::Expect;

pub fn plan(ctx: &Ctx) -> Plan {
    let mut rng = ctx.rng(Scenario::EditResubmit);
    let mut plan = Plan {
        window: ctx.duration,
        ..Plan::default()
    };
    for k in 0..ctx.keys.max(1) {
        let who = ctx.principal(k, 0);
        let key = ctx.key(Scenario::EditResubmit, format_args!("{k}"));
        let original = ctx.form(format_args!("edit {k}"), &mut rng);
        let edited = original.edited(&ctx.edit);
        let start = Duration::from_millis(k as u64 % 200);
        let first = plan.submit(submission(k, who, Some(key.clone()), original));
        let mut second = submission(k, who, Some(key), edited);
        if k % 4 == 0 {
            // Both at once: whichever wins, the other is a mismatch.
            let second = plan.submit(second);
            for step in [first, second] {
                plan.chains.push(Chain {
                    start,
                    group: Some(k),
                    gap: Duration::ZERO,
                    steps: vec![step],
                });
            }
        } else {
            second.expect = match ctx.semantics.mismatch {
                Mismatch::Reject => Expect::Mismatch,
                Mismatch::Replay => Expect::SameAgentAs(first),
            };
            let second = plan.submit(second);
            plan.chains.push(Chain {
                start,
                group: None,
                gap: Duration::from_millis(10),
                steps: vec![first, second],
            });
        }
    }
    plan
}
