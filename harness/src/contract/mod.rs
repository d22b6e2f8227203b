//! A service's HTTP contract, as far as the harness needs it: who the
//! users are and how they authenticate, how a creation is sent and where
//! its key goes, how to read the answer (the id, the replay marker, the
//! status vocabulary) and how to read the final state back. A target file
//! (TOML, `--target file=PATH`) is one of these; the reference service's
//! own is shipped as `harness/targets/idemproof.toml` ([`Contract::reference`]).
//! See "Your own service" in `docs/harness.md` for every field.
//!
//! Loading merges the file over its [`Profile`]'s defaults, expands
//! `${VAR}` references, and validates everything it can before a request
//! is sent (placeholders, pointers, regexes, statuses).

mod builder;
mod profile;
mod semantics;
pub mod template;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use self::builder::ContractBuilder;
pub use self::profile::Profile;
pub use self::semantics::{InFlight, Mismatch, Semantics, duration};
use crate::form::FormField;

/// The reference service's target file, shipped with the harness.
pub const REFERENCE_FILE: &str = include_str!("../../targets/idemproof.toml");

/// Everything the harness knows about a service's API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// The defaults this file started from (already merged in).
    #[serde(default)]
    pub profile: Option<Profile>,
    /// Where the service listens (`--target file=` needs it; a URL given
    /// on the command line or in code replaces it).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Tenants and users the simulated clients act as.
    pub principals: Principals,
    /// How each principal authenticates.
    #[serde(default)]
    pub auth: Auth,
    /// The creation request.
    pub create: Create,
    /// Where the idempotency key goes.
    pub key: KeyPlacement,
    /// How to read an answer.
    pub response: ResponseSpec,
    /// What each status means.
    pub statuses: Statuses,
    /// How to read the final state back.
    #[serde(default)]
    pub read: Read,
    /// What the service promises.
    #[serde(default)]
    pub semantics: Semantics,
    /// Where the contract came from, for messages.
    #[serde(skip)]
    pub source: String,
    /// Compiled form of `response.id.regex`.
    #[serde(skip)]
    id_regex: Option<Regex>,
}

/// Who the simulated clients are: every user acts in every tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principals {
    /// `{tenant}` values (numbers or strings), at least one.
    pub tenants: Vec<Value>,
    /// `{user}` values, at least one.
    pub users: Vec<Value>,
}

/// How requests authenticate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthKind {
    /// Only the static `headers`, if any.
    #[default]
    None,
    /// Static `headers` (templated per principal).
    Headers,
    /// An HS256 JWT minted per principal from `claims`.
    Jwt,
    /// A `login` request per simulated client and principal; the client
    /// keeps the cookies it sets (and, with `token`, a bearer token).
    Login,
}

/// Authentication settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// Which scheme.
    #[serde(default)]
    pub kind: AuthKind,
    /// Sent with every request; values may use `{tenant}`, `{user}`,
    /// `{client}` and `${VAR}`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `jwt`: the HS256 secret.
    #[serde(default)]
    pub secret: Option<String>,
    /// `jwt`: the claims template (`{tenant}`, `{user}`, `{exp}`, `{now}`).
    #[serde(default)]
    pub claims: Option<Value>,
    /// `jwt`: lifetime of a token (`{exp}` is now plus this).
    #[serde(default = "day", with = "duration")]
    pub ttl: Duration,
    /// `jwt` and `login` with `token`: the header carrying the token.
    #[serde(default = "authorization")]
    pub header: String,
    /// Its scheme word (empty: the bare token).
    #[serde(default = "bearer")]
    pub scheme: String,
    /// `login`: the request.
    #[serde(default)]
    pub login: Option<Login>,
}

impl Default for Auth {
    fn default() -> Self {
        Self {
            kind: AuthKind::None,
            headers: BTreeMap::new(),
            secret: None,
            claims: None,
            ttl: day(),
            header: authorization(),
            scheme: bearer(),
            login: None,
        }
    }
}

fn day() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn authorization() -> String {
    "Authorization".into()
}
fn bearer() -> String {
    "Bearer".into()
}
fn post() -> String {
    "POST".into()
}

/// A login request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// HTTP method.
    #[serde(default = "post")]
    pub method: String,
    /// Path template (`{tenant}`, `{user}`, `{client}`).
    pub path: String,
    /// Body encoding.
    #[serde(default)]
    pub encoding: Encoding,
    /// Body template.
    #[serde(default)]
    pub body: Option<Value>,
    /// JSON pointer to a token in the answer, sent as `auth.header`.
    #[serde(default)]
    pub token: Option<String>,
}

/// How a body is encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// `application/json`.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded` (a flat table; arrays repeat
    /// the field).
    Form,
}

/// The creation request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Create {
    /// HTTP method.
    #[serde(default = "post")]
    pub method: String,
    /// Path and query template (`{tenant}`, `{user}`, `{key}`, `{nonce}`,
    /// `{name}`, `{description}`, `{level}`, `{client}`).
    pub path: String,
    /// Body encoding.
    #[serde(default)]
    pub encoding: Encoding,
    /// Body template (same placeholders as `path`).
    pub body: Value,
    /// The form fields `edit-resubmit` changes (default: `name`).
    #[serde(default = "edit_name")]
    pub edit: Vec<FormField>,
}

fn edit_name() -> Vec<FormField> {
    vec![FormField::Name]
}

/// Where the key travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyIn {
    /// A request header.
    Header,
    /// A body field: a JSON pointer (JSON) or a field name (form).
    Body,
    /// A query parameter.
    Query,
}

/// How a header key is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyFormat {
    /// An RFC 8941 string, `"…"` (the IETF draft).
    #[default]
    SfString,
    /// The key as is.
    Raw,
}

/// Where the idempotency key goes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPlacement {
    /// Header, body or query.
    #[serde(rename = "in")]
    pub place: KeyIn,
    /// Header name, JSON pointer / form field, or query parameter.
    pub name: String,
    /// Header only.
    #[serde(default)]
    pub format: KeyFormat,
}

/// What marks a replay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplayMarker {
    /// The status: in `statuses.replayed` and not in `statuses.created`.
    Status,
    /// `replay_header`.
    Header,
    /// Both the status and the header.
    Both,
    /// Nothing: a replay is a success naming an id seen before.
    #[default]
    None,
}

/// Where the resource id is in a success.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdSource {
    /// A JSON pointer into the body.
    #[serde(default)]
    pub pointer: Option<String>,
    /// A response header (e.g. `Location`).
    #[serde(default)]
    pub header: Option<String>,
    /// A regex applied to the header (or pointed-at text): its first
    /// capture group is the id.
    #[serde(default)]
    pub regex: Option<String>,
}

/// How to read an answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseSpec {
    /// Where the id is.
    pub id: IdSource,
    /// JSON pointer to the resource in a success body (`""`: the body).
    #[serde(default)]
    pub resource: String,
    /// What marks a replay.
    #[serde(default)]
    pub replay: ReplayMarker,
    /// `Name: value` of the replay header.
    #[serde(default)]
    pub replay_header: Option<String>,
    /// JSON pointers (into the body) that may differ between an original
    /// and its replay: request ids, timestamps. Left out of comparisons.
    #[serde(default)]
    pub volatile: Vec<String>,
    /// JSON pointer to the error code in error bodies.
    #[serde(default)]
    pub code: Option<String>,
    /// JSON pointer, in the resource, to the tenant that owns it.
    #[serde(default)]
    pub tenant: Option<String>,
    /// JSON pointer, in the resource, to the user that owns it.
    #[serde(default)]
    pub user: Option<String>,
    /// JSON pointers, in the resource, to where each form field shows.
    #[serde(default)]
    pub fields: BTreeMap<FormField, String>,
}

/// One entry of a status list: a status, or a status with an error code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StatusMatch {
    /// Any answer with this status.
    Status(u16),
    /// This status with this code (at `response.code`).
    WithCode {
        /// HTTP status.
        status: u16,
        /// Error code.
        code: String,
    },
}

impl StatusMatch {
    fn status(&self) -> u16 {
        match self {
            StatusMatch::Status(s) | StatusMatch::WithCode { status: s, .. } => *s,
        }
    }
}

/// What the statuses mean. A status in `created` or `replayed` is a
/// success; everything not listed anywhere is an unclean error.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statuses {
    /// A new resource.
    #[serde(default)]
    pub created: Vec<StatusMatch>,
    /// The stored result of an earlier request.
    #[serde(default)]
    pub replayed: Vec<StatusMatch>,
    /// The original is still running; retry.
    #[serde(default)]
    pub in_flight: Vec<StatusMatch>,
    /// The key was used with another payload.
    #[serde(default)]
    pub key_reused: Vec<StatusMatch>,
    /// A key is required.
    #[serde(default)]
    pub missing_key: Vec<StatusMatch>,
    /// Temporarily unavailable; nothing happened; retry.
    #[serde(default)]
    pub unavailable: Vec<StatusMatch>,
}

/// What an answer means, by the contract's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// Created or replayed: it names the resource.
    Success,
    /// The original is still running.
    InFlight,
    /// The key was used with another payload.
    KeyReused,
    /// The service wanted a key.
    MissingKey,
    /// Temporarily unavailable.
    Unavailable,
    /// Anything the contract does not list.
    Other,
}

impl Statuses {
    fn lists(&self) -> [(Class, &[StatusMatch]); 6] {
        [
            (Class::Success, &self.created),
            (Class::Success, &self.replayed),
            (Class::InFlight, &self.in_flight),
            (Class::KeyReused, &self.key_reused),
            (Class::MissingKey, &self.missing_key),
            (Class::Unavailable, &self.unavailable),
        ]
    }

    /// The class of an answer: entries with a code first, then statuses.
    pub fn classify(&self, status: u16, code: Option<&str>) -> Class {
        let lists = self.lists();
        for (class, list) in lists {
            if list
                .iter()
                .any(|m| matches!(m, StatusMatch::WithCode { status: s, code: c } if *s == status && Some(c.as_str()) == code))
            {
                return class;
            }
        }
        for (class, list) in lists {
            if list.iter().any(|m| matches!(m, StatusMatch::Status(s) if *s == status)) {
                return class;
            }
        }
        Class::Other
    }

    /// Whether a success status alone says "replay" (in `replayed`, not
    /// in `created`), "creation" (the reverse), or nothing.
    pub fn replay_by_status(&self, status: u16) -> Option<bool> {
        let has = |list: &[StatusMatch]| list.iter().any(|m| m.status() == status);
        match (has(&self.created), has(&self.replayed)) {
            (true, false) => Some(false),
            (false, true) => Some(true),
            _ => None,
        }
    }
}

/// How to read the final state back.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Read {
    /// Each acknowledged resource by id.
    #[serde(default)]
    pub get: Option<ReadGet>,
    /// Every resource of a tenant, to count resources per key.
    #[serde(default)]
    pub list: Option<ReadList>,
    /// A count query on the service's database (a side-effect oracle).
    #[serde(default)]
    pub sql: Option<ReadSql>,
}

/// `GET` by id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadGet {
    /// Path template (`{id}`, `{tenant}`, `{user}`).
    pub path: String,
    /// JSON pointer to the resource in the body.
    #[serde(default)]
    pub resource: String,
    /// Whether the resource reads back exactly as the creation answered it
    /// (after `volatile`); otherwise only its existence is checked.
    #[serde(default)]
    pub same_shape: bool,
    /// Statuses meaning "no such resource".
    #[serde(default = "not_found")]
    pub missing: Vec<u16>,
}

fn not_found() -> Vec<u16> {
    vec![404]
}

/// How a list is paged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PageKind {
    /// One page holds everything.
    #[default]
    None,
    /// `next` points at an opaque cursor, sent back as `param`.
    Cursor,
    /// `next` points at the next page's URL (absolute or a path).
    NextLink,
    /// Pages numbered from `start`, sent as `param`, until one is empty.
    Page,
}

/// Pagination of a list.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pagination {
    /// Scheme.
    #[serde(default)]
    pub kind: PageKind,
    /// Query parameter for the cursor or page number.
    #[serde(default)]
    pub param: Option<String>,
    /// JSON pointer to the cursor or next link.
    #[serde(default)]
    pub next: Option<String>,
    /// First page number.
    #[serde(default = "one")]
    pub start: u64,
}

fn one() -> u64 {
    1
}
fn two_hundred() -> u32 {
    200
}

/// A list of a tenant's resources.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadList {
    /// Path template (`{tenant}`, `{user}`).
    pub path: String,
    /// JSON pointer to the array of items.
    #[serde(default)]
    pub items: String,
    /// JSON pointer, in an item, to its id.
    pub id: String,
    /// JSON pointer, in an item, to its idempotency key. Without it,
    /// items are matched to keys by the form's `name` field.
    #[serde(default)]
    pub key: Option<String>,
    /// Paging.
    #[serde(default)]
    pub pagination: Pagination,
    /// Bound on pages read per tenant.
    #[serde(default = "two_hundred")]
    pub max_pages: u32,
}

/// A SQL count per key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadSql {
    /// A Postgres URL (usually `${DATABASE_URL}`).
    pub url: String,
    /// A query returning one count, with `{key}`, `{tenant}`, `{user}`,
    /// `{name}` bound as text parameters (cast them: `{tenant}::bigint`).
    pub count: String,
}

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
const SQL_VARS: &[&str] = &["key", "tenant", "user", "name"];

impl Contract {
    /// The reference service's contract (the shipped target file).
    pub fn reference() -> anyhow::Result<Self> {
        Self::from_toml(REFERENCE_FILE, "harness/targets/idemproof.toml")
    }

    /// Loads and validates a target file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read target file {}: {e}", path.display()))?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses and validates a target file's text; `source` names it in errors.
    pub fn from_toml(text: &str, source: &str) -> anyhow::Result<Self> {
        let table: toml::Table = text.parse().map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
        Self::from_table(table, source)
    }

    /// From a parsed table: profile merged under it, `${VAR}` expanded.
    pub fn from_table(table: toml::Table, source: &str) -> anyhow::Result<Self> {
        let mut merged = match table.get("profile") {
            Some(p) => {
                let profile: Profile = p
                    .clone()
                    .try_into()
                    .map_err(|e| anyhow::anyhow!("{source}: profile: {e}"))?;
                profile
                    .defaults()
                    .parse::<toml::Table>()
                    .map_err(|e| anyhow::anyhow!("profile {profile:?}: {e}"))?
            }
            None => toml::Table::new(),
        };
        profile::merge(&mut merged, table);
        let mut value = toml::Value::Table(merged);
        expand_env_in(&mut value, "").map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
        let mut contract: Contract = value.try_into().map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
        contract.source = source.to_owned();
        contract.validate().map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
        Ok(contract)
    }

    /// A contract written in code, from a profile.
    pub fn builder(profile: Profile) -> ContractBuilder {
        ContractBuilder::new(profile)
    }

    /// The same contract at another base URL.
    pub fn at(mut self, base_url: &str) -> Self {
        self.base_url = Some(base_url.trim_end_matches('/').to_owned());
        self
    }

    /// The compiled id regex, if any.
    pub fn id_regex(&self) -> Option<&Regex> {
        self.id_regex.as_ref()
    }

    /// `(name, value)` of the replay header, lower-cased name.
    pub fn replay_header(&self) -> Option<(String, String)> {
        let (name, value) = self.response.replay_header.as_deref()?.split_once(':')?;
        Some((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
    }

    /// Checks everything that can be checked without the service.
    fn validate(&mut self) -> Result<(), String> {
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

fn expand_env_in(value: &mut toml::Value, path: &str) -> Result<(), String> {
    let lookup = |name: &str| std::env::var(name).ok();
    match value {
        toml::Value::String(s) => {
            *s = template::expand_env(s, &lookup).map_err(|e| format!("{path}: {e}"))?;
        }
        toml::Value::Array(items) => {
            for item in items {
                expand_env_in(item, path)?;
            }
        }
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                expand_env_in(v, &p)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_reference_file_loads() {
        let c = Contract::reference().map_err(|e| e.to_string());
        let c = c.as_ref().map_err(String::as_str);
        assert!(c.is_ok(), "{c:?}");
        if let Ok(c) = c {
            assert_eq!(
                c.statuses.classify(422, Some("idempotency_key_reused")),
                Class::KeyReused
            );
            assert_eq!(c.statuses.classify(422, Some("validation_failed")), Class::Other);
            assert_eq!(c.statuses.classify(201, None), Class::Success);
            assert_eq!(c.statuses.replay_by_status(200), Some(true));
        }
    }

    #[test]
    fn mistakes_are_named() {
        let base = REFERENCE_FILE;
        for (broken, needle) in [
            (base.replace("{tenant}&", "{tenat}&"), "unknown placeholder `{tenat}`"),
            (
                base.replace("pointer = \"/data/agent/id\"", "pointer = \"data\""),
                "not a JSON pointer",
            ),
            (format!("{base}\nsurprise = 1"), "unknown field `surprise`"),
        ] {
            let err = Contract::from_toml(&broken, "t.toml")
                .map(|_| ())
                .map_err(|e| e.to_string());
            assert!(err.as_ref().is_err_and(|e| e.contains(needle)), "{needle}: {err:?}");
        }
    }
}
