//! The life of a key beyond the happy path: in-flight duplicates, crashed
//! owners, failures, outages, expiry.

use std::sync::Arc;
use std::time::Duration;

use idemproof_harness::deploy::FaultState;
use idemproof_models::{IdempotencyKey, LeaseToken, Scope};
use idemproof_service::clock::Clock;
use idemproof_service::domain::agent::{CreateEnvelope, NewAgent};
use idemproof_service::http::agents::CREATE_ENDPOINT;
use idemproof_service::idempotency::InFlightMode;
use idemproof_service::store::{ClaimOutcome, Lease, StoreError};
use idemproof_testkit::app::{Backend, TestApp, test_config};
use idemproof_testkit::cases;
use idemproof_testkit::runner::{Backends, Case};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub fn cases() -> Vec<(&'static str, Backends, Case)> {
    cases![Backends::Both =>
        in_flight_duplicate_is_409_at_once_in_reject_mode,
        in_flight_duplicate_waits_then_replays_in_wait_mode,
        in_flight_duplicate_is_409_when_the_wait_runs_out,
        a_creation_runs_on_after_its_client_hangs_up,
        crashed_owner_blocks_the_key_only_until_its_lease_ends,
        failed_creation_is_not_pinned_to_the_key,
        outage_is_503_then_recovers,
        expired_keys_are_reaped_and_create_anew,
        metrics_count_outcomes_and_keyed_share,
    ]
}

/// What a concurrent original with `body` would hold: its lease on the
/// agent-creation scope of (org 1, user 1, `key`).
pub(crate) async fn claim_like_an_original(app: &TestApp, key: &str, body: &Value) -> (Lease, NewAgent) {
    let envelope = CreateEnvelope::from_json(body).expect("valid body");
    let scope = Scope {
        organization_id: 1,
        user_id: 1,
        endpoint: CREATE_ENDPOINT.into(),
        key: IdempotencyKey::parse(key).expect("key"),
    };
    let token = LeaseToken::random();
    let outcome = app
        .stores
        .keys
        .claim(&scope, envelope.spec.fingerprint(), token, app.clock.now())
        .await
        .expect("claim");
    assert!(matches!(outcome, ClaimOutcome::Acquired), "{outcome:?}");
    let new = NewAgent {
        organization_id: 1,
        user_id: 1,
        idempotency_key: Some(key.into()),
        spec: envelope.spec,
    };
    (Lease { scope, token }, new)
}

async fn in_flight_duplicate_is_409_at_once_in_reject_mode(backend: Backend) {
    let app = TestApp::spawn(&backend, |c| c.idempotency_in_flight = InFlightMode::Reject).await;
    let body = json!({"name": "Bot"});
    let (lease, new) = claim_like_an_original(&app, "k", &body).await;
    let reply = app.create(1, 1, Some("k"), &body).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{reply:?}");
    assert_eq!(reply.code(), "idempotency_key_conflict");
    assert_eq!(reply.header("retry-after"), Some("1"));
    // A different payload while in flight is still the client's bug: 422.
    let other = app.create(1, 1, Some("k"), &json!({"name": "Other"})).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    // The original completes; the retry replays it.
    let agent = app
        .stores
        .agents
        .insert_completing(&lease, &new, app.clock.now())
        .await
        .expect("complete");
    let retry = app.create(1, 1, Some("k"), &body).await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(retry.agent_id(), agent.id);
    assert_eq!(app.all_agents(1).await.len(), 1);
}

async fn in_flight_duplicate_waits_then_replays_in_wait_mode(backend: Backend) {
    let app = Arc::new(TestApp::spawn(&backend, |c| c.idempotency_wait = Duration::from_secs(20)).await);
    let body = json!({"name": "Bot"});
    let (lease, new) = claim_like_an_original(&app, "k", &body).await;
    let waiting = {
        let (app, body) = (app.clone(), body.clone());
        tokio::spawn(async move { app.create(1, 1, Some("k"), &body).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the duplicate waits for the original");
    let agent = app
        .stores
        .agents
        .insert_completing(&lease, &new, app.clock.now())
        .await
        .expect("complete");
    let reply = waiting.await.expect("task");
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.header("idempotent-replayed"), Some("true"));
    assert_eq!(reply.agent_id(), agent.id);
}

async fn in_flight_duplicate_is_409_when_the_wait_runs_out(backend: Backend) {
    let app = TestApp::spawn(&backend, |c| c.idempotency_wait = Duration::from_millis(300)).await;
    let body = json!({"name": "Bot"});
    let (_lease, _new) = claim_like_an_original(&app, "k", &body).await;
    let reply = app.create(1, 1, Some("k"), &body).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{reply:?}");
    assert_eq!(reply.code(), "idempotency_key_conflict");
    assert!(app.all_agents(1).await.is_empty());
}

/// A client that gives up on a creation (a timeout, a closed tab) does not
/// cancel it: the creation runs to its end, so the client's retry replays
/// it instead of creating a second time. Here the creation waits on a key
/// held by a concurrent original; the client hangs up; the original then
/// gives the key back, and the abandoned creation takes it and creates.
async fn a_creation_runs_on_after_its_client_hangs_up(backend: Backend) {
    let app = TestApp::spawn(&backend, |c| c.idempotency_wait = Duration::from_secs(20)).await;
    let body = json!({"name": "Bot"});
    let (lease, _new) = claim_like_an_original(&app, "k", &body).await;
    let impatient = app
        .client
        .post(format!("{}/api/v1/agents?organization_id=1", app.base))
        .bearer_auth(app.token(1, &[1]))
        .header("Idempotency-Key", "\"k\"")
        .timeout(Duration::from_millis(300))
        .json(&body)
        .send()
        .await;
    assert!(
        impatient.as_ref().is_err_and(reqwest::Error::is_timeout),
        "the creation waits on the held key until the client hangs up: {impatient:?}"
    );
    app.stores.keys.release(&lease).await.expect("release");
    let mut created = 0;
    for _ in 0..250 {
        created = app.agents_with_key(1, "k").await;
        if created > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(created, 1, "the abandoned creation ran to its end");
    let retry = app.create(1, 1, Some("k"), &body).await;
    assert_eq!(retry.status, StatusCode::OK, "{retry:?}");
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.all_agents(1).await.len(), 1);
}

async fn crashed_owner_blocks_the_key_only_until_its_lease_ends(backend: Backend) {
    let app = TestApp::spawn(&backend, |c| {
        c.idempotency_in_flight = InFlightMode::Reject;
        c.idempotency_lease = Duration::from_secs(30);
    })
    .await;
    let body = json!({"name": "Bot"});
    // The owner claims and dies without completing or releasing.
    let (dead_lease, dead_new) = claim_like_an_original(&app, "k", &body).await;
    assert_eq!(app.create(1, 1, Some("k"), &body).await.status, StatusCode::CONFLICT);
    app.clock.advance(Duration::from_secs(29));
    assert_eq!(app.create(1, 1, Some("k"), &body).await.status, StatusCode::CONFLICT);
    app.clock.advance(Duration::from_secs(1));
    let taken_over = app.create(1, 1, Some("k"), &body).await;
    assert_eq!(
        taken_over.status,
        StatusCode::CREATED,
        "the lease ended: {taken_over:?}"
    );
    // Were the old owner to wake up, its completion would write nothing.
    let late = app
        .stores
        .agents
        .insert_completing(&dead_lease, &dead_new, app.clock.now())
        .await;
    assert!(matches!(late, Err(StoreError::LeaseLost)), "{late:?}");
    assert_eq!(app.all_agents(1).await.len(), 1);
    assert_eq!(
        app.create(1, 1, Some("k"), &body).await.agent_id(),
        taken_over.agent_id()
    );
}

/// The service over `backend` behind the harness's fault emulation.
async fn spawn_faulty(backend: &Backend) -> (TestApp, Arc<FaultState>) {
    let mut config = test_config();
    // Readiness comes from a background probe: probe often, so the outage
    // case sees its verdict change within a few polls.
    config.readiness_interval = Duration::from_millis(20);
    config.readiness_fail_after = 2;
    config.readiness_recover_after = 2;
    let mut fixture = backend.fixture(&config).await;
    let faults = Arc::new(FaultState::new(1));
    fixture.stores = fixture.stores.layer(faults.clone());
    (TestApp::spawn_on(fixture, config).await, faults)
}

async fn failed_creation_is_not_pinned_to_the_key(backend: Backend) {
    let (app, faults) = spawn_faulty(&backend).await;
    let body = json!({"name": "Bot"});
    // A key with no record: the one-step creation fails and writes nothing.
    faults.fail_next_one_step_creates(1);
    let failed = app.create(1, 1, Some("k"), &body).await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE, "{failed:?}");
    assert_eq!(failed.code(), "service_unavailable");
    assert_eq!(failed.header("retry-after"), Some("1"));
    assert!(
        !failed.body.to_string().contains("injected"),
        "internals leaked: {failed:?}"
    );
    assert!(app.all_agents(1).await.is_empty());
    if let Some(keys) = app.rows("idempotency_keys").await {
        assert_eq!(keys, 0, "nothing was written for the key");
    }
    let retry = app.create(1, 1, Some("k"), &body).await;
    assert_eq!(
        retry.status,
        StatusCode::CREATED,
        "the failure was not cached: {retry:?}"
    );

    // A key with an abandoned claim goes the long way: it is taken over,
    // the creation fails, and the claim is released rather than kept.
    let (dead, _) = claim_like_an_original(&app, "k2", &body).await;
    app.clock.advance(app.config.idempotency_lease);
    faults.fail_next_claimed_creates(1);
    let failed = app.create(1, 1, Some("k2"), &body).await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE, "{failed:?}");
    if let Some(keys) = app.rows("idempotency_keys").await {
        assert_eq!(keys, 1, "only k's record remains: k2's claim was released");
    }
    if let Some(memory) = &app.memory {
        assert!(memory.claims().record(&dead.scope).is_none(), "k2's claim was released");
    }
    let retry = app.create(1, 1, Some("k2"), &body).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{retry:?}");
    assert_eq!(app.all_agents(1).await.len(), 2);
}

/// Polls `/readyz` (at most 500 times, 20 ms apart) until it answers `want`.
async fn wait_for_readyz(app: &TestApp, want: StatusCode) {
    for _ in 0..500 {
        if app.readyz().await.status == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("/readyz never answered {want}");
}

async fn outage_is_503_then_recovers(backend: Backend) {
    let (app, faults) = spawn_faulty(&backend).await;
    assert_eq!(app.readyz().await.status, StatusCode::OK);
    faults.set_outage(true);
    wait_for_readyz(&app, StatusCode::SERVICE_UNAVAILABLE).await;
    let live = app.send(app.client.get(format!("{}/healthz", app.base))).await;
    assert_eq!(live.status, StatusCode::OK);
    for key in [Some("k"), None] {
        let reply = app.create(1, 1, key, &json!({"name": "Bot"})).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
    }
    faults.set_outage(false);
    wait_for_readyz(&app, StatusCode::OK).await;
    assert!(
        app.all_agents(1).await.is_empty(),
        "nothing half-written during the outage"
    );
    assert_eq!(
        app.create(1, 1, Some("k"), &json!({"name": "Bot"})).await.status,
        StatusCode::CREATED
    );
}

async fn expired_keys_are_reaped_and_create_anew(backend: Backend) {
    let app = TestApp::spawn(&backend, |c| c.idempotency_ttl = Duration::from_secs(3600)).await;
    let body = json!({"name": "Bot"});
    let first = app.create(1, 1, Some("k1"), &body).await;
    assert_eq!(app.create(1, 1, Some("k2"), &body).await.status, StatusCode::CREATED);
    app.clock.advance(Duration::from_secs(3599));
    assert_eq!(app.create(1, 1, Some("k1"), &body).await.status, StatusCode::OK);
    let reaped = idemproof_service::reaper::reap_all(app.stores.keys.as_ref(), app.clock.as_ref())
        .await
        .expect("reap");
    assert_eq!(reaped, 0, "nothing is past its TTL yet");
    app.clock.advance(Duration::from_secs(1));
    let reaped = idemproof_service::reaper::reap_all(app.stores.keys.as_ref(), app.clock.as_ref())
        .await
        .expect("reap");
    assert_eq!(reaped, 2);
    if let Some(keys) = app.rows("idempotency_keys").await {
        assert_eq!(keys, 0);
    }
    let again = app.create(1, 1, Some("k1"), &body).await;
    assert_eq!(again.status, StatusCode::CREATED, "an expired key creates anew");
    assert_ne!(again.agent_id(), first.agent_id());
    assert_eq!(app.create(1, 1, Some("k1"), &body).await.agent_id(), again.agent_id());
}

async fn metrics_count_outcomes_and_keyed_share(backend: Backend) {
    let app = TestApp::spawn(&backend, |_| {}).await;
    app.create(1, 1, Some("k"), &json!({"name": "A"})).await;
    app.create(1, 1, Some("k"), &json!({"name": "A"})).await;
    app.create(1, 1, Some("k"), &json!({"name": "B"})).await;
    app.create(1, 1, None, &json!({"name": "C"})).await;
    app.create(1, 1, None, &json!({"name": ""})).await;
    let reply = app
        .client
        .get(format!(
            "{}/metrics",
            app.metrics_base.as_deref().expect("a metrics listener")
        ))
        .send()
        .await
        .expect("metrics");
    assert_eq!(reply.status(), StatusCode::OK);
    let text = reply.text().await.expect("text");
    for line in [
        "idemproof_create_requests_total{outcome=\"created\"} 2",
        "idemproof_create_requests_total{outcome=\"replayed\"} 1",
        "idemproof_create_requests_total{outcome=\"mismatch\"} 1",
        "idemproof_create_requests_total{outcome=\"invalid\"} 1",
        "idemproof_create_requests_total{outcome=\"conflict\"} 0",
        "idemproof_create_requests_total{outcome=\"error\"} 0",
        "idemproof_valid_creates_total 4",
        "idemproof_keyed_creates_total 3",
        "idemproof_keyed_create_share 0.75",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
    }
}
