//! The second creation endpoint, `POST /api/v1/agents/{agent_id}/deployments`:
//! the same replay, mismatch, in-flight and failure semantics as agents,
//! its own scope (the endpoint names the agent), its own validation, and
//! reads nested under the agent.

use std::sync::Arc;
use std::time::Duration;

use idemproof_harness::deploy::FaultState;
use idemproof_models::{IdempotencyKey, LeaseToken, Scope};
use idemproof_service::clock::Clock;
use idemproof_service::domain::deployment::{DeployEnvelope, NewDeployment};
use idemproof_service::http::deployments::create_endpoint;
use idemproof_service::idempotency::InFlightMode;
use idemproof_service::store::{ClaimOutcome, Lease};
use idemproof_testkit::app::{Backend, Reply, TestApp, test_config};
use idemproof_testkit::cases;
use idemproof_testkit::runner::{Backends, Case};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Barrier;

pub fn cases() -> Vec<(&'static str, Backends, Case)> {
    cases![Backends::Both =>
        a_deployment_is_created_once_and_replayed,
        another_payload_is_422_and_writes_nothing,
        bad_input_and_unknown_agents_write_nothing,
        the_scope_names_the_agent_and_the_endpoint,
        concurrent_duplicates_create_one_deployment,
        in_flight_duplicates_wait_or_get_409_and_failures_are_not_pinned,
        reads_are_nested_under_the_agent_and_paginated,
    ]
}

/// An agent of `org` to deploy.
async fn agent(app: &TestApp, org: i64) -> i64 {
    let reply = app.create(org, 1, None, &json!({"name": "Bot"})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    reply.agent_id()
}

async fn a_deployment_is_created_once_and_replayed(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let agent = agent(&app, 5).await;
    let body = json!({"channel": "slack", "settings": {"workspace": "acme"}, "organization_id": 5});
    let first = app.deploy(5, 9, agent, Some("deploy-1"), &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    assert_eq!(first.body["message"], "Deployment created successfully");
    let deployment = first.deployment();
    for (field, want) in [
        ("organization_id", json!(5)),
        ("agent_id", json!(agent)),
        ("user_id", json!(9)),
        ("channel", json!("slack")),
        ("settings", json!({"workspace": "acme"})),
        ("idempotency_key", json!("deploy-1")),
    ] {
        assert_eq!(deployment[field], want, "field {field}");
    }
    let id = first.deployment_id();
    let location = format!("/api/v1/agents/{agent}/deployments/{id}?organization_id=5");
    assert_eq!(first.header("location"), Some(location.as_str()));
    // Key order and an explicit `null` do not change the request.
    let same: Value = serde_json::from_str(r#"{"settings": {"workspace": "acme"}, "channel": "slack"}"#).expect("json");
    for _ in 0..2 {
        let again = app.deploy(5, 9, agent, Some("deploy-1"), &same).await;
        assert_eq!(again.status, StatusCode::OK, "{again:?}");
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.body["message"], "Deployment already exists (idempotent response)");
        assert_eq!(again.deployment(), deployment, "a replay returns the original");
    }
    let shown = app
        .send(
            app.client
                .get(format!("{}{location}", app.base))
                .bearer_auth(app.token(9, &[5])),
        )
        .await;
    assert_eq!(shown.status, StatusCode::OK, "{shown:?}");
    assert_eq!(shown.deployment(), deployment);
    assert_eq!(app.all_deployments(5, agent).await, std::slice::from_ref(deployment));
    // Without a key every request deploys anew.
    for _ in 0..2 {
        let unkeyed = app.deploy(5, 9, agent, None, &body).await;
        assert_eq!(unkeyed.status, StatusCode::CREATED, "{unkeyed:?}");
        assert_eq!(unkeyed.deployment()["idempotency_key"], Value::Null);
    }
    assert_eq!(app.all_deployments(5, agent).await.len(), 3);
    if let Some(keys) = app.rows("idempotency_keys").await {
        assert_eq!(keys, 1, "only the keyed deployment stored a key");
    }
}

async fn another_payload_is_422_and_writes_nothing(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let agent = agent(&app, 1).await;
    let first = app.deploy(1, 1, agent, Some("k"), &json!({"channel": "web"})).await;
    assert_eq!(first.status, StatusCode::CREATED);
    for changed in [
        json!({"channel": "email"}),
        json!({"channel": "web", "settings": {"color": "red"}}),
    ] {
        let reply = app.deploy(1, 1, agent, Some("k"), &changed).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{reply:?}");
        assert_eq!(reply.code(), "idempotency_key_reused");
    }
    let stored = app.all_deployments(1, agent).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["channel"], "web");
}

async fn bad_input_and_unknown_agents_write_nothing(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let agent = agent(&app, 1).await;
    let elsewhere = self::agent(&app, 2).await;
    let token = app.token(1, &[1, 2]);
    let post = |path: String, body: Value| {
        app.client
            .post(format!("{}{path}", app.base))
            .bearer_auth(&token)
            .header("Idempotency-Key", "\"fresh-key\"")
            .json(&body)
    };
    let deployments = |agent: &str| format!("/api/v1/agents/{agent}/deployments?organization_id=1");
    let valid = json!({"channel": "web"});
    for (path, body, status, code, fields) in [
        (
            deployments(&agent.to_string()),
            json!({}),
            422,
            "validation_failed",
            vec!["channel"],
        ),
        (
            deployments(&agent.to_string()),
            json!({"channel": "fax", "settings": "dark"}),
            422,
            "validation_failed",
            vec!["channel", "settings"],
        ),
        (
            deployments(&agent.to_string()),
            json!([1]),
            422,
            "validation_failed",
            vec!["body"],
        ),
        (
            deployments(&agent.to_string()),
            json!({"channel": "web", "organization_id": 2}),
            400,
            "organization_mismatch",
            vec![],
        ),
        (
            deployments(&agent.to_string()),
            json!({"channel": "web", "idempotency_key": 3}),
            400,
            "invalid_idempotency_key",
            vec![],
        ),
        // The agent of another organisation, one that does not exist, and
        // an id that is not one: the agent is not in this organisation.
        (
            deployments(&elsewhere.to_string()),
            valid.clone(),
            404,
            "not_found",
            vec![],
        ),
        (
            deployments(&(agent + 1000).to_string()),
            valid.clone(),
            404,
            "not_found",
            vec![],
        ),
        (deployments("abc"), valid.clone(), 404, "not_found", vec![]),
        (
            format!("/api/v1/agents/{agent}/deployments"),
            valid.clone(),
            400,
            "invalid_organization_id",
            vec![],
        ),
    ] {
        let reply = app.send(post(path.clone(), body.clone())).await;
        assert_eq!(reply.status.as_u16(), status, "{path} {body}: {reply:?}");
        assert_eq!(reply.code(), code, "{path} {body}: {reply:?}");
        assert_eq!(reply.header("content-type"), Some("application/problem+json"));
        let got: Vec<&str> = reply.body["errors"]
            .as_array()
            .map(|e| e.iter().filter_map(|f| f["field"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(got, fields, "{path} {body}");
    }
    let outsider = app.deploy(3, 1, agent, Some("fresh-key"), &valid).await;
    assert_eq!(
        outsider.status,
        StatusCode::NOT_FOUND,
        "an agent of org 1 is not in org 3"
    );
    assert!(app.all_deployments(1, agent).await.is_empty(), "bad input deployed");
    assert!(app.all_deployments(2, elsewhere).await.is_empty(), "bad input deployed");
    if let (Some(keys), Some(deployments)) = (app.rows("idempotency_keys").await, app.rows("deployments").await) {
        assert_eq!((keys, deployments), (0, 0), "bad input stored a key or a deployment");
    }
    if let Some(memory) = &app.memory {
        assert!(memory.claims().is_empty(), "bad input stored a key");
    }
    // The key of the refused requests is still free.
    let ok = app.deploy(1, 1, agent, Some("fresh-key"), &valid).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{ok:?}");
}

async fn the_scope_names_the_agent_and_the_endpoint(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let (a, b) = (agent(&app, 1).await, agent(&app, 1).await);
    // One key string: an agent creation, a deployment of `a`, one of `b`,
    // and one of `a` by another user are four scopes.
    let created = app.create(1, 1, Some("shared"), &json!({"name": "Other"})).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let of_a = app.deploy(1, 1, a, Some("shared"), &json!({"channel": "web"})).await;
    let of_b = app.deploy(1, 1, b, Some("shared"), &json!({"channel": "api"})).await;
    let by_other = app.deploy(1, 2, a, Some("shared"), &json!({"channel": "teams"})).await;
    for reply in [&of_a, &of_b, &by_other] {
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    }
    assert_eq!(of_a.deployment()["agent_id"], a);
    assert_eq!(of_b.deployment()["agent_id"], b);
    // Each scope replays its own deployment.
    let again = app.deploy(1, 1, b, Some("shared"), &json!({"channel": "api"})).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.deployment_id(), of_b.deployment_id());
    assert_eq!(app.all_deployments(1, a).await.len(), 2);
    assert_eq!(app.all_deployments(1, b).await.len(), 1);
}

async fn concurrent_duplicates_create_one_deployment(backend: Backend) {
    let app = Arc::new(TestApp::spawn(&backend, |_| {}).await);
    let agent = agent(&app, 1).await;
    const CLIENTS: usize = 32;
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (app, barrier) = (app.clone(), barrier.clone());
            // Two keys, so that one-step statements, claims and waits of
            // different scopes interleave too.
            let key = format!("storm-{}", i % 2);
            tokio::spawn(async move {
                barrier.wait().await;
                let reply = app.deploy(1, 1, agent, Some(&key), &json!({"channel": "web"})).await;
                (key, reply)
            })
        })
        .collect();
    let mut replies: Vec<(String, Reply)> = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("request task"));
    }
    for key in ["storm-0", "storm-1"] {
        let of_key: Vec<&Reply> = replies.iter().filter(|(k, _)| k == key).map(|(_, r)| r).collect();
        let created = of_key.iter().filter(|r| r.status == StatusCode::CREATED).count();
        assert_eq!(created, 1, "{key}: exactly one creation");
        let id = of_key[0].deployment_id();
        for r in &of_key {
            assert!(r.status == StatusCode::CREATED || r.status == StatusCode::OK, "{r:?}");
            assert_eq!(r.deployment_id(), id, "{key}: every success names one deployment");
        }
    }
    assert_eq!(app.all_deployments(1, agent).await.len(), 2);
}

/// What a concurrent original deploying `agent` with `body` would hold.
async fn claim_like_an_original(app: &TestApp, agent: i64, key: &str, body: &Value) -> (Lease, NewDeployment) {
    let spec = DeployEnvelope::from_json(body).expect("valid body").spec;
    let scope = Scope {
        organization_id: 1,
        user_id: 1,
        endpoint: create_endpoint(agent),
        key: IdempotencyKey::parse(key).expect("key"),
    };
    let token = LeaseToken::random();
    let outcome = app
        .stores
        .keys
        .claim(&scope, spec.fingerprint(), token, app.clock.now())
        .await
        .expect("claim");
    assert!(matches!(outcome, ClaimOutcome::Acquired), "{outcome:?}");
    let new = NewDeployment {
        organization_id: 1,
        agent_id: agent,
        user_id: 1,
        idempotency_key: Some(key.into()),
        spec,
    };
    (Lease { scope, token }, new)
}

async fn in_flight_duplicates_wait_or_get_409_and_failures_are_not_pinned(backend: Backend) {
    let body = json!({"channel": "whatsapp"});
    // Reject mode: 409 at once, then the original's completion replays.
    let app = TestApp::spawn(&backend, |c| c.idempotency_in_flight = InFlightMode::Reject).await;
    let agent = self::agent(&app, 1).await;
    let (lease, new) = claim_like_an_original(&app, agent, "k", &body).await;
    let refused = app.deploy(1, 1, agent, Some("k"), &body).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{refused:?}");
    assert_eq!(refused.code(), "idempotency_key_conflict");
    let done = app
        .stores
        .deployments
        .insert_completing(&lease, &new, app.clock.now())
        .await
        .expect("complete");
    let replay = app.deploy(1, 1, agent, Some("k"), &body).await;
    assert_eq!(replay.status, StatusCode::OK);
    assert_eq!(replay.deployment_id(), done.id);

    // Wait mode: the duplicate waits for the original, then replays it.
    let app = Arc::new(TestApp::spawn(&backend, |c| c.idempotency_wait = Duration::from_secs(20)).await);
    let agent = self::agent(&app, 1).await;
    let (lease, new) = claim_like_an_original(&app, agent, "k", &body).await;
    let waiting = {
        let (app, body) = (app.clone(), body.clone());
        tokio::spawn(async move { app.deploy(1, 1, agent, Some("k"), &body).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the duplicate waits for the original");
    let done = app
        .stores
        .deployments
        .insert_completing(&lease, &new, app.clock.now())
        .await
        .expect("complete");
    let reply = waiting.await.expect("task");
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.deployment_id(), done.id);

    // A failed creation is released, not cached: the retry deploys.
    let config = test_config();
    let mut fixture = backend.fixture(&config).await;
    let faults = Arc::new(FaultState::new(1));
    fixture.stores = fixture.stores.layer(faults.clone());
    let app = TestApp::spawn_on(fixture, config).await;
    let agent = self::agent(&app, 1).await;
    faults.fail_next_one_step_creates(1);
    let failed = app.deploy(1, 1, agent, Some("k"), &body).await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE, "{failed:?}");
    assert!(app.all_deployments(1, agent).await.is_empty());
    let retry = app.deploy(1, 1, agent, Some("k"), &body).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{retry:?}");
}

async fn reads_are_nested_under_the_agent_and_paginated(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let (a, b) = (agent(&app, 1).await, agent(&app, 1).await);
    let other_org = agent(&app, 2).await;
    let mut created = Vec::new();
    for i in 0..5 {
        let channel = ["web", "slack", "teams", "email", "api"][i];
        created.push(
            app.deploy(1, 1, a, None, &json!({"channel": channel}))
                .await
                .deployment_id(),
        );
        app.deploy(1, 1, b, None, &json!({"channel": channel})).await;
    }
    let token = app.token(1, &[1, 2]);
    let get = |path: String| app.client.get(format!("{}{path}", app.base)).bearer_auth(&token);
    // Pages of 2 walk a's deployments once each, in creation order.
    let (mut seen, mut cursor, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let page = app
            .send(get(format!(
                "/api/v1/agents/{a}/deployments?organization_id=1&limit=2&cursor={cursor}"
            )))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        pages += 1;
        let items = page.body["data"]["deployments"].as_array().cloned().unwrap_or_default();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|d| d["id"].as_i64().unwrap_or_default()));
        match page.body["data"]["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created);
    // A deployment is shown under its own agent and organisation only.
    let id = created[0];
    let mine = app
        .send(get(format!("/api/v1/agents/{a}/deployments/{id}?organization_id=1")))
        .await;
    assert_eq!(mine.status, StatusCode::OK, "{mine:?}");
    assert_eq!(mine.deployment_id(), id);
    for path in [
        format!("/api/v1/agents/{b}/deployments/{id}?organization_id=1"),
        format!("/api/v1/agents/{a}/deployments/{id}?organization_id=2"),
        format!("/api/v1/agents/{a}/deployments/abc?organization_id=1"),
        format!("/api/v1/agents/{a}/deployments/{}?organization_id=1", id + 1000),
        format!("/api/v1/agents/{other_org}/deployments?organization_id=1"),
        format!("/api/v1/agents/{a}/deployments?organization_id=2"),
    ] {
        let reply = app.send(get(path.clone())).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}: {reply:?}");
        assert_eq!(reply.code(), "not_found");
    }
    for bad in ["&limit=0", "&limit=501", "&cursor=zz"] {
        let reply = app
            .send(get(format!("/api/v1/agents/{a}/deployments?organization_id=1{bad}")))
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}: {reply:?}");
    }
    assert!(app.all_deployments(2, other_org).await.is_empty());
}
