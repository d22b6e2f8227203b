//! Connections: slowloris and idle clients are cut off and cannot lock
//! others out, the connection and in-flight caps answer 503, shutdown
//! drains within its deadline even with a slow client connected.

use std::sync::Arc;
use std::time::Duration;

use idemproof_service::Application;
use idemproof_service::clock::ManualClock;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::raw::{self, IO_TIMEOUT, closed_within, connect, head, read_response, write};
use idemproof_testkit::app::{Backend, TestApp, test_config};
use idemproof_testkit::cases;
use idemproof_testkit::runner::{Backends, Case};

pub fn cases() -> Vec<(&'static str, Backends, Case)> {
    cases![Backends::Stores =>
        slowloris_and_idle_connections_are_closed_while_others_are_served,
        an_idle_keep_alive_connection_is_closed,
        a_thousand_idle_connections_do_not_lock_a_client_out,
        at_the_cap_a_newcomer_replaces_the_longest_idle_connection,
        with_every_connection_busy_newcomers_get_503_then_are_dropped,
        requests_over_the_in_flight_cap_get_503_and_probes_still_answer,
        shutdown_drains_within_its_deadline_despite_a_slow_client,
    ]
}

const HOST: (&str, &str) = ("host", "127.0.0.1");

async fn slowloris_and_idle_connections_are_closed_while_others_are_served(backend: Backend) {
    let app = TestApp::spawn(&backend, crate::fast).await;
    let mut idle = Vec::new();
    let mut slow = Vec::new();
    for _ in 0..20 {
        idle.push(connect(&app.base).await);
        let mut s = connect(&app.base).await;
        write(&mut s, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n").await;
        slow.push(s);
    }
    // Dripping header lines never completes a head: the header timeout
    // counts from the connection's start, not from the last byte.
    for _ in 0..3 {
        for s in &mut slow {
            // The server may already have closed it: ignore write errors.
            let _ = tokio::time::timeout(IO_TIMEOUT, s.write_all(b"X-Drip: 1\r\n")).await;
        }
        let served = app.send(app.client.get(format!("{}/healthz", app.base))).await;
        assert_eq!(served.status, StatusCode::OK, "a normal client is served meanwhile");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for s in idle.iter_mut().chain(slow.iter_mut()) {
        assert!(closed_within(s, IO_TIMEOUT).await, "a hostile connection was left open");
    }
}

async fn an_idle_keep_alive_connection_is_closed(backend: Backend) {
    let app = TestApp::spawn(&backend, crate::fast).await;
    let mut s = connect(&app.base).await;
    write(&mut s, &head("GET", "/healthz", &[HOST])).await;
    let reply = read_response(&mut s).await.expect("a response");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("connection"), None, "kept alive at first");
    assert!(
        closed_within(&mut s, IO_TIMEOUT).await,
        "the idle keep-alive connection stayed open"
    );
}

async fn a_thousand_idle_connections_do_not_lock_a_client_out(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let mut hostile = Vec::new();
    for _ in 0..1000 {
        hostile.push(connect(&app.base).await);
    }
    for _ in 0..20 {
        let served = app.create(1, 1, None, &json!({"name": "still served"})).await;
        assert_eq!(served.status, StatusCode::CREATED, "{served:?}");
    }
    drop(hostile);
}

async fn at_the_cap_a_newcomer_replaces_the_longest_idle_connection(backend: Backend) {
    let app = TestApp::spawn(&backend, |c| {
        crate::fast(c);
        // Long enough that only eviction, not the timeout, closes them.
        c.http_header_timeout = Duration::from_secs(30);
        c.max_connections = 2;
    })
    .await;
    let mut oldest = connect(&app.base).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut newer = connect(&app.base).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut newcomer = connect(&app.base).await;
    write(&mut newcomer, &head("GET", "/healthz", &[HOST])).await;
    let served = read_response(&mut newcomer).await.expect("served");
    assert_eq!(served.status, 200, "{served:?}");
    assert!(
        closed_within(&mut oldest, IO_TIMEOUT).await,
        "the longest idle one made room"
    );
    // The other idle one is still open: it answers a request.
    write(&mut newer, &head("GET", "/healthz", &[HOST])).await;
    assert_eq!(read_response(&mut newer).await.expect("still open").status, 200);
}

/// An authenticated creation whose body never completes: the connection
/// is busy (in the handler) until the body timeout.
async fn busy_connection(app: &TestApp) -> tokio::net::TcpStream {
    let token = format!("Bearer {}", app.token(1, &[1]));
    let mut s = connect(&app.base).await;
    let request = head(
        "POST",
        "/api/v1/agents?organization_id=1",
        &[
            HOST,
            ("authorization", &token),
            ("content-type", "application/json"),
            ("content-length", "100"),
        ],
    );
    write(&mut s, &request).await;
    write(&mut s, b"{\"name\":").await;
    s
}

async fn with_every_connection_busy_newcomers_get_503_then_are_dropped(backend: Backend) {
    let app = TestApp::spawn(&backend, |c| {
        crate::fast(c);
        c.http_header_timeout = Duration::from_secs(5);
        c.http_body_timeout = Duration::from_secs(5);
        c.max_connections = 2;
    })
    .await;
    let mut busy = [busy_connection(&app).await, busy_connection(&app).await];
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The next connections are answered 503 (a request is read first).
    let mut over = connect(&app.base).await;
    write(&mut over, &head("GET", "/healthz", &[HOST])).await;
    let refused = read_response(&mut over).await.expect("a 503");
    refused.assert_problem(503, "overloaded");
    assert!(refused.header("retry-after").is_some());
    assert!(
        closed_within(&mut over, IO_TIMEOUT).await,
        "an overflow connection is not kept"
    );
    // Past the overflow allowance, connections are closed unanswered.
    let mut overflow = Vec::new();
    for _ in 0..idemproof_service::http::server::OVERFLOW_CONNECTIONS {
        overflow.push(connect(&app.base).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut beyond = connect(&app.base).await;
    assert!(
        closed_within(&mut beyond, IO_TIMEOUT).await,
        "beyond the overflow, connections are dropped"
    );
    // Once the busy ones time out (408), clients are served again.
    for s in &mut busy {
        read_response(s)
            .await
            .expect("a 408")
            .assert_problem(408, "request_timeout");
    }
    for s in &mut overflow {
        assert!(closed_within(s, IO_TIMEOUT).await);
    }
    let served = app.send(app.client.get(format!("{}/healthz", app.base))).await;
    assert_eq!(served.status, StatusCode::OK);
}

async fn requests_over_the_in_flight_cap_get_503_and_probes_still_answer(backend: Backend) {
    let app = TestApp::spawn(&backend, |c| {
        crate::fast(c);
        c.http_body_timeout = Duration::from_secs(5);
        c.max_in_flight = 2;
    })
    .await;
    let token = format!("Bearer {}", app.token(1, &[1]));
    // Two creations in flight, their bodies stalled half-way.
    let mut stalled = [busy_connection(&app).await, busy_connection(&app).await];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = connect(&app.base).await;
    write(
        &mut third,
        &head(
            "GET",
            "/api/v1/agents?organization_id=1",
            &[HOST, ("authorization", &token)],
        ),
    )
    .await;
    let shed = read_response(&mut third).await.expect("a 503");
    shed.assert_problem(503, "overloaded");
    assert_eq!(shed.header("retry-after"), Some("1"));
    let probe = app.send(app.client.get(format!("{}/healthz", app.base))).await;
    assert_eq!(probe.status, StatusCode::OK, "probes are outside the cap");
    // The stalled bodies time out (408), which frees the slots.
    for s in &mut stalled {
        read_response(s)
            .await
            .expect("a 408")
            .assert_problem(408, "request_timeout");
    }
    let list = app.send(
        app.client
            .get(format!("{}/api/v1/agents?organization_id=1", app.base))
            .bearer_auth(app.token(1, &[1])),
    );
    assert_eq!(list.await.status, StatusCode::OK);
}

async fn shutdown_drains_within_its_deadline_despite_a_slow_client(backend: Backend) {
    let mut config = test_config();
    crate::fast(&mut config);
    // Longer than the drain deadline: the slow client would outlast it.
    config.http_header_timeout = Duration::from_secs(60);
    config.http_body_timeout = Duration::from_secs(60);
    let fixture = backend.fixture(&config).await;
    let running = Application::build_with(config.clone(), fixture.stores, Arc::new(ManualClock::new()))
        .await
        .expect("build")
        .spawn();
    let base = running.url.clone();
    // One slowloris head, and one request whose body never finishes.
    let mut slow_head = connect(&base).await;
    write(&mut slow_head, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n").await;
    let token = format!(
        "Bearer {}",
        idemproof_service::auth::mint(idemproof_testkit::app::SECRET, 1, &[1], 60).expect("mint")
    );
    let mut slow_body = connect(&base).await;
    write(
        &mut slow_body,
        &head(
            "POST",
            "/api/v1/agents?organization_id=1",
            &[
                HOST,
                ("authorization", &token),
                ("content-type", "application/json"),
                ("content-length", "100"),
            ],
        ),
    )
    .await;
    write(&mut slow_body, b"{").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Bounded by the drain deadline, not by the clients: generous bound,
    // far below the 60 s the clients would otherwise hold on.
    let finished = tokio::time::timeout(config.shutdown_drain_timeout * 5, running.stop()).await;
    assert!(
        matches!(finished, Ok(Ok(()))),
        "run_until_stopped did not return after its drain deadline"
    );
    assert!(closed_within(&mut slow_head, IO_TIMEOUT).await);
    assert!(closed_within(&mut slow_body, IO_TIMEOUT).await);
    assert!(
        tokio::net::TcpStream::connect(raw::addr(&base)).await.is_err(),
        "the listener is closed after shutdown"
    );
}
