//! The system under test: a real store (in-memory or Postgres) driven
//! through the service's `KeyStore` and the `Resources` store of one kind
//! of resource (agents, or deployments of one parent agent per tenant).
//! After each operation its answer is compared with the model's
//! prediction, and then everything the store holds (every scope's raw
//! record, the record count, every tenant's resources) is compared with
//! the model's state.
//!
//! Two processes: the operations go in turn to two sets of stores over
//! the same data (on Postgres, two `PgStore::stores`, each with its own
//! replay cache, as two replicas have), so what one process remembers
//! meets the other's reaps, releases and takeovers.

use std::sync::Arc;

use chrono::{DateTime, Duration};
use futures::future::join_all;
use idemproof_models::{Fingerprint, IdempotencyKey, KeyRecord, KeyState, LeaseToken, Scope, Terms, Timestamp};
use idemproof_service::domain::agent::{Agent, CreateEnvelope, NewAgent};
use idemproof_service::domain::deployment::{DeployEnvelope, Deployment, NewDeployment};
use idemproof_service::http::{agents, deployments};
use idemproof_service::store::memory::MemoryStore;
use idemproof_service::store::postgres::PgStore;
use idemproof_service::store::{
    ClaimOutcome, KeyStore, Lease, OneStep, PageBound, Resource, Resources, StoreError, Stores,
};
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

/// What the model's "agents" are in a trial: the kind of resource created
/// under its keys, and how a payload and a tenant become one.
pub trait Subject: Resource + std::fmt::Debug {
    /// The store of this resource.
    fn resources(stores: &Stores) -> Arc<dyn Resources<Self>>;
    /// Whether the resource is created under a parent agent.
    const NESTED: bool;
    /// The scope's endpoint part, under `parent` for a nested resource.
    fn endpoint(parent: Option<i64>) -> String;
    /// Fingerprint of the request with `payload`.
    fn fingerprint(payload: Payload) -> Fingerprint;
    /// What a request of `user` in `org` with `payload` creates.
    fn new(org: i64, user: i64, parent: Option<i64>, key: Option<&str>, payload: Payload) -> Self::New;
    /// (user, the payload's mark, key, created_at) as stored.
    fn facts(&self) -> (i64, String, Option<&str>, Timestamp);
    /// The mark of `payload` in a stored resource.
    fn mark(payload: Payload) -> String;
}

impl Subject for Agent {
    fn resources(stores: &Stores) -> Arc<dyn Resources<Self>> {
        stores.agents.clone()
    }
    const NESTED: bool = false;
    fn endpoint(_parent: Option<i64>) -> String {
        agents::CREATE_ENDPOINT.to_owned()
    }
    fn fingerprint(payload: Payload) -> Fingerprint {
        agent_spec(payload).spec.fingerprint()
    }
    fn new(org: i64, user: i64, _parent: Option<i64>, key: Option<&str>, payload: Payload) -> NewAgent {
        NewAgent {
            organization_id: org,
            user_id: user,
            idempotency_key: key.map(str::to_owned),
            spec: agent_spec(payload).spec,
        }
    }
    fn facts(&self) -> (i64, String, Option<&str>, Timestamp) {
        (
            self.user_id,
            self.name.clone(),
            self.idempotency_key.as_deref(),
            self.created_at,
        )
    }
    fn mark(payload: Payload) -> String {
        agent_spec(payload).spec.name
    }
}

fn agent_spec(payload: Payload) -> CreateEnvelope {
    let name = match payload {
        Payload::A => "Alpha",
        Payload::B => "Beta",
    };
    CreateEnvelope::from_json(&json!({ "name": name })).expect("valid payload")
}

impl Subject for Deployment {
    fn resources(stores: &Stores) -> Arc<dyn Resources<Self>> {
        stores.deployments.clone()
    }
    const NESTED: bool = true;
    fn endpoint(parent: Option<i64>) -> String {
        deployments::create_endpoint(parent.unwrap_or_default())
    }
    fn fingerprint(payload: Payload) -> Fingerprint {
        deployment_spec(payload).spec.fingerprint()
    }
    fn new(org: i64, user: i64, parent: Option<i64>, key: Option<&str>, payload: Payload) -> NewDeployment {
        NewDeployment {
            organization_id: org,
            agent_id: parent.unwrap_or_default(),
            user_id: user,
            idempotency_key: key.map(str::to_owned),
            spec: deployment_spec(payload).spec,
        }
    }
    fn facts(&self) -> (i64, String, Option<&str>, Timestamp) {
        (
            self.user_id,
            self.channel.clone(),
            self.idempotency_key.as_deref(),
            self.created_at,
        )
    }
    fn mark(payload: Payload) -> String {
        deployment_spec(payload).spec.channel
    }
}

fn deployment_spec(payload: Payload) -> DeployEnvelope {
    let channel = match payload {
        Payload::A => "web",
        Payload::B => "slack",
    };
    DeployEnvelope::from_json(&json!({ "channel": channel })).expect("valid payload")
}

/// Which store a run drives. The Postgres store is connected once per test
/// binary; each case empties its tables first.
#[derive(Clone)]
pub enum Backend {
    Memory,
    Postgres(PgStore),
}

/// The store of one case, with what was learnt from it so far.
pub struct Sut<R: Subject> {
    keys: Arc<dyn KeyStore>,
    resources: Arc<dyn Resources<R>>,
    /// The other process's stores; the two swap before each operation.
    other: (Arc<dyn KeyStore>, Arc<dyn Resources<R>>),
    /// Raw access to the same store, to read records the traits hide.
    raw: Raw,
    /// Per tenant (index into `ORGS`), the agent the resources are created
    /// under, for a nested resource.
    parents: [Option<i64>; ORGS.len()],
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

impl<R: Subject> Sut<R> {
    /// A store with nothing in it (but the parent agents of a nested
    /// resource, which the model does not see).
    pub async fn init(backend: &Backend) -> Self {
        let (stores, other, raw) = match backend {
            Backend::Memory => {
                let memory = Arc::new(MemoryStore::new(terms()));
                (memory.stores(), memory.stores(), Raw::Memory(memory))
            }
            Backend::Postgres(pg) => {
                sqlx::query("TRUNCATE agents, deployments, idempotency_keys RESTART IDENTITY")
                    .execute(pg.pool())
                    .await
                    .expect("empty the tables");
                (pg.stores(), pg.stores(), Raw::Postgres(pg.clone()))
            }
        };
        let mut parents = [None; ORGS.len()];
        if R::NESTED {
            for (parent, org) in parents.iter_mut().zip(ORGS) {
                let agent = stores
                    .agents
                    .insert(&Agent::new(org, USERS[0], None, None, Payload::A), at(-1))
                    .await
                    .expect("create a parent agent");
                *parent = Some(agent.id);
            }
        }
        Self {
            keys: stores.keys.clone(),
            resources: R::resources(&stores),
            other: (other.keys.clone(), R::resources(&other)),
            raw,
            parents,
            leases: Vec::new(),
            agent_ids: Vec::new(),
        }
    }

    fn parent(&self, org: i64) -> Option<i64> {
        ORGS.iter().position(|o| *o == org).and_then(|i| self.parents[i])
    }

    fn scope(&self, id: ScopeId) -> Scope {
        let (organization_id, user_id, key) = reference::scope_parts(id);
        Scope {
            organization_id,
            user_id,
            endpoint: R::endpoint(self.parent(organization_id)),
            key: IdempotencyKey::parse(key).expect("valid key"),
        }
    }

    fn new_resource(&self, org: i64, user: i64, key: Option<&str>, payload: Payload) -> R::New {
        R::new(org, user, self.parent(org), key, payload)
    }

    /// Runs `op` on the store and checks its answer against `model`, the
    /// model's state after `op`.
    pub async fn apply(&mut self, model: &Model, op: &Op) {
        std::mem::swap(&mut self.keys, &mut self.other.0);
        std::mem::swap(&mut self.resources, &mut self.other.1);
        let now = at(model.op_at);
        let expected = model.expected.clone().expect("the model predicted an outcome");
        match (op, expected) {
            (Op::Claim { scope: id, payload }, expected) => self.claim(*id, *payload, now, expected).await,
            (Op::OneStep { scope: id, payload }, expected) => {
                let scope = self.scope(*id);
                let (org, user, key) = reference::scope_parts(*id);
                let new = self.new_resource(org, user, Some(key), *payload);
                let got = self
                    .resources
                    .insert_one_step(&scope, R::fingerprint(*payload), &new, now)
                    .await;
                match (got, expected) {
                    (Ok(OneStep::Created(agent)), Expected::Created { agent: n }) => self.created(n, agent, model),
                    (Ok(OneStep::Replayed(agent)), Expected::Replay { agent: n }) => {
                        assert_eq!(agent.id(), self.agent_ids[n], "agent replayed by one step on {scope:?}");
                        assert_agent(&agent, &model.agents[n]);
                    }
                    (Ok(OneStep::Taken), Expected::HasRecord) => {}
                    (got, want) => panic!(
                        "one-step creation on {scope:?} with {payload:?}: store gave {got:?}, model expects {want:?}"
                    ),
                }
            }
            (Op::Complete { lease }, expected) => {
                let payload = model.leases[*lease].payload;
                let lease = self.leases[*lease].clone();
                let scope = &lease.scope;
                let new = self.new_resource(scope.organization_id, scope.user_id, Some(scope.key.as_str()), payload);
                match (self.resources.insert_completing(&lease, &new, now).await, expected) {
                    (Ok(agent), Expected::Created { agent: n }) => self.created(n, agent, model),
                    (Err(StoreError::LeaseLost), Expected::LeaseLost) => {}
                    (got, want) => panic!("completing {lease:?}: store gave {got:?}, model expects {want:?}"),
                }
            }
            (Op::Fail { lease }, Expected::Released) => {
                self.keys.release(&self.leases[*lease]).await.expect("release succeeds");
            }
            (Op::Advance { .. } | Op::AdvanceTo { .. }, Expected::Nothing) => {}
            (Op::Reap { limit }, Expected::Reaped(n)) => {
                let reaped = self.keys.reap_expired(now, *limit).await.expect("reap succeeds");
                assert_eq!(reaped, n, "records reaped with limit {limit}");
            }
            (Op::CreateWithoutKey { org, user, payload }, Expected::Created { agent: n }) => {
                let new = self.new_resource(ORGS[*org], USERS[*user], None, *payload);
                let agent = self.resources.insert(&new, now).await.expect("create succeeds");
                self.created(n, agent, model);
            }
            (Op::Lookup { org, agent }, Expected::Found(want)) => {
                let id = self.agent_ids[*agent];
                let found = self.resources.get(ORGS[*org], id).await.expect("lookup succeeds");
                assert_eq!(
                    found.map(|a| a.id()),
                    want.map(|n| self.agent_ids[n]),
                    "agent {id} looked up in organisation {}",
                    ORGS[*org]
                );
            }
            (op, want) => unreachable!("the model answered {op:?} with {want:?}"),
        }
    }

    async fn claim(&mut self, id: ScopeId, payload: Payload, now: Timestamp, expected: Expected) {
        let scope = self.scope(id);
        let token = LeaseToken::random();
        let got = self
            .keys
            .claim(&scope, R::fingerprint(payload), token, now)
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
    fn created(&mut self, n: usize, agent: R, model: &Model) {
        assert_eq!(self.agent_ids.len(), n, "agent numbering");
        assert!(!self.agent_ids.contains(&agent.id()), "agent id {} reused", agent.id());
        self.agent_ids.push(agent.id());
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
                _ => panic!(
                    "record of {:?}: store holds {got:?}, model holds {want:?}",
                    self.scope(id)
                ),
            }
        }
        assert_eq!(self.record_count().await, model.records.len(), "number of key records");
        for org in ORGS {
            let listed = self
                .resources
                .list(
                    org,
                    self.parent(org),
                    None,
                    PageBound {
                        rows: 500,
                        bytes: usize::MAX,
                    },
                )
                .await
                .expect("list agents");
            assert!(!listed.more, "one page holds every resource of organisation {org}");
            let mut want: Vec<(i64, usize)> = model
                .agents
                .iter()
                .enumerate()
                .filter(|(_, a)| a.org == org)
                .map(|(n, _)| (self.agent_ids[n], n))
                .collect();
            want.sort_unstable();
            let ids: Vec<i64> = listed.items.iter().map(|a| a.id()).collect();
            let want_ids: Vec<i64> = want.iter().map(|(id, _)| *id).collect();
            assert_eq!(ids, want_ids, "agents of organisation {org}");
            for (agent, (_, n)) in listed.items.iter().zip(&want) {
                assert_agent(agent, &model.agents[*n]);
            }
        }
    }

    fn assert_record(&self, id: ScopeId, got: &KeyRecord<i64>, want: &reference::Record) {
        let scope = self.scope(id);
        assert_eq!(
            got.fingerprint,
            R::fingerprint(want.payload),
            "fingerprint of {scope:?}"
        );
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
            Raw::Memory(memory) => memory.claims().record(&self.scope(id)),
            Raw::Postgres(pg) => pg.record(&self.scope(id)).await.expect("read a key record"),
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

fn assert_agent<R: Subject>(got: &R, want: &reference::Agent) {
    let context = format!("{got:?}");
    let (user, mark, key, created_at) = got.facts();
    assert_eq!(got.organization_id(), want.org, "{context}: organisation");
    assert_eq!(user, want.user, "{context}: user");
    assert_eq!(mark, R::mark(want.payload), "{context}: payload");
    assert_eq!(key, want.key, "{context}: key");
    assert_eq!(created_at, at(want.created_at), "{context}: created_at");
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
