//! `timeout-retry`: the client's timeout is shorter than the server's
//! latency, so it gives up on requests the server is still working on and
//! retries with the same key, backing off (each attempt waiting longer).
//! Retries arrive while the original is in flight (wait, then replay, or
//! 409) or after it finished (replay); a service that cancels work when
//! the client leaves lets the retry create instead. Either way each key
//! ends with exactly one agent, and the client eventually gets it.

use std::time::Duration;

use rand::RngExt;

use super::{Ctx, Latency, Scenario, submission};
use crate::driver::Plan;
use crate::fault::Fault;
use crate::history::RetryPolicy;

/// Latency injected between service and store.
const LATENCY: Duration = Duration::from_millis(20);

/// Longest the fault proxy holds a black box's answers.
const MAX_HOLD: Duration = Duration::from_millis(200);

/// Latency assumed for a black box that was not calibrated.
const UNCALIBRATED: Latency = Latency {
    typical: Duration::from_millis(5),
    slowest: Duration::from_millis(50),
};

pub fn plan(ctx: &Ctx) -> Result<Plan, String> {
    let mut rng = ctx.rng(Scenario::TimeoutRetry);
    let mut plan = Plan {
        window: ctx.duration,
        ..Plan::default()
    };
    // Where the harness controls latency, make the server slow. Against a
    // black box, hold its answers in the fault proxy for one typical
    // answer time (the work is done, the answer is late), and make the
    // client impatient by the service's own measured latency: first
    // timeouts from a third of the answer time the client sees to one and
    // a half times it, and enough attempts (each waiting longer) to
    // outlast the slowest answer four times over. A slow service gets
    // slow clients; a correct one always gets through.
    let (timeouts_us, attempts) = if ctx.caps.db_faults {
        plan.faults = vec![(Duration::ZERO, Fault::DbSlow(LATENCY)), (ctx.duration, Fault::Heal)];
        (20_000..100_000, 30)
    } else {
        let l = ctx.latency.unwrap_or(UNCALIBRATED);
        let hold = l.typical.min(MAX_HOLD);
        plan.faults = vec![(Duration::ZERO, Fault::DelayAnswers(hold)), (ctx.duration, Fault::Heal)];
        let (typical, slowest) = (l.typical + hold, l.slowest + hold);
        let low = (typical.as_micros() as u64 / 3).max(500);
        let high = (typical.as_micros() as u64 * 3 / 2).max(low + 500);
        let attempts = (slowest.as_micros() as u64 * 4 / low).clamp(10, 100) as u32 + 2;
        (low..high, attempts)
    };
    let spread = ctx.duration.as_millis().max(1) as u64 * 2 / 3;
    for k in 0..ctx.keys.max(1) {
        let key = ctx.key(Scenario::TimeoutRetry, format_args!("{k}"));
        let form = ctx.form(format_args!("timeout {k}"), &mut rng);
        let mut s = submission(k, ctx.principal(k, 0), Some(key), form);
        s.retry = RetryPolicy {
            attempts,
            timeout: Duration::from_micros(rng.random_range(timeouts_us.clone())),
            backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            give_up_after: ctx.patient(),
            same_replica: false,
        };
        s.replica = k % ctx.caps.replicas.max(1);
        plan.single(s, Duration::from_millis(rng.random_range(0..=spread)), None);
    }
    Ok(plan)
}
