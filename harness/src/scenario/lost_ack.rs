//! `lost-ack`: the service does the work and answers, and the answer never
//! arrives. An HTTP proxy in front of the service (any target, black boxes
//! included) drops the answer to every first attempt after the service
//! sent it, for the first half of the window, then sends half of it and
//! resets the connection, for the second half. Every client retries with
//! the same key, so every retry must get the resource the lost answer
//! named: the proxy keeps each lost answer, and the checker holds the
//! retry to it (a retry that creates anew is `no-recreate-after-success`
//! even where nothing can be read back).

use std::time::Duration;

use super::{Ctx, Scenario, submission};
use crate::driver::Plan;
use crate::fault::Fault;
use crate::history::RetryPolicy;

pub fn plan(ctx: &Ctx) -> Plan {
    let d = ctx.duration;
    let mut rng = ctx.rng(Scenario::LostAck);
    let mut plan = Plan {
        window: d,
        faults: vec![
            (Duration::ZERO, Fault::DropFirstAnswers),
            (d / 2, Fault::ResetFirstAnswers),
            (d, Fault::Heal),
        ],
        ..Plan::default()
    };
    let keys = ctx.keys.max(1);
    for k in 0..keys {
        let key = ctx.key(Scenario::LostAck, format_args!("{k}"));
        let form = ctx.form(format_args!("lost-ack {k}"), &mut rng);
        let mut s = submission(k, ctx.principal(k, k % 2), Some(key), form);
        s.retry = RetryPolicy {
            attempts: 10,
            timeout: ctx.answer_timeout(),
            backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            give_up_after: ctx.patient(),
            same_replica: false,
        };
        s.replica = k % ctx.caps.replicas.max(1);
        // Spread evenly over the window, clear of its two edges, so each
        // half sees its own fault.
        let start = d.mul_f64((k as f64 + 0.5) / keys as f64 * 0.9);
        plan.single(s, start, None);
    }
    plan
}
