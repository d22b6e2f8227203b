//! The history checker: Jepsen-style, per key. It reads only the history
//! (what clients saw) and the final store view, so it can judge any
//! service, including a black box.

mod invariant;
mod timeline;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use idemproof_service::idempotency::MismatchMode;
use serde::Serialize;
use serde_json::Value;

pub use self::invariant::Invariant;
use crate::history::{Event, Expect, History, Outcome, Phase, micros};
use crate::target::StoreView;

/// (organisation, user, key): the scope a key is unique in.
pub type ScopeKey = (i64, i64, String);

/// One broken promise, with what is needed to understand and replay it.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    /// Which promise.
    pub invariant: Invariant,
    /// The key involved, if one is.
    pub scope: Option<ScopeKey>,
    /// What went wrong.
    pub detail: String,
    /// The requests involved, in send order.
    pub timeline: Vec<String>,
    /// Microseconds from the scenario start to the first event showing it.
    pub at_us: u64,
}

/// What the checker needs besides the history.
pub struct Context<'a> {
    /// Final state.
    pub view: &'a StoreView,
    /// Whether a reused key with another payload must be refused.
    pub mismatch: MismatchMode,
    /// After faults heal, how long errors are still excused (lease + wait
    /// + reconnection time).
    pub grace: Duration,
}

/// Checks every invariant; returns the violations found.
pub fn check(history: &History, ctx: &Context<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let by_scope = group_by_scope(history);
    for (scope, events) in &by_scope {
        per_scope(history, ctx, scope, events, &mut out);
    }
    per_event(history, ctx, &mut out);
    per_submission(history, ctx, &mut out);
    final_state(history, ctx, &by_scope, &mut out);
    out.sort_by_key(|v| (v.invariant, v.at_us));
    out
}

fn group_by_scope(history: &History) -> BTreeMap<ScopeKey, Vec<&Event>> {
    let mut by_scope: BTreeMap<ScopeKey, Vec<&Event>> = BTreeMap::new();
    for e in &history.events {
        let s = &history.submissions[e.submission];
        if let Some(key) = &s.key {
            by_scope.entry((s.org, s.user, key.clone())).or_default().push(e);
        }
    }
    for events in by_scope.values_mut() {
        events.sort_by_key(|e| (e.invoke_us, e.return_us));
    }
    by_scope
}

fn is_success(e: &Event) -> bool {
    matches!(e.outcome.status(), Some(200..=299))
}

fn agent(e: &Event) -> Option<&Value> {
    match &e.outcome {
        Outcome::Response { agent: Some(a), .. } => Some(a),
        _ => None,
    }
}

fn violation(
    history: &History,
    invariant: Invariant,
    scope: Option<&ScopeKey>,
    detail: String,
    events: &[&Event],
) -> Violation {
    Violation {
        invariant,
        scope: scope.cloned(),
        detail,
        timeline: timeline::render(history, events),
        at_us: events.iter().map(|e| e.return_us).min().unwrap_or_default(),
    }
}

/// Does `agent` carry what `payload` asked for?
fn matches_payload(agent: &Value, payload: &Value) -> bool {
    payload.as_object().is_some_and(|fields| {
        fields
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "organization_id" | "idempotency_key"))
            .all(|(k, v)| &agent[k] == v)
    })
}

fn per_scope(history: &History, ctx: &Context<'_>, scope: &ScopeKey, events: &[&Event], out: &mut Vec<Violation>) {
    let created: Vec<&Event> = events
        .iter()
        .copied()
        .filter(|e| e.outcome.status() == Some(201))
        .collect();
    if created.len() > 1 {
        let first_success_return = events
            .iter()
            .filter(|e| is_success(e))
            .map(|e| e.return_us)
            .min()
            .unwrap_or(u64::MAX);
        let late = created.iter().find(|e| e.invoke_us > first_success_return);
        let (invariant, detail) = match late {
            Some(late) => (
                Invariant::NoRecreateAfterSuccess,
                format!(
                    "agent {} was created by a request sent at {} µs, after an earlier success had returned",
                    late.outcome.agent_id().unwrap_or_default(),
                    late.invoke_us
                ),
            ),
            None => (
                Invariant::AtMostOneCreation,
                format!("{} concurrent requests each created an agent", created.len()),
            ),
        };
        out.push(violation(history, invariant, Some(scope), detail, events));
    }

    let ids: BTreeSet<i64> = events
        .iter()
        .filter(|e| is_success(e))
        .filter_map(|e| e.outcome.agent_id())
        .collect();
    if ids.len() > 1 {
        out.push(violation(
            history,
            Invariant::OneAgentPerKey,
            Some(scope),
            format!("successes name {} different agents: {ids:?}", ids.len()),
            events,
        ));
    }

    let mut bodies: BTreeMap<i64, &Value> = BTreeMap::new();
    for e in events.iter().filter(|e| is_success(e)) {
        let (Some(id), Some(a)) = (e.outcome.agent_id(), agent(e)) else {
            continue;
        };
        match bodies.get(&id) {
            Some(first) if *first != a => {
                out.push(violation(
                    history,
                    Invariant::ReplayUnchanged,
                    Some(scope),
                    format!("agent {id} came back different: {first} then {a}"),
                    events,
                ));
                break;
            }
            Some(_) => {}
            None => {
                bodies.insert(id, a);
            }
        }
    }

    for e in events.iter().filter(|e| is_success(e)) {
        let Some(a) = agent(e) else { continue };
        let s = &history.submissions[e.submission];
        if a["organization_id"].as_i64() != Some(s.org) || a["user_id"].as_i64() != Some(s.user) {
            out.push(violation(
                history,
                Invariant::TenantIsolation,
                Some(scope),
                format!(
                    "org {} user {} was answered with agent {} of org {} user {}",
                    s.org, s.user, a["id"], a["organization_id"], a["user_id"]
                ),
                events,
            ));
            break;
        }
        if ctx.mismatch == MismatchMode::Reject && !matches_payload(a, &s.payload) {
            out.push(violation(
                history,
                Invariant::MismatchGets422,
                Some(scope),
                format!(
                    "a request for \"{}\" got {} with agent {} (\"{}\") instead of 422",
                    s.payload["name"].as_str().unwrap_or("?"),
                    e.outcome.status().unwrap_or_default(),
                    a["id"],
                    a["name"].as_str().unwrap_or("?")
                ),
                events,
            ));
            break;
        }
    }
}

/// When errors are excused: from the first fault until `grace` after heal.
fn fault_window(history: &History, grace: Duration) -> Option<(u64, u64)> {
    let start = history.faults.first()?.at_us;
    let end = history.healed_at_us.unwrap_or(u64::MAX).saturating_add(micros(grace));
    Some((start, end))
}

fn per_event(history: &History, ctx: &Context<'_>, out: &mut Vec<Violation>) {
    let window = fault_window(history, ctx.grace);
    let excused = |e: &Event| {
        window.is_some_and(|(start, end)| e.invoke_us >= start && e.invoke_us <= end)
            || window.is_some_and(|(start, end)| e.return_us >= start && e.invoke_us <= end)
    };
    let mut reported = BTreeSet::new();
    for e in &history.events {
        let bad = match &e.outcome {
            Outcome::Response { status, .. } => match status {
                200..=299 | 409 | 422 => None,
                503 if excused(e) => None,
                503 => Some("503 outside any fault window".to_owned()),
                s if *s >= 500 => Some(format!("status {s}")),
                s => Some(format!("unexpected status {s} for a valid request")),
            },
            Outcome::Timeout => None,
            Outcome::Transport { .. } if excused(e) => None,
            Outcome::Transport { error } => Some(format!("connection failure outside any fault window: {error}")),
        };
        if let Some(detail) = bad
            && reported.insert(detail.clone())
        {
            let s = &history.submissions[e.submission];
            let scope = s.key.clone().map(|k| (s.org, s.user, k));
            out.push(violation(history, Invariant::CleanErrors, scope.as_ref(), detail, &[e]));
        }
    }
}

fn per_submission(history: &History, ctx: &Context<'_>, out: &mut Vec<Violation>) {
    let recovered_by = history
        .healed_at_us
        .map(|h| h.saturating_add(micros(ctx.grace)))
        .unwrap_or(if history.faults.is_empty() { 0 } else { u64::MAX });
    let finals: Vec<Option<&Event>> = (0..history.submissions.len())
        .map(|i| {
            history
                .events
                .iter()
                .filter(|e| e.submission == i && e.phase == Phase::Load)
                .max_by_key(|e| e.attempt)
        })
        .collect();
    for (i, s) in history.submissions.iter().enumerate() {
        let Some(last) = finals[i] else { continue };
        let scope = s.key.clone().map(|k| (s.org, s.user, k));
        let attempts = history.attempts(i);
        if last.outcome.is_retryable() && last.invoke_us >= recovered_by {
            out.push(violation(
                history,
                Invariant::Recovers,
                scope.as_ref(),
                format!(
                    "the client gave up after {} attempts; the last, sent after the faults had ended, got {}",
                    last.attempt,
                    last.outcome.label()
                ),
                &attempts,
            ));
        }
        let ok = match s.expect {
            Expect::Any => true,
            Expect::Created => last.outcome.status() == Some(201),
            Expect::Mismatch => {
                matches!(&last.outcome, Outcome::Response { status: 422, code: Some(c), .. } if c == "idempotency_key_reused")
            }
            Expect::SameAgentAs(j) => finals[j]
                .and_then(|f| f.outcome.agent_id())
                .is_some_and(|id| is_success(last) && last.outcome.agent_id() == Some(id)),
        };
        if !ok && !last.outcome.is_retryable() {
            out.push(violation(
                history,
                Invariant::Expectation,
                scope.as_ref(),
                format!("expected {:?}, got {}", s.expect, last.outcome.label()),
                &attempts,
            ));
        }
    }
}

fn final_state(
    history: &History,
    ctx: &Context<'_>,
    by_scope: &BTreeMap<ScopeKey, Vec<&Event>>,
    out: &mut Vec<Violation>,
) {
    let mut acknowledged: BTreeMap<i64, (&Value, &Event)> = BTreeMap::new();
    for e in history.events.iter().filter(|e| is_success(e)) {
        if let (Some(id), Some(a)) = (e.outcome.agent_id(), agent(e)) {
            acknowledged.entry(id).or_insert((a, e));
        }
    }
    for (id, (body, e)) in &acknowledged {
        let s = &history.submissions[e.submission];
        let scope = s.key.clone().map(|k| (s.org, s.user, k));
        let events = scope
            .as_ref()
            .and_then(|sc| by_scope.get(sc))
            .cloned()
            .unwrap_or_else(|| vec![*e]);
        match ctx.view.acknowledged.get(id) {
            Some(Some(stored)) if stored == *body => {}
            Some(Some(stored)) => out.push(violation(
                history,
                Invariant::AcknowledgedDurable,
                scope.as_ref(),
                format!("agent {id} is stored as {stored}, but was acknowledged as {body}"),
                &events,
            )),
            Some(None) => out.push(violation(
                history,
                Invariant::AcknowledgedDurable,
                scope.as_ref(),
                format!("agent {id} was acknowledged but is not in the store"),
                &events,
            )),
            None => {}
        }
    }

    for (scope, n) in &ctx.view.duplicates {
        let events = by_scope.get(scope).cloned().unwrap_or_default();
        out.push(violation(
            history,
            Invariant::NoExtraAgents,
            Some(scope),
            format!("the store holds {n} agents for this key"),
            &events,
        ));
    }

    let mut stuck: BTreeSet<ScopeKey> = ctx.view.in_progress.iter().flatten().cloned().collect();
    for e in history.events.iter().filter(|e| e.phase == Phase::Probe) {
        if e.outcome.status() == Some(409) {
            let s = &history.submissions[e.submission];
            if let Some(key) = &s.key {
                stuck.insert((s.org, s.user, key.clone()));
            }
        }
    }
    for scope in stuck {
        let events = by_scope.get(&scope).cloned().unwrap_or_default();
        out.push(violation(
            history,
            Invariant::NoStuckKeys,
            Some(&scope),
            "the key is still in progress after the run, past every lease".into(),
            &events,
        ));
    }
}
