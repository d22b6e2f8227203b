//! The interleaving behind a violation: every request involved, in the
//! order they were sent, with when each returned and what it got, the
//! offending ones marked. Kept both as text and as data (for reports that
//! draw one lane per client).

use std::collections::BTreeSet;

use serde::Serialize;

use crate::contract::Class;
use crate::history::{Event, History, Phase};

/// Longest text timeline; the unmarked middle of longer ones is elided
/// (the data keeps every request).
const MAX_LINES: usize = 24;

/// One request of a timeline.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    /// Simulated client (one lane each).
    pub client: usize,
    /// Tenant label.
    pub tenant: String,
    /// User label.
    pub user: String,
    /// Idempotency key.
    pub key: Option<String>,
    /// The form's name.
    pub form: String,
    /// Index of the submission in the history.
    pub submission: usize,
    /// Attempt number.
    pub attempt: u32,
    /// Load or probe.
    pub phase: Phase,
    /// Replica it was sent to.
    pub replica: usize,
    /// Sent, µs from the scenario start.
    pub invoke_us: u64,
    /// Returned (or timed out).
    pub return_us: u64,
    /// HTTP status, if an answer arrived.
    pub status: Option<u16>,
    /// What it meant by the contract.
    pub class: Option<Class>,
    /// Resource named, if a success.
    pub id: Option<String>,
    /// What the client got, in words.
    pub outcome: String,
    /// What the service answered that the client never got.
    pub unseen: Option<String>,
    /// One of the requests that broke the invariant.
    pub offending: bool,
}

/// The events as data, sorted by send time.
pub fn entries(history: &History, events: &[&Event], offending: &[&Event]) -> Vec<TimelineEntry> {
    let marked: BTreeSet<*const Event> = offending.iter().map(|e| *e as *const Event).collect();
    let mut events = events.to_vec();
    for o in offending {
        if !events.iter().any(|e| std::ptr::eq(*e, *o)) {
            events.push(o);
        }
    }
    events.sort_by_key(|e| (e.invoke_us, e.return_us));
    events
        .into_iter()
        .map(|e| {
            let s = &history.submissions[e.submission];
            TimelineEntry {
                client: s.client,
                tenant: history.tenant(s.tenant).to_owned(),
                user: history.user(s.user).to_owned(),
                key: s.key.clone(),
                form: s.form.name.clone(),
                submission: e.submission,
                attempt: e.attempt,
                phase: e.phase,
                replica: e.replica,
                invoke_us: e.invoke_us,
                return_us: e.return_us,
                status: e.outcome.status(),
                class: e.outcome.class(),
                id: e.outcome.id().map(str::to_owned),
                outcome: e.outcome.label(),
                unseen: e.unseen.as_ref().map(|u| u.label()),
                offending: marked.contains(&(e as *const Event)),
            }
        })
        .collect()
}

/// One line per entry; past [`MAX_LINES`], unmarked lines in the middle
/// are elided, marked ones never.
pub fn render(entries: &[TimelineEntry]) -> Vec<String> {
    let keep_ends = MAX_LINES / 4;
    let n = entries.len();
    let mut lines = Vec::new();
    let mut hidden = 0;
    for (i, e) in entries.iter().enumerate() {
        let shown = n <= MAX_LINES || e.offending || i < keep_ends || i + keep_ends >= n;
        if shown {
            if hidden > 0 {
                lines.push(format!("  … {hidden} more requests …"));
                hidden = 0;
            }
            lines.push(line(e));
        } else {
            hidden += 1;
        }
    }
    lines
}

fn line(e: &TimelineEntry) -> String {
    let mut s = format!(
        "{}{:>9} → {:>9}  client {:<3} tenant {} user {} try {}{} → replica {}  \"{}\"  ⇒ {}",
        if e.offending { "!" } else { " " },
        ms(e.invoke_us),
        ms(e.return_us),
        e.client,
        e.tenant,
        e.user,
        e.attempt,
        if e.phase == Phase::Probe { " (probe)" } else { "" },
        e.replica,
        e.form,
        e.outcome
    );
    if let Some(unseen) = &e.unseen {
        s.push_str(&format!("  (lost: the service had answered {unseen})"));
    }
    s
}

fn ms(us: u64) -> String {
    format!("+{:.1}ms", us as f64 / 1000.0)
}
