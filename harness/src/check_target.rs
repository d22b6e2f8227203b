//! `idemproof check-target FILE`: before a full run, see what the harness
//! understood of a target file. It validates the file, says in plain
//! words what it will send and how it will read the answers, then sends
//! one creation, the identical request again, and the same key with
//! another payload, reads the resource back, and says what it saw: the
//! id, the replay marker, the codes. Every line that does not match the
//! file is a problem, with what to change.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::client::Wording;
use crate::client::{ApiClient, CreateRequest, Network, Raw, Transport, Who, classify};
use crate::contract::template::text_of;
use crate::contract::{AuthKind, Class, Contract, KeyIn, Mismatch, PageKind, ReplayMarker, SetupPer};
use crate::deploy::router::{InProcess, ROUTER_BASE};
use crate::form::Form;
use crate::history::Outcome;

/// How a line reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// What the harness understood.
    Info,
    /// Seen, as the file says.
    Ok,
    /// Not as the file says.
    Problem,
}

/// What `check-target` found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Every line, in order.
    pub lines: Vec<(Level, String)>,
    /// The id the creation got, if any.
    pub id: Option<String>,
}

impl Findings {
    fn say(&mut self, level: Level, text: impl Into<String>) {
        self.lines.push((level, text.into()));
    }

    /// Lines marked as problems.
    pub fn problems(&self) -> usize {
        self.lines.iter().filter(|(l, _)| *l == Level::Problem).count()
    }

    /// Prints every line.
    pub fn print(&self) {
        for (level, text) in &self.lines {
            let tag = match level {
                Level::Info => "      ",
                Level::Ok => "ok    ",
                Level::Problem => "PROBLEM",
            };
            println!("{tag} {text}");
        }
        match self.problems() {
            0 => println!("\nthe target file matches what the service does"),
            n => println!("\n{n} problems: fix the file (or the service) before a full run"),
        }
    }
}

/// Describes `contract`, then tries it against the service at `base`.
pub async fn run(contract: Arc<Contract>, base: &str) -> anyhow::Result<Findings> {
    run_with(contract, base, Arc::new(Network::new()?)).await
}

/// The same against an axum router, driven in process.
pub async fn run_router(contract: Arc<Contract>, router: axum::Router) -> anyhow::Result<Findings> {
    run_with(contract, ROUTER_BASE, Arc::new(InProcess::new(router))).await
}

async fn run_with(contract: Arc<Contract>, base: &str, transport: Arc<dyn Transport>) -> anyhow::Result<Findings> {
    let mut f = Findings::default();
    describe(&contract, base, &mut f);
    let nonce = format!("check-{:x}", chrono::Utc::now().timestamp_millis());
    let client = ApiClient::with_transport(contract.clone(), &nonce, transport);
    if !contract.setup.is_empty() {
        match client.set_up(base).await {
            Ok(()) => {
                let names: Vec<String> = contract.captures().map(|c| format!("{{{c}}}")).collect();
                f.say(
                    Level::Ok,
                    format!("setup: every fixture made; captured {}", names.join(", ")),
                );
            }
            Err(e) => {
                f.say(Level::Problem, format!("{e:#}: fix [[setup]]"));
                return Ok(f);
            }
        }
    }
    let who = Who {
        client: 0,
        tenant: 0,
        user: 0,
    };
    let key = format!("{nonce}-key");
    let form = Form::new(format!("{nonce} check-target"), 3);
    let request = CreateRequest {
        who,
        key: Some(&key),
        form: &form,
        tag: None,
        wording: Wording::Plain,
    };
    if let Ok((method, url, headers, body)) = client.build_create(base, &request) {
        f.say(Level::Info, format!("sending {method} {url}"));
        for (name, value) in &headers {
            f.say(Level::Info, format!("  {name}: {}", value.to_str().unwrap_or("?")));
        }
        f.say(Level::Info, format!("  body: {}", String::from_utf8_lossy(&body)));
    }

    let first = send(&client, base, &request, "the creation", &mut f).await;
    let Some(Outcome::Response {
        class, id, replayed, ..
    }) = &first
    else {
        return Ok(f);
    };
    if *class != Class::Success {
        f.say(
            Level::Problem,
            "a fresh creation was not read as a success: list its status under statuses.created, or fix the request",
        );
        return Ok(f);
    }
    let Some(id) = id.clone() else {
        f.say(
            Level::Problem,
            format!("no id found in the success ({}): fix response.id", id_source(&contract)),
        );
        return Ok(f);
    };
    f.say(Level::Ok, format!("the creation named resource {id}"));
    if *replayed == Some(true) {
        f.say(
            Level::Problem,
            "the creation was marked as a replay: check response.replay and the statuses",
        );
    }
    f.id = Some(id.clone());

    let again = send(&client, base, &request, "the identical retry", &mut f).await;
    match &again {
        Some(o) if o.id() == Some(id.as_str()) => {
            f.say(Level::Ok, format!("the identical retry named the same resource {id}"));
            match o {
                Outcome::Response { replayed: Some(true), .. } => f.say(Level::Ok, "and was marked as a replay"),
                Outcome::Response { replayed: Some(false), .. } => f.say(
                    Level::Problem,
                    "but was not marked as a replay: fix response.replay / replay_header, or set replay = \"none\"",
                ),
                _ => f.say(Level::Info, "no replay marker is configured: replays are recognised by the id they name"),
            }
        }
        Some(o) if o.is_success() => f.say(
            Level::Problem,
            format!(
                "the identical retry named another resource ({}): the service does not deduplicate, or the key is not where it looks for it (key.in = {:?}, key.name = {:?})",
                o.id().unwrap_or("none"),
                contract.key.place,
                contract.key.name
            ),
        ),
        Some(o) if o.class() == Some(Class::KeyReused) => f.say(
            Level::Problem,
            "the identical retry was refused as \"key reused\": the service's fingerprint does not survive completion",
        ),
        _ => f.say(Level::Problem, "the identical retry did not get the resource"),
    }

    let edited = form.edited(&contract.create.edit);
    let other = CreateRequest {
        form: &edited,
        ..request
    };
    let reused = send(&client, base, &other, "the same key with another payload", &mut f).await;
    match (contract.semantics.mismatch, &reused) {
        (Mismatch::Reject, Some(o)) if o.class() == Some(Class::KeyReused) => {
            f.say(Level::Ok, "another payload with the same key was refused as \"key reused\"")
        }
        (Mismatch::Reject, Some(o)) => f.say(
            Level::Problem,
            format!(
                "another payload with the same key got {}: list that status (and code) under statuses.key_reused, or set semantics.mismatch = \"replay\"",
                o.label()
            ),
        ),
        (Mismatch::Replay, Some(o)) if o.id() == Some(id.as_str()) => {
            f.say(Level::Ok, "another payload with the same key got the original resource (mismatch = replay)")
        }
        (Mismatch::Replay, Some(o)) => f.say(
            Level::Problem,
            format!("another payload with the same key got {} (semantics.mismatch = \"replay\" expects the original)", o.label()),
        ),
        (_, None) => {}
    }

    read_back(&client, &contract, base, &id, &key, &mut f).await;
    Ok(f)
}

async fn send(
    client: &ApiClient,
    base: &str,
    req: &CreateRequest<'_>,
    what: &str,
    f: &mut Findings,
) -> Option<Outcome> {
    match client.create_raw(base, req, Duration::from_secs(30)).await {
        Ok(Raw::Answer { status, headers, body }) => {
            let outcome = classify(client.contract(), status, &headers, &body);
            let excerpt: String = String::from_utf8_lossy(&body).chars().take(300).collect();
            let location = headers
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(|l| format!(", Location: {l}"))
                .unwrap_or_default();
            f.say(Level::Info, format!("{what}: {status}{location}, body {excerpt}"));
            f.say(Level::Info, format!("  understood as: {}", outcome.label()));
            Some(outcome)
        }
        Ok(Raw::Timeout) => {
            f.say(Level::Problem, format!("{what}: no answer within 30 s"));
            None
        }
        Err(e) => {
            f.say(Level::Problem, format!("{what}: {e}"));
            None
        }
    }
}

async fn read_back(client: &ApiClient, contract: &Contract, base: &str, id: &str, key: &str, f: &mut Findings) {
    if contract.read.get.is_none() && contract.read.list.is_none() && contract.read.sql.is_none() {
        f.say(
            Level::Info,
            "no read section: the final state is not checked (duplicates the clients never saw go unnoticed)",
        );
        return;
    }
    if let Some(get) = &contract.read.get {
        match client.get(base, 0, 0, id).await {
            Ok(Some(resource)) => {
                f.say(Level::Ok, format!("GET read resource {id} back"));
                if get.same_shape {
                    f.say(Level::Info, format!("  as {resource}"));
                }
            }
            Ok(None) => f.say(
                Level::Problem,
                format!("GET says resource {id} does not exist: check read.get.path"),
            ),
            Err(e) => f.say(Level::Problem, format!("GET failed: {e:#}")),
        }
    }
    if let Some(list) = &contract.read.list {
        match client.list(base, 0, 0).await {
            Ok(items) => {
                let item = items
                    .iter()
                    .find(|i| i.pointer(&list.id).map(text_of).as_deref() == Some(id));
                match (item, &list.key) {
                    (None, _) => f.say(
                        Level::Problem,
                        format!(
                            "the list ({} items) does not show resource {id}: check read.list",
                            items.len()
                        ),
                    ),
                    (Some(item), Some(k)) if item.pointer(k).map(text_of).as_deref() != Some(key) => f.say(
                        Level::Problem,
                        format!("the listed resource does not show its key at {k}: {item}"),
                    ),
                    (Some(_), _) => f.say(
                        Level::Ok,
                        format!("the list ({} items) shows resource {id}", items.len()),
                    ),
                }
            }
            Err(e) => f.say(Level::Problem, format!("the list failed: {e:#}")),
        }
    }
    if contract.read.sql.is_some() {
        f.say(
            Level::Info,
            "read.sql is used as given (a count per key); it is not tried here",
        );
    }
}

fn id_source(c: &Contract) -> String {
    match (&c.response.id.pointer, &c.response.id.header) {
        (Some(p), _) => format!("body pointer {p}"),
        (None, Some(h)) => format!("header {h}"),
        _ => "nowhere".into(),
    }
}

fn describe(c: &Contract, base: &str, f: &mut Findings) {
    f.say(Level::Ok, format!("{} is a valid target file", c.source));
    f.say(Level::Info, format!("service: {base}"));
    let t = |v: &Value| text_of(v);
    f.say(
        Level::Info,
        format!(
            "principals: {} tenants × {} users (first: tenant {} user {})",
            c.principals.tenants.len(),
            c.principals.users.len(),
            t(&c.principals.tenants[0]),
            t(&c.principals.users[0])
        ),
    );
    for s in &c.setup {
        let captures: Vec<String> = s.capture.keys().map(|k| format!("{{{k}}}")).collect();
        f.say(
            Level::Info,
            format!(
                "setup: {} {} once per {}, capturing {}",
                s.method,
                s.path,
                match s.per {
                    SetupPer::Tenant => "tenant",
                    SetupPer::Principal => "tenant and user",
                },
                captures.join(", ")
            ),
        );
    }
    let auth = &c.auth;
    f.say(
        Level::Info,
        match auth.kind {
            AuthKind::None if auth.headers.is_empty() => "auth: none".to_owned(),
            AuthKind::None | AuthKind::Headers => {
                format!("auth: static headers {:?}", auth.headers.keys().collect::<Vec<_>>())
            }
            AuthKind::Jwt => format!(
                "auth: an HS256 JWT per principal in {} ({}), claims {}",
                auth.header,
                if auth.scheme.is_empty() { "bare" } else { &auth.scheme },
                auth.claims.as_ref().map(|c| c.to_string()).unwrap_or_default()
            ),
            AuthKind::Login => format!(
                "auth: a login per simulated client ({} {}), its cookies kept{}",
                auth.login.as_ref().map_or("", |l| l.method.as_str()),
                auth.login.as_ref().map_or("", |l| l.path.as_str()),
                if auth.login.as_ref().is_some_and(|l| l.token.is_some()) {
                    " and its token sent"
                } else {
                    ""
                }
            ),
        },
    );
    f.say(
        Level::Info,
        match c.key.place {
            KeyIn::Header => format!("key: header {} ({:?})", c.key.name, c.key.format),
            KeyIn::Body => format!("key: body field {} ({:?})", c.key.name, c.create.encoding),
            KeyIn::Query => format!("key: query parameter {}", c.key.name),
        },
    );
    f.say(
        Level::Info,
        format!(
            "answers: id at {}, resource at {:?}, replay marked by {}, error codes at {}",
            id_source(c),
            c.response.resource,
            match c.response.replay {
                ReplayMarker::None => "nothing (same id as before)".to_owned(),
                ReplayMarker::Status => "the status".to_owned(),
                ReplayMarker::Header => format!("header {}", c.response.replay_header.as_deref().unwrap_or("?")),
                ReplayMarker::Both => format!(
                    "the status and header {}",
                    c.response.replay_header.as_deref().unwrap_or("?")
                ),
            },
            c.response.code.as_deref().unwrap_or("(nowhere)")
        ),
    );
    let s = &c.statuses;
    let list = |l: &[crate::contract::StatusMatch]| {
        let v: Vec<String> = l
            .iter()
            .map(|m| match m {
                crate::contract::StatusMatch::Status(s) => s.to_string(),
                crate::contract::StatusMatch::WithCode { status, code } => format!("{status} {code}"),
            })
            .collect();
        if v.is_empty() { "-".to_owned() } else { v.join(", ") }
    };
    f.say(
        Level::Info,
        format!(
            "statuses: created {}; replayed {}; in flight {}; key reused {}; missing key {}; unavailable {}",
            list(&s.created),
            list(&s.replayed),
            list(&s.in_flight),
            list(&s.key_reused),
            list(&s.missing_key),
            list(&s.unavailable)
        ),
    );
    let mut reads = Vec::new();
    if let Some(g) = &c.read.get {
        reads.push(format!("GET {}", g.path));
    }
    if let Some(l) = &c.read.list {
        let paging = match l.pagination.kind {
            PageKind::None => "one page",
            PageKind::Cursor => "cursor",
            PageKind::NextLink => "next links",
            PageKind::Page => "page numbers",
        };
        reads.push(format!("list {} ({paging})", l.path));
    }
    if c.read.sql.is_some() {
        reads.push("SQL count".into());
    }
    f.say(
        Level::Info,
        format!(
            "final state: {}",
            if reads.is_empty() {
                "not read".to_owned()
            } else {
                reads.join("; ")
            }
        ),
    );
    let sem = &c.semantics;
    f.say(
        Level::Info,
        format!(
            "semantics: mismatch {:?}, in flight {:?}, lease {:?}, wait {:?}",
            sem.mismatch, sem.in_flight, sem.lease, sem.wait
        ),
    );
}
