//! Reading agents back: tenant isolation and pagination.

use reqwest::StatusCode;
use serde_json::json;

use idemproof_testkit::app::{Backend, TestApp};
use idemproof_testkit::cases;
use idemproof_testkit::runner::{Backends, Case};

pub fn cases() -> Vec<(&'static str, Backends, Case)> {
    cases![Backends::Both =>
        an_agent_is_only_visible_in_its_organization,
        listing_paginates_in_a_stable_order,
        health_endpoints_answer,
    ]
}

async fn an_agent_is_only_visible_in_its_organization(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let id = app.create(1, 1, None, &json!({"name": "Bot"})).await.agent_id();
    let token = app.token(1, &[1, 2]);
    let get = |org: i64, id: String| {
        app.client
            .get(format!("{}/api/v1/agents/{id}?organization_id={org}", app.base))
            .bearer_auth(&token)
    };
    let mine = app.send(get(1, id.to_string())).await;
    assert_eq!(mine.status, StatusCode::OK);
    assert_eq!(mine.body["status"], "success");
    assert_eq!(mine.agent_id(), id);
    for (org, id) in [(2, id.to_string()), (1, (id + 1000).to_string()), (1, "abc".into())] {
        let reply = app.send(get(org, id.clone())).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "org {org} id {id}: {reply:?}");
        assert_eq!(reply.code(), "not_found");
    }
    assert!(app.all_agents(2).await.is_empty());
}

async fn listing_paginates_in_a_stable_order(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(
            app.create(1, 1, None, &json!({"name": format!("A{i}")}))
                .await
                .agent_id(),
        );
        app.create(2, 1, None, &json!({"name": format!("B{i}")})).await;
    }
    let token = app.token(1, &[1]);
    let page = |query: String| {
        app.client
            .get(format!("{}/api/v1/agents?organization_id=1{query}", app.base))
            .bearer_auth(&token)
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = format!(
            "&limit=3{}",
            cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default()
        );
        let reply = app.send(page(query)).await;
        assert_eq!(reply.status, StatusCode::OK);
        pages += 1;
        let agents = reply.body["data"]["agents"].as_array().cloned().unwrap_or_default();
        assert!(agents.len() <= 3);
        seen.extend(agents.iter().map(|a| a["id"].as_i64().unwrap_or_default()));
        match reply.body["data"]["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created, "every agent once, in creation order");
    let all = app.send(page(String::new())).await;
    assert_eq!(
        all.body["data"]["agents"].as_array().map(Vec::len),
        Some(7),
        "default limit covers 7"
    );
    assert_eq!(all.body["data"]["next_cursor"], serde_json::Value::Null);
    for bad in ["&limit=0", "&limit=501", "&limit=x", "&cursor=zz"] {
        let reply = app.send(page(bad.into())).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}: {reply:?}");
    }
}

async fn health_endpoints_answer(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    for (path, status) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let reply = app.send(app.client.get(format!("{}{path}", app.base))).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body["status"], status);
    }
}
