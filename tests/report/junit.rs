//! The JUnit XML read back and held to the structure GitLab, GitHub
//! Actions' reporters and Jenkins read: `testsuites` > `testsuite` >
//! `testcase` > at most one of `failure`, `error`, `skipped`, with the
//! attributes they require and counts that add up.

use std::collections::BTreeMap;

use quick_xml::Reader;
use quick_xml::events::Event;

/// An element: name, attributes, children, text.
#[derive(Debug, Default)]
pub struct Element {
    pub name: String,
    pub attrs: BTreeMap<String, String>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn attr(&self, name: &str) -> Result<&str, String> {
        self.attrs
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("<{}> lacks the `{name}` attribute ({:?})", self.name, self.attrs))
    }

    fn count(&self, name: &str) -> Result<usize, String> {
        self.attr(name)?
            .parse()
            .map_err(|e| format!("<{}> {name}: {e}", self.name))
    }

    fn time(&self) -> Result<f64, String> {
        let t: f64 = self
            .attr("time")?
            .parse()
            .map_err(|e| format!("<{}> time: {e}", self.name))?;
        if t.is_finite() && t >= 0.0 {
            Ok(t)
        } else {
            Err(format!("<{}> time {t}", self.name))
        }
    }

    pub fn elements<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// Parses a whole document into its root element.
pub fn parse(xml: &str) -> Result<Element, String> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Element> = vec![Element::default()];
    loop {
        match reader.read_event().map_err(|e| format!("XML: {e}"))? {
            Event::Start(e) => stack.push(element(&e)?),
            Event::Empty(e) => {
                let el = element(&e)?;
                stack.last_mut().ok_or("unbalanced")?.children.push(el);
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("unbalanced")?;
                stack.last_mut().ok_or("unbalanced")?.children.push(el);
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| e.to_string())?;
                let text = quick_xml::escape::unescape(&text).map_err(|e| e.to_string())?;
                stack.last_mut().ok_or("unbalanced")?.text.push_str(&text);
            }
            Event::CData(t) => {
                let text = std::str::from_utf8(&t).map_err(|e| e.to_string())?.to_owned();
                stack.last_mut().ok_or("unbalanced")?.text.push_str(&text);
            }
            Event::GeneralRef(r) => {
                let reference = format!("&{};", r.decode().map_err(|e| e.to_string())?);
                let text = quick_xml::escape::unescape(&reference).map_err(|e| e.to_string())?;
                stack.last_mut().ok_or("unbalanced")?.text.push_str(&text);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut document = stack.pop().ok_or("unbalanced")?;
    if !stack.is_empty() || document.children.len() != 1 {
        return Err("not one root element".into());
    }
    Ok(document.children.remove(0))
}

fn element(e: &quick_xml::events::BytesStart<'_>) -> Result<Element, String> {
    let mut el = Element {
        name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
        ..Element::default()
    };
    for a in e.attributes() {
        let a = a.map_err(|e| e.to_string())?;
        let value = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| e.to_string())?
            .into_owned();
        el.attrs
            .insert(String::from_utf8_lossy(a.key.as_ref()).into_owned(), value);
    }
    Ok(el)
}

/// Checks the structure; returns the test cases as (suite, case).
pub fn check(root: &Element) -> Result<Vec<(&Element, &Element)>, String> {
    if root.name != "testsuites" {
        return Err(format!("root is <{}>, not <testsuites>", root.name));
    }
    root.attr("name")?;
    root.time()?;
    let mut cases = Vec::new();
    let (mut tests, mut failures, mut errors) = (0, 0, 0);
    for suite in &root.children {
        if suite.name != "testsuite" {
            return Err(format!("<testsuites> holds <{}>", suite.name));
        }
        suite.attr("name")?;
        suite.time()?;
        let mut counted = BTreeMap::<&str, usize>::new();
        for case in &suite.children {
            if case.name != "testcase" {
                return Err(format!("<testsuite> holds <{}>", case.name));
            }
            case.attr("name")?;
            case.attr("classname")?;
            case.time()?;
            let outcomes: Vec<_> = case
                .children
                .iter()
                .filter(|c| matches!(c.name.as_str(), "failure" | "error" | "skipped"))
                .collect();
            if outcomes.len() > 1 {
                return Err(format!("test case {:?} has {} outcomes", case.attrs, outcomes.len()));
            }
            if let Some(other) = case.children.iter().find(|c| {
                !matches!(
                    c.name.as_str(),
                    "failure" | "error" | "skipped" | "system-out" | "system-err"
                )
            }) {
                return Err(format!("<testcase> holds <{}>", other.name));
            }
            for o in &outcomes {
                if o.name != "skipped" {
                    o.attr("message")?;
                    o.attr("type")?;
                }
                *counted.entry(o.name.as_str()).or_default() += 1;
            }
            cases.push((suite, case));
        }
        let n = |k: &str| counted.get(k).copied().unwrap_or(0);
        for (attr, want) in [
            ("tests", suite.children.len()),
            ("failures", n("failure")),
            ("errors", n("error")),
            ("skipped", n("skipped")),
        ] {
            if suite.count(attr)? != want {
                return Err(format!(
                    "suite {:?}: {attr}={} but {want} counted",
                    suite.attrs,
                    suite.count(attr)?
                ));
            }
        }
        tests += suite.children.len();
        failures += n("failure");
        errors += n("error");
    }
    for (attr, want) in [("tests", tests), ("failures", failures), ("errors", errors)] {
        if root.count(attr)? != want {
            return Err(format!("<testsuites> {attr}={} but {want} counted", root.count(attr)?));
        }
    }
    Ok(cases)
}

/// Validates `xml` with `xmllint` against `tests/report/junit.xsd`, the
/// format written down from the CI systems' documentation. `xmllint`
/// missing is a failure (`scripts/chromium.sh` installs libxml2-utils).
pub fn validate_xsd(xml: &std::path::Path) -> Result<(), String> {
    let xsd = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/report/junit.xsd");
    let out = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(xml)
        .output()
        .map_err(|e| format!("xmllint: {e} (run `bash scripts/chromium.sh`: it installs libxml2-utils)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} does not validate against {}:\n{}",
            xml.display(),
            xsd.display(),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
