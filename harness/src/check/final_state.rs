//! The promises about what is left afterwards, judged only over the
//! scenario's own keys and resources: every acknowledged resource is
//! there as acknowledged, no key holds more than one, none is stuck.

use std::collections::{BTreeMap, BTreeSet};

use super::{Context, Invariant, Violation, violation};
use crate::contract::Class;
use crate::history::{Event, History, Phase, ScopeKey};

pub(super) fn check(
    history: &History,
    ctx: &Context<'_>,
    by_scope: &BTreeMap<ScopeKey, Vec<&Event>>,
    out: &mut Vec<Violation>,
) {
    let events_of = |scope: &Option<ScopeKey>, e: &Event| -> Vec<&Event> {
        scope
            .as_ref()
            .and_then(|s| by_scope.get(s))
            .cloned()
            .unwrap_or_else(|| history.attempts(e.submission))
    };
    // The first answer naming each resource, with what it showed.
    let mut acknowledged: BTreeMap<&str, &Event> = BTreeMap::new();
    for e in &history.events {
        if let Some(id) = e.named_id() {
            acknowledged.entry(id).or_insert(e);
        }
    }
    for (id, e) in &acknowledged {
        let scope = history.scope_of(e.submission);
        let shown = e.answers().filter(|o| o.id() == Some(id)).find_map(|o| o.resource());
        match ctx.view.acknowledged.get(*id) {
            Some(Some(stored)) if ctx.view.comparable && shown.is_some_and(|s| s != stored) => {
                out.push(violation(
                    history,
                    Invariant::AcknowledgedDurable,
                    scope.as_ref(),
                    format!(
                        "resource {id} reads back as {stored}, but was acknowledged as {}",
                        shown.unwrap_or(&serde_json::Value::Null)
                    ),
                    &events_of(&scope, e),
                    &[e],
                ));
            }
            Some(None) => out.push(violation(
                history,
                Invariant::AcknowledgedDurable,
                scope.as_ref(),
                format!("resource {id} was acknowledged but is not in the final state"),
                &events_of(&scope, e),
                &[e],
            )),
            _ => {}
        }
    }

    for (scope, n) in &ctx.view.duplicates {
        let events = by_scope.get(scope).cloned().unwrap_or_default();
        out.push(violation(
            history,
            Invariant::NoExtraAgents,
            Some(scope),
            format!(
                "the final state holds {n} resources for this key ({})",
                ctx.view.sources.join(", ")
            ),
            &events,
            &[],
        ));
    }

    let mut stuck: BTreeSet<ScopeKey> = ctx.view.in_progress.iter().flatten().cloned().collect();
    for e in history.events.iter().filter(|e| e.phase == Phase::Probe) {
        if e.outcome.class() == Some(Class::InFlight)
            && let Some(scope) = history.scope_of(e.submission)
        {
            stuck.insert(scope);
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
            &[],
        ));
    }
}
