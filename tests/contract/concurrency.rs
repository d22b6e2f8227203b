//! Concurrent duplicates: whatever the interleaving, one scope creates one
//! agent, and every success names it.

use std::collections::HashMap;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Barrier;

use idemproof_testkit::app::{Backend, Reply, TestApp};
use idemproof_testkit::cases;
use idemproof_testkit::runner::{Backends, Case};

pub fn cases() -> Vec<(&'static str, Backends, Case)> {
    cases![Backends::Both =>
        identical_requests_on_one_key_create_exactly_one_agent,
        many_keys_with_concurrent_clients_each_create_one_agent,
        concurrent_payloads_on_one_key_get_replay_or_422,
        concurrent_tenants_sharing_a_key_stay_separate,
    ]
}

/// One request to send in a storm.
struct Shot {
    org: i64,
    user: i64,
    key: String,
    body: Value,
}

/// Sends every shot from its own task, all released together by a barrier.
async fn storm(app: &Arc<TestApp>, shots: Vec<Shot>) -> Vec<(Shot, Reply)> {
    let barrier = Arc::new(Barrier::new(shots.len()));
    let tasks: Vec<_> = shots
        .into_iter()
        .map(|shot| {
            let (app, barrier) = (app.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let reply = app.create(shot.org, shot.user, Some(&shot.key), &shot.body).await;
                (shot, reply)
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("request task"));
    }
    out
}

/// Per scope: exactly one 201, every other reply a 200 with the same agent.
fn assert_one_creation_per_scope(results: &[(Shot, Reply)]) -> HashMap<(i64, i64, String), i64> {
    let mut by_scope: HashMap<(i64, i64, String), Vec<&Reply>> = HashMap::new();
    for (shot, reply) in results {
        by_scope
            .entry((shot.org, shot.user, shot.key.clone()))
            .or_default()
            .push(reply);
    }
    let mut created = HashMap::new();
    for (scope, replies) in by_scope {
        let creations = replies.iter().filter(|r| r.status == StatusCode::CREATED).count();
        assert_eq!(creations, 1, "scope {scope:?}: {creations} creations");
        let id = replies[0].agent_id();
        for r in &replies {
            assert!(
                r.status == StatusCode::CREATED || r.status == StatusCode::OK,
                "scope {scope:?}: {r:?}"
            );
            assert_eq!(r.agent_id(), id, "scope {scope:?}: every success names the same agent");
            assert_eq!(r.agent()["organization_id"], scope.0);
            assert_eq!(r.agent()["user_id"], scope.1);
        }
        created.insert(scope, id);
    }
    created
}

async fn identical_requests_on_one_key_create_exactly_one_agent(backend: Backend) {
    let app = Arc::new(TestApp::spawn(&backend, |_| {}).await);
    let shots = (0..64)
        .map(|_| Shot {
            org: 1,
            user: 1,
            key: "storm".into(),
            body: json!({"name": "Bot", "config": {"n": 1}}),
        })
        .collect();
    let results = storm(&app, shots).await;
    assert_one_creation_per_scope(&results);
    let replays = results.iter().filter(|(_, r)| r.status == StatusCode::OK).count();
    assert_eq!(replays, 63);
    assert_eq!(app.all_agents(1).await.len(), 1);
    if let Some(rows) = app.rows("agents").await {
        assert_eq!(rows, 1, "one agent row in Postgres");
    }
}

async fn many_keys_with_concurrent_clients_each_create_one_agent(backend: Backend) {
    let app = Arc::new(TestApp::spawn(&backend, |_| {}).await);
    const KEYS: usize = 40;
    const CLIENTS: usize = 6;
    let mut shots = Vec::new();
    for k in 0..KEYS {
        for _ in 0..CLIENTS {
            shots.push(Shot {
                org: 1,
                user: 1,
                key: format!("key-{k}"),
                body: json!({"name": format!("Agent {k}")}),
            });
        }
    }
    let results = storm(&app, shots).await;
    let created = assert_one_creation_per_scope(&results);
    assert_eq!(created.len(), KEYS);
    let agents = app.all_agents(1).await;
    assert_eq!(agents.len(), KEYS, "one stored agent per key");
    for k in 0..KEYS {
        let key = format!("key-{k}");
        let stored: Vec<_> = agents.iter().filter(|a| a["idempotency_key"] == key.as_str()).collect();
        assert_eq!(stored.len(), 1, "{key}");
        assert_eq!(stored[0]["id"], created[&(1, 1, key.clone())]);
        assert_eq!(stored[0]["name"], format!("Agent {k}"));
    }
}

async fn concurrent_payloads_on_one_key_get_replay_or_422(backend: Backend) {
    let app = Arc::new(TestApp::spawn(&backend, |_| {}).await);
    let shots = (0..32)
        .map(|i| Shot {
            org: 1,
            user: 1,
            key: "contested".into(),
            body: json!({"name": if i % 2 == 0 { "Even" } else { "Odd" }}),
        })
        .collect();
    let results = storm(&app, shots).await;
    let winner = results
        .iter()
        .filter(|(_, r)| r.status == StatusCode::CREATED)
        .map(|(s, r)| (s.body["name"].clone(), r.agent_id()))
        .collect::<Vec<_>>();
    assert_eq!(winner.len(), 1, "exactly one creation");
    let (winning_name, id) = winner[0].clone();
    for (shot, reply) in &results {
        if shot.body["name"] == winning_name {
            assert!(
                reply.status == StatusCode::CREATED || reply.status == StatusCode::OK,
                "{reply:?}"
            );
            assert_eq!(reply.agent_id(), id);
        } else {
            assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{reply:?}");
            assert_eq!(reply.code(), "idempotency_key_reused");
        }
    }
    assert_eq!(app.all_agents(1).await.len(), 1);
}

async fn concurrent_tenants_sharing_a_key_stay_separate(backend: Backend) {
    let app = Arc::new(TestApp::spawn(&backend, |_| {}).await);
    let mut shots = Vec::new();
    for org in 1..=4 {
        for user in 1..=2 {
            for _ in 0..6 {
                shots.push(Shot {
                    org,
                    user,
                    key: "same-everywhere".into(),
                    body: json!({"name": format!("org {org} user {user}")}),
                });
            }
        }
    }
    let results = storm(&app, shots).await;
    let created = assert_one_creation_per_scope(&results);
    assert_eq!(created.len(), 8);
    for (shot, reply) in &results {
        assert_eq!(reply.agent()["name"], shot.body["name"], "never another tenant's agent");
    }
    for org in 1..=4 {
        assert_eq!(app.all_agents(org).await.len(), 2);
    }
}
