//! Everything about a target file that can be checked before a request
//! is sent, each problem named with its field.

use regex::Regex;
use serde_json::Value;

use super::{AuthKind, Contract, Encoding, IdSource, KeyIn, PageKind, ReplayMarker, StatusMatch, template};
use crate::form::FormField;

/// Placeholders each template may use.
const CREATE_VARS: &[&str] = &[
    "tenant",
    "user",
    "key",
    "nonce",
    "name",
    "description",
    "level",
    "client",
];
const PRINCIPAL_VARS: &[&str] = &["tenant", "user", "client"];
const CLAIM_VARS: &[&str] = &["tenant", "user", "exp", "now"];
const READ_VARS: &[&str] = &["tenant", "user", "id"];
const SQL_VARS: &[&str] = &["key", "tenant", "user"];
const SETUP_VARS: &[&str] = &["tenant", "user", "nonce"];
/// Names a capture may not take: every built-in placeholder.
const BUILT_IN: &[&[&str]] = &[CREATE_VARS, CLAIM_VARS, READ_VARS];

impl Contract {
    /// Checks everything that can be checked without the service.
    pub(super) fn validate(&mut self) -> Result<(), String> {
        if self.principals.tenants.is_empty() || self.principals.users.is_empty() {
            return Err("principals: at least one tenant and one user are needed".into());
        }
        if let Some(url) = &self.base_url {
            check_url(url)?;
            self.base_url = Some(url.trim_end_matches('/').to_owned());
        }
        let captures = self.check_setup()?;
        let with_captures = |vars: &[&'static str]| -> Vec<String> {
            vars.iter()
                .map(|v| (*v).to_owned())
                .chain(captures.iter().cloned())
                .collect()
        };
        let create_vars = with_captures(CREATE_VARS);
        let read_vars = with_captures(READ_VARS);
        let create = &self.create;
        check_method("create.method", &create.method)?;
        check_template("create.path", &create.path, &create_vars)?;
        check_tree("create.body", &create.body, &create_vars)?;
        if !create.body.is_object() {
            return Err("create.body must be a table".into());
        }
        if create.encoding == Encoding::Form && !is_flat(&create.body) {
            return Err("create.body: a form-encoded body must be a flat table of values or arrays of values".into());
        }
        match (self.key.place, create.encoding) {
            (KeyIn::Body, Encoding::Json) => check_pointer("key.name", &self.key.name)?,
            (_, _) if self.key.name.is_empty() => return Err("key.name is empty".into()),
            _ => {}
        }
        let auth = &self.auth;
        for (name, value) in &auth.headers {
            check_template(&format!("auth.headers.{name}"), value, &strs(PRINCIPAL_VARS))?;
        }
        match auth.kind {
            AuthKind::Jwt => {
                if auth.secret.as_deref().unwrap_or_default().is_empty() {
                    return Err("auth.secret is required for kind = \"jwt\"".into());
                }
                let claims = auth
                    .claims
                    .as_ref()
                    .ok_or("auth.claims is required for kind = \"jwt\"")?;
                check_tree("auth.claims", claims, &strs(CLAIM_VARS))?;
            }
            AuthKind::Login => {
                let login = auth
                    .login
                    .as_ref()
                    .ok_or("auth.login is required for kind = \"login\"")?;
                check_method("auth.login.method", &login.method)?;
                check_template("auth.login.path", &login.path, &strs(PRINCIPAL_VARS))?;
                if let Some(body) = &login.body {
                    check_tree("auth.login.body", body, &strs(PRINCIPAL_VARS))?;
                }
                if let Some(p) = &login.token {
                    check_pointer("auth.login.token", p)?;
                }
            }
            AuthKind::None | AuthKind::Headers => {}
        }
        let r = &self.response;
        self.id_regex = check_source("response.id", &r.id)?;
        check_pointer("response.resource", &r.resource)?;
        for p in &r.volatile {
            check_pointer("response.volatile", p)?;
        }
        for (name, p) in [
            ("response.code", &r.code),
            ("response.tenant", &r.tenant),
            ("response.user", &r.user),
        ] {
            if let Some(p) = p {
                check_pointer(name, p)?;
            }
        }
        for p in r.fields.values() {
            check_pointer("response.fields", p)?;
        }
        if matches!(r.replay, ReplayMarker::Header | ReplayMarker::Both) && self.replay_header().is_none() {
            return Err("response.replay_header (\"Name: value\") is required by this replay marker".into());
        }
        let s = &self.statuses;
        if s.created.is_empty() && s.replayed.is_empty() {
            return Err("statuses.created (or statuses.replayed) must list the success statuses".into());
        }
        for (class, list) in s.lists() {
            for m in list {
                if !(100..=599).contains(&m.status()) {
                    return Err(format!("statuses: {} is not an HTTP status", m.status()));
                }
                if matches!(m, StatusMatch::WithCode { .. }) && r.code.is_none() {
                    return Err(format!(
                        "statuses: a {class:?} entry names a code, but response.code does not say where codes are"
                    ));
                }
            }
        }
        if matches!(r.replay, ReplayMarker::Status | ReplayMarker::Both)
            && !s.replayed.iter().any(|m| s.replay_by_status(m.status()) == Some(true))
        {
            return Err("response.replay uses the status, but no status is in statuses.replayed only".into());
        }
        if let Some(get) = &self.read.get {
            check_template("read.get.path", &get.path, &read_vars)?;
            check_pointer("read.get.resource", &get.resource)?;
        }
        if let Some(list) = &self.read.list {
            check_template("read.list.path", &list.path, &read_vars)?;
            check_pointer("read.list.items", &list.items)?;
            check_pointer("read.list.id", &list.id)?;
            if let Some(k) = &list.key {
                check_pointer("read.list.key", k)?;
            } else if !r.fields.contains_key(&FormField::Name) {
                return Err("read.list needs a key pointer, or response.fields.name to match items by name".into());
            }
            let p = &list.pagination;
            match p.kind {
                PageKind::None => {}
                PageKind::Cursor | PageKind::NextLink => {
                    let next = p.next.as_deref().ok_or("read.list.pagination.next is required")?;
                    check_pointer("read.list.pagination.next", next)?;
                    if p.kind == PageKind::Cursor && p.param.is_none() {
                        return Err("read.list.pagination.param is required for cursors".into());
                    }
                }
                PageKind::Page if p.param.is_none() => {
                    return Err("read.list.pagination.param is required for page numbers".into());
                }
                PageKind::Page => {}
            }
        }
        if let Some(sql) = &self.read.sql {
            check_template("read.sql.count", &sql.count, &with_captures(SQL_VARS))?;
            if !(sql.url.starts_with("postgres://") || sql.url.starts_with("postgresql://")) {
                return Err("read.sql.url must be a postgres:// URL".into());
            }
        }
        Ok(())
    }

    /// Checks `[[setup]]`: each entry's request, its captures (fresh
    /// names, not built-in ones) and the placeholders it uses (its own
    /// principal's and earlier captures). Returns every capture name.
    fn check_setup(&self) -> Result<Vec<String>, String> {
        let mut captures: Vec<String> = Vec::new();
        for (i, setup) in self.setup.iter().enumerate() {
            let field = |f: &str| format!("setup[{i}].{f}");
            check_method(&field("method"), &setup.method)?;
            let allowed: Vec<String> = strs(SETUP_VARS).into_iter().chain(captures.iter().cloned()).collect();
            check_template(&field("path"), &setup.path, &allowed)?;
            if let Some(body) = &setup.body {
                check_tree(&field("body"), body, &allowed)?;
                if setup.encoding == Encoding::Form && !is_flat(body) {
                    return Err(format!("{}: a form-encoded body must be a flat table", field("body")));
                }
            }
            if setup.capture.is_empty() {
                return Err(format!("{}: capture at least one value", field("capture")));
            }
            for (name, source) in &setup.capture {
                let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                if !valid {
                    return Err(format!(
                        "{}: `{name}` is not a placeholder name (a-z, 0-9, _)",
                        field("capture")
                    ));
                }
                if BUILT_IN.iter().any(|vars| vars.contains(&name.as_str())) || captures.contains(name) {
                    return Err(format!("{}: `{{{name}}}` is already a placeholder", field("capture")));
                }
                check_source(&field(&format!("capture.{name}")), source)?;
                captures.push(name.clone());
            }
        }
        Ok(captures)
    }
}

/// Checks where a value is read from an answer; returns its regex, compiled.
pub(super) fn check_source(field: &str, source: &IdSource) -> Result<Option<Regex>, String> {
    match (&source.pointer, &source.header) {
        (None, None) => return Err(format!("{field} needs a pointer or a header")),
        (Some(_), Some(_)) => return Err(format!("{field}: give a pointer or a header, not both")),
        (Some(p), None) => check_pointer(&format!("{field}.pointer"), p)?,
        (None, Some(_)) => {}
    }
    let Some(re) = &source.regex else {
        return Ok(None);
    };
    let compiled = Regex::new(re).map_err(|e| format!("{field}.regex: {e}"))?;
    if compiled.captures_len() < 2 {
        return Err(format!("{field}.regex needs a capture group around the value"));
    }
    Ok(Some(compiled))
}

fn strs(vars: &[&str]) -> Vec<String> {
    vars.iter().map(|v| (*v).to_owned()).collect()
}

fn check_url(url: &str) -> Result<(), String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(format!("`{url}` is not an http(s) URL"))
    }
}

fn check_method(field: &str, method: &str) -> Result<(), String> {
    reqwest::Method::from_bytes(method.as_bytes())
        .map(|_| ())
        .map_err(|_| format!("{field}: `{method}` is not an HTTP method"))
}

fn check_pointer(field: &str, pointer: &str) -> Result<(), String> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Ok(())
    } else {
        Err(format!(
            "{field}: `{pointer}` is not a JSON pointer (it starts with `/`, or is empty)"
        ))
    }
}

fn check_template(field: &str, template: &str, allowed: &[String]) -> Result<(), String> {
    for p in template::placeholders(template).map_err(|e| format!("{field}: {e}"))? {
        if !allowed.contains(&p) {
            return Err(format!(
                "{field}: unknown placeholder `{{{p}}}` (here: {})",
                allowed
                    .iter()
                    .map(|a| format!("{{{a}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(())
}

fn check_tree(field: &str, tree: &Value, allowed: &[String]) -> Result<(), String> {
    for p in template::placeholders_in(tree).map_err(|e| format!("{field}: {e}"))? {
        if !allowed.contains(&p) {
            return Err(format!("{field}: unknown placeholder `{{{p}}}`"));
        }
    }
    Ok(())
}

fn is_flat(body: &Value) -> bool {
    body.as_object().is_some_and(|m| {
        m.values().all(|v| match v {
            Value::Array(items) => items.iter().all(|i| !i.is_object() && !i.is_array()),
            Value::Object(_) => false,
            _ => true,
        })
    })
}
