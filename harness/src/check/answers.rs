//! The promises about answers one by one: only the contract's errors, and
//! outages only while a fault explains them; every client gets through
//! once faults end; each scenario's own expectations.

use std::collections::{BTreeMap, BTreeSet};

use super::{Context, Invariant, Violation, fault_window, violation};
use crate::contract::Class;
use crate::history::{Event, Expect, History, Outcome, Phase, ScopeKey, micros};

/// What is unclean about one answer, if anything. A request `malformed`
/// on purpose is answered cleanly by a client error.
fn unclean(o: &Outcome, keyed: bool, excused: bool, malformed: bool) -> Option<String> {
    match o {
        Outcome::Response { status, class, .. } => match class {
            // A bare 400 may be what the contract calls "missing key".
            Class::Other | Class::MissingKey if malformed && (400..500).contains(status) => None,
            Class::Success | Class::InFlight | Class::KeyReused => None,
            Class::MissingKey if keyed => Some(format!("{status} \"missing key\" to a request that carried one")),
            Class::MissingKey => None,
            Class::Unavailable if excused => None,
            Class::Unavailable => Some(format!("{status} (unavailable) outside any fault window")),
            Class::Other if *status >= 500 => Some(format!("status {status}")),
            Class::Other => Some(format!("unexpected status {status} for a valid request")),
        },
        Outcome::Timeout => None,
        Outcome::Transport { .. } if excused => None,
        Outcome::Transport { error } => Some(format!("connection failure outside any fault window ({error})")),
    }
}

/// `clean-errors`, one violation per key with every offending attempt.
pub(super) fn clean_errors(
    history: &History,
    ctx: &Context<'_>,
    by_scope: &BTreeMap<ScopeKey, Vec<&Event>>,
    out: &mut Vec<Violation>,
) {
    let window = fault_window(history, ctx.grace);
    // Excused if the attempt overlapped the window at all.
    let excused = |e: &Event| window.is_some_and(|(start, end)| e.invoke_us <= end && e.return_us >= start);
    // Keyed requests are grouped by key; unkeyed ones by submission.
    type Group<'a> = (Vec<&'a Event>, Vec<String>);
    let mut groups: BTreeMap<(Option<ScopeKey>, usize), Group<'_>> = BTreeMap::new();
    for e in &history.events {
        let scope = history.scope_of(e.submission);
        let keyed = scope.is_some();
        let malformed = history.submissions[e.submission].expect == Expect::Rejected;
        for o in e.answers() {
            if let Some(why) = unclean(o, keyed, excused(e), malformed) {
                let group = (scope.clone(), if keyed { 0 } else { e.submission });
                let (events, reasons) = groups.entry(group).or_default();
                if !events.iter().any(|x| std::ptr::eq(*x, e)) {
                    events.push(e);
                }
                reasons.push(why);
            }
        }
    }
    for ((scope, submission), (offending, reasons)) in groups {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &reasons {
            *counts.entry(r.as_str()).or_default() += 1;
        }
        let summary: Vec<String> = counts.iter().map(|(r, n)| format!("{n} × {r}")).collect();
        let all = match &scope {
            Some(s) => by_scope.get(s).cloned().unwrap_or_default(),
            None => history.attempts(submission),
        };
        out.push(violation(
            history,
            Invariant::CleanErrors,
            scope.as_ref(),
            summary.join("; "),
            &all,
            &offending,
        ));
    }
}

/// `recovers` and `expectation`, judged on each submission's last attempt.
pub(super) fn per_submission(history: &History, ctx: &Context<'_>, out: &mut Vec<Violation>) {
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
    // Which keys named each resource, for "a new resource".
    let mut scopes_of: BTreeMap<&str, BTreeSet<Option<ScopeKey>>> = BTreeMap::new();
    for e in &history.events {
        if let Some(id) = e.named_id() {
            scopes_of.entry(id).or_default().insert(history.scope_of(e.submission));
        }
    }
    for (i, s) in history.submissions.iter().enumerate() {
        let Some(last) = finals[i] else { continue };
        let scope = history.scope_of(i);
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
                &[last],
            ));
        }
        let ok = match s.expect {
            Expect::Any => true,
            Expect::Created => last
                .outcome
                .id()
                .is_some_and(|id| scopes_of.get(id).is_some_and(|scopes| scopes.len() == 1)),
            Expect::Mismatch => last.outcome.class() == Some(Class::KeyReused),
            Expect::SameAgentAs(j) => finals[j]
                .and_then(|f| f.outcome.id())
                .is_some_and(|id| last.outcome.id() == Some(id)),
            Expect::Rejected => {
                matches!(last.outcome.class(), Some(Class::Other | Class::MissingKey))
                    && last.outcome.status().is_some_and(|s| (400..500).contains(&s))
            }
        };
        if !ok && !last.outcome.is_retryable() {
            out.push(violation(
                history,
                Invariant::Expectation,
                scope.as_ref(),
                format!("expected {}, got {}", describe(s.expect), last.outcome.label()),
                &attempts,
                &[last],
            ));
        }
    }
}

fn describe(expect: Expect) -> String {
    match expect {
        Expect::Any => "anything".into(),
        Expect::Created => "a new resource, named to this key only".into(),
        Expect::Mismatch => "a refusal as \"key reused\"".into(),
        Expect::SameAgentAs(j) => format!("the resource submission {j} got"),
        Expect::Rejected => "a client error (the body was malformed)".into(),
    }
}
