//! The reference model of an idempotency store: plain sequential data and
//! the documented rules, written out case by case without calling the
//! service's own `decide`, so that a shared mistake cannot hide. It is the
//! `ReferenceStateMachine` that generates operations and predicts what the
//! real stores must answer and hold after each one.
//!
//! Time is part of the state: every operation happens at `now`, then the
//! clock ticks one microsecond, so no two claims share an instant and the
//! order in which a batched reap picks equal expiries never matters
//! (Postgres breaks such ties arbitrarily). `Advance` moves the clock by
//! fixed steps; `AdvanceTo` moves it to exactly the lease or TTL end of a
//! scope's stored record, or one microsecond before it. The latter is
//! resolved when applied, so the shrinker can delete unrelated operations
//! without losing the boundary.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;
use proptest_state_machine::ReferenceStateMachine;

/// Lease and TTL of the stores under test, in microseconds.
pub const LEASE: i64 = 30_000_000;
pub const TTL: i64 = 100_000_000;
/// Clock step after every operation other than `Advance`.
const TICK: i64 = 1;

/// Tenants, users and key strings. Every scope shares its key string with
/// scopes of the other tenant and the other user, so any leak across
/// scope parts shows up as a wrong answer.
pub const ORGS: [i64; 2] = [1, 2];
pub const USERS: [i64; 2] = [1, 2];
pub const KEYS: [&str; 2] = ["k1", "k2"];
/// Number of scopes: every (org, user, key).
pub const SCOPES: usize = ORGS.len() * USERS.len() * KEYS.len();

/// One of [`SCOPES`] scopes.
pub type ScopeId = usize;

/// (organisation, user, key) of a scope.
pub fn scope_parts(id: ScopeId) -> (i64, i64, &'static str) {
    (ORGS[id / 4], USERS[(id / 2) % 2], KEYS[id % 2])
}

/// The two request payloads (fingerprints) the operations use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    A,
    B,
}

/// One operation on the store.
#[derive(Debug, Clone)]
pub enum Op {
    /// A request with a key claims its scope.
    Claim { scope: ScopeId, payload: Payload },
    /// A request with a key takes the one-step path: it creates its agent
    /// and completes the key together, if the scope has no record at all.
    OneStep { scope: ScopeId, payload: Payload },
    /// The owner of the `lease`-th granted claim creates its agent.
    Complete { lease: usize },
    /// The owner of the `lease`-th granted claim failed and releases it.
    Fail { lease: usize },
    /// Time passes.
    Advance { micros: i64 },
    /// Time passes up to the `end` of `scope`'s record, or to one
    /// microsecond before it when `early`.
    AdvanceTo { scope: ScopeId, end: End, early: bool },
    /// The reaper deletes up to `limit` dead records.
    Reap { limit: u32 },
    /// A request without a key creates an agent.
    CreateWithoutKey { org: usize, user: usize, payload: Payload },
    /// Agent number `agent` (in creation order) is looked up in `org`.
    Lookup { org: usize, agent: usize },
}

/// Which end of a record an `AdvanceTo` aims at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Lease,
    Ttl,
}

/// A stored key record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub payload: Payload,
    pub created_at: i64,
    pub expires_at: i64,
    pub state: RecordState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordState {
    /// Held by the `lease`-th granted claim.
    InProgress { lease: usize, lease_expires_at: i64 },
    /// Completed with agent number `agent`.
    Completed { agent: usize },
}

/// A granted claim, whether or not it still holds its key.
#[derive(Debug, Clone)]
pub struct Lease {
    pub scope: ScopeId,
    pub payload: Payload,
}

/// A created agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub org: i64,
    pub user: i64,
    pub key: Option<&'static str>,
    pub payload: Payload,
    pub created_at: i64,
}

/// What the last operation must have returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    Acquired { lease: usize },
    Replay { agent: usize },
    Mismatch { original: Option<usize> },
    InFlight { lease_expires_at: i64 },
    Created { agent: usize },
    LeaseLost,
    // The one-step path found a record it does not replay and wrote nothing.
    HasRecord,
    Released,
    Reaped(u64),
    Found(Option<usize>),
    Nothing,
}

/// The whole model.
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// Microseconds since the test's origin.
    pub now: i64,
    /// When the last operation ran (`now` before its tick).
    pub op_at: i64,
    pub records: BTreeMap<ScopeId, Record>,
    pub leases: Vec<Lease>,
    pub agents: Vec<Agent>,
    pub expected: Option<Expected>,
}

impl Record {
    /// Whether the record is the unfinished claim of the `lease`-th grant.
    pub fn holds_lease(&self, lease: usize) -> bool {
        matches!(self.state, RecordState::InProgress { lease: l, .. } if l == lease)
    }

    /// Whether the record still holds its key at `now`: an unfinished
    /// claim until its lease ends, a completed key until its TTL ends.
    pub fn holds(&self, now: i64) -> bool {
        match self.state {
            RecordState::InProgress { lease_expires_at, .. } => now < lease_expires_at,
            RecordState::Completed { .. } => now < self.expires_at,
        }
    }
}

impl Model {
    fn claim(&mut self, scope: ScopeId, payload: Payload) -> Expected {
        let now = self.now;
        if let Some(record) = self.records.get(&scope).filter(|r| r.holds(now)) {
            let agent = match record.state {
                RecordState::Completed { agent } => Some(agent),
                RecordState::InProgress { .. } => None,
            };
            return match (record.payload == payload, agent, &record.state) {
                (false, original, _) => Expected::Mismatch { original },
                (true, Some(agent), _) => Expected::Replay { agent },
                (true, None, RecordState::InProgress { lease_expires_at, .. }) => Expected::InFlight {
                    lease_expires_at: *lease_expires_at,
                },
                (true, None, RecordState::Completed { .. }) => unreachable!("completed has an agent"),
            };
        }
        // Absent, or dead (abandoned or expired): a fresh claim replaces it.
        let lease = self.leases.len();
        self.leases.push(Lease { scope, payload });
        self.records.insert(
            scope,
            Record {
                payload,
                created_at: now,
                expires_at: now + TTL,
                state: RecordState::InProgress {
                    lease,
                    lease_expires_at: now + LEASE,
                },
            },
        );
        Expected::Acquired { lease }
    }

    /// The one-step path: only a scope with no record at all creates, and
    /// only a live completed one with the same payload replays. A
    /// dead record (abandoned or expired) is not "no record": until it is
    /// reaped or taken over by a claim, the request must go the long way.
    fn one_step(&mut self, scope: ScopeId, payload: Payload) -> Expected {
        if let Some(record) = self.records.get(&scope) {
            // A live completed key with this payload is replayed at once;
            // anything else is left to the claim.
            return match record.state {
                RecordState::Completed { agent } if record.payload == payload && record.holds(self.now) => {
                    Expected::Replay { agent }
                }
                _ => Expected::HasRecord,
            };
        }
        let (org, user, key) = scope_parts(scope);
        let agent = self.create(org, user, Some(key), payload);
        self.records.insert(
            scope,
            Record {
                payload,
                created_at: self.now,
                expires_at: self.now + TTL,
                state: RecordState::Completed { agent },
            },
        );
        Expected::Created { agent }
    }

    /// Whether the `lease`-th claim still holds its scope's record (a lease
    /// past its end still counts until someone takes the key over).
    fn owns(&self, lease: usize) -> bool {
        let scope = self.leases[lease].scope;
        self.records.get(&scope).is_some_and(|r| r.holds_lease(lease))
    }

    fn complete(&mut self, lease: usize) -> Expected {
        if !self.owns(lease) {
            return Expected::LeaseLost;
        }
        let Lease { scope, payload } = self.leases[lease].clone();
        let (org, user, key) = scope_parts(scope);
        let agent = self.create(org, user, Some(key), payload);
        if let Some(record) = self.records.get_mut(&scope) {
            record.state = RecordState::Completed { agent };
        }
        Expected::Created { agent }
    }

    fn fail(&mut self, lease: usize) -> Expected {
        if self.owns(lease) {
            self.records.remove(&self.leases[lease].scope);
        }
        Expected::Released
    }

    fn create(&mut self, org: i64, user: i64, key: Option<&'static str>, payload: Payload) -> usize {
        self.agents.push(Agent {
            org,
            user,
            key,
            payload,
            created_at: self.now,
        });
        self.agents.len() - 1
    }

    fn reap(&mut self, limit: u32) -> Expected {
        let now = self.now;
        let mut due: Vec<(i64, ScopeId)> = self
            .records
            .iter()
            .filter(|(_, r)| r.expires_at <= now && !r.holds(now))
            .map(|(scope, r)| (r.expires_at, *scope))
            .collect();
        due.sort_unstable();
        due.truncate(limit as usize);
        for (_, scope) in &due {
            self.records.remove(scope);
        }
        Expected::Reaped(due.len() as u64)
    }

    /// The instant `AdvanceTo { scope, end, early }` moves the clock to, if
    /// that scope holds a record with such an end still in the future.
    fn advance_target(&self, scope: ScopeId, end: End, early: bool) -> Option<i64> {
        let record = self.records.get(&scope)?;
        let at = match (end, &record.state) {
            (End::Ttl, _) => record.expires_at,
            (End::Lease, RecordState::InProgress { lease_expires_at, .. }) => *lease_expires_at,
            (End::Lease, RecordState::Completed { .. }) => return None,
        } - i64::from(early);
        (at > self.now).then_some(at)
    }
}

/// The reference state machine over [`Model`].
pub struct StoreModel;

impl ReferenceStateMachine for StoreModel {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model::default()).boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Op> {
        // Mostly payload A, so that keys are reused with the same payload
        // (replays, waits) more often than with another one (mismatches).
        let payload = || prop_oneof![3 => Just(Payload::A), 1 => Just(Payload::B)];
        let mut ops: Vec<(u32, BoxedStrategy<Op>)> = vec![
            (
                8,
                (0..SCOPES, payload())
                    .prop_map(|(scope, payload)| Op::Claim { scope, payload })
                    .boxed(),
            ),
            // The service tries the one-step path before every first claim;
            // half as often as claims keeps in-flight keys common.
            (
                4,
                (0..SCOPES, payload())
                    .prop_map(|(scope, payload)| Op::OneStep { scope, payload })
                    .boxed(),
            ),
            (
                1,
                select(vec![1_000_000, LEASE, TTL, 10 * TTL])
                    .prop_map(|micros| Op::Advance { micros })
                    .boxed(),
            ),
            (
                1,
                select(vec![1u32, 2, 1_000])
                    .prop_map(|limit| Op::Reap { limit })
                    .boxed(),
            ),
            (
                1,
                (0..ORGS.len(), 0..USERS.len(), payload())
                    .prop_map(|(org, user, payload)| Op::CreateWithoutKey { org, user, payload })
                    .boxed(),
            ),
        ];
        if !state.leases.is_empty() {
            let n = state.leases.len();
            // Recent claims are the ones most likely still held.
            let lease = move || prop_oneof![3 => Just(n - 1), 1 => 0..n];
            ops.push((5, lease().prop_map(|lease| Op::Complete { lease }).boxed()));
            ops.push((2, lease().prop_map(|lease| Op::Fail { lease }).boxed()));
        }
        let ends: Vec<(ScopeId, End)> = state
            .records
            .keys()
            .flat_map(|scope| [(*scope, End::Lease), (*scope, End::Ttl)])
            .filter(|(scope, end)| state.advance_target(*scope, *end, true).is_some())
            .collect();
        if !ends.is_empty() {
            ops.push((
                3,
                (select(ends), any::<bool>())
                    .prop_map(|((scope, end), early)| Op::AdvanceTo { scope, end, early })
                    .boxed(),
            ));
        }
        if !state.agents.is_empty() {
            ops.push((
                1,
                (0..ORGS.len(), 0..state.agents.len())
                    .prop_map(|(org, agent)| Op::Lookup { org, agent })
                    .boxed(),
            ));
        }
        Union::new_weighted(ops).boxed()
    }

    fn preconditions(state: &Model, op: &Op) -> bool {
        // Shrinking deletes earlier operations, so references to claims
        // and agents must still point at existing ones.
        match op {
            Op::Complete { lease } | Op::Fail { lease } => *lease < state.leases.len(),
            Op::Lookup { agent, .. } => *agent < state.agents.len(),
            Op::Advance { micros } => *micros > 0,
            Op::AdvanceTo { scope, end, early } => state.advance_target(*scope, *end, *early).is_some(),
            Op::Claim { .. } | Op::OneStep { .. } | Op::Reap { .. } | Op::CreateWithoutKey { .. } => true,
        }
    }

    fn apply(mut state: Model, op: &Op) -> Model {
        state.op_at = state.now;
        let expected = match *op {
            Op::Claim { scope, payload } => state.claim(scope, payload),
            Op::OneStep { scope, payload } => state.one_step(scope, payload),
            Op::Complete { lease } => state.complete(lease),
            Op::Fail { lease } => state.fail(lease),
            Op::Advance { micros } => {
                state.now += micros;
                state.expected = Some(Expected::Nothing);
                return state;
            }
            Op::AdvanceTo { scope, end, early } => {
                state.now = state
                    .advance_target(scope, end, early)
                    .expect("checked by the preconditions");
                state.expected = Some(Expected::Nothing);
                return state;
            }
            Op::Reap { limit } => state.reap(limit),
            Op::CreateWithoutKey { org, user, payload } => {
                let agent = state.create(ORGS[org], USERS[user], None, payload);
                Expected::Created { agent }
            }
            Op::Lookup { org, agent } => Expected::Found((state.agents[agent].org == ORGS[org]).then_some(agent)),
        };
        state.expected = Some(expected);
        state.now += TICK;
        state
    }
}
