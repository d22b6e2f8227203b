//! Per-organisation rate limits: one tenant over its quota gets 429 with
//! `Retry-After`, writes nothing, and leaves the other tenants' quota
//! alone. Off by default.

use reqwest::StatusCode;
use serde_json::json;

use idemproof_testkit::app::{Backend, TestApp};
use idemproof_testkit::cases;
use idemproof_testkit::runner::{Backends, Case};

pub fn cases() -> Vec<(&'static str, Backends, Case)> {
    cases![Backends::Stores =>
        an_organisation_over_its_rate_gets_429_and_others_are_served,
        there_is_no_rate_limit_by_default,
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
