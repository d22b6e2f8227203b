//! `fix-resubmit`: the form's first submit is refused (its body arrives
//! cut short: a client error), the user fixes it and submits again; the
//! browser keeps the form's key. A refused request never started, so it
//! must leave nothing behind: the fixed submit creates (Stripe saves no
//! result for a request that failed validation). Catches middlewares that
//! store 4xx answers against the key.

use std::time::Duration;

use super::{Ctx, Scenario, submission};
use crate::client::Wording;
use crate::driver::{Chain, Plan};
use crate::history::Expect;

pub fn plan(ctx: &Ctx) -> Plan {
    let mut rng = ctx.rng(Scenario::FixResubmit);
    let mut plan = Plan {
        window: ctx.duration,
        ..Plan::default()
    };
    for k in 0..ctx.keys.max(1) {
        let who = ctx.principal(k, 0);
        let key = ctx.key(Scenario::FixResubmit, format_args!("{k}"));
        let form = ctx.form(format_args!("fix {k}"), &mut rng);
        let mut broken = submission(k, who, Some(key.clone()), form.clone());
        broken.wording = Wording::Malformed;
        broken.expect = Expect::Rejected;
        let broken = plan.submit(broken);
        let mut fixed = submission(k, who, Some(key), form);
        fixed.expect = Expect::Created;
        let fixed = plan.submit(fixed);
        plan.chains.push(Chain {
            start: Duration::from_millis(k as u64 % 100),
            group: None,
            gap: Duration::from_millis(5),
            steps: vec![broken, fixed],
        });
    }
    plan
}
