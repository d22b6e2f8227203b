//! The system under test: a real store (in-memory or Postgres) driven
//! through the service's `Store` trait. After each operation its answer is
//! compared with the model's prediction, and then everything the store
//! holds (every scope's raw record, the record count, every tenant's agents)
//! is compared with the model's state.

use std::sync::Arc;

use chrono::{DateTime, Duration};
use futures::future::join_all;
use idemproof_models::{Fingerprint, IdempotencyKey, KeyRecord, KeyState, LeaseToken, Scope, Terms, Timestamp};
use idemproof_service::domain::agent::{Agent, AgentSpec, CreateEnvelope, NewAgent};
use idemproof_service::http::agents::CREATE_ENDPOINT;
use idemproof_service::store::memory::MemoryStore;
use idemproof_service::store::postgres::PgStore;
use idemproof_service::store::{ClaimOutcome, Fresh, Lease, Store, StoreError};
use serde_json::json;

use crate::reference::{self, Expected, LEASE, Model, ORGS, Op, Payload, RecordState, SCOPES, ScopeId, TTL, USERS};

/// The stores' lease and TTL: the model's, as durations.
pub fn terms() -> Terms {
    Terms {
        lease: Duration::microseconds(LEASE),
        ttl: Duration::microseconds(TTL),
    }
}

/// The instant `micros` after the origin of every case (microsecond
/// precision, as Postgres stores it).
fn at(micros: i64) -> Timestamp {
    DateTime::from_timestamp(1_900_000_000, 0).expect("valid origin") + Duration::microseconds(micros)
}

fn scope(id: ScopeId) -> Scope {
    let (organization_id, user_id, key) = reference::scope_parts(id);
    Scope {
        organization_id,
        user_id,
        endpoint: CREATE_ENDPOINT.to_owned(),
        key: IdempotencyKey::parse(key).expect("valid key"),
    }
}

fn spec(payload: Payload) -> AgentSpec {
    let name = match payload {
        Payload::A => "Alpha",
        Payload::B => "Beta",
    };
    CreateEnvelope::from_json(&json!({ "name": name }))
        .expect("valid payload")
        .spec
}

fn name(payload: Payload) -> String {
    spec(payload).name
}

fn fingerprint(payload: Payload) -> Fingerprint {
    spec(payload).fingerprint()
}

fn new_agent(org: i64, user: i64, key: Option<&str>, payload: Payload) -> NewAgent {
    NewAgent {
        organization_id: org,
        user_id: user,
        idempotency_key: key.map(str::to_owned),
        spec: spec(payload),
    }
}

/// Which store a run drives. The Postgres store is connected once per test
/// binary; each case empties its tables first.
#[derive(Clone)]
pub enum Backend {
    Memory,
    Postgres(PgStore),
}

/// The store of one case, with what was learnt from it so far.
pub struct Sut {
    store: Arc<dyn Store>,
    /// Raw access to the same store, to read records the trait hides.
    raw: Raw,
    /// The claims granted so far, in order (the model's lease numbers).
    leases: Vec<Lease>,
    /// The ids of the agents created so far, in order (the model's agent
    /// numbers): the model never predicts an id, only which agent.
    agent_ids: Vec<i64>,
}

enum Raw {
    Memory(Arc<MemoryStore>),
    Postgres(PgStore),
}

impl Sut {
    /// A store with nothing in it.
    pub async fn init(backend: &Backend) -> Self {
        let (store, raw): (Arc<dyn Store>, Raw) = match backend {
            Backend::Memory => {
                let memory = Arc::new(MemoryStore::new(terms()));
                (memory.clone(), Raw::Memory(memory))
            }
            Backend::Postgres(pg) => {
                sqlx::query("TRUNCATE agents, idempotency_keys RESTART IDENTITY")
                    .execute(pg.pool())
                    .await
                    .expect("empty the tables");
                (Arc::new(pg.clone()), Raw::Postgres(pg.clone()))
            }
        };
        Self {
            store,
            raw,
            leases: Vec::new(),
            agent_ids: Vec::new(),
        }
    }

    /// Runs `op` on the store and checks its answer against `model`, the
    /// model's state after `op`.
    pub async fn apply(&mut self, model: &Model, op: &Op) {
        let now = at(model.op_at);
        let expected = model.expected.clone().expect("the model predicted an outcome");
        match (op, expected) {
            (Op::Claim { scope: id, payload }, expected) => self.claim(*id, *payload, now, expected).await,
            (Op::CreateFresh { scope: id, payload }, expected) => {
                let scope = scope(*id);
                let (org, user, key) = reference::scope_parts(*id);
                let new = new_agent(org, user, Some(key), *payload);
                let got = self
                    .store
                    .create_agent_fresh(&scope, fingerprint(*payload), &new, now)
                    .await;
                match (got, expected) {
                    (Ok(Fresh::Created(agent)), Expected::Created { agent: n }) => self.created(n, agent, model),
                    (Ok(Fresh::Replayed(agent)), Expected::Replay { agent: n }) => {
                        assert_eq!(agent.id, self.agent_ids[n], "agent replayed by one step on {scope:?}");
                        assert_agent(&agent, &model.agents[n]);
                    }
                    (Ok(Fresh::Taken), Expected::HasRecord) => {}
                    (got, want) => panic!(
                        "one-step creation on {scope:?} with {payload:?}: store gave {got:?}, model expects {want:?}"
                    ),
                }
            }
            (Op::Complete { lease }, expected) => {
                let payload = model.leases[*lease].payload;
                let lease = self.leases[*lease].clone();
                let scope = &lease.scope;
                let new = new_agent(scope.organization_id, scope.user_id, Some(scope.key.as_str()), payload);
                match (self.store.create_agent(&new, Some(&lease), now).await, expected) {
                    (Ok(agent), Expected::Created { agent: n }) => self.created(n, agent, model),
                    (Err(StoreError::LeaseLost), Expected::LeaseLost) => {}
                    (got, want) => panic!("completing {lease:?}: store gave {got:?}, model expects {want:?}"),
                }
            }
            (Op::Fail { lease }, Expected::Released) => {
                self.store
                    .release(&self.leases[*lease])
                    .await
                    .expect("release succeeds");
            }
            (Op::Advance { .. } | Op::AdvanceTo { .. }, Expected::Nothing) => {}
            (Op::Reap { limit }, Expected::Reaped(n)) => {
                let reaped = self.store.reap_expired(now, *limit).await.expect("reap succeeds");
                assert_eq!(reaped, n, "records reaped with limit {limit}");
            }
            (Op::CreateWithoutKey { org, user, payload }, Expected::Created { agent: n }) => {
                let new = new_agent(ORGS[*org], USERS[*user], None, *payload);
                let agent = self.store.create_agent(&new, None, now).await.expect("create succeeds");
                self.created(n, agent, model);
            }
            (Op::Lookup { org, agent }, Expected::Found(want)) => {
                let id = self.agent_ids[*agent];
                let found = self.store.agent(ORGS[*org], id).await.expect("lookup succeeds");
                assert_eq!(
                    found.map(|a| a.id),
                    want.map(|n| self.agent_ids[n]),
                    "agent {id} looked up in organisation {}",
                    ORGS[*org]
                );
            }
            (op, want) => unreachable!("the model answered {op:?} with {want:?}"),
        }
    }

    async fn claim(&mut self, id: ScopeId, payload: Payload, now: Timestamp, expected: Expected) {
        let scope = scope(id);
        let token = LeaseToken::random();
        let got = self
            .store
            .claim(&scope, fingerprint(payload), token, now)
            .await
            .expect("claim succeeds");
        match (got, expected) {
            (ClaimOutcome::Acquired, Expected::Acquired { lease }) => {
                assert_eq!(self.leases.len(), lease, "lease numbering");
                self.leases.push(Lease { scope, token });
            }
            (ClaimOutcome::Replay(got), Expected::Replay { agent }) => {
                assert_eq!(got, self.agent_ids[agent], "replayed agent of {scope:?}")
            }
            (ClaimOutcome::Mismatch { original }, Expected::Mismatch { original: want }) => assert_eq!(
                original,
                want.map(|n| self.agent_ids[n]),
                "original agent of a mismatch on {scope:?}"
            ),
            (ClaimOutcome::InFlight { lease_expires_at, .. }, Expected::InFlight { lease_expires_at: want }) => {
                assert_eq!(lease_expires_at, at(want), "lease end reported for {scope:?}")
            }
            (got, want) => panic!(
                "claim of {scope:?} with {payload:?}: store gave {}, model expects {want:?}",
                describe(&got)
            ),
        }
    }

    /// Records the id of agent number `n` after checking it is new and as
    /// the model describes.
    fn created(&mut self, n: usize, agent: Agent, model: &Model) {
        assert_eq!(self.agent_ids.len(), n, "agent numbering");
        assert!(!self.agent_ids.contains(&agent.id), "agent id {} reused", agent.id);
        self.agent_ids.push(agent.id);
        assert_agent(&agent, &model.agents[n]);
    }

    /// Compares everything the store holds with the model.
    pub async fn check(&self, model: &Model) {
        let records = join_all((0..SCOPES).map(|id| self.record(id))).await;
        for (id, got) in records.into_iter().enumerate() {
            let want = model.records.get(&id);
            match (&got, want) {
                (None, None) => {}
                (Some(got), Some(want)) => self.assert_record(id, got, want),
                _ => panic!("record of {:?}: store holds {got:?}, model holds {want:?}", scope(id)),
            }
        }
        assert_eq!(self.record_count().await, model.records.len(), "number of key records");
        for org in ORGS {
            let listed = self.store.agents(org, None, 500).await.expect("list agents");
            let mut want: Vec<(i64, usize)> = model
                .agents
                .iter()
                .enumerate()
                .filter(|(_, a)| a.org == org)
                .map(|(n, _)| (self.agent_ids[n], n))
                .collect();
            want.sort_unstable();
            let ids: Vec<i64> = listed.iter().map(|a| a.id).collect();
            let want_ids: Vec<i64> = want.iter().map(|(id, _)| *id).collect();
            assert_eq!(ids, want_ids, "agents of organisation {org}");
            for (agent, (_, n)) in listed.iter().zip(&want) {
                assert_agent(agent, &model.agents[*n]);
            }
        }
    }

    fn assert_record(&self, id: ScopeId, got: &KeyRecord<i64>, want: &reference::Record) {
        let scope = scope(id);
        assert_eq!(got.fingerprint, fingerprint(want.payload), "fingerprint of {scope:?}");
        assert_eq!(got.created_at, at(want.created_at), "created_at of {scope:?}");
        assert_eq!(got.expires_at, at(want.expires_at), "expires_at of {scope:?}");
        match (&got.state, &want.state) {
            (
                KeyState::InProgress {
                    token,
                    lease_expires_at,
                },
                RecordState::InProgress {
                    lease,
                    lease_expires_at: want_end,
                },
            ) => {
                assert_eq!(*token, self.leases[*lease].token, "holder of {scope:?}");
                assert_eq!(*lease_expires_at, at(*want_end), "lease end of {scope:?}");
            }
            (KeyState::Completed { result }, RecordState::Completed { agent }) => {
                assert_eq!(*result, self.agent_ids[*agent], "agent of {scope:?}")
            }
            (got, want) => panic!("state of {scope:?}: store holds {got:?}, model holds {want:?}"),
        }
    }

    async fn record(&self, id: ScopeId) -> Option<KeyRecord<i64>> {
        match &self.raw {
            Raw::Memory(memory) => memory.claims().record(&scope(id)),
            Raw::Postgres(pg) => pg.record(&scope(id)).await.expect("read a key record"),
        }
    }

    async fn record_count(&self) -> usize {
        match &self.raw {
            Raw::Memory(memory) => memory.claims().len(),
            Raw::Postgres(pg) => {
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys")
                    .fetch_one(pg.pool())
                    .await
                    .expect("count key records");
                usize::try_from(n).expect("a small count")
            }
        }
    }
}

fn assert_agent(got: &Agent, want: &reference::Agent) {
    let context = format!("agent {}", got.id);
    assert_eq!(got.organization_id, want.org, "{context}: organisation");
    assert_eq!(got.user_id, want.user, "{context}: user");
    assert_eq!(got.name, name(want.payload), "{context}: payload");
    assert_eq!(got.idempotency_key.as_deref(), want.key, "{context}: key");
    assert_eq!(got.created_at, at(want.created_at), "{context}: created_at");
}

/// A claim outcome without the waiting channel, whose debug form is noise.
fn describe(outcome: &ClaimOutcome) -> String {
    match outcome {
        ClaimOutcome::InFlight { lease_expires_at, .. } => {
            format!("InFlight {{ lease_expires_at: {lease_expires_at} }}")
        }
        other => format!("{other:?}"),
    }
}
