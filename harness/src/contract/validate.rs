//! Everything about a target file that can be checked before a request
//! is sent, each problem named with its field.

use regex::Regex;
use serde_json::Value;

use super::{AuthKind, Contract, Encoding, KeyIn, PageKind, ReplayMarker, StatusMatch, template};
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
        let create = &self.create;
        check_method("create.method", &create.method)?;
        check_template("create.path", &create.path, CREATE_VARS)?;
        check_tree("create.body", &create.body, CREATE_VARS)?;
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
            check_template(&format!("auth.headers.{name}"), value, PRINCIPAL_VARS)?;
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
                check_tree("auth.claims", claims, CLAIM_VARS)?;
            }
            AuthKind::Login => {
                let login = auth
                    .login
                    .as_ref()
                    .ok_or("auth.login is required for kind = \"login\"")?;
                check_method("auth.login.method", &login.method)?;
                check_template("auth.login.path", &login.path, PRINCIPAL_VARS)?;
                if let Some(body) = &login.body {
                    check_tree("auth.login.body", body, PRINCIPAL_VARS)?;
                }
                if let Some(p) = &login.token {
                    check_pointer("auth.login.token", p)?;
                }
            }
            AuthKind::None | AuthKind::Headers => {}
        }
        let r = &self.response;
        match (&r.id.pointer, &r.id.header) {
            (None, None) => return Err("response.id needs a pointer or a header".into()),
            (Some(_), Some(_)) => return Err("response.id: give a pointer or a header, not both".into()),
            (Some(p), None) => check_pointer("response.id.pointer", p)?,
            (None, Some(_)) => {}
        }
        if let Some(re) = &r.id.regex {
            let compiled = Regex::new(re).map_err(|e| format!("response.id.regex: {e}"))?;
            if compiled.captures_len() < 2 {
                return Err("response.id.regex needs a capture group around the id".into());
            }
            self.id_regex = Some(compiled);
        }
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
            check_template("read.get.path", &get.path, READ_VARS)?;
            check_pointer("read.get.resource", &get.resource)?;
        }
        if let Some(list) = &self.read.list {
            check_template("read.list.path", &list.path, READ_VARS)?;
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
            check_template("read.sql.count", &sql.count, SQL_VARS)?;
            if !(sql.url.starts_with("postgres://") || sql.url.starts_with("postgresql://")) {
                return Err("read.sql.url must be a postgres:// URL".into());
            }
        }
        Ok(())
    }
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

fn check_template(field: &str, template: &str, allowed: &[&str]) -> Result<(), String> {
    for p in template::placeholders(template).map_err(|e| format!("{field}: {e}"))? {
        if !allowed.contains(&p.as_str()) {
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

fn check_tree(field: &str, tree: &Value, allowed: &[&str]) -> Result<(), String> {
    for p in template::placeholders_in(tree).map_err(|e| format!("{field}: {e}"))? {
        if !allowed.contains(&p.as_str()) {
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
