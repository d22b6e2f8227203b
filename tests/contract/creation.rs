//! Creation with and without keys: 201, replay, mismatch, key sources.

use reqwest::StatusCode;
use serde_json::json;

use idemproof_testkit::app::{Backend, TestApp};
use idemproof_testkit::cases;
use idemproof_testkit::runner::{Backends, Case};

pub fn cases() -> Vec<(&'static str, Backends, Case)> {
    cases![Backends::Both =>
        first_creation_is_201_with_envelope_and_location,
        replay_is_200_with_the_original_agent_unchanged,
        same_payload_is_semantic,
        another_payload_is_422_and_writes_nothing,
        replay_mode_returns_the_original_on_mismatch,
        requests_without_a_key_always_create,
        key_may_come_from_header_or_body,
        same_key_in_two_orgs_or_for_two_users_creates_separately,
        same_key_on_another_endpoint_scope_is_independent,
    ]
}

async fn first_creation_is_201_with_envelope_and_location(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let body = json!({
        "name": "Support bot", "description": "answers", "system_prompt": "be kind",
        "config": {"model": "x"}, "widget_config": {"color": "blue"}, "agent_type": "voice",
        "industry": "retail", "auto_optimize": true, "organization_id": 5
    });
    let reply = app.create(5, 9, Some("key-1"), &body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    assert_eq!(reply.body["status"], "success");
    assert_eq!(reply.body["message"], "Agent created successfully");
    let agent = reply.agent();
    for (field, want) in [
        ("organization_id", json!(5)),
        ("user_id", json!(9)),
        ("name", json!("Support bot")),
        ("description", json!("answers")),
        ("system_prompt", json!("be kind")),
        ("config", json!({"model": "x"})),
        ("widget_config", json!({"color": "blue"})),
        ("agent_type", json!("voice")),
        ("industry", json!("retail")),
        ("auto_optimize", json!(true)),
        ("idempotency_key", json!("key-1")),
    ] {
        assert_eq!(agent[field], want, "field {field}");
    }
    assert!(agent["created_at"].is_string());
    let id = reply.agent_id();
    assert_eq!(
        reply.header("location"),
        Some(format!("/api/v1/agents/{id}?organization_id=5").as_str())
    );
    assert_eq!(reply.header("idempotent-replayed"), None);
    let shown = app
        .send(
            app.client
                .get(format!("{}{}", app.base, reply.header("location").unwrap_or_default()))
                .bearer_auth(app.token(9, &[5])),
        )
        .await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.agent(), agent);
}

async fn replay_is_200_with_the_original_agent_unchanged(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let body = json!({"name": "Bot", "config": {"a": 1}});
    let first = app.create(1, 1, Some("k"), &body).await;
    assert_eq!(first.status, StatusCode::CREATED);
    for _ in 0..3 {
        let again = app.create(1, 1, Some("k"), &body).await;
        assert_eq!(again.status, StatusCode::OK, "{again:?}");
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.body["message"], "Agent already exists (idempotent response)");
        assert_eq!(
            again.agent(),
            first.agent(),
            "a replay returns the original, byte for byte"
        );
    }
    assert_eq!(app.all_agents(1).await.len(), 1);
}

async fn same_payload_is_semantic(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let first = app
        .create(
            1,
            1,
            Some("k"),
            &json!({"name": "Bot", "config": {"a": 1, "b": [1, 2]}}),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    // Reordered keys, explicit defaults and nulls are the same request.
    let same: serde_json::Value = serde_json::from_str(
        r#"{"auto_optimize": false, "config": {"b": [1, 2], "a": 1}, "widget_config": null,
            "description": null, "agent_type": "assistant", "name": "Bot", "organization_id": 1,
            "idempotency_key": "k", "unknown_field": true}"#,
    )
    .expect("json");
    let again = app.create(1, 1, Some("k"), &same).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(again.agent_id(), first.agent_id());
}

async fn another_payload_is_422_and_writes_nothing(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let first = app.create(1, 1, Some("k"), &json!({"name": "Bot"})).await;
    assert_eq!(first.status, StatusCode::CREATED);
    for changed in [
        json!({"name": "Bot 2"}),
        json!({"name": "Bot", "auto_optimize": true}),
        json!({"name": "Bot", "config": {"a": 1}}),
    ] {
        let reply = app.create(1, 1, Some("k"), &changed).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{reply:?}");
        assert_eq!(reply.code(), "idempotency_key_reused");
        assert_eq!(reply.header("content-type"), Some("application/problem+json"));
    }
    let agents = app.all_agents(1).await;
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0]["name"], "Bot");
    // The original still replays.
    assert_eq!(
        app.create(1, 1, Some("k"), &json!({"name": "Bot"})).await.status,
        StatusCode::OK
    );
}

async fn replay_mode_returns_the_original_on_mismatch(backend: Backend) {
    use idemproof_service::idempotency::MismatchMode;
    let app = TestApp::spawn(&backend, |c| c.idempotency_mismatch = MismatchMode::Replay).await;
    let first = app.create(1, 1, Some("k"), &json!({"name": "Bot"})).await;
    let edited = app.create(1, 1, Some("k"), &json!({"name": "Renamed"})).await;
    assert_eq!(edited.status, StatusCode::OK, "{edited:?}");
    assert_eq!(edited.agent(), first.agent());
    assert_eq!(app.all_agents(1).await.len(), 1);
}

async fn requests_without_a_key_always_create(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let body = json!({"name": "Bot"});
    let mut ids = Vec::new();
    for _ in 0..3 {
        let reply = app.create(1, 1, None, &body).await;
        assert_eq!(reply.status, StatusCode::CREATED);
        assert_eq!(reply.agent()["idempotency_key"], serde_json::Value::Null);
        ids.push(reply.agent_id());
    }
    ids.dedup();
    assert_eq!(ids.len(), 3);
    assert_eq!(app.all_agents(1).await.len(), 3);
    if let Some(keys) = app.rows("idempotency_keys").await {
        assert_eq!(keys, 0, "unkeyed creations store no key");
    }
}

async fn key_may_come_from_header_or_body(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let url = format!("{}/api/v1/agents?organization_id=1", app.base);
    let token = app.token(1, &[1]);
    // Body field first, then the same key as a bare header token and as an
    // sf-string: all one scope.
    let by_body = app
        .send(
            app.client
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({"name": "B", "idempotency_key": "k-1"})),
        )
        .await;
    assert_eq!(by_body.status, StatusCode::CREATED);
    for header in ["k-1", "\"k-1\""] {
        let reply = app
            .send(
                app.client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("Idempotency-Key", header)
                    .json(&json!({"name": "B"})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{header}: {reply:?}");
        assert_eq!(reply.agent_id(), by_body.agent_id());
    }
    let both_agree = app
        .send(
            app.client
                .post(&url)
                .bearer_auth(&token)
                .header("Idempotency-Key", "\"k-1\"")
                .json(&json!({"name": "B", "idempotency_key": "k-1"})),
        )
        .await;
    assert_eq!(both_agree.status, StatusCode::OK);
    let disagree = app
        .send(
            app.client
                .post(&url)
                .bearer_auth(&token)
                .header("Idempotency-Key", "k-2")
                .json(&json!({"name": "B", "idempotency_key": "k-3"})),
        )
        .await;
    assert_eq!(disagree.status, StatusCode::BAD_REQUEST);
    assert_eq!(disagree.code(), "conflicting_idempotency_keys");
    assert_eq!(app.all_agents(1).await.len(), 1);
}

async fn same_key_in_two_orgs_or_for_two_users_creates_separately(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let body = json!({"name": "Bot"});
    let a = app.create(1, 10, Some("shared"), &body).await;
    let b = app.create(2, 10, Some("shared"), &body).await;
    let c = app.create(1, 11, Some("shared"), &body).await;
    for r in [&a, &b, &c] {
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    }
    assert_ne!(a.agent_id(), b.agent_id());
    assert_ne!(a.agent_id(), c.agent_id());
    assert_eq!(b.agent()["organization_id"], 2);
    assert_eq!(c.agent()["user_id"], 11);
    // Each scope replays its own agent, never another tenant's.
    assert_eq!(app.create(2, 10, Some("shared"), &body).await.agent_id(), b.agent_id());
    assert_eq!(app.create(1, 11, Some("shared"), &body).await.agent_id(), c.agent_id());
    // A different payload in another scope is not a mismatch.
    assert_eq!(
        app.create(3, 10, Some("shared"), &json!({"name": "Other"}))
            .await
            .status,
        StatusCode::CREATED
    );
}

async fn same_key_on_another_endpoint_scope_is_independent(backend: Backend) {
    use idemproof_models::{Fingerprint, IdempotencyKey, LeaseToken, Scope};
    use idemproof_service::store::ClaimOutcome;
    let app = TestApp::spawn(&backend, |_| {}).await;
    // Another endpoint holds "k" for the same org and user...
    let other = Scope {
        organization_id: 1,
        user_id: 1,
        endpoint: "POST /api/v1/other".into(),
        key: IdempotencyKey::parse("k").expect("key"),
    };
    let claimed = app
        .stores
        .keys
        .claim(
            &other,
            Fingerprint([7; 32]),
            LeaseToken::random(),
            idemproof_service::clock::Clock::now(app.clock.as_ref()),
        )
        .await
        .expect("claim");
    assert!(matches!(claimed, ClaimOutcome::Acquired));
    // ...which does not block agent creation with the same key.
    assert_eq!(
        app.create(1, 1, Some("k"), &json!({"name": "Bot"})).await.status,
        StatusCode::CREATED
    );
}
