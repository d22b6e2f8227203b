//! Placeholders in a target file's templates: `{tenant}`, `{key}`,
//! `{name}`… in paths, bodies, headers, claims and SQL, and `${VAR}` /
//! `${VAR:-default}` environment references in any string.
//!
//! In a body, claims or login template (a TOML table), a string that is
//! exactly one placeholder takes the placeholder's value with its type
//! (`level = "{level}"` sends a number); anywhere else the value is
//! spliced in as text. In paths every value is percent-encoded. `{{` and
//! `}}` are literal braces.

use std::collections::BTreeMap;

use serde_json::Value;

/// The values a template may use; which ones exist depends on where the
/// template is (a read path has `{id}`, a creation body has `{key}`).
#[derive(Debug, Default, Clone)]
pub struct Vars {
    values: BTreeMap<String, Value>,
}

impl Vars {
    /// No values.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `name = value`.
    pub fn set(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.values.insert(name.into(), value.into());
        self
    }

    /// Adds every value of `other`.
    pub fn extend(mut self, other: &Vars) -> Self {
        self.values
            .extend(other.values.iter().map(|(k, v)| (k.clone(), v.clone())));
        self
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }
}

/// A piece of a parsed template.
#[derive(Debug, PartialEq)]
enum Piece<'a> {
    Text(std::borrow::Cow<'a, str>),
    Var(&'a str),
}

fn parse(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        text.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            text.push_str(&tail[..1]);
            rest = &tail[2..];
        } else if let Some(stripped) = tail.strip_prefix('{') {
            let end = stripped
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in `{template}`"))?;
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text).into()));
            }
            pieces.push(Piece::Var(&stripped[..end]));
            rest = &stripped[end + 1..];
        } else {
            return Err(format!("lone `}}` in `{template}` (write `}}}}` for a brace)"));
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text.into()));
    }
    Ok(pieces)
}

/// The placeholders `template` uses.
pub fn placeholders(template: &str) -> Result<Vec<String>, String> {
    Ok(parse(template)?
        .into_iter()
        .filter_map(|p| match p {
            Piece::Var(v) => Some(v.to_owned()),
            Piece::Text(_) => None,
        })
        .collect())
}

/// Every placeholder in the strings of a TOML/JSON tree.
pub fn placeholders_in(value: &Value) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    walk_strings(value, &mut |s| {
        out.extend(placeholders(s)?);
        Ok(())
    })?;
    Ok(out)
}

fn walk_strings(value: &Value, f: &mut impl FnMut(&str) -> Result<(), String>) -> Result<(), String> {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().try_for_each(|v| walk_strings(v, f)),
        Value::Object(map) => map.values().try_for_each(|v| walk_strings(v, f)),
        _ => Ok(()),
    }
}

/// The text of a value as it appears in a path, a header or a form: a
/// string without quotes, anything else as JSON.
pub fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `template` with every placeholder replaced by its text, each passed
/// through `encode` (percent-encoding in paths, nothing elsewhere).
pub fn render_str(template: &str, vars: &Vars, encode: fn(&str) -> String) -> Result<String, String> {
    let mut out = String::new();
    for piece in parse(template)? {
        match piece {
            Piece::Text(t) => out.push_str(&t),
            Piece::Var(v) => {
                let value = vars.get(v).ok_or_else(|| format!("unknown placeholder `{{{v}}}`"))?;
                out.push_str(&encode(&text_of(value)));
            }
        }
    }
    Ok(out)
}

/// No encoding.
pub fn verbatim(s: &str) -> String {
    s.to_owned()
}

/// Percent-encodes everything but RFC 3986's unreserved characters, for a
/// path segment or a query value.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A tree template rendered: strings that are one placeholder take its
/// typed value, other strings are spliced as text.
pub fn render_value(template: &Value, vars: &Vars) -> Result<Value, String> {
    Ok(match template {
        Value::String(s) => match parse(s)?.as_slice() {
            [Piece::Var(v)] => vars
                .get(v)
                .cloned()
                .ok_or_else(|| format!("unknown placeholder `{{{v}}}`"))?,
            _ => Value::String(render_str(s, vars, verbatim)?),
        },
        Value::Array(items) => Value::Array(items.iter().map(|v| render_value(v, vars)).collect::<Result<_, _>>()?),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_value(v, vars)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// `${VAR}` and `${VAR:-default}` replaced from the environment; `$$` is
/// a literal `$`. An unset variable without default is an error naming it.
pub fn expand_env(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        if let Some(after) = tail.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(body) = tail.strip_prefix('{') {
            let end = body.find('}').ok_or_else(|| format!("unclosed `${{` in `{s}`"))?;
            let spec = &body[..end];
            let (name, default) = match spec.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (spec, None),
            };
            // `:-` also replaces an empty value, as in a shell.
            let value = lookup(name).filter(|v| !v.is_empty() || default.is_none());
            match (value, default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(format!("environment variable {name} is not set")),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = tail;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn vars() -> Vars {
        Vars::new().set("tenant", 3).set("key", "a b/c").set("name", "x")
    }

    #[test]
    fn strings_splice_text_and_paths_encode() {
        assert_eq!(
            render_str("/t/{tenant}?k={key}", &vars(), percent_encode).as_deref(),
            Ok("/t/3?k=a%20b%2Fc")
        );
        assert_eq!(
            render_str("{{literal}} {name}", &vars(), verbatim).as_deref(),
            Ok("{literal} x")
        );
        assert!(render_str("{nope}", &vars(), verbatim).is_err());
        assert!(render_str("{open", &vars(), verbatim).is_err());
        assert!(render_str("close}", &vars(), verbatim).is_err());
    }

    #[test]
    fn lone_placeholders_keep_their_type() {
        let t = json!({"org": "{tenant}", "label": "org {tenant}", "list": ["{tenant}"], "n": 1});
        assert_eq!(
            render_value(&t, &vars()),
            Ok(json!({"org": 3, "label": "org 3", "list": [3], "n": 1}))
        );
        assert_eq!(placeholders_in(&t).map(|p| p.len()), Ok(3));
    }

    #[test]
    fn environment_references_expand() {
        let env = |name: &str| (name == "SET").then(|| "v".to_owned());
        assert_eq!(expand_env("a${SET}b", &env).as_deref(), Ok("avb"));
        assert_eq!(expand_env("${UNSET:-d}", &env).as_deref(), Ok("d"));
        assert_eq!(expand_env("$$HOME $x", &env).as_deref(), Ok("$HOME $x"));
        assert_eq!(
            expand_env("${UNSET}", &env),
            Err("environment variable UNSET is not set".to_owned())
        );
    }
}
