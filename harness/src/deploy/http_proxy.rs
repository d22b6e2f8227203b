//! An HTTP proxy the harness puts in front of a service on a socket (in
//! process, a replica, a URL) to break what happens between a service and
//! its client rather than inside the service:
//!
//! - drop the answer after the service sent it (`lost-ack`): the work is
//!   done, the client hears nothing and retries: the lost acknowledgement
//!   behind every "network timeout, then retry";
//! - send half the answer, then reset the connection;
//! - hold every answer for a while.
//!
//! Which answers to break, and keeping what the client never got, is
//! [`super::http_faults`]'s (shared with the in-process `Router`); this
//! file is the socket side. Each connection is served by hyper directly,
//! so the proxy can drop it at any point; sockets close with `SO_LINGER`
//! 0, a reset.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use reqwest::header::{self, HeaderMap};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::http_faults::{self, Delivery, HttpFaults, RawAnswer, Unseen};
use crate::fault::Fault;

struct Shared {
    upstream: String,
    http: reqwest::Client,
    faults: Arc<HttpFaults>,
}

/// A fault-injecting HTTP proxy to one upstream base URL.
pub struct HttpProxy {
    /// Where clients connect.
    pub url: String,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl HttpProxy {
    /// Starts forwarding to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(1024)
                .tcp_nodelay(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            faults: Arc::new(HttpFaults::default()),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Self { url, shared, accept })
    }

    /// Applies an HTTP fault (or `Heal`); other faults are not the proxy's.
    pub fn apply(&self, fault: Fault) {
        self.shared.faults.apply(fault);
    }

    /// The answers the proxy keeps from clients, by attempt tag.
    pub fn unseen(&self) -> Unseen {
        Unseen(self.shared.faults.clone())
    }
}

impl Drop for HttpProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        // A closed connection is reset, not shut down: what a crashed peer
        // or a middlebox does.
        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        tokio::spawn(serve(stream, shared.clone()));
    }
}

async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let kill = Arc::new(Notify::new());
    let on_request = {
        let kill = kill.clone();
        hyper::service::service_fn(move |req| handle(req, shared.clone(), kill.clone()))
    };
    let connection = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), on_request);
    tokio::select! {
        _ = connection => {}
        () = kill.notified() => {}
    }
}

type Body = BoxBody<Bytes, Infallible>;

/// Headers that belong to one hop, not to the message.
fn hop_by_hop(name: &header::HeaderName) -> bool {
    [
        header::CONNECTION,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::HOST,
        header::HeaderName::from_static("keep-alive"),
    ]
    .contains(name)
}

async fn handle(req: Request<Incoming>, shared: Arc<Shared>, kill: Arc<Notify>) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let (tags, passed) = http_faults::tags(&parts.headers);
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return hang_up(&kill).await;
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &passed {
        if !hop_by_hop(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let forwarded = shared
        .http
        .request(parts.method.clone(), format!("{}{path}", shared.upstream))
        .headers(headers)
        .body(body)
        .send()
        .await;
    // An upstream that cannot be reached looks the same from the client.
    let Ok(response) = forwarded else {
        return hang_up(&kill).await;
    };
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let Ok(body) = response.bytes().await else {
        return hang_up(&kill).await;
    };
    let answer = RawAnswer {
        status,
        headers,
        body: body.to_vec(),
    };
    match shared.faults.deliver(tags, &answer) {
        Delivery::Dropped => hang_up(&kill).await,
        Delivery::Half => {
            let half = Bytes::from(answer.body[..answer.body.len() / 2].to_vec());
            let stream = futures::stream::once(async move { Ok::<_, Infallible>(Frame::data(half)) })
                .chain(futures::stream::pending());
            let kill = kill.clone();
            tokio::spawn(async move {
                // Long enough for the half to be written out first.
                tokio::time::sleep(Duration::from_millis(20)).await;
                kill.notify_one();
            });
            Ok(respond(&answer, BodyExt::boxed(StreamBody::new(stream))))
        }
        Delivery::Delayed(d) => {
            tokio::time::sleep(d).await;
            Ok(respond(&answer, Full::new(Bytes::from(answer.body.clone())).boxed()))
        }
        Delivery::Whole => Ok(respond(&answer, Full::new(Bytes::from(answer.body.clone())).boxed())),
    }
}

/// The answer's status and headers (its full length announced) over `body`.
fn respond(answer: &RawAnswer, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = hyper::StatusCode::from_u16(answer.status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    let headers = response.headers_mut();
    for (name, value) in &answer.headers {
        if !hop_by_hop(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(answer.body.len()));
    response
}

/// Closes the connection without answering.
async fn hang_up(kill: &Notify) -> Result<Response<Body>, Infallible> {
    kill.notify_one();
    std::future::pending().await
}
