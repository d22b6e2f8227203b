//! The promises about one key: one resource, unchanged, for the right
//! payload and the right principal; and about identical retries.

use std::collections::{BTreeMap, BTreeSet};

use super::{Context, Invariant, Violation, ms, violation};
use crate::contract::template::text_of;
use crate::contract::{Class, Mismatch};
use crate::form::Form;
use crate::history::{Event, History, Outcome, ScopeKey};

/// A success for the key, seen by its client or kept by the proxy.
struct Named<'a> {
    id: &'a str,
    event: &'a Event,
    outcome: &'a Outcome,
}

fn named<'a>(events: &[&'a Event]) -> Vec<Named<'a>> {
    events
        .iter()
        .flat_map(|e| {
            e.answers().filter_map(move |o| {
                o.id().map(|id| Named {
                    id,
                    event: e,
                    outcome: o,
                })
            })
        })
        .collect()
}

pub(super) fn check(
    history: &History,
    ctx: &Context<'_>,
    scope: &ScopeKey,
    events: &[&Event],
    out: &mut Vec<Violation>,
) {
    let form = |e: &Event| &history.submissions[e.submission].form;
    let named = named(events);
    let first_success = named.iter().map(|n| n.event.return_us).min().unwrap_or(u64::MAX);

    // The resources, in the order they were first named.
    let mut firsts: BTreeMap<&str, &Event> = BTreeMap::new();
    for n in &named {
        let e = firsts.entry(n.id).or_insert(n.event);
        if n.event.return_us < e.return_us {
            *e = n.event;
        }
    }
    let mut ids: Vec<(&str, &Event)> = firsts.into_iter().collect();
    ids.sort_by_key(|(_, e)| e.return_us);
    if ids.len() > 1 {
        let all: Vec<&str> = ids.iter().map(|(id, _)| *id).collect();
        let (late, concurrent): (Vec<_>, Vec<_>) = ids.iter().partition(|(_, e)| e.invoke_us > first_success);
        if let Some((id, e)) = late.first() {
            let offending: Vec<&Event> = late.iter().map(|(_, e)| *e).collect();
            out.push(violation(
                history,
                Invariant::NoRecreateAfterSuccess,
                Some(scope),
                format!(
                    "resource {id} was first named to a request sent at {}, after a success naming {} had returned at {}",
                    ms(e.invoke_us),
                    ids[0].0,
                    ms(first_success)
                ),
                events,
                &offending,
            ));
        }
        if concurrent.len() > 1 {
            let offending: Vec<&Event> = concurrent.iter().map(|(_, e)| *e).collect();
            out.push(violation(
                history,
                Invariant::AtMostOneCreation,
                Some(scope),
                format!("{} concurrent requests each created a resource", concurrent.len()),
                events,
                &offending,
            ));
        }
        let strays: Vec<&Event> = named.iter().filter(|n| n.id != ids[0].0).map(|n| n.event).collect();
        out.push(violation(
            history,
            Invariant::OneAgentPerKey,
            Some(scope),
            format!("successes name {} different resources: {all:?}", all.len()),
            events,
            &strays,
        ));
    }

    // Every answer naming a resource shows it as first shown.
    let mut shown: BTreeMap<&str, &Named<'_>> = BTreeMap::new();
    for n in &named {
        let Some(resource) = n.outcome.resource() else { continue };
        match shown.get(n.id) {
            Some(first) if first.outcome.resource() != Some(resource) => {
                out.push(violation(
                    history,
                    Invariant::ReplayUnchanged,
                    Some(scope),
                    format!(
                        "resource {} came back different: {} then {resource}",
                        n.id,
                        first.outcome.resource().unwrap_or(&serde_json::Value::Null)
                    ),
                    events,
                    &[first.event, n.event],
                ));
                break;
            }
            Some(_) => {}
            None => {
                shown.insert(n.id, n);
            }
        }
    }

    // The resource shows the principal and (in reject mode) the payload
    // of the request it answers.
    for n in &named {
        let s = &history.submissions[n.event.submission];
        let Outcome::Response { owner, fields, .. } = n.outcome else {
            continue;
        };
        if let Some((tenant, user)) = owner {
            let wrong = |shown: &Option<String>, want: &str| shown.as_deref().is_some_and(|v| v != want);
            if wrong(tenant, history.tenant(s.tenant)) || wrong(user, history.user(s.user)) {
                out.push(violation(
                    history,
                    Invariant::TenantIsolation,
                    Some(scope),
                    format!(
                        "tenant {} user {} was answered with resource {} of tenant {} user {}",
                        history.tenant(s.tenant),
                        history.user(s.user),
                        n.id,
                        tenant.as_deref().unwrap_or("?"),
                        user.as_deref().unwrap_or("?")
                    ),
                    events,
                    &[n.event],
                ));
                break;
            }
        }
        if ctx.semantics.mismatch == Mismatch::Reject
            && let Some((field, shown)) = fields.iter().find(|(f, v)| text_of(&s.form.value(**f)) != **v)
        {
            out.push(violation(
                history,
                Invariant::MismatchRefused,
                Some(scope),
                format!(
                    "a request for \"{}\" got {} with resource {}, whose {} is \"{shown}\", instead of being refused",
                    s.form.name,
                    n.outcome.status().unwrap_or_default(),
                    n.id,
                    field.placeholder()
                ),
                events,
                &[n.event],
            ));
            break;
        }
    }

    // In reject mode, one resource answers one payload.
    if ctx.semantics.mismatch == Mismatch::Reject {
        let mut forms: BTreeMap<&str, Vec<&Named<'_>>> = BTreeMap::new();
        for n in &named {
            forms.entry(n.id).or_default().push(n);
        }
        for (id, ns) in forms {
            let distinct: BTreeSet<&String> = ns.iter().map(|n| &form(n.event).name).collect();
            if distinct.len() > 1 {
                let offending: Vec<&Event> = ns.iter().map(|n| n.event).collect();
                out.push(violation(
                    history,
                    Invariant::MismatchRefused,
                    Some(scope),
                    format!("requests with different payloads ({distinct:?}) all got resource {id}"),
                    events,
                    &offending,
                ));
                break;
            }
        }
    }

    identical_retries(history, scope, events, &named, first_success, out);
}

/// "Key reused" is for another payload only; and a completed key gives an
/// identical retry its resource.
fn identical_retries(
    history: &History,
    scope: &ScopeKey,
    events: &[&Event],
    named: &[Named<'_>],
    first_success: u64,
    out: &mut Vec<Violation>,
) {
    let form = |e: &Event| -> &Form { &history.submissions[e.submission].form };
    let forms: BTreeSet<&Form> = events.iter().map(|e| form(e)).collect();
    let completed_form = named.iter().min_by_key(|n| n.event.return_us).map(|n| form(n.event));
    let mut offending: Vec<&Event> = Vec::new();
    let mut reasons = BTreeSet::new();
    for e in events {
        let class = e.outcome.class();
        if class == Some(Class::KeyReused) && forms.len() == 1 {
            offending.push(e);
            reasons.insert("refused as \"key reused\" although every request with this key sent the same payload");
        } else if matches!(class, Some(Class::KeyReused | Class::MissingKey | Class::Other))
            && e.invoke_us > first_success
            && completed_form == Some(form(e))
        {
            offending.push(e);
            reasons.insert("an identical retry of a completed key did not get its resource");
        }
    }
    if !offending.is_empty() {
        let reasons: Vec<&str> = reasons.into_iter().collect();
        out.push(violation(
            history,
            Invariant::IdenticalRetryHonoured,
            Some(scope),
            format!("{} attempts: {}", offending.len(), reasons.join("; ")),
            events,
            &offending,
        ));
    }
}

/// A resource belongs to one principal: no two principals are ever
/// answered with the same one.
pub(super) fn across_principals(history: &History, out: &mut Vec<Violation>) {
    type Naming<'a> = (BTreeSet<(usize, usize)>, Vec<&'a Event>);
    let mut by_id: BTreeMap<&str, Naming<'_>> = BTreeMap::new();
    for e in &history.events {
        if let Some(id) = e.named_id() {
            let s = &history.submissions[e.submission];
            let (who, events) = by_id.entry(id).or_default();
            who.insert((s.tenant, s.user));
            events.push(e);
        }
    }
    for (id, (who, events)) in by_id {
        if who.len() > 1 {
            let names: Vec<String> = who
                .iter()
                .map(|(t, u)| format!("tenant {} user {}", history.tenant(*t), history.user(*u)))
                .collect();
            let scope = history.scope_of(events[0].submission);
            out.push(violation(
                history,
                Invariant::TenantIsolation,
                scope.as_ref(),
                format!(
                    "resource {id} was named to {} principals: {}",
                    who.len(),
                    names.join(", ")
                ),
                &events,
                &[],
            ));
        }
    }
}
