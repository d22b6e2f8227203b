//! What a person sees in a report, measured by the browser: a copy of the
//! page with a script appended that reads every drawn violation's lanes
//! and bars (their boxes, colours and labels) and every link of the
//! mutants matrix, and leaves the result as JSON in the DOM.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Appended to the copy only; the report itself has no script.
const PROBE: &str = r#"<script>
(() => {
  const box = el => { const r = el.getBoundingClientRect(); return { x: r.left, y: r.top, w: r.width, h: r.height }; };
  const violations = [...document.querySelectorAll('section.violation')].map(v => ({
    anchor: v.id,
    invariant: v.dataset.invariant,
    header: v.querySelector('h3').textContent,
    replay: (v.querySelector('code.replay') || {}).textContent || '',
    faults: [...v.querySelectorAll('.fault')].map(f => ({ name: f.dataset.fault, ...box(f) })),
    lanes: [...v.querySelectorAll('.lane')].map(l => ({
      client: l.dataset.client,
      label: l.querySelector('.lane-label').textContent,
      track: box(l.querySelector('.track')),
      bars: [...l.querySelectorAll('.bar')].map(b => ({
        id: b.dataset.id || null,
        kind: b.dataset.kind,
        text: b.textContent,
        colour: getComputedStyle(b).backgroundColor,
        visible: getComputedStyle(b).visibility === 'visible' && getComputedStyle(b).display !== 'none',
        ...box(b),
      })),
    })),
  }));
  const links = [...document.querySelectorAll('a.catch')].map(a => {
    const target = document.querySelector(a.getAttribute('href'));
    return { href: a.getAttribute('href'), text: a.textContent, target: target ? target.className : null };
  });
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify({ violations, links, width: document.documentElement.clientWidth });
  document.body.appendChild(pre);
})();
</script>"#;

/// A box on the page, CSS px.
#[derive(Debug, Deserialize)]
pub struct Box {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// One bar as drawn.
#[derive(Debug, Deserialize)]
pub struct Bar {
    pub id: Option<String>,
    pub kind: String,
    pub text: String,
    pub colour: String,
    pub visible: bool,
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// One lane as drawn.
#[derive(Debug, Deserialize)]
pub struct Lane {
    pub client: String,
    pub label: String,
    pub track: Box,
    pub bars: Vec<Bar>,
}

/// A fault window shaded behind the lanes.
#[derive(Debug, Deserialize)]
pub struct Fault {
    pub name: String,
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// One violation as drawn.
#[derive(Debug, Deserialize)]
pub struct Drawn {
    pub anchor: String,
    pub invariant: String,
    pub header: String,
    pub replay: String,
    pub faults: Vec<Fault>,
    pub lanes: Vec<Lane>,
}

/// A link of the mutants matrix and the class of what it points at.
#[derive(Debug, Deserialize)]
pub struct Link {
    pub href: String,
    pub text: String,
    pub target: Option<String>,
}

/// Everything measured on a page.
#[derive(Debug, Deserialize)]
pub struct Page {
    pub violations: Vec<Drawn>,
    pub links: Vec<Link>,
    pub width: f64,
}

/// Opens `report` in Chromium with the probe and reads what it measured.
pub fn measure(report: &Path, scratch: &Path) -> Result<Page, String> {
    let html = std::fs::read_to_string(report).map_err(|e| e.to_string())?;
    let at = html.rfind("</body>").ok_or("the report has no </body>")?;
    let probed: PathBuf = scratch.join("probed.html");
    std::fs::write(&probed, format!("{}{PROBE}{}", &html[..at], &html[at..])).map_err(|e| e.to_string())?;
    let dom = super::chromium::dump_dom(&probed, scratch)?;
    let start = dom
        .find("<pre id=\"probe\">")
        .ok_or("the probe did not run (no #probe in the DOM)")?
        + 16;
    let end = start + dom[start..].find("</pre>").ok_or("unterminated #probe")?;
    let json = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    serde_json::from_str(&json).map_err(|e| format!("probe output: {e}: {json:.300}"))
}
