//! Authentication fails closed: no start without a secret (unless asked
//! for by name), `nbf` honoured, only canonical positive user ids, one
//! `Authorization` header, and `/metrics` only on its own listener.

use std::sync::Arc;

use idemproof_service::auth::{self, Claims};
use idemproof_service::clock::ManualClock;
use idemproof_service::store::memory::MemoryStore;
use idemproof_service::{Application, Config};
use reqwest::StatusCode;
use serde_json::json;

use crate::raw::{connect, head, read_response, write};
use idemproof_testkit::app::{Backend, SECRET, TestApp};
use idemproof_testkit::cases;
use idemproof_testkit::runner::{Backends, Case};

pub fn cases() -> Vec<(&'static str, Backends, Case)> {
    cases![Backends::Stores =>
        no_secret_no_start_unless_the_dev_flag_is_given,
        a_token_before_its_nbf_is_refused,
        non_canonical_user_ids_are_refused,
        two_authorization_headers_are_refused,
        metrics_are_served_only_on_their_own_listener,
    ]
}

async fn no_secret_no_start_unless_the_dev_flag_is_given(backend: Backend) {
    let config = Config {
        bind: "127.0.0.1:0".parse().expect("address"),
        ..Config::default()
    };
    let stores = backend.fixture(&config).await.stores;
    let refused = Application::build_with(config.clone(), stores.clone(), Arc::new(ManualClock::new())).await;
    let why = refused.err().expect("no AUTH_SECRET: no start").to_string();
    assert!(why.contains("AUTH_SECRET"), "{why}");
    let dev = Config {
        insecure_dev_secret: true,
        ..config
    };
    let app = Application::build_with(dev, stores, Arc::new(ManualClock::new())).await;
    assert!(app.is_ok(), "the explicit development flag starts it");
}

fn claims(sub: &str, nbf: Option<i64>) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        sub: sub.to_owned(),
        orgs: vec![1],
        exp: now + 600,
        nbf,
    }
}

async fn create_with(app: &TestApp, token: &str) -> idemproof_testkit::app::Reply {
    app.send(
        app.client
            .post(format!("{}/api/v1/agents?organization_id=1", app.base))
            .bearer_auth(token)
            .json(&json!({"name": "x"})),
    )
    .await
}

async fn a_token_before_its_nbf_is_refused(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let now = chrono::Utc::now().timestamp();
    let early = auth::encode(SECRET, &claims("1", Some(now + 600))).expect("encode");
    let reply = create_with(&app, &early).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{reply:?}");
    assert_eq!(reply.code(), "unauthorized");
    let ripe = auth::encode(SECRET, &claims("1", Some(now - 600))).expect("encode");
    assert_eq!(create_with(&app, &ripe).await.status, StatusCode::CREATED);
    assert_eq!(app.all_agents(1).await.len(), 1);
}

async fn non_canonical_user_ids_are_refused(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    for sub in ["-5", "0", "042", "+42", " 42", "42.0", "9223372036854775808"] {
        let token = auth::encode(SECRET, &claims(sub, None)).expect("encode");
        let reply = create_with(&app, &token).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "sub {sub:?}: {reply:?}");
    }
    assert!(app.all_agents(1).await.is_empty());
    let token = auth::encode(SECRET, &claims("42", None)).expect("encode");
    let created = create_with(&app, &token).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.agent()["user_id"], 42);
}

async fn two_authorization_headers_are_refused(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let good = format!("Bearer {}", app.token(1, &[1]));
    for second in [good.as_str(), "Bearer garbage", "Basic dXNlcjpwYXNz"] {
        let mut s = connect(&app.base).await;
        let request = head(
            "GET",
            "/api/v1/agents?organization_id=1",
            &[
                ("host", "127.0.0.1"),
                ("authorization", &good),
                ("authorization", second),
            ],
        );
        write(&mut s, &request).await;
        let reply = read_response(&mut s).await.expect("a response");
        reply.assert_problem(401, "unauthorized");
        assert!(reply.json()["detail"].as_str().unwrap_or("").contains("exactly one"));
    }
}

async fn metrics_are_served_only_on_their_own_listener(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let on_api = app.send(app.client.get(format!("{}/metrics", app.base))).await;
    assert_eq!(
        on_api.status,
        StatusCode::NOT_FOUND,
        "the API listener serves no metrics"
    );
    let metrics = app
        .metrics_base
        .as_deref()
        .expect("the test config has a metrics listener");
    let scraped = app
        .client
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(scraped.status(), StatusCode::OK);
    assert!(
        scraped
            .text()
            .await
            .expect("text")
            .contains("idemproof_create_requests_total")
    );
    let elsewhere = app
        .client
        .get(format!("{metrics}/api/v1/agents"))
        .send()
        .await
        .expect("get");
    assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND, "only /metrics there");
    // Off by default.
    let config = Config {
        bind: "127.0.0.1:0".parse().expect("address"),
        auth_secret: Some(SECRET.into()),
        ..Config::default()
    };
    let stores = Arc::new(MemoryStore::new(config.terms())).stores();
    let default = Application::build_with(config, stores, Arc::new(ManualClock::new()))
        .await
        .expect("build");
    assert_eq!(default.metrics_address(), None);
}
