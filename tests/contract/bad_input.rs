//! Bad input: a precise 4xx problem response, and nothing written.

use reqwest::StatusCode;
use serde_json::json;

use idemproof_testkit::app::{Backend, TestApp};
use idemproof_testkit::cases;
use idemproof_testkit::runner::{Backends, Case};

pub fn cases() -> Vec<(&'static str, Backends, Case)> {
    cases![Backends::Both =>
        bad_requests_get_problem_responses_and_write_nothing,
        auth_failures_are_401_or_403,
        oversized_bodies_are_413,
        unknown_routes_and_methods_are_problems,
    ]
}

/// A raw creation request: query string, headers, body bytes.
struct Raw {
    query: &'static str,
    content_type: Option<&'static str>,
    key: Option<String>,
    body: Vec<u8>,
    status: StatusCode,
    code: &'static str,
}

fn raw(query: &'static str, body: serde_json::Value, status: StatusCode, code: &'static str) -> Raw {
    Raw {
        query,
        content_type: Some("application/json"),
        key: None,
        body: body.to_string().into_bytes(),
        status,
        code,
    }
}

async fn bad_requests_get_problem_responses_and_write_nothing(backend: Backend) {
    use StatusCode as S;
    let app = TestApp::spawn(&backend, |_| {}).await;
    let org = "organization_id=1";
    let mut cases = vec![
        raw("", json!({"name": "x"}), S::BAD_REQUEST, "invalid_organization_id"),
        raw(
            "organization_id=abc",
            json!({"name": "x"}),
            S::BAD_REQUEST,
            "invalid_organization_id",
        ),
        raw(
            "organization_id=-1",
            json!({"name": "x"}),
            S::BAD_REQUEST,
            "invalid_organization_id",
        ),
        raw(
            "organization_id=0",
            json!({"name": "x"}),
            S::BAD_REQUEST,
            "invalid_organization_id",
        ),
        raw(
            "organization_id=99999999999999999999",
            json!({"name": "x"}),
            S::BAD_REQUEST,
            "invalid_organization_id",
        ),
        raw(
            org,
            json!({"name": "x", "organization_id": 2}),
            S::BAD_REQUEST,
            "organization_mismatch",
        ),
        raw(
            org,
            json!({"name": "x", "organization_id": "1"}),
            S::BAD_REQUEST,
            "invalid_organization_id",
        ),
        raw(
            org,
            json!({"name": "x", "idempotency_key": 5}),
            S::BAD_REQUEST,
            "invalid_idempotency_key",
        ),
        raw(
            org,
            json!({"name": "x", "idempotency_key": "has space"}),
            S::BAD_REQUEST,
            "invalid_idempotency_key",
        ),
        raw(
            org,
            json!({"name": "x", "idempotency_key": "k".repeat(256)}),
            S::BAD_REQUEST,
            "invalid_idempotency_key",
        ),
        raw(org, json!({}), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        raw(org, json!({"name": ""}), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        raw(
            org,
            json!({"name": "   "}),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        raw(
            org,
            json!({"name": "x".repeat(256)}),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        raw(org, json!({"name": 42}), S::UNPROCESSABLE_ENTITY, "validation_failed"),
        raw(
            org,
            json!({"name": ["x"]}),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        raw(
            org,
            json!({"name": "x", "config": "not an object"}),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        raw(
            org,
            json!({"name": "x", "auto_optimize": "yes"}),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        raw(
            org,
            json!([{"name": "x"}]),
            S::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        raw(org, json!(null), S::UNPROCESSABLE_ENTITY, "validation_failed"),
    ];
    for body in [
        &b"{"[..],
        b"{\"name\": }",
        b"",
        b"\xff\xfe",
        b"{\"name\":\"x\"} trailing",
    ] {
        cases.push(Raw {
            body: body.to_vec(),
            ..raw(org, json!(null), S::BAD_REQUEST, "malformed_json")
        });
    }
    for content_type in [None, Some("text/plain"), Some("application/x-www-form-urlencoded")] {
        cases.push(Raw {
            content_type,
            ..raw(
                org,
                json!({"name": "x"}),
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            )
        });
    }
    for key in ["", "a b", "\"unterminated", "\"bad\\escape\""] {
        cases.push(Raw {
            key: Some(key.to_owned()),
            ..raw(org, json!({"name": "x"}), S::BAD_REQUEST, "invalid_idempotency_key")
        });
    }
    // Invalid bodies are refused even when they carry a valid key, and the
    // key stays unused.
    cases.push(Raw {
        key: Some("fresh-key".into()),
        ..raw(org, json!({"name": ""}), S::UNPROCESSABLE_ENTITY, "validation_failed")
    });

    let token = app.token(1, &[1, 2]);
    for case in cases {
        let mut request = app
            .client
            .post(format!("{}/api/v1/agents?{}", app.base, case.query))
            .bearer_auth(&token)
            .body(case.body.clone());
        if let Some(ct) = case.content_type {
            request = request.header("content-type", ct);
        }
        if let Some(key) = &case.key {
            request = request.header("Idempotency-Key", key.as_str());
        }
        let reply = app.send(request).await;
        let shown = String::from_utf8_lossy(&case.body);
        assert_eq!(reply.status, case.status, "{} {shown}: {reply:?}", case.query);
        assert_eq!(reply.code(), case.code, "{} {shown}: {reply:?}", case.query);
        assert_eq!(reply.header("content-type"), Some("application/problem+json"));
        assert_eq!(reply.body["status"], case.status.as_u16());
        assert!(reply.body["type"].is_string() && reply.body["title"].is_string() && reply.body["detail"].is_string());
    }
    let validation = app.create(1, 1, None, &json!({"name": 1, "config": []})).await;
    let fields: Vec<_> = validation.body["errors"]
        .as_array()
        .map(|e| e.iter().map(|f| f["field"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(fields, [json!("name"), json!("config")]);

    assert!(app.all_agents(1).await.is_empty(), "bad requests wrote agents");
    if let Some(keys) = app.rows("idempotency_keys").await {
        assert_eq!(keys, 0, "bad requests wrote keys");
    }
    // The key of the refused request is still free.
    assert_eq!(
        app.create(1, 1, Some("fresh-key"), &json!({"name": "ok"})).await.status,
        S::CREATED
    );
}

async fn auth_failures_are_401_or_403(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let url = format!("{}/api/v1/agents?organization_id=1", app.base);
    let body = json!({"name": "x"});
    let expired = idemproof_service::auth::mint(idemproof_testkit::app::SECRET, 1, &[1], -3600).expect("mint");
    let wrong_secret = idemproof_service::auth::mint("another-secret", 1, &[1], 3600).expect("mint");
    let alg_none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIxIiwib3JncyI6WzFdLCJleHAiOjk5OTk5OTk5OTl9.";
    for auth in [
        None,
        Some("Bearer".to_owned()),
        Some("Bearer garbage".to_owned()),
        Some(format!("Bearer {expired}")),
        Some(format!("Bearer {wrong_secret}")),
        Some(format!("Bearer {alg_none}")),
        Some("Basic dXNlcjpwYXNz".to_owned()),
    ] {
        let mut request = app.client.post(&url).json(&body);
        if let Some(auth) = &auth {
            request = request.header("authorization", auth.as_str());
        }
        let reply = app.send(request).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{auth:?}: {reply:?}");
        assert_eq!(reply.code(), "unauthorized");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    }
    let outsider = app.token(1, &[2]);
    let reply = app.send(app.client.post(&url).bearer_auth(&outsider).json(&body)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.code(), "forbidden");
    let reply = app
        .send(
            app.client
                .get(format!("{}/api/v1/agents?organization_id=1", app.base))
                .bearer_auth(&outsider),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(app.all_agents(1).await.is_empty());
}

async fn oversized_bodies_are_413(backend: Backend) {
    let app = TestApp::spawn(&backend, |c| c.max_body_bytes = 1024).await;
    let big = json!({"name": "x", "system_prompt": "p".repeat(2000)});
    let reply = app.create(1, 1, Some("big"), &big).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{reply:?}");
    assert_eq!(reply.code(), "payload_too_large");
    let small = json!({"name": "x", "system_prompt": "p".repeat(500)});
    assert_eq!(app.create(1, 1, Some("big"), &small).await.status, StatusCode::CREATED);
    assert_eq!(app.all_agents(1).await.len(), 1);
}

async fn unknown_routes_and_methods_are_problems(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let reply = app.send(app.client.get(format!("{}/nope", app.base))).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.code(), "not_found");
    let reply = app.send(app.client.delete(format!("{}/api/v1/agents", app.base))).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.header("content-type"), Some("application/problem+json"));
}
