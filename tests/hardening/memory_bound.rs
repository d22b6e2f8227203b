//! The in-memory store's bounds (`MEMORY_MAX_KEYS`,
//! `MEMORY_MAX_RESOURCE_BYTES`): at a bound a new creation is refused with
//! 503 `store_full` and `Retry-After`, and writes nothing; dead keys are
//! removed to make room before a new key is refused; a live key is never
//! dropped, and existing keys still replay; `/readyz` says the store can
//! no longer create.

use idemproof_models::{Fingerprint, IdempotencyKey, LeaseToken, Scope};
use idemproof_service::clock::Clock;
use idemproof_service::http::agents::CREATE_ENDPOINT;
use idemproof_service::store::memory::{RESOURCES_FULL_RETRY_SECS, ROW_OVERHEAD_BYTES, SMALLEST_ROW_BYTES};
use idemproof_testkit::app::{Backend, Reply, TestApp};
use idemproof_testkit::cases;
use idemproof_testkit::runner::{Backends, Case};
use reqwest::StatusCode;
use serde_json::json;

use crate::readiness::{fast_probes, wait_for_readyz};

pub fn cases() -> Vec<(&'static str, Backends, Case)> {
    cases![Backends::MemoryOnly =>
        new_keys_are_refused_at_the_key_bound_and_live_keys_still_replay,
        creations_are_refused_past_the_resource_budget,
    ]
}

fn scope(key: &str) -> Scope {
    Scope {
        organization_id: 1,
        user_id: 1,
        endpoint: CREATE_ENDPOINT.to_owned(),
        key: IdempotencyKey::parse(key).expect("key"),
    }
}

fn assert_full(reply: &Reply, retry_after: u64) {
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
    assert_eq!(reply.code(), "store_full");
    assert_eq!(reply.header("retry-after"), Some(retry_after.to_string().as_str()));
}

async fn new_keys_are_refused_at_the_key_bound_and_live_keys_still_replay(backend: Backend) {
    const KEYS: usize = 4;
    let app = TestApp::spawn(&backend, |c| {
        fast_probes(c);
        c.memory_max_keys = KEYS;
    })
    .await;
    let memory = app.memory.clone().expect("the memory store");
    let body = json!({"name": "bounded"});
    let mut ids = Vec::new();
    for i in 0..KEYS {
        let reply = app.create(1, 1, Some(&format!("k{i}")), &body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        ids.push(reply.agent_id());
    }
    // Every key is alive: the next new key is refused, and told when the
    // first one expires (the clock has not moved: one whole TTL).
    let ttl = app.config.idempotency_ttl.as_secs();
    let refused = app.create(1, 1, Some("one-too-many"), &body).await;
    assert_full(&refused, ttl);
    let deploy = app
        .deploy(1, 1, ids[0], Some("deploy-key"), &json!({"channel": "web"}))
        .await;
    assert_full(&deploy, ttl);
    assert_eq!(memory.claims().len(), KEYS);
    assert!(memory.claims().record(&scope("one-too-many")).is_none());
    // Nothing was forgotten: every key still replays its agent.
    for (i, id) in ids.iter().enumerate() {
        let replay = app.create(1, 1, Some(&format!("k{i}")), &body).await;
        assert_eq!(replay.status, StatusCode::OK, "{replay:?}");
        assert_eq!(replay.agent_id(), *id);
    }
    // A creation without a key needs no key record.
    assert_eq!(app.create(1, 1, None, &body).await.status, StatusCode::CREATED);
    wait_for_readyz(&app, StatusCode::SERVICE_UNAVAILABLE).await;
    // Once the keys are dead, a new key makes room by removing them.
    app.clock.advance(app.config.idempotency_ttl);
    let created = app.create(1, 1, Some("one-too-many"), &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert!(memory.claims().len() <= KEYS);
    assert!(memory.claims().record(&scope("k0")).is_none(), "a dead key made room");
    wait_for_readyz(&app, StatusCode::OK).await;
    assert_eq!(app.all_agents(1).await.len(), KEYS + 2);
}

async fn creations_are_refused_past_the_resource_budget(backend: Backend) {
    const BUDGET: usize = 24 << 10;
    let app = TestApp::spawn(&backend, |c| {
        fast_probes(c);
        c.memory_max_resource_bytes = BUDGET;
    })
    .await;
    let memory = app.memory.clone().expect("the memory store");
    // A key whose claim will be abandoned, to take the completion path.
    let abandoned = scope("abandoned");
    let spec = json!({"name": "big", "system_prompt": "p".repeat(2_000)});
    memory_claim(&app, &abandoned).await;
    // Fill: 2 kB agents, then the smallest, each until refused.
    let mut created = Vec::new();
    for body in [spec.clone(), json!({"name": "s"})] {
        let mut refused = None;
        for i in 0..BUDGET / ROW_OVERHEAD_BYTES {
            let key = format!("{}-{i}", body["name"].as_str().unwrap_or_default());
            let reply = app.create(1, 1, Some(&key), &body).await;
            if reply.status == StatusCode::CREATED {
                created.push((key, reply.agent_id()));
            } else {
                refused = Some((key, reply));
                break;
            }
        }
        let (key, reply) = refused.expect("the budget ran out");
        assert_full(&reply, RESOURCES_FULL_RETRY_SECS);
        assert!(memory.claims().record(&scope(&key)).is_none(), "a refused key was kept");
    }
    let used = memory.resource_bytes();
    assert!(used <= BUDGET, "{used} bytes stored");
    assert!(
        BUDGET - used < SMALLEST_ROW_BYTES,
        "{used} of {BUDGET} bytes counted, yet the smallest agent was refused"
    );
    // Without a key, and through a claim (taking over the abandoned one,
    // whose completion finds no room and releases it): refused alike.
    assert_full(
        &app.create(1, 1, None, &json!({"name": "s"})).await,
        RESOURCES_FULL_RETRY_SECS,
    );
    app.clock.advance(app.config.idempotency_lease);
    let taken_over = app.create(1, 1, Some("abandoned"), &spec).await;
    assert_full(&taken_over, RESOURCES_FULL_RETRY_SECS);
    assert!(
        memory.claims().record(&abandoned).is_none(),
        "the failed completion released its claim"
    );
    // Every acknowledged creation is intact and replays.
    for (key, id) in &created {
        let body = if key.starts_with("big") {
            spec.clone()
        } else {
            json!({"name": "s"})
        };
        let replay = app.create(1, 1, Some(key), &body).await;
        assert_eq!((replay.status, replay.agent_id()), (StatusCode::OK, *id), "{key}");
    }
    assert_eq!(app.all_agents(1).await.len(), created.len());
    // Less than the smallest agent is left: the store cannot create.
    wait_for_readyz(&app, StatusCode::SERVICE_UNAVAILABLE).await;
}

/// Claims `scope` directly in the store, as a request that then died
/// would have.
async fn memory_claim(app: &TestApp, scope: &Scope) {
    let outcome = app
        .stores
        .keys
        .claim(scope, Fingerprint([7; 32]), LeaseToken::random(), app.clock.now())
        .await
        .expect("claim");
    assert!(matches!(outcome, idemproof_service::store::ClaimOutcome::Acquired));
}
