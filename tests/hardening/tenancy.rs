//! Per-organisation limits: one tenant over its rate (off by default) or
//! at its cap of requests in flight (on by default) gets 429 with
//! `Retry-After`, writes nothing, and leaves the other tenants' quota and
//! slots alone.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::raw::{connect, head, read_response, write};

use idemproof_testkit::app::{Backend, TestApp};
use idemproof_testkit::cases;
use idemproof_testkit::runner::{Backends, Case};

pub fn cases() -> Vec<(&'static str, Backends, Case)> {
    cases![Backends::Stores =>
        an_organisation_over_its_rate_gets_429_and_others_are_served,
        there_is_no_rate_limit_by_default,
        an_organisation_at_its_in_flight_cap_gets_429_and_others_are_served,
    ]
}

async fn an_organisation_over_its_rate_gets_429_and_others_are_served(backend: Backend) {
    // One request per minute after a burst of 3: the refill cannot
    // interfere with the test however slow the machine.
    let app = TestApp::spawn(&backend, |c| {
        c.rate_limit_per_org = 1;
        c.rate_limit_burst = 3;
    })
    .await;
    let body = json!({"name": "flood"});
    for _ in 0..3 {
        assert_eq!(app.create(1, 1, None, &body).await.status, StatusCode::CREATED);
    }
    let limited = app.create(1, 2, Some("over-quota"), &body).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{limited:?}");
    assert_eq!(limited.code(), "rate_limited");
    assert_eq!(limited.header("content-type"), Some("application/problem+json"));
    let retry: u64 = limited
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(retry >= 1);
    // Reads count against the same organisation.
    let list = app.send(
        app.client
            .get(format!("{}/api/v1/agents?organization_id=1", app.base))
            .bearer_auth(app.token(1, &[1])),
    );
    assert_eq!(list.await.status, StatusCode::TOO_MANY_REQUESTS);
    // So do deployments, the other creation endpoint.
    let deploy = app.deploy(1, 1, 1, None, &json!({"channel": "web"})).await;
    assert_eq!(deploy.status, StatusCode::TOO_MANY_REQUESTS, "{deploy:?}");
    // Another organisation is untouched.
    assert_eq!(app.create(2, 1, None, &body).await.status, StatusCode::CREATED);
    assert_eq!(app.all_agents(2).await.len(), 1);
    if let Some(keys) = app.rows("idempotency_keys").await {
        assert_eq!(keys, 0, "the limited request claimed its key");
    }
    let metrics = app.metrics_base.as_deref().expect("a metrics listener");
    let text = app
        .client
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    // Two creations were limited (the list is not a creation).
    let line = "idemproof_create_requests_total{outcome=\"rate_limited\"} 2";
    assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
}

async fn there_is_no_rate_limit_by_default(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    assert_eq!(app.config.rate_limit_per_org, 0);
    for _ in 0..50 {
        assert_eq!(
            app.create(1, 1, None, &json!({"name": "n"})).await.status,
            StatusCode::CREATED
        );
    }
}

/// How long the in-flight cap case waits for the server to see its held
/// requests, and to see them finish.
const PATIENCE: Duration = Duration::from_secs(30);

async fn an_organisation_at_its_in_flight_cap_gets_429_and_others_are_served(backend: Backend) {
    const CAP: usize = 2;
    let app = TestApp::spawn(&backend, |c| {
        c.max_in_flight_per_org = CAP;
        // Long enough that the held requests outlast the case.
        c.http_body_timeout = Duration::from_secs(60);
    })
    .await;
    // CAP creations of organisation 1 whose bodies are still on their way:
    // each holds a slot from the gate on.
    let token = format!("Bearer {}", app.token(1, &[1]));
    let body = br#"{"name": "held"}"#;
    let length = body.len().to_string();
    let mut held = Vec::new();
    for _ in 0..CAP {
        let mut s = connect(&app.base).await;
        let headers = [
            ("host", "127.0.0.1"),
            ("authorization", token.as_str()),
            ("content-type", "application/json"),
            ("content-length", length.as_str()),
        ];
        write(&mut s, &head("POST", "/api/v1/agents?organization_id=1", &headers)).await;
        write(&mut s, &body[..4]).await;
        held.push(s);
    }
    // The next request of organisation 1 is refused at once, once the held
    // ones have reached the gate (polls bounded in time: on a loaded
    // machine 200 polls, about 4 s, were once not enough).
    let mut refused = None;
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        let reply = app.create(1, 1, None, &json!({"name": "n"})).await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(reply);
            break;
        }
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = refused.expect("organisation 1 was never at its cap");
    assert_eq!(refused.code(), "too_many_in_flight");
    assert_eq!(
        refused.body["detail"],
        format!("organization 1 already has {CAP} requests in flight; retry when one finishes"),
        "the problem names the cap"
    );
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(
        app.metric(r#"idemproof_create_requests_total{outcome="concurrency_limited"}"#)
            .await,
        1.0
    );
    // Another organisation is served meanwhile.
    assert_eq!(
        app.create(2, 1, None, &json!({"name": "other"})).await.status,
        StatusCode::CREATED
    );
    // The held requests finish, and give their slots back.
    for s in &mut held {
        write(s, &body[4..]).await;
        let done = read_response(s).await.expect("the held creation's answer");
        assert_eq!(done.status, 201, "{done:?}");
    }
    let mut served = false;
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        let reply = app.create(1, 1, Some("over-the-cap"), &json!({"name": "n"})).await;
        if reply.status == StatusCode::CREATED || reply.status == StatusCode::OK {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "the slots were never given back");
}
