//! One violation drawn as swimlanes (after Jepsen's timeline and
//! Porcupine's visualiser): a lane per client, a bar per request from send
//! to return coloured by outcome and labelled with the resource it named,
//! the faults in force shaded behind, and above it the invariant, what went
//! wrong and the command that replays it.

use std::collections::{BTreeMap, BTreeSet};

use maud::{Markup, html};

use crate::check::{TimelineEntry, Violation};
use crate::contract::Class;
use crate::fault::FaultWindow;

/// How one request ended, as coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Created,
    Replayed,
    InFlight,
    KeyReused,
    Error,
    Timeout,
}

impl Kind {
    pub(super) const ALL: [Kind; 6] = [
        Kind::Created,
        Kind::Replayed,
        Kind::InFlight,
        Kind::KeyReused,
        Kind::Error,
        Kind::Timeout,
    ];

    /// CSS class (also the `data-kind` of a bar).
    pub(super) fn css(self) -> &'static str {
        match self {
            Kind::Created => "created",
            Kind::Replayed => "replayed",
            Kind::InFlight => "in-flight",
            Kind::KeyReused => "key-reused",
            Kind::Error => "error",
            Kind::Timeout => "timeout",
        }
    }

    /// Legend text.
    pub(super) fn label(self) -> &'static str {
        match self {
            Kind::Created => "created",
            Kind::Replayed => "replayed",
            Kind::InFlight => "in flight (409)",
            Kind::KeyReused => "key reused (422)",
            Kind::Error => "error",
            Kind::Timeout => "timeout",
        }
    }

    /// A success is a replay when marked so; without a marker, when an
    /// earlier answer of the timeline named the same resource.
    fn of(e: &TimelineEntry, named_before: bool) -> Kind {
        match e.class {
            Some(Class::Success) => match e.replayed {
                Some(true) => Kind::Replayed,
                Some(false) => Kind::Created,
                None if named_before => Kind::Replayed,
                None => Kind::Created,
            },
            Some(Class::InFlight) => Kind::InFlight,
            Some(Class::KeyReused) => Kind::KeyReused,
            Some(_) => Kind::Error,
            None if e.timed_out => Kind::Timeout,
            None => Kind::Error,
        }
    }
}

/// Height of one row of bars in a lane, px.
const ROW_PX: usize = 22;

/// Narrowest bar, px (the style sheet's `min-width`): a bar that short at
/// the end of the axis is moved left to stay inside its lane.
const MIN_BAR_PX: usize = 6;

/// A violation: header, then its swimlanes.
pub(super) fn violation(v: &Violation, faults: &[FaultWindow], replay: &str, anchor: &str) -> Markup {
    html! {
        section.violation id=(anchor) data-invariant=(v.invariant.name()) {
            h3 { "VIOLATION " (v.invariant.name()) }
            p.meta { "guards against: " (v.invariant.guards_against()) }
            @if let Some(scope) = &v.scope {
                p { "key " code { (scope.key) } " (tenant " (scope.tenant) ", user " (scope.user) ")" }
            }
            p { (v.detail) }
            p { "replay: " code.replay { (replay) } }
            (lanes(&v.events, faults))
        }
    }
}

/// The swimlanes of `events` with `faults` shaded.
fn lanes(events: &[TimelineEntry], faults: &[FaultWindow]) -> Markup {
    let t0 = events.iter().map(|e| e.invoke_us).min().unwrap_or(0);
    let t1 = events.iter().map(|e| e.return_us).max().unwrap_or(0).max(t0 + 1);
    let span = (t1 - t0) as f64;
    let pct = |t: u64| (t.clamp(t0, t1) - t0) as f64 / span * 100.0;

    // Rows within each client's lane, so that its overlapping requests
    // (two users behind one client) do not hide each other.
    let mut lanes: BTreeMap<usize, Vec<(usize, &TimelineEntry, Kind)>> = BTreeMap::new();
    let mut ends: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    let mut named = BTreeSet::new();
    for e in events {
        let kind = Kind::of(e, e.id.as_ref().is_some_and(|id| !named.insert(id.clone())));
        let rows = ends.entry(e.client).or_default();
        let row = match rows.iter().position(|&end| end <= e.invoke_us) {
            Some(r) => r,
            None => {
                rows.push(0);
                rows.len() - 1
            }
        };
        rows[row] = e.return_us;
        lanes.entry(e.client).or_default().push((row, e, kind));
    }
    // Several principals in one timeline (a cross-tenant replay): each bar
    // says whose request it was.
    let principals = events
        .iter()
        .map(|e| (&e.tenant, &e.user))
        .collect::<BTreeSet<_>>()
        .len();
    let shown: Vec<&FaultWindow> = faults
        .iter()
        .filter(|w| w.from_us < t1 && w.to_us.is_none_or(|to| to > t0))
        .collect();
    html! {
        div.timeline data-lanes=(lanes.len()) data-bars=(events.len()) {
            div.axis {
                div.spacer { "since start" }
                div.ticks {
                    @for q in 0..=4u64 {
                        span.tick style={ "left:" (q * 25) "%" } { (ms(t0 + (t1 - t0) * q / 4)) }
                    }
                }
            }
            div.lanes {
                div.faults {
                    @for w in &shown {
                        @let from = pct(w.from_us);
                        @let to = w.to_us.map_or(100.0, pct);
                        div.fault style=(format!("left:{from:.3}%;width:{:.3}%", (to - from).max(0.3)))
                            title=(fault_text(w)) data-fault=(fault_name(w)) {
                            span { (fault_name(w)) }
                        }
                    }
                }
                @for (client, bars) in &lanes {
                    @let rows = bars.iter().map(|(r, _, _)| r + 1).max().unwrap_or(1);
                    div.lane data-client=(client) {
                        div.lane-label { "client " (client) }
                        div.track style={ "height:" (rows * ROW_PX) "px" } {
                            @for (row, e, kind) in bars {
                                @let left = pct(e.invoke_us);
                                @let width = pct(e.return_us) - left;
                                div class={ "bar " (kind.css()) @if e.offending { " offending" } @if e.unseen.is_some() { " unseen" } }
                                    style=(format!("left:min({left:.3}%, 100% - {MIN_BAR_PX}px);width:{width:.3}%;top:{}px", row * ROW_PX + 2))
                                    data-kind=(kind.css())
                                    data-id=[e.id.as_deref()]
                                    title=(bar_title(e)) {
                                    (e.id.clone().unwrap_or_else(|| short(e)))
                                    @if principals > 1 { span.who { " (tenant " (e.tenant) " user " (e.user) ")" } }
                                }
                            }
                        }
                    }
                }
            }
            @if !shown.is_empty() {
                p.meta { "faults: " @for w in &shown { (fault_text(w)) "; " } }
            }
        }
    }
}

/// What a bar without a resource says: the status, or what happened.
fn short(e: &TimelineEntry) -> String {
    match e.status {
        Some(status) => status.to_string(),
        None if e.timed_out => "timeout".to_owned(),
        None => "conn error".to_owned(),
    }
}

/// A bar's tooltip: everything the text timeline says of it.
fn bar_title(e: &TimelineEntry) -> String {
    let mut s = format!(
        "{} → {}  client {}  tenant {} user {}  try {}{}  replica {}  \"{}\"  ⇒ {}",
        ms(e.invoke_us),
        ms(e.return_us),
        e.client,
        e.tenant,
        e.user,
        e.attempt,
        if e.phase == crate::history::Phase::Probe {
            " (probe)"
        } else {
            ""
        },
        e.replica,
        e.form,
        e.outcome
    );
    if let Some(unseen) = &e.unseen {
        s.push_str(&format!("  (lost: the service had answered {unseen})"));
    }
    s
}

fn fault_name(w: &FaultWindow) -> String {
    match serde_json::to_value(w.fault) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k} {s}"),
                other => format!("{k} {other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => format!("{:?}", w.fault),
    }
}

fn fault_text(w: &FaultWindow) -> String {
    match w.to_us {
        Some(to) => format!("{} {} → {}", fault_name(w), ms(w.from_us), ms(to)),
        None => format!("{} from {} on", fault_name(w), ms(w.from_us)),
    }
}

fn ms(us: u64) -> String {
    format!("+{:.1}ms", us as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Invariant;
    use crate::fault::Fault;
    use crate::history::Phase;

    fn entry(client: usize, invoke_us: u64, return_us: u64, id: Option<&str>) -> TimelineEntry {
        TimelineEntry {
            client,
            tenant: "t<1>".into(),
            user: "u".into(),
            key: Some("k".into()),
            form: "\"><img onerror=x>".into(),
            submission: client,
            attempt: 1,
            phase: Phase::Load,
            replica: 0,
            invoke_us,
            return_us,
            status: id.map(|_| 201),
            class: id.map(|_| Class::Success),
            id: id.map(str::to_owned),
            replayed: None,
            timed_out: id.is_none(),
            outcome: "201 <script>alert(1)</script>".into(),
            unseen: None,
            offending: true,
        }
    }

    #[test]
    fn answers_are_escaped_lanes_per_client_faults_shaded() {
        let v = Violation {
            invariant: Invariant::AtMostOneCreation,
            scope: None,
            detail: "two <b>ids</b>".into(),
            timeline: Vec::new(),
            // Client 0 sends twice at once: two rows in one lane.
            events: vec![
                entry(0, 0, 100, Some("<script>evil()</script>")),
                entry(0, 10, 90, Some("a&b")),
                entry(1, 50, 150, None),
            ],
            at_us: 100,
        };
        let faults = [FaultWindow {
            from_us: 20,
            to_us: None,
            fault: Fault::DbDown,
        }];
        let html = violation(&v, &faults, "idemproof suite --seed 1", "a0").into_string();
        assert!(
            !html.contains("<script") && !html.contains("<img") && !html.contains("<b>"),
            "{html}"
        );
        assert!(html.contains("&lt;script&gt;evil()&lt;/script&gt;") && html.contains("a&amp;b"));
        assert_eq!(html.matches("class=\"lane\"").count(), 2);
        assert_eq!(html.matches("class=\"bar ").count(), 3);
        // Two rows in client 0's lane.
        assert!(html.contains(&format!("height:{}px", 2 * ROW_PX)));
        assert!(html.contains("data-fault=\"db-down\""));
        // The second success naming another id is a creation too; no
        // marker, no earlier answer with the id.
        assert_eq!(html.matches("data-kind=\"created\"").count(), 2);
        assert_eq!(html.matches("data-kind=\"timeout\"").count(), 1);
    }
}
