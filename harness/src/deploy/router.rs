//! A user's own axum [`Router`], driven in process: the `cargo test` way
//! to check a service, with no socket and no port. Requests are handed to
//! the router through tower's [`Service`](tower::Service) (`oneshot`), each
//! on a task of its own as a server would run it, and answers read back in
//! full. A black box like `url=`: the router's state lives on across
//! scenarios, as a real service's would, and the final state is read
//! through its API.
//!
//! What the network would add is reproduced where the harness relies on
//! it. A client that gives up drops its request, and with it the handler
//! (hyper cancels a handler whose client hung up, so a router served by
//! `axum::serve` behaves the same). The HTTP faults (`lost-ack`, answers
//! cut or held) are applied here instead of in the socket proxy, by the
//! same rules ([`HttpFaults`]), so every scenario a URL target takes runs
//! against a router too.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use tower::ServiceExt;

use super::http_faults::{self, Delivery, HttpFaults, RawAnswer};
use super::read_back::read_back;
use super::{Backend, Capabilities};
use crate::client::{Answer, ApiClient, Failure, Request, Transport};
use crate::fault::Fault;
use crate::history::final_state::{FinalState, Judged};

/// The base URL of a router in process: `.invalid` never resolves
/// (RFC 6761), so nothing meant for the router can reach a network.
pub const ROUTER_BASE: &str = "http://router.invalid";

/// A router as a [`Transport`], with the HTTP faults in force on it.
pub struct InProcess {
    router: Router,
    faults: std::sync::Mutex<Arc<HttpFaults>>,
}

impl InProcess {
    /// Drives `router`.
    pub fn new(router: Router) -> Self {
        Self {
            router,
            faults: std::sync::Mutex::new(Arc::new(HttpFaults::default())),
        }
    }

    fn faults(&self) -> Arc<HttpFaults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Fresh faults (none in force, nothing kept) for a new deployment.
    fn reset_faults(&self) -> Arc<HttpFaults> {
        let fresh = Arc::new(HttpFaults::default());
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
        fresh
    }

    async fn exchange(&self, request: Request) -> Result<Answer, Failure> {
        let (tags, headers) = http_faults::tags(&request.headers);
        let path = match request.url.query() {
            Some(q) => format!("{}?{q}", request.url.path()),
            None => request.url.path().to_owned(),
        };
        let mut builder = axum::http::Request::builder().method(request.method).uri(path);
        if let Some(host) = request.url.host_str() {
            builder = builder.header(reqwest::header::HOST, host);
        }
        if let Some(h) = builder.headers_mut() {
            h.extend(headers);
        }
        let http_request = builder
            .body(Body::from(request.body))
            .map_err(|e| Failure::Broken(format!("request not sent: {e}")))?;
        // On a task of its own, as a server runs each request; dropping the
        // handle (the client giving up) aborts it, as a hang-up does.
        let router = self.router.clone();
        let task = tokio::spawn(async move {
            let response = router
                .oneshot(http_request)
                .await
                .unwrap_or_else(|never| match never {});
            let (parts, body) = response.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await;
            (parts, body)
        });
        let abort = task.abort_handle();
        let _abort_on_drop = AbortOnDrop(abort);
        let (parts, body) = task
            .await
            .map_err(|e| Failure::Broken(format!("the service's handler failed: {e}")))?;
        let body = body.map_err(|e| Failure::Broken(format!("connection closed: {e}")))?;
        let answer = RawAnswer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: body.to_vec(),
        };
        match self.faults().deliver(tags, &answer) {
            Delivery::Whole => {}
            Delivery::Dropped => return Err(Failure::Broken("connection closed: reset by the fault proxy".into())),
            Delivery::Half => {
                return Err(Failure::Broken(format!(
                    "connection closed: reset by the fault proxy (after status {})",
                    answer.status
                )));
            }
            Delivery::Delayed(d) => tokio::time::sleep(d).await,
        }
        Ok(Answer {
            status: answer.status,
            headers: answer.headers,
            body: answer.body,
        })
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[async_trait]
impl Transport for InProcess {
    async fn send(&self, request: Request, timeout: Duration) -> Result<Answer, Failure> {
        match tokio::time::timeout(timeout, self.exchange(request)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Timeout),
        }
    }
}

/// The router as a deployment.
pub struct Driven {
    transport: Arc<InProcess>,
    faults: Arc<HttpFaults>,
}

impl Driven {
    /// A deployment of the router `transport` drives, with no fault in
    /// force.
    pub fn start(transport: Arc<InProcess>) -> Self {
        let faults = transport.reset_faults();
        Self { transport, faults }
    }
}

#[async_trait(?Send)]
impl Backend for Driven {
    fn urls(&self) -> Vec<String> {
        vec![ROUTER_BASE.to_owned()]
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::black_box()
    }

    fn http_faults(&self) -> Option<Arc<HttpFaults>> {
        Some(self.faults.clone())
    }

    async fn apply(&mut self, fault: Fault) -> anyhow::Result<()> {
        match fault {
            Fault::Heal => Ok(()),
            other => anyhow::bail!("{other:?} cannot be injected into a router, only between it and its clients"),
        }
    }

    async fn inspect(&self, judged: &Judged, client: &ApiClient) -> anyhow::Result<FinalState> {
        read_back(client, ROUTER_BASE, judged).await
    }

    async fn stop(&mut self) {
        self.transport.reset_faults();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use axum::routing::post;
    use reqwest::header::{HeaderMap, HeaderValue};

    use super::*;
    use crate::client::{ATTEMPT_HEADER, TAG_HEADER};
    use crate::deploy::Unseen;

    fn request(tags: Option<(u64, u64)>) -> Request {
        let mut headers = HeaderMap::new();
        if let Some((attempt, tag)) = tags {
            headers.insert(ATTEMPT_HEADER, HeaderValue::from(attempt));
            headers.insert(TAG_HEADER, HeaderValue::from(tag));
        }
        Request {
            method: reqwest::Method::POST,
            url: reqwest::Url::parse(&format!("{ROUTER_BASE}/work?n=1")).unwrap_or_else(|e| panic!("{e}")),
            headers,
            body: b"hello".to_vec(),
        }
    }

    #[tokio::test]
    async fn requests_reach_the_router_without_a_socket_and_a_client_that_gives_up_cancels_the_handler() {
        let finished = Arc::new(AtomicBool::new(false));
        let done = finished.clone();
        let router = Router::new().route(
            "/work",
            post(
                move |query: axum::extract::RawQuery, headers: axum::http::HeaderMap, body: String| {
                    let done = done.clone();
                    async move {
                        let slow = headers.contains_key("slow");
                        if slow {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            done.store(true, Ordering::SeqCst);
                        }
                        let tagged = headers.contains_key(ATTEMPT_HEADER) || headers.contains_key(TAG_HEADER);
                        format!("{} {body} tagged={tagged}", query.0.unwrap_or_default())
                    }
                },
            ),
        );
        let driven = Arc::new(InProcess::new(router));
        let answer = driven.send(request(Some((1, 1))), Duration::from_secs(5)).await;
        assert_eq!(
            answer.map(|a| (a.status, a.body)),
            Ok((200, b"n=1 hello tagged=false".to_vec()))
        );

        let mut slow = request(None);
        slow.headers.insert("slow", HeaderValue::from_static("1"));
        let gave_up = driven.send(slow, Duration::from_millis(20)).await;
        assert_eq!(gave_up.map(|a| a.status), Err(Failure::Timeout));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            !finished.load(Ordering::SeqCst),
            "the handler ran on after its client left"
        );
    }

    #[tokio::test]
    async fn http_faults_apply_in_process_and_keep_what_the_client_never_got() {
        let router = Router::new().route("/work", post(|| async { "done" }));
        let driven = Arc::new(InProcess::new(router));
        let deployment = Driven::start(driven.clone());
        let faults = deployment.http_faults().unwrap_or_default();
        let unseen = Unseen(faults.clone());
        faults.apply(Fault::DropFirstAnswers);
        let lost = driven.send(request(Some((1, 7))), Duration::from_secs(5)).await;
        assert!(matches!(lost, Err(Failure::Broken(_))), "{lost:?}");
        assert_eq!(unseen.take(7).map(|a| a.body), Some(b"done".to_vec()));
        let retry = driven.send(request(Some((2, 8))), Duration::from_secs(5)).await;
        assert_eq!(retry.map(|a| a.body), Ok(b"done".to_vec()));
        faults.apply(Fault::ResetFirstAnswers);
        let cut = driven.send(request(Some((1, 9))), Duration::from_secs(5)).await;
        assert!(
            matches!(&cut, Err(Failure::Broken(e)) if e.contains("after status 200")),
            "{cut:?}"
        );
        // A new deployment starts with none in force.
        let _fresh = Driven::start(driven.clone());
        let clean = driven.send(request(Some((1, 10))), Duration::from_secs(5)).await;
        assert_eq!(clean.map(|a| a.body), Ok(b"done".to_vec()));
    }
}
