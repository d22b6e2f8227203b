//! Credentials per request: static headers, HS256 tokens minted from the
//! contract's claims template (cached per principal: minting costs an
//! HMAC, which would show up in latency figures), or a session per
//! simulated client and principal, opened by the contract's login request,
//! whose cookies (and token) that client alone keeps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use reqwest::Url;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{COOKIE, HeaderMap, HeaderName, HeaderValue, SET_COOKIE};
use serde_json::Value;
use tokio::sync::OnceCell;

use super::{Failure, Request, Transport, Wording, encode_body, principal_vars};
use crate::contract::template::{self, percent_encode};
use crate::contract::{AuthKind, Contract};

/// Who sends a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Who {
    /// Simulated client (its own cookie jar).
    pub client: usize,
    /// Tenant index.
    pub tenant: usize,
    /// User index.
    pub user: usize,
}

struct Session {
    jar: Jar,
    token: Option<String>,
}

/// A failed login is not kept: the next request tries again.
type SessionCell = Arc<OnceCell<Arc<Session>>>;

pub(super) struct Authenticator {
    contract: Arc<Contract>,
    tokens: Mutex<HashMap<(usize, usize), String>>,
    sessions: Mutex<HashMap<Who, SessionCell>>,
}

impl Authenticator {
    pub(super) fn new(contract: Arc<Contract>) -> Self {
        Self {
            contract,
            tokens: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The headers that authenticate `who` on a request to `url`.
    pub(super) async fn headers(
        &self,
        transport: &dyn Transport,
        base: &str,
        url: &Url,
        who: Who,
    ) -> Result<HeaderMap, String> {
        let auth = &self.contract.auth;
        let mut headers = self.static_headers(who)?;
        match auth.kind {
            AuthKind::None | AuthKind::Headers => {}
            AuthKind::Jwt => {
                let token = self.token(who)?;
                insert(&mut headers, &auth.header, &with_scheme(&auth.scheme, &token))?;
            }
            AuthKind::Login => {
                let session = self.session(transport, base, who).await?;
                if let Some(cookies) = session.jar.cookies(url) {
                    headers.insert(COOKIE, cookies);
                }
                if let Some(token) = &session.token {
                    insert(&mut headers, &auth.header, &with_scheme(&auth.scheme, token))?;
                }
            }
        }
        Ok(headers)
    }

    /// Keeps the cookies an answer set, in `who`'s session.
    pub(super) fn observe(&self, who: Who, url: &Url, answer: &HeaderMap) {
        if self.contract.auth.kind != AuthKind::Login || !answer.contains_key(SET_COOKIE) {
            return;
        }
        let cell = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&who)
            .cloned();
        if let Some(Some(session)) = cell.as_ref().map(|c| c.get()) {
            session.jar.set_cookies(&mut answer.get_all(SET_COOKIE).iter(), url);
        }
    }

    fn static_headers(&self, who: Who) -> Result<HeaderMap, String> {
        let vars = principal_vars(&self.contract, who);
        let mut headers = HeaderMap::new();
        for (name, value) in &self.contract.auth.headers {
            let value = template::render_str(value, &vars, template::verbatim)?;
            insert(&mut headers, name, &value)?;
        }
        Ok(headers)
    }

    fn token(&self, who: Who) -> Result<String, String> {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = tokens.get(&(who.tenant, who.user)) {
            return Ok(t.clone());
        }
        let auth = &self.contract.auth;
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(auth.ttl.as_secs()).unwrap_or(i64::MAX);
        let vars = principal_vars(&self.contract, who)
            .set("now", now)
            .set("exp", now.saturating_add(ttl));
        let claims = template::render_value(auth.claims.as_ref().unwrap_or(&Value::Null), &vars)?;
        let key = jsonwebtoken::EncodingKey::from_secret(auth.secret.as_deref().unwrap_or_default().as_bytes())
            .map_err(|e| format!("auth.secret: {e}"))?;
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &key,
        )
        .map_err(|e| format!("minting a token: {e}"))?;
        tokens.insert((who.tenant, who.user), token.clone());
        Ok(token)
    }

    async fn session(&self, transport: &dyn Transport, base: &str, who: Who) -> Result<Arc<Session>, String> {
        let cell = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(who)
            .or_default()
            .clone();
        cell.get_or_try_init(|| self.login(transport, base, who)).await.cloned()
    }

    async fn login(&self, transport: &dyn Transport, base: &str, who: Who) -> Result<Arc<Session>, String> {
        let contract = &self.contract;
        let login = contract.auth.login.as_ref().ok_or("auth.login is missing")?;
        let vars = principal_vars(contract, who);
        let path = template::render_str(&login.path, &vars, percent_encode)?;
        let url = Url::parse(&format!("{base}{path}")).map_err(|e| format!("login URL: {e}"))?;
        let method = reqwest::Method::from_bytes(login.method.as_bytes()).map_err(|e| e.to_string())?;
        let mut request = Request {
            method,
            url: url.clone(),
            headers: self.static_headers(who)?,
            body: Vec::new(),
        };
        if let Some(body) = &login.body {
            let body = template::render_value(body, &vars)?;
            let (content_type, bytes) = encode_body(login.encoding, &body, (Wording::Plain, None))?;
            request
                .headers
                .insert(reqwest::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            request.body = bytes;
        }
        let answer = match transport.send(request, std::time::Duration::from_secs(30)).await {
            Ok(answer) => answer,
            Err(Failure::Timeout) => return Err("login failed: no answer within 30 s".into()),
            Err(Failure::Broken(e)) => return Err(format!("login failed: {e}")),
        };
        let status = answer.status;
        let jar = Jar::default();
        jar.set_cookies(&mut answer.headers.get_all(SET_COOKIE).iter(), &url);
        let body = answer.body;
        if !(200..300).contains(&status) {
            return Err(format!(
                "login as tenant {} user {} answered {status}: {}",
                template::text_of(&contract.principals.tenants[who.tenant]),
                template::text_of(&contract.principals.users[who.user]),
                String::from_utf8_lossy(&body).chars().take(200).collect::<String>()
            ));
        }
        let token = match &login.token {
            Some(pointer) => {
                let json: Value = serde_json::from_slice(&body).map_err(|e| format!("login answer: {e}"))?;
                Some(
                    json.pointer(pointer)
                        .map(template::text_of)
                        .ok_or_else(|| format!("the login answer has no token at {pointer}"))?,
                )
            }
            None => None,
        };
        Ok(Arc::new(Session { jar, token }))
    }
}

fn with_scheme(scheme: &str, token: &str) -> String {
    if scheme.is_empty() {
        token.to_owned()
    } else {
        format!("{scheme} {token}")
    }
}

fn insert(headers: &mut HeaderMap, name: &str, value: &str) -> Result<(), String> {
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("`{name}` is not a header name"))?;
    let value = HeaderValue::from_str(value).map_err(|_| format!("the value of header {name} is not printable"))?;
    headers.insert(name, value);
    Ok(())
}
