//! The system under test: a real service on the in-memory store with a
//! manual clock. Each step is sent over HTTP and its response compared
//! with the model's; after each step the store itself is compared too
//! (agents per tenant, and every key's record), so a refused request that
//! wrote anything is caught even when its response looked right.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use idemproof_models::{IdempotencyKey, KeyState, Scope, Timestamp};
use idemproof_service::clock::Clock;
use idemproof_service::domain::agent::Agent;
use idemproof_service::http::agents::CREATE_ENDPOINT;
use idemproof_service::store::memory::MemoryStore;
use idemproof_testkit::app::Backend;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::client;
use crate::reference::{self, Api, Expected, MAX_BODY_BYTES, Meaning, ORGS, RAW_KEYS, Step, TTL_SECS, Target, USERS};
use idemproof_testkit::app::{Reply, TestApp, test_config};

/// One case's service and what was learnt from it.
pub struct Session {
    app: TestApp,
    /// The store behind `app`, for direct inspection.
    memory: Arc<MemoryStore>,
    /// The service clock at the start of the case.
    start: Timestamp,
    /// Seconds the service clock has been advanced so far.
    advanced: i64,
    /// The JSON of the `n`-th agent created, as its 201 returned it.
    agents: Vec<Value>,
}

impl Session {
    /// A fresh service: empty store, TTL and body limit of the model.
    pub async fn start() -> Self {
        let mut config = test_config();
        config.idempotency_ttl = Duration::from_secs(TTL_SECS.unsigned_abs());
        config.max_body_bytes = MAX_BODY_BYTES;
        let app = TestApp::spawn_on(Backend::Memory.fixture(&config).await, config).await;
        let memory = app.memory.clone().expect("the in-memory store");
        let start = app.clock.now();
        Self {
            app,
            memory,
            start,
            advanced: 0,
            agents: Vec::new(),
        }
    }

    fn at(&self, secs: i64) -> Timestamp {
        self.start + chrono::Duration::seconds(secs)
    }

    /// Performs `step` and checks the response against `model`, the
    /// model's state after the step.
    pub async fn apply(&mut self, model: &Api, step: &Step) {
        let app = &self.app;
        let reply = match step {
            Step::Advance { .. } | Step::AdvanceToExpiry { .. } => {
                app.clock
                    .advance(Duration::from_secs((model.now - self.advanced).unsigned_abs()));
                self.advanced = model.now;
                return;
            }
            Step::Create(c) => app.send(client::create(app, c)).await,
            Step::Show { auth, query, target } => {
                let id = match target {
                    Target::Created(n) => self.agents[*n]["id"].to_string(),
                    Target::NotNumeric => "abc".into(),
                    Target::Unknown => "1000000".into(),
                };
                let url = format!("{}/api/v1/agents/{id}{}", app.base, client::query_string(*query));
                app.send(client::authorize(app.client.get(url), *auth)).await
            }
            Step::List { auth, query } => {
                let url = format!("{}/api/v1/agents{}", app.base, client::query_string(*query));
                app.send(client::authorize(app.client.get(url), *auth)).await
            }
        };
        let expected = model.expected.clone().expect("the model predicted a response");
        self.check_reply(&reply, expected, model, step);
    }

    fn check_reply(&mut self, reply: &Reply, expected: Expected, model: &Api, step: &Step) {
        let context = format!("{step:?} answered {reply:?}");
        let status = |want: StatusCode| assert_eq!(reply.status, want, "{context}");
        match expected {
            Expected::Created(n) => {
                status(StatusCode::CREATED);
                assert_eq!(reply.header("idempotent-replayed"), None, "{context}");
                let agent = reply.agent().clone();
                assert!(
                    self.agents.iter().all(|a| a["id"] != agent["id"]),
                    "{context}: a new agent reuses an id"
                );
                let location = format!(
                    "/api/v1/agents/{}?organization_id={}",
                    agent["id"], agent["organization_id"]
                );
                assert_eq!(reply.header("location"), Some(location.as_str()), "{context}");
                self.assert_agent(&agent, &model.agents[n], &context);
                assert_eq!(self.agents.len(), n, "agent numbering");
                self.agents.push(agent);
            }
            Expected::Replayed(n) => {
                status(StatusCode::OK);
                assert_eq!(reply.header("idempotent-replayed"), Some("true"), "{context}");
                assert_eq!(
                    reply.agent(),
                    &self.agents[n],
                    "{context}: the original agent, unchanged"
                );
            }
            Expected::Problem(want, code) => {
                status(StatusCode::from_u16(want).expect("a status"));
                assert_eq!(reply.code(), code, "{context}");
                assert_eq!(
                    reply.header("content-type"),
                    Some("application/problem+json"),
                    "{context}"
                );
                assert_eq!(reply.body["status"], want, "{context}");
            }
            Expected::Shown(n) => {
                status(StatusCode::OK);
                assert_eq!(reply.agent(), &self.agents[n], "{context}");
            }
            Expected::Listed(ns) => {
                status(StatusCode::OK);
                let mut want: Vec<&Value> = ns.iter().map(|n| &self.agents[*n]).collect();
                want.sort_by_key(|a| a["id"].as_i64());
                let listed: Vec<&Value> = reply.body["data"]["agents"]
                    .as_array()
                    .map(|a| a.iter().collect())
                    .unwrap_or_default();
                assert_eq!(listed, want, "{context}");
                assert_eq!(reply.body["data"]["next_cursor"], Value::Null, "{context}");
            }
            Expected::Nothing => unreachable!("only clock steps send nothing"),
        }
    }

    fn assert_agent(&self, got: &Value, want: &reference::Agent, context: &str) {
        let mut expected = normalised(want.meaning);
        expected["organization_id"] = json!(want.org);
        expected["user_id"] = json!(want.user);
        expected["idempotency_key"] = json!(want.key);
        for (field, value) in expected.as_object().expect("an object") {
            assert_eq!(&got[field], value, "{context}: field {field}");
        }
        let created_at: DateTime<Utc> = serde_json::from_value(got["created_at"].clone()).expect("a timestamp");
        assert_eq!(created_at, self.at(want.created_at), "{context}: created_at");
    }

    /// Compares the store with the model: agents per tenant, and each key's
    /// record (a live key holds its agent; any other key holds nothing or a
    /// dead record the reaper has not visited yet).
    pub async fn check(&self, model: &Api) {
        let agents = self.memory.table::<Agent>().all();
        for org in [ORGS[0], ORGS[1], 3] {
            let stored = agents.iter().filter(|a| a.organization_id == org).count();
            let modelled = model.agents.iter().filter(|a| a.org == org).count();
            assert_eq!(stored, modelled, "agents stored for organisation {org}");
        }
        let now = self.at(model.now);
        for scope in reference::scopes() {
            let (o, u, k) = scope;
            let key = Scope {
                organization_id: ORGS[o],
                user_id: USERS[u],
                endpoint: CREATE_ENDPOINT.to_owned(),
                key: IdempotencyKey::parse(RAW_KEYS[k]).expect("a valid key"),
            };
            let stored = self.memory.claims().record(&key);
            match (model.live(scope), stored) {
                (Some(live), Some(record)) => {
                    let id = self.agents[live.agent]["id"].as_i64();
                    assert_eq!(
                        record.state,
                        KeyState::Completed {
                            result: id.expect("an id")
                        },
                        "{key:?}"
                    );
                    assert_eq!(record.created_at, self.at(live.created_at), "{key:?}");
                }
                (None, None) => {}
                (None, Some(record)) => assert!(record.is_dead(now), "{key:?} holds a live record: {record:?}"),
                (Some(live), None) => panic!("{key:?} lost its record of {live:?}"),
            }
        }
    }
}

/// The stored form of a payload meaning: normalised, defaults filled in.
fn normalised(meaning: Meaning) -> Value {
    let mut agent = json!({
        "name": "Alpha", "description": null, "system_prompt": null, "config": {},
        "widget_config": {}, "agent_type": "assistant", "industry": null, "auto_optimize": false,
    });
    match meaning {
        Meaning::Alpha => {}
        Meaning::AlphaConfigured => agent["config"] = json!({"m": 1}),
        Meaning::Beta => agent["name"] = json!("Beta"),
        Meaning::AlphaTuned => agent["auto_optimize"] = json!(true),
    }
    agent
}
