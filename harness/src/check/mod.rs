//! The history checker: Jepsen-style, per key. It reads only the history
//! (what clients saw, and what the fault proxy kept from them) and the
//! final state, through the contract's vocabulary, so it can judge any
//! service, a black box included.
//!
//! A resource is recognised by the id an answer names, whatever its
//! status: a replay is a success naming the key's resource, a second
//! distinct id for one key is a duplicate. Indeterminate outcomes
//! (timeouts, dropped connections, 5xx) are "may have happened": never
//! counted as "nothing happened", never a failure by themselves.

mod answers;
mod final_state;
mod invariant;
mod per_key;
mod timeline;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

pub use self::invariant::Invariant;
pub use self::timeline::TimelineEntry;
use crate::contract::Semantics;
use crate::history::final_state::FinalState;
use crate::history::{Event, History, ScopeKey, ScopeLabel, micros};

/// One broken promise, with what is needed to understand and replay it.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    /// Which promise.
    pub invariant: Invariant,
    /// The key involved, if one is.
    pub scope: Option<ScopeLabel>,
    /// What went wrong.
    pub detail: String,
    /// The requests involved, in send order, offending ones marked `!`.
    pub timeline: Vec<String>,
    /// The same requests as data.
    pub events: Vec<TimelineEntry>,
    /// Microseconds from the scenario start to the first offending answer.
    pub at_us: u64,
}

/// What the checker needs besides the history.
pub struct Context<'a> {
    /// Final state.
    pub view: &'a FinalState,
    /// What the service promises.
    pub semantics: Semantics,
    /// After faults heal, how long errors are still excused (lease + wait
    /// + reconnection time).
    pub grace: Duration,
}

/// Checks every invariant; returns the violations found.
pub fn check(history: &History, ctx: &Context<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let by_scope = group_by_scope(history);
    for (scope, events) in &by_scope {
        per_key::check(history, ctx, scope, events, &mut out);
    }
    per_key::across_principals(history, &mut out);
    answers::clean_errors(history, ctx, &by_scope, &mut out);
    answers::per_submission(history, ctx, &mut out);
    final_state::check(history, ctx, &by_scope, &mut out);
    out.sort_by_key(|v| (v.invariant, v.at_us));
    out
}

fn group_by_scope(history: &History) -> BTreeMap<ScopeKey, Vec<&Event>> {
    let mut by_scope: BTreeMap<ScopeKey, Vec<&Event>> = BTreeMap::new();
    for e in &history.events {
        if let Some(scope) = history.scope_of(e.submission) {
            by_scope.entry(scope).or_default().push(e);
        }
    }
    for events in by_scope.values_mut() {
        events.sort_by_key(|e| (e.invoke_us, e.return_us));
    }
    by_scope
}

/// A violation over `events`, `offending` marked (all of them if empty).
fn violation(
    history: &History,
    invariant: Invariant,
    scope: Option<&ScopeKey>,
    detail: String,
    events: &[&Event],
    offending: &[&Event],
) -> Violation {
    let marked = if offending.is_empty() { events } else { offending };
    let entries = timeline::entries(history, events, marked);
    Violation {
        invariant,
        scope: scope.map(|s| history.label(s)),
        detail,
        timeline: timeline::render(&entries),
        events: entries,
        at_us: marked.iter().map(|e| e.return_us).min().unwrap_or_default(),
    }
}

/// When errors are excused: from the first fault until `grace` after heal.
fn fault_window(history: &History, grace: Duration) -> Option<(u64, u64)> {
    let start = history.faults.first()?.at_us;
    let end = history.healed_at_us.unwrap_or(u64::MAX).saturating_add(micros(grace));
    Some((start, end))
}

fn ms(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}
