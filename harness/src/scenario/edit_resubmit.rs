//! `edit-resubmit`: the user goes back, edits the form and submits again
//! with the same key. In `reject` mode that is a 422 (the key promised the
//! first payload); in `replay` mode the original agent comes back. One key
//! in four sends both versions at once instead, so the payload check is
//! also exercised while the original is in flight.

use std::time::Duration;

use idemproof_service::idempotency::MismatchMode;

use super::{Ctx, ORGS, Scenario, payload, submission};
use crate::driver::{Chain, Plan};
use crate::history::Expect;

pub fn plan(ctx: &Ctx) -> Plan {
    let mut rng = ctx.rng(Scenario::EditResubmit);
    let mut plan = Plan {
        window: ctx.duration,
        ..Plan::default()
    };
    for k in 0..ctx.keys.max(1) {
        let org = ORGS[k % ORGS.len()];
        let key = ctx.key(Scenario::EditResubmit, format_args!("{k}"));
        let original = payload(format!("edit {k}"), &mut rng);
        let mut edited = original.clone();
        edited["name"] = format!("edit {k} (edited)").into();
        let start = Duration::from_millis(k as u64 % 200);
        let first = plan.submit(submission(k, org, 1, Some(key.clone()), original));
        let mut second = submission(k, org, 1, Some(key), edited);
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
            second.expect = match ctx.settings.mismatch {
                MismatchMode::Reject => Expect::Mismatch,
                MismatchMode::Replay => Expect::SameAgentAs(first),
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
