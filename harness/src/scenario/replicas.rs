//! `replicas`: several service processes share one database. Each form is
//! double-clicked onto two different replicas, and with the database made
//! a little slow and the first timeout short, retries move on to yet
//! another replica. Only the database can arbitrate; in-process state
//! (a per-replica cache or lock) cannot.

use std::time::Duration;

use rand::RngExt;

use super::{Ctx, Scenario, submission};
use crate::driver::Plan;
use crate::fault::Fault;
use crate::history::RetryPolicy;

pub fn plan(ctx: &Ctx) -> Result<Plan, String> {
    let n = ctx.caps.replicas;
    if n < 2 {
        return Err("needs at least two replicas sharing a database (--target replicas=N)".into());
    }
    let mut rng = ctx.rng(Scenario::Replicas);
    let mut plan = Plan {
        window: ctx.duration,
        faults: vec![
            (Duration::ZERO, Fault::DbSlow(Duration::from_millis(10))),
            (ctx.duration, Fault::Heal),
        ],
        ..Plan::default()
    };
    let spread = ctx.duration.as_millis().max(1) as u64 / 2;
    for k in 0..ctx.keys.max(1) {
        let who = ctx.principal(k, 0);
        let key = ctx.key(Scenario::Replicas, format_args!("{k}"));
        let body = ctx.form(format_args!("replicas {k}"), &mut rng);
        let start = Duration::from_millis(rng.random_range(0..=spread));
        for click in 0..2 {
            let mut s = submission(k, who, Some(key.clone()), body.clone());
            s.replica = (k + click) % n;
            s.retry = RetryPolicy {
                attempts: 20,
                timeout: Duration::from_millis(rng.random_range(20..80)),
                backoff: Duration::from_millis(20),
                max_backoff: Duration::from_millis(200),
                give_up_after: ctx.patient(),
                same_replica: false,
            };
            plan.single(s, start + Duration::from_millis(rng.random_range(0..5)), None);
        }
    }
    Ok(plan)
}
