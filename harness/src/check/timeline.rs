//! Renders the interleaving behind a violation: the requests involved, in
//! the order they were sent, with when each returned and what it got.

use crate::history::{Event, History, Phase};

/// Longest timeline printed; the middle of longer ones is elided.
const MAX_LINES: usize = 24;

/// One line per event, sorted by send time.
pub fn render(history: &History, events: &[&Event]) -> Vec<String> {
    let mut events = events.to_vec();
    events.sort_by_key(|e| (e.invoke_us, e.return_us));
    let mut lines: Vec<String> = events.iter().map(|e| line(history, e)).collect();
    if lines.len() > MAX_LINES {
        let hidden = lines.len() - MAX_LINES;
        let tail = lines.split_off(lines.len() - MAX_LINES / 2);
        lines.truncate(MAX_LINES / 2);
        lines.push(format!("… {hidden} more requests …"));
        lines.extend(tail);
    }
    lines
}

fn line(history: &History, e: &Event) -> String {
    let s = &history.submissions[e.submission];
    let name = s.payload["name"].as_str().unwrap_or("?");
    format!(
        "{:>9} → {:>9}  client {:<3} org {} user {} try {}{} → replica {}  \"{}\"  ⇒ {}",
        ms(e.invoke_us),
        ms(e.return_us),
        s.client,
        s.org,
        s.user,
        e.attempt,
        if e.phase == Phase::Probe { " (probe)" } else { "" },
        e.replica,
        name,
        e.outcome.label()
    )
}

fn ms(us: u64) -> String {
    format!("+{:.1}ms", us as f64 / 1000.0)
}
