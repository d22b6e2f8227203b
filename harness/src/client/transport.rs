//! How the client's requests reach a service: over the network
//! ([`Network`], one reqwest connection pool), or handed to a service in
//! the same process (an axum `Router`, `deploy::router`), which needs no
//! socket. Everything above this (auth, templates, reading answers) is the
//! same either way.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};

/// A request, fully built.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Where: the base URL names the service, the path and query what is asked.
    pub url: Url,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Vec<u8>,
}

/// An answer, fully read.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Vec<u8>,
}

/// Why no whole answer came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The client's timeout ran out first.
    Timeout,
    /// The exchange broke (refused, reset, cut mid-answer), in a few words.
    Broken(String),
}

/// Carries requests to a service.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Sends `request` and reads the whole answer, within `timeout`.
    async fn send(&self, request: Request, timeout: Duration) -> Result<Answer, Failure>;
}

/// Over the network.
pub struct Network {
    http: reqwest::Client,
}

impl Network {
    /// One pool for every simulated client (cookies are kept per client by
    /// the authenticator, not here); redirects are answers, not followed.
    pub fn new() -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { http })
    }
}

#[async_trait]
impl Transport for Network {
    async fn send(&self, request: Request, timeout: Duration) -> Result<Answer, Failure> {
        let response = self
            .http
            .request(request.method, request.url)
            .headers(request.headers)
            .body(request.body)
            .timeout(timeout)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Err(Failure::Timeout),
            Err(e) => return Err(Failure::Broken(short(&e))),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        match response.bytes().await {
            Ok(body) => Ok(Answer {
                status,
                headers,
                body: body.to_vec(),
            }),
            Err(e) if e.is_timeout() => Err(Failure::Timeout),
            Err(e) => Err(Failure::Broken(format!("{} (after status {status})", short(&e)))),
        }
    }
}

/// The error without reqwest's URL noise, for the history.
fn short(e: &reqwest::Error) -> String {
    let mut msg = if e.is_connect() {
        "connection refused".to_owned()
    } else if e.is_request() || e.is_body() {
        "connection closed".to_owned()
    } else {
        "transport error".to_owned()
    };
    if let Some(source) = std::error::Error::source(e) {
        msg.push_str(": ");
        msg.push_str(&source.to_string());
    }
    msg
}
