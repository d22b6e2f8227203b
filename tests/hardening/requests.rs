//! Requests: Host rules, head and body limits answered up front with
//! problem bodies, the body never read before the token is checked, a
//! stalled body or a client that stops reading cut off in time.

use std::time::Duration;

use axum::routing::get;
use idemproof_service::http::server::{self, ServeSettings};
use reqwest::StatusCode;
use tokio::io::AsyncReadExt;

use crate::raw::{IO_TIMEOUT, RawResponse, closed_within, connect, head, read_response, write};
use idemproof_testkit::app::{Backend, TestApp};
use idemproof_testkit::cases;
use idemproof_testkit::runner::{Backends, Case};

pub fn cases() -> Vec<(&'static str, Backends, Case)> {
    cases![Backends::Stores =>
        http11_needs_exactly_one_valid_host,
        oversized_targets_and_headers_get_problem_bodies,
        unparseable_heads_get_hypers_bare_400,
        an_anonymous_upload_is_refused_before_its_body_is_read,
        a_refused_upload_still_being_sent_gets_its_answer,
        expect_100_continue_is_answered_only_after_the_token,
        a_declared_length_over_the_limit_is_refused_before_the_body,
        a_chunked_body_over_the_limit_is_413,
        a_stalled_body_gets_408,
        a_client_that_stops_reading_is_cut_off,
        every_api_route_is_behind_the_gate,
    ]
}

const HOST: (&str, &str) = ("host", "127.0.0.1");

async fn exchange(app: &TestApp, request: &[u8]) -> RawResponse {
    let mut s = connect(&app.base).await;
    write(&mut s, request).await;
    read_response(&mut s).await.expect("a response")
}

async fn http11_needs_exactly_one_valid_host(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    exchange(&app, b"GET /healthz HTTP/1.1\r\n\r\n")
        .await
        .assert_problem(400, "invalid_host");
    exchange(
        &app,
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n",
    )
    .await
    .assert_problem(400, "invalid_host");
    exchange(&app, b"GET /healthz HTTP/1.1\r\nHost: a@b\r\n\r\n")
        .await
        .assert_problem(400, "invalid_host");
    // The API is refused the same way, before authentication.
    exchange(
        &app,
        b"POST /api/v1/agents?organization_id=1 HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    )
    .await
    .assert_problem(400, "invalid_host");
    assert_eq!(exchange(&app, b"GET /healthz HTTP/1.0\r\n\r\n").await.status, 200);
    assert_eq!(exchange(&app, &head("GET", "/healthz", &[HOST])).await.status, 200);
}

async fn oversized_targets_and_headers_get_problem_bodies(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let c = &app.config;
    let long_target = format!("/healthz?{}", "q".repeat(c.max_uri_bytes));
    exchange(&app, &head("GET", &long_target, &[HOST]))
        .await
        .assert_problem(414, "uri_too_long");
    let big = "v".repeat(c.max_header_bytes);
    exchange(&app, &head("GET", "/healthz", &[HOST, ("x-big", &big)]))
        .await
        .assert_problem(431, "request_header_fields_too_large");
    let names: Vec<String> = (0..=c.max_headers).map(|i| format!("x-h{i}")).collect();
    let mut many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    many.push(HOST);
    exchange(&app, &head("GET", "/healthz", &many))
        .await
        .assert_problem(431, "request_header_fields_too_large");
    // Past hyper's own backstop (twice the limits) the answer is hyper's:
    // the status without a body (docs/operations.md says why).
    let huge = "v".repeat(2 * (c.max_header_bytes + c.max_uri_bytes));
    let bare = exchange(&app, &head("GET", "/healthz", &[HOST, ("x-huge", &huge)])).await;
    assert_eq!(bare.status, 431);
    assert!(bare.body.is_empty());
}

async fn unparseable_heads_get_hypers_bare_400(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    for garbage in [&b"GARBAGE\r\n\r\n"[..], b"GET / HTTP/1.1\r\nbad header\r\n\r\n"] {
        let mut s = connect(&app.base).await;
        write(&mut s, garbage).await;
        let reply = read_response(&mut s).await.expect("hyper answers");
        assert_eq!(reply.status, 400);
        assert!(reply.body.is_empty(), "hyper's parse errors carry no body");
        assert!(closed_within(&mut s, IO_TIMEOUT).await);
    }
    // The service is unaffected.
    let ok = app.send(app.client.get(format!("{}/healthz", app.base))).await;
    assert_eq!(ok.status, StatusCode::OK);
}

fn post_head(token: Option<&str>, extra: &[(&str, &str)]) -> Vec<u8> {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![HOST, ("content-type", "application/json")];
    if let Some(b) = &bearer {
        headers.push(("authorization", b));
    }
    headers.extend_from_slice(extra);
    head("POST", "/api/v1/agents?organization_id=1", &headers)
}

async fn an_anonymous_upload_is_refused_before_its_body_is_read(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    // A 1 MiB body announced and not a byte of it sent: the 401 comes
    // anyway, so the service never waited for (nor buffered) the body.
    let reply = exchange(&app, &post_head(None, &[("content-length", "1048576")])).await;
    reply.assert_problem(401, "unauthorized");
    let garbage = exchange(&app, &post_head(Some("not-a-token"), &[("content-length", "1048576")])).await;
    garbage.assert_problem(401, "unauthorized");
    assert!(app.all_agents(1).await.is_empty());
}

async fn a_refused_upload_still_being_sent_gets_its_answer(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    const BODY: usize = 4 << 20;
    for token in [None, Some(app.token(1, &[2]))] {
        let s = connect(&app.base).await;
        let (mut reader, mut writer) = s.into_split();
        let length = BODY.to_string();
        let request = post_head(token.as_deref(), &[("content-length", &length)]);
        // The client sends its whole body, as one without
        // `Expect: 100-continue` does, while the server has answered.
        let sending = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = writer.write_all(&request).await;
            let chunk = vec![b' '; 65_536];
            for _ in 0..BODY / chunk.len() {
                if tokio::time::timeout(IO_TIMEOUT, writer.write_all(&chunk))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        // Read only once the server has long answered. (On Linux loopback
        // an answer already delivered survives a reset, so this guards
        // the answer itself; the lingering close that keeps the reset
        // from overtaking an answer still in flight matters on real
        // networks and is not observable here.)
        tokio::time::sleep(Duration::from_millis(500)).await;
        let reply = read_response(&mut reader)
            .await
            .expect("the answer arrives, not a reset");
        let want = if token.is_some() {
            (403, "forbidden")
        } else {
            (401, "unauthorized")
        };
        reply.assert_problem(want.0, want.1);
        sending.abort();
    }
}

async fn expect_100_continue_is_answered_only_after_the_token(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let body = br#"{"name": "after continue"}"#;
    let length = body.len().to_string();
    let expect = [("content-length", length.as_str()), ("expect", "100-continue")];
    // Anonymous: the first (and final) answer is 401, never 100.
    exchange(&app, &post_head(None, &expect))
        .await
        .assert_problem(401, "unauthorized");
    // Authenticated: 100 Continue, then the body, then 201.
    let token = app.token(1, &[1]);
    let mut s = connect(&app.base).await;
    write(&mut s, &post_head(Some(&token), &expect)).await;
    let interim = read_response(&mut s).await.expect("100 Continue");
    assert_eq!(interim.status, 100);
    write(&mut s, body).await;
    let created = read_response(&mut s).await.expect("201");
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(app.all_agents(1).await.len(), 1);
}

async fn a_declared_length_over_the_limit_is_refused_before_the_body(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let token = app.token(1, &[1]);
    let over = (app.config.max_body_bytes + 1).to_string();
    let mut s = connect(&app.base).await;
    write(&mut s, &post_head(Some(&token), &[("content-length", &over)])).await;
    let reply = read_response(&mut s).await.expect("413 without the body");
    reply.assert_problem(413, "payload_too_large");
    assert_eq!(reply.header("connection"), Some("close"));
    assert!(closed_within(&mut s, IO_TIMEOUT).await);
}

async fn a_chunked_body_over_the_limit_is_413(backend: Backend) {
    let app = TestApp::spawn(&backend, |c| c.max_body_bytes = 1024).await;
    let token = app.token(1, &[1]);
    let mut s = connect(&app.base).await;
    write(&mut s, &post_head(Some(&token), &[("transfer-encoding", "chunked")])).await;
    let chunk = format!("400\r\n{}\r\n", "x".repeat(1024));
    write(&mut s, chunk.as_bytes()).await;
    write(&mut s, chunk.as_bytes()).await;
    read_response(&mut s)
        .await
        .expect("413")
        .assert_problem(413, "payload_too_large");
    assert!(app.all_agents(1).await.is_empty());
}

async fn a_stalled_body_gets_408(backend: Backend) {
    let app = TestApp::spawn(&backend, crate::fast).await;
    let token = app.token(1, &[1]);
    let mut s = connect(&app.base).await;
    write(&mut s, &post_head(Some(&token), &[("content-length", "100")])).await;
    write(&mut s, b"{\"name\": \"never fin").await;
    let reply = read_response(&mut s).await.expect("408");
    reply.assert_problem(408, "request_timeout");
    assert_eq!(reply.header("connection"), Some("close"));
    assert!(closed_within(&mut s, IO_TIMEOUT).await);
    assert!(app.all_agents(1).await.is_empty());
}

/// Store-independent (the connection loop itself, over a route that
/// answers 32 MiB): the same check runs under both labels.
async fn a_client_that_stops_reading_is_cut_off(_backend: Backend) {
    const BIG: usize = 32 << 20;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let router = axum::Router::new().route("/big", get(|| async { vec![b'x'; BIG] }));
    let settings = ServeSettings {
        header_timeout: Duration::from_secs(5),
        write_timeout: Duration::from_millis(500),
        max_connections: 8,
        backstop_head_bytes: 16_384,
        backstop_headers: 64,
        drain: Duration::from_secs(1),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server::serve(listener, router, settings, async {
        let _ = stopped.await;
    }));
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small receive buffer");
    let mut s = tokio::time::timeout(IO_TIMEOUT, socket.connect(address))
        .await
        .expect("connect in time")
        .expect("connect");
    write(&mut s, &head("GET", "/big", &[HOST])).await;
    // Read nothing for several write timeouts: the server gives up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut received = 0usize;
    let mut buf = vec![0u8; 65_536];
    let ended = tokio::time::timeout(IO_TIMEOUT, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received += n,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the connection stayed open");
    assert!(
        received < BIG,
        "the whole response was sent to a client that did not read"
    );
    let _ = stop.send(());
    let _ = tokio::time::timeout(IO_TIMEOUT, serving).await;
}

/// Every route under `/api/v1`, the deployments' too, is behind the
/// gate: the token, then the organisation, then (for a creation) the
/// content type and the declared length, all answered before a byte of
/// the body is read or the handler (which looks the agent up) runs.
async fn every_api_route_is_behind_the_gate(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let token = format!("Bearer {}", app.token(1, &[1]));
    let routes = [
        ("POST", "/api/v1/agents"),
        ("GET", "/api/v1/agents"),
        ("GET", "/api/v1/agents/1"),
        ("POST", "/api/v1/agents/1/deployments"),
        ("GET", "/api/v1/agents/1/deployments"),
        ("GET", "/api/v1/agents/1/deployments/1"),
    ];
    let over = (app.config.max_body_bytes + 1).to_string();
    for (method, path) in routes {
        let in_org = format!("{path}?organization_id=1");
        // A body announced and never sent: each answer comes without it.
        let body = [("content-type", "application/json"), ("content-length", "1048576")];
        let anonymous = exchange(&app, &head(method, &in_org, &[&[HOST][..], &body].concat())).await;
        anonymous.assert_problem(401, "unauthorized");
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut headers = vec![HOST, ("authorization", token.as_str())];
            headers.extend_from_slice(extra);
            headers
        };
        exchange(&app, &head(method, path, &with(&[])))
            .await
            .assert_problem(400, "invalid_organization_id");
        let elsewhere = format!("{path}?organization_id=2");
        exchange(&app, &head(method, &elsewhere, &with(&body)))
            .await
            .assert_problem(403, "forbidden");
        if method == "POST" {
            let text = [("content-type", "text/plain"), ("content-length", "1048576")];
            exchange(&app, &head(method, &in_org, &with(&text)))
                .await
                .assert_problem(415, "unsupported_media_type");
            let mut s = connect(&app.base).await;
            let mut headers = with(&[("content-type", "application/json")]);
            headers.push(("content-length", over.as_str()));
            write(&mut s, &head(method, &in_org, &headers)).await;
            read_response(&mut s)
                .await
                .expect("413 without the body")
                .assert_problem(413, "payload_too_large");
        }
    }
    assert!(app.all_agents(1).await.is_empty());
}
