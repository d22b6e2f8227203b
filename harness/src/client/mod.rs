//! The HTTP side of the harness, driven by a [`Contract`]: one
//! [`Transport`] (the network, or a service in process), credentials per
//! principal (or per simulated client, for login sessions), and the few
//! calls the harness makes: create, read one back, list, make fixtures.
//! Nothing here knows any particular API.

mod answer;
mod auth;
mod setup;
pub mod transport;
pub mod wording;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::Value;

pub use self::answer::classify;
pub use self::auth::Who;
pub use self::transport::{Answer, Failure, Network, Request, Transport};
pub use self::wording::Wording;
use crate::contract::template::{self, Vars, percent_encode, text_of};
use crate::contract::{Contract, Encoding, KeyFormat, KeyIn, PageKind};
use crate::form::{Form, FormField};
use crate::history::Outcome;

/// Header naming an attempt for the fault proxy (stripped there).
pub const ATTEMPT_HEADER: &str = "idemproof-attempt";
/// Header carrying an attempt's unique tag for the fault proxy.
pub const TAG_HEADER: &str = "idemproof-tag";

/// The simulated client used for reading the final state back.
pub const READER: usize = usize::MAX;

/// One creation attempt.
#[derive(Debug, Clone, Copy)]
pub struct CreateRequest<'a> {
    /// Who sends it.
    pub who: Who,
    /// The idempotency key, if any.
    pub key: Option<&'a str>,
    /// The form.
    pub form: &'a Form,
    /// For the fault proxy: the attempt number and a unique tag.
    pub tag: Option<(u32, u64)>,
    /// How the body is spelled.
    pub wording: Wording,
}

/// An answer as it came.
#[derive(Debug)]
pub enum Raw {
    /// Status, headers and body.
    Answer {
        /// Status.
        status: u16,
        /// Headers.
        headers: HeaderMap,
        /// Body.
        body: Vec<u8>,
    },
    /// The client gave up waiting.
    Timeout,
}

/// A client of one service's API.
pub struct ApiClient {
    transport: Arc<dyn Transport>,
    contract: Arc<Contract>,
    auth: auth::Authenticator,
    /// Substituted for `{nonce}`.
    nonce: String,
    /// What the target file's `[[setup]]` captured on the deployment now
    /// attacked, by tenant and (for per-principal fixtures) user.
    captured: Mutex<BTreeMap<(usize, Option<usize>), Vars>>,
}

impl ApiClient {
    /// A client for `contract`'s API over the network; `nonce` fills
    /// `{nonce}`.
    pub fn new(contract: Arc<Contract>, nonce: &str) -> anyhow::Result<Self> {
        Ok(Self::with_transport(contract, nonce, Arc::new(Network::new()?)))
    }

    /// The same, with requests carried by `transport`.
    pub fn with_transport(contract: Arc<Contract>, nonce: &str, transport: Arc<dyn Transport>) -> Self {
        Self {
            transport,
            auth: auth::Authenticator::new(contract.clone()),
            contract,
            nonce: nonce.to_owned(),
            captured: Mutex::new(BTreeMap::new()),
        }
    }

    /// The values the reads of `tenant`'s `user` see: the principal's own
    /// and what the fixtures captured for it.
    pub fn principal_values(&self, tenant: usize, user: usize) -> Vars {
        self.vars(Who {
            client: READER,
            tenant,
            user,
        })
    }

    /// The values `who`'s templates see: its tenant, user and client, and
    /// what the fixtures captured for them.
    fn vars(&self, who: Who) -> Vars {
        let mut vars = principal_vars(&self.contract, who);
        let captured = self.captured.lock().unwrap_or_else(|p| p.into_inner());
        for scope in [(who.tenant, None), (who.tenant, Some(who.user))] {
            if let Some(values) = captured.get(&scope) {
                vars = vars.extend(values);
            }
        }
        vars
    }

    /// The contract this client follows.
    pub fn contract(&self) -> &Contract {
        &self.contract
    }

    /// Opens `who`'s session (logs in, or mints its token) ahead of time,
    /// so requests released together are not spread out by their logins.
    pub async fn prepare(&self, base: &str, who: Who) -> Result<(), String> {
        let url = Url::parse(base).map_err(|e| format!("bad URL {base}: {e}"))?;
        self.auth
            .headers(self.transport.as_ref(), base, &url, who)
            .await
            .map(|_| ())
    }

    /// One creation attempt against `base`, bounded by `timeout`.
    pub async fn create(&self, base: &str, req: &CreateRequest<'_>, timeout: Duration) -> Outcome {
        match self.send_create(base, req, timeout).await {
            Ok(outcome) => outcome,
            Err(error) => Outcome::Transport { error },
        }
    }

    /// The request `create` sends: method, URL, headers and body.
    pub fn build_create(
        &self,
        base: &str,
        req: &CreateRequest<'_>,
    ) -> Result<(reqwest::Method, Url, HeaderMap, Vec<u8>), String> {
        let c = &self.contract;
        let mut vars = self.vars(req.who).set("nonce", self.nonce.clone());
        for &field in FormField::all() {
            let name = match field {
                FormField::Name => "name",
                FormField::Description => "description",
                FormField::Level => "level",
            };
            vars = vars.set(name, req.form.value(field));
        }
        if let Some(key) = req.key {
            vars = vars.set("key", key);
        }
        let mut path = template::render_str(&c.create.path, &vars, percent_encode)?;
        let mut body = template::render_value(&c.create.body, &vars)?;
        let mut headers = HeaderMap::new();
        if let Some(key) = req.key {
            match c.key.place {
                KeyIn::Header => {
                    let value = match c.key.format {
                        KeyFormat::SfString => format!("\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\"")),
                        KeyFormat::Raw => key.to_owned(),
                    };
                    let name = reqwest::header::HeaderName::from_bytes(c.key.name.as_bytes())
                        .map_err(|_| format!("`{}` is not a header name", c.key.name))?;
                    let value = HeaderValue::from_str(&value).map_err(|_| "the key is not printable".to_owned())?;
                    headers.insert(name, value);
                }
                KeyIn::Body => match c.create.encoding {
                    Encoding::Json => answer::set_pointer(&mut body, &c.key.name, Value::from(key)),
                    Encoding::Form => {
                        if let Value::Object(map) = &mut body {
                            map.insert(c.key.name.clone(), Value::from(key));
                        }
                    }
                },
                KeyIn::Query => {
                    let sep = if path.contains('?') { '&' } else { '?' };
                    path = format!("{path}{sep}{}={}", percent_encode(&c.key.name), percent_encode(key));
                }
            }
        }
        let (content_type, bytes) = encode_body(c.create.encoding, &body, (req.wording, req.key))?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Some((attempt, tag)) = req.tag {
            headers.insert(ATTEMPT_HEADER, HeaderValue::from(attempt));
            headers.insert(TAG_HEADER, HeaderValue::from(tag));
        }
        let url = Url::parse(&format!("{base}{path}")).map_err(|e| format!("bad URL {base}{path}: {e}"))?;
        let method = reqwest::Method::from_bytes(c.create.method.as_bytes()).map_err(|e| e.to_string())?;
        Ok((method, url, headers, bytes))
    }

    async fn send_create(&self, base: &str, req: &CreateRequest<'_>, timeout: Duration) -> Result<Outcome, String> {
        Ok(match self.create_raw(base, req, timeout).await? {
            Raw::Answer { status, headers, body } => classify(&self.contract, status, &headers, &body),
            Raw::Timeout => Outcome::Timeout,
        })
    }

    /// One creation attempt, the answer as it came (for `check-target`).
    pub async fn create_raw(&self, base: &str, req: &CreateRequest<'_>, timeout: Duration) -> Result<Raw, String> {
        let (method, url, mut headers, body) = self.build_create(base, req)?;
        let auth = self.auth.headers(self.transport.as_ref(), base, &url, req.who).await?;
        headers.extend(auth);
        let request = Request {
            method,
            url: url.clone(),
            headers,
            body,
        };
        match self.transport.send(request, timeout).await {
            Ok(answer) => {
                self.auth.observe(req.who, &url, &answer.headers);
                Ok(Raw::Answer {
                    status: answer.status,
                    headers: answer.headers,
                    body: answer.body,
                })
            }
            Err(Failure::Timeout) => Ok(Raw::Timeout),
            Err(Failure::Broken(e)) => Err(e),
        }
    }

    /// Reads resource `id` back as `tenant`/`user`: `Ok(None)` if the
    /// service says it does not exist.
    pub async fn get(&self, base: &str, tenant: usize, user: usize, id: &str) -> anyhow::Result<Option<Value>> {
        let c = &self.contract;
        let get = c
            .read
            .get
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the contract has no read.get"))?;
        let who = Who {
            client: READER,
            tenant,
            user,
        };
        let vars = self.vars(who).set("id", id);
        let path = template::render_str(&get.path, &vars, percent_encode).map_err(anyhow::Error::msg)?;
        let (status, body) = self.read(base, &path, who).await?;
        if get.missing.contains(&status) {
            return Ok(None);
        }
        anyhow::ensure!((200..300).contains(&status), "GET {path} answered {status}");
        let mut json: Value = serde_json::from_slice(&body)?;
        for p in &c.response.volatile {
            // Volatile pointers name the creation answer's fields; the same
            // paths under the read's resource are dropped too.
            let relative = p.strip_prefix(c.response.resource.as_str()).unwrap_or(p);
            if let Some(res) = json.pointer_mut(&get.resource) {
                answer_remove(res, relative);
            }
        }
        Ok(json.pointer(&get.resource).cloned())
    }

    /// Every item the list shows `tenant`/`user`, following its pages.
    pub async fn list(&self, base: &str, tenant: usize, user: usize) -> anyhow::Result<Vec<Value>> {
        let c = &self.contract;
        let list = c
            .read
            .list
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the contract has no read.list"))?;
        let who = Who {
            client: READER,
            tenant,
            user,
        };
        let first = template::render_str(&list.path, &self.vars(who), percent_encode).map_err(anyhow::Error::msg)?;
        let p = &list.pagination;
        let mut all = Vec::new();
        let mut path = first.clone();
        let mut page = p.start;
        for _ in 0..list.max_pages {
            if p.kind == PageKind::Page {
                path = with_param(&first, p.param.as_deref().unwrap_or("page"), &page.to_string());
            }
            let (status, body) = self.read(base, &path, who).await?;
            anyhow::ensure!((200..300).contains(&status), "GET {path} answered {status}");
            let json: Value = serde_json::from_slice(&body)?;
            let items = json
                .pointer(&list.items)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let empty = items.is_empty();
            all.extend(items);
            let next = p
                .next
                .as_deref()
                .and_then(|n| json.pointer(n))
                .filter(|v| !v.is_null())
                .map(text_of);
            match (p.kind, next) {
                (PageKind::None, _) => return Ok(all),
                (PageKind::Page, _) if empty => return Ok(all),
                (PageKind::Page, _) => page += 1,
                (PageKind::Cursor, Some(cursor)) if !cursor.is_empty() => {
                    path = with_param(&first, p.param.as_deref().unwrap_or("cursor"), &cursor);
                }
                (PageKind::NextLink, Some(link)) if !link.is_empty() => {
                    path = match link.strip_prefix(base) {
                        Some(rest) => rest.to_owned(),
                        None if link.starts_with('/') => link,
                        None => anyhow::bail!("next link {link} is not on {base}"),
                    };
                }
                _ => return Ok(all),
            }
        }
        anyhow::bail!("the list has more than {} pages", list.max_pages)
    }

    async fn read(&self, base: &str, path: &str, who: Who) -> anyhow::Result<(u16, Vec<u8>)> {
        let (status, _, body) = self
            .exchange(base, reqwest::Method::GET, path, HeaderMap::new(), Vec::new(), who)
            .await?;
        Ok((status, body))
    }

    /// One request of the harness's own (a read, a fixture) as `who`,
    /// bounded by 30 s: status, headers and body.
    async fn exchange(
        &self,
        base: &str,
        method: reqwest::Method,
        path: &str,
        mut headers: HeaderMap,
        body: Vec<u8>,
        who: Who,
    ) -> anyhow::Result<(u16, HeaderMap, Vec<u8>)> {
        let url = Url::parse(&format!("{base}{path}"))?;
        let auth = self
            .auth
            .headers(self.transport.as_ref(), base, &url, who)
            .await
            .map_err(anyhow::Error::msg)?;
        headers.extend(auth);
        let request = Request {
            method: method.clone(),
            url: url.clone(),
            headers,
            body,
        };
        let answer = match self.transport.send(request, Duration::from_secs(30)).await {
            Ok(answer) => answer,
            Err(Failure::Timeout) => anyhow::bail!("{method} {path}: no answer within 30 s"),
            Err(Failure::Broken(e)) => anyhow::bail!("{method} {path}: {e}"),
        };
        self.auth.observe(who, &url, &answer.headers);
        Ok((answer.status, answer.headers, answer.body))
    }
}

fn answer_remove(value: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    if let Some(Value::Object(map)) = value.pointer_mut(parent) {
        map.remove(last);
    }
}

fn with_param(path: &str, name: &str, value: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{}={}", percent_encode(name), percent_encode(value))
}

/// `{tenant}`, `{user}` and `{client}` for `who`.
fn principal_vars(contract: &Contract, who: Who) -> Vars {
    let p = &contract.principals;
    Vars::new()
        .set("tenant", p.tenants.get(who.tenant).cloned().unwrap_or(Value::Null))
        .set("user", p.users.get(who.user).cloned().unwrap_or(Value::Null))
        .set("client", if who.client == READER { -1 } else { who.client as i64 })
}

/// A body as bytes with its content type, worded as asked (a malformed
/// form body keeps the key, if it carries one).
fn encode_body(
    encoding: Encoding,
    body: &Value,
    (wording, key): (Wording, Option<&str>),
) -> Result<(&'static str, Vec<u8>), String> {
    match encoding {
        Encoding::Json => Ok(("application/json", wording::json(body, wording)?)),
        Encoding::Form => {
            let mut pairs: Vec<(String, String)> = Vec::new();
            for (k, v) in body.as_object().into_iter().flatten() {
                match v {
                    Value::Array(items) => pairs.extend(items.iter().map(|i| (k.clone(), text_of(i)))),
                    Value::Null => {}
                    other => pairs.push((k.clone(), text_of(other))),
                }
            }
            let text =
                serde_urlencoded::to_string(wording::form_pairs(pairs, wording, key)).map_err(|e| e.to_string())?;
            Ok(("application/x-www-form-urlencoded", text.into_bytes()))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use axum::extract::Query;
    use axum::routing::get;
    use serde_json::json;

    use super::*;
    use crate::contract::Profile;
    use crate::deploy::router::{InProcess, ROUTER_BASE};

    /// 25 items, ten a page, reachable by a cursor, a next link or a page
    /// number.
    async fn items(Query(q): Query<HashMap<String, String>>) -> axum::Json<Value> {
        let num = |k: &str| q.get(k).and_then(|v| v.parse::<usize>().ok());
        let from = num("after").or(num("page").map(|p| (p - 1) * 10)).unwrap_or(0);
        let page: Vec<Value> = (from..25.min(from + 10))
            .map(|i| json!({"id": i, "key": format!("k{i}")}))
            .collect();
        let more = from + 10 < 25;
        axum::Json(json!({
            "items": page,
            "cursor": more.then(|| (from + 10).to_string()),
            "next": more.then(|| format!("/items?after={}", from + 10)),
        }))
    }

    #[tokio::test]
    async fn lists_follow_cursors_next_links_and_page_numbers() -> anyhow::Result<()> {
        let router = Arc::new(InProcess::new(axum::Router::new().route("/items", get(items))));
        for pagination in [
            json!({"kind": "cursor", "param": "after", "next": "/cursor"}),
            json!({"kind": "next-link", "next": "/next"}),
            json!({"kind": "page", "param": "page", "start": 1}),
        ] {
            let contract = Contract::builder(Profile::Ietf)
                .tenants([1])
                .users([1])
                .create("POST", "/items", json!({"name": "{name}"}))
                .set("response.id.pointer", "/id")
                .set(
                    "read.list",
                    json!({"path": "/items", "items": "/items", "id": "/id", "key": "/key", "pagination": pagination}),
                )
                .build()?;
            let client = ApiClient::with_transport(Arc::new(contract), "n", router.clone());
            let listed = client.list(ROUTER_BASE, 0, 0).await?;
            let ids: Vec<String> = listed.iter().map(|i| text_of(&i["id"])).collect();
            let expected: Vec<String> = (0..25).map(|i: usize| i.to_string()).collect();
            assert_eq!(ids, expected, "{pagination}");
        }
        Ok(())
    }

    fn with_key(place: &str, name: &str, format: &str, encoding: &str) -> anyhow::Result<ApiClient> {
        let contract = Contract::builder(Profile::Ietf)
            .tenants(["acme"])
            .users([7])
            .create(
                "POST",
                "/t/{tenant}/orders?u={user}",
                json!({"item": "{name}", "qty": "{level}"}),
            )
            .set("create.encoding", encoding)
            .set("key", json!({"in": place, "name": name, "format": format}))
            .set("response.id.pointer", "/id")
            .build()?;
        ApiClient::new(Arc::new(contract), "n")
    }

    #[test]
    fn the_key_goes_where_the_file_says() -> anyhow::Result<()> {
        let form = Form::new("a b".into(), 3);
        let req = CreateRequest {
            who: Who {
                client: 0,
                tenant: 0,
                user: 0,
            },
            key: Some("k\"1"),
            form: &form,
            tag: None,
            wording: Wording::Plain,
        };
        let build = |c: &ApiClient| c.build_create("http://h", &req).map_err(anyhow::Error::msg);

        let (_, url, headers, body) = build(&with_key("header", "Idempotency-Key", "sf-string", "json")?)?;
        assert_eq!(url.as_str(), "http://h/t/acme/orders?u=7");
        assert_eq!(headers["idempotency-key"], "\"k\\\"1\"");
        assert_eq!(
            serde_json::from_slice::<Value>(&body)?,
            json!({"item": "a b", "qty": 3})
        );

        let (_, _, headers, _) = build(&with_key("header", "X-Key", "raw", "json")?)?;
        assert_eq!(headers["x-key"], "k\"1");

        let (_, _, _, body) = build(&with_key("body", "/meta/key", "raw", "json")?)?;
        assert_eq!(serde_json::from_slice::<Value>(&body)?["meta"]["key"], "k\"1");

        let (_, _, headers, body) = build(&with_key("body", "token", "raw", "form")?)?;
        assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
        assert_eq!(String::from_utf8(body)?, "item=a+b&qty=3&token=k%221");

        let (_, url, _, _) = build(&with_key("query", "key", "raw", "json")?)?;
        assert_eq!(url.query(), Some("u=7&key=k%221"));
        Ok(())
    }
}
