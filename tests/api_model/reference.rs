//! The reference model of the agent API: what a client can send (small
//! pools of users, tenants, keys, payloads and defects) and, for each
//! request, the one response the documented contract allows. Written from
//! README.md and docs/semantics.md, not from the handlers: the checks run
//! in the documented order (authentication, organisation, membership,
//! content type, size, JSON syntax, body fields, key syntax), then the key
//! decides between creation, replay and `idempotency_key_reused`.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;
use proptest_state_machine::ReferenceStateMachine;

/// Tenants and users. Members belong to both organisations, outsiders to
/// neither.
pub const ORGS: [i64; 2] = [1, 2];
pub const USERS: [i64; 2] = [1, 2];
/// Key retention of the service under test, in seconds of its clock.
pub const TTL_SECS: i64 = 60;
/// Body size limit of the service under test.
pub const MAX_BODY_BYTES: usize = 2_048;

/// Raw key strings a client may send: two valid keys, one with a space and
/// an empty one.
pub const RAW_KEYS: [&str; 4] = ["k1", "k2", "a b", ""];
/// Indexes into [`RAW_KEYS`] of the valid keys.
const VALID_KEYS: usize = 2;

/// Bodies that validate, and which stored agent each one means. Several
/// spellings of the same agent (spacing, defaults, nulls, key order) share
/// a meaning, so they must replay each other.
pub const PAYLOADS: [(&str, Meaning); 6] = [
    (r#"{"name":"Alpha"}"#, Meaning::Alpha),
    (
        r#"{"name":"  Alpha ","config":null,"auto_optimize":false,"description":""}"#,
        Meaning::Alpha,
    ),
    (
        r#"{"widget_config":{},"agent_type":"assistant","name":"Alpha"}"#,
        Meaning::Alpha,
    ),
    (r#"{"name":"Alpha","config":{"m":1}}"#, Meaning::AlphaConfigured),
    (r#"{"name":"Beta"}"#, Meaning::Beta),
    (r#"{"name":"Alpha","auto_optimize":true}"#, Meaning::AlphaTuned),
];

/// The agent a valid payload describes, after normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    Alpha,
    AlphaConfigured,
    Beta,
    AlphaTuned,
}

/// The `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// A valid token of `USERS[i]`, member of every organisation.
    Member(usize),
    /// A valid token of `USERS[i]`, member of none of them.
    Outsider(usize),
    Missing,
    Garbage,
    Expired,
    ForeignSecret,
}

/// The `organization_id` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    Org(usize),
    Missing,
    NotANumber,
    Zero,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    Json,
    JsonCharset,
    VendorJson,
    Text,
    Missing,
}

/// `organization_id` in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyOrg {
    Absent,
    Same,
    Other,
    NotInt,
}

/// `idempotency_key` in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKey {
    Absent,
    Key(usize),
    NotString,
}

/// Bodies with one defect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    NotJson,
    NotObject,
    NameMissing,
    NameBlank,
    ConfigNotObject,
    Oversize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    Valid { payload: usize, org: BodyOrg, key: BodyKey },
    Malformed(Malformed),
}

/// The `Idempotency-Key` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderKey {
    Absent,
    /// An RFC 8941 sf-string of `RAW_KEYS[i]`.
    Quoted(usize),
    /// `RAW_KEYS[i]` as a bare token.
    Bare(usize),
    Unterminated,
    Twice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Create {
    pub auth: Auth,
    pub query: Query,
    pub content_type: ContentType,
    pub body: Body,
    pub key: HeaderKey,
}

/// Which agent a `GET /api/v1/agents/{id}` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The `n`-th agent created.
    Created(usize),
    NotNumeric,
    Unknown,
}

/// One step of a client session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Create(Create),
    Show {
        auth: Auth,
        query: Query,
        target: Target,
    },
    List {
        auth: Auth,
        query: Query,
    },
    /// The service's clock moves forward.
    Advance {
        secs: i64,
    },
    /// The clock moves to the end of the TTL of the key `scope` holds, or
    /// one second before it.
    AdvanceToExpiry {
        scope: usize,
        early: bool,
    },
}

/// The response the contract allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// 201 with the `n`-th agent, new.
    Created(usize),
    /// 200 with `Idempotent-Replayed: true` and the `n`-th agent unchanged.
    Replayed(usize),
    /// A problem response.
    Problem(u16, &'static str),
    /// 200 with the `n`-th agent.
    Shown(usize),
    /// 200 with these agents, by id.
    Listed(Vec<usize>),
    /// No request was sent.
    Nothing,
}

/// A created agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub org: i64,
    pub user: i64,
    pub key: Option<&'static str>,
    pub meaning: Meaning,
    /// Seconds after the start of the case.
    pub created_at: i64,
}

/// A key's record: who created what, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub meaning: Meaning,
    pub agent: usize,
    pub created_at: i64,
}

/// A key scope: organisation, user, valid key (indexes).
pub type Scope = (usize, usize, usize);

/// The eight scopes in a fixed order.
pub fn scopes() -> impl Iterator<Item = Scope> {
    (0..ORGS.len()).flat_map(|o| (0..USERS.len()).flat_map(move |u| (0..VALID_KEYS).map(move |k| (o, u, k))))
}

#[derive(Debug, Clone, Default)]
pub struct Api {
    /// Seconds since the start of the case.
    pub now: i64,
    pub agents: Vec<Agent>,
    /// Every key ever used successfully, live or expired.
    pub records: BTreeMap<Scope, Record>,
    pub expected: Option<Expected>,
}

fn problem(status: u16, code: &'static str) -> Expected {
    Expected::Problem(status, code)
}

/// The documented key syntax: 1 to 255 printable ASCII characters.
fn valid_key(raw: &str) -> bool {
    (1..=255).contains(&raw.len()) && raw.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

impl Api {
    /// Whether `scope` holds a key that still binds now.
    pub fn live(&self, scope: Scope) -> Option<&Record> {
        self.records.get(&scope).filter(|r| self.now < r.created_at + TTL_SECS)
    }

    /// The authenticated caller and whether they are a member.
    fn caller(auth: Auth) -> Option<(usize, bool)> {
        match auth {
            Auth::Member(u) => Some((u, true)),
            Auth::Outsider(u) => Some((u, false)),
            Auth::Missing | Auth::Garbage | Auth::Expired | Auth::ForeignSecret => None,
        }
    }

    /// Authentication, organisation and membership, shared by every route.
    fn admit(auth: Auth, query: Query) -> Result<(usize, usize), Expected> {
        let (user, member) = Self::caller(auth).ok_or(problem(401, "unauthorized"))?;
        let Query::Org(org) = query else {
            return Err(problem(400, "invalid_organization_id"));
        };
        if !member {
            return Err(problem(403, "forbidden"));
        }
        Ok((org, user))
    }

    fn create(&mut self, c: &Create) -> Expected {
        let (org, user) = match Self::admit(c.auth, c.query) {
            Ok(admitted) => admitted,
            Err(refused) => return refused,
        };
        if matches!(c.content_type, ContentType::Text | ContentType::Missing) {
            return problem(415, "unsupported_media_type");
        }
        let (payload, body_org, body_key) = match c.body {
            Body::Malformed(Malformed::Oversize) => return problem(413, "payload_too_large"),
            Body::Malformed(Malformed::NotJson) => return problem(400, "malformed_json"),
            Body::Malformed(_) => return problem(422, "validation_failed"),
            Body::Valid { payload, org, key } => (payload, org, key),
        };
        match (body_org, body_key) {
            (BodyOrg::NotInt, _) => return problem(400, "invalid_organization_id"),
            (_, BodyKey::NotString) => return problem(400, "invalid_idempotency_key"),
            (BodyOrg::Other, _) => return problem(400, "organization_mismatch"),
            _ => {}
        }
        let from_header = match c.key {
            HeaderKey::Unterminated | HeaderKey::Twice => return problem(400, "invalid_idempotency_key"),
            HeaderKey::Quoted(k) | HeaderKey::Bare(k) => Some(RAW_KEYS[k]),
            HeaderKey::Absent => None,
        };
        let from_body = match body_key {
            BodyKey::Key(k) => Some(RAW_KEYS[k]),
            BodyKey::Absent | BodyKey::NotString => None,
        };
        let key = match (from_header, from_body) {
            (Some(h), Some(b)) if h != b => return problem(400, "conflicting_idempotency_keys"),
            (Some(k), _) | (None, Some(k)) => Some(k),
            (None, None) => None,
        };
        let meaning = PAYLOADS[payload].1;
        let Some(key) = key else {
            return Expected::Created(self.new_agent(org, user, None, meaning));
        };
        if !valid_key(key) {
            return problem(400, "invalid_idempotency_key");
        }
        let k = RAW_KEYS.iter().position(|r| *r == key).expect("a pooled key");
        let scope = (org, user, k);
        match self.live(scope) {
            Some(record) if record.meaning == meaning => Expected::Replayed(record.agent),
            Some(_) => problem(422, "idempotency_key_reused"),
            None => {
                let agent = self.new_agent(org, user, Some(key), meaning);
                let created_at = self.now;
                self.records.insert(
                    scope,
                    Record {
                        meaning,
                        agent,
                        created_at,
                    },
                );
                Expected::Created(agent)
            }
        }
    }

    fn new_agent(&mut self, org: usize, user: usize, key: Option<&'static str>, meaning: Meaning) -> usize {
        self.agents.push(Agent {
            org: ORGS[org],
            user: USERS[user],
            key,
            meaning,
            created_at: self.now,
        });
        self.agents.len() - 1
    }

    fn show(&self, auth: Auth, query: Query, target: Target) -> Expected {
        let (org, _) = match Self::admit(auth, query) {
            Ok(admitted) => admitted,
            Err(refused) => return refused,
        };
        match target {
            Target::Created(n) if self.agents[n].org == ORGS[org] => Expected::Shown(n),
            Target::Created(_) | Target::NotNumeric | Target::Unknown => problem(404, "not_found"),
        }
    }

    fn list(&self, auth: Auth, query: Query) -> Expected {
        match Self::admit(auth, query) {
            Ok((org, _)) => Expected::Listed(
                (0..self.agents.len())
                    .filter(|n| self.agents[*n].org == ORGS[org])
                    .collect(),
            ),
            Err(refused) => refused,
        }
    }

    fn expiry_target(&self, scope: Scope, early: bool) -> Option<i64> {
        let record = self.records.get(&scope)?;
        let at = record.created_at + TTL_SECS - i64::from(early);
        (at > self.now).then_some(at)
    }
}

fn auth() -> impl Strategy<Value = Auth> {
    prop_oneof![
        12 => (0..USERS.len()).prop_map(Auth::Member),
        1 => (0..USERS.len()).prop_map(Auth::Outsider),
        1 => Just(Auth::Missing),
        1 => Just(Auth::Garbage),
        1 => Just(Auth::Expired),
        1 => Just(Auth::ForeignSecret),
    ]
}

fn query() -> impl Strategy<Value = Query> {
    prop_oneof![
        12 => (0..ORGS.len()).prop_map(Query::Org),
        1 => Just(Query::Missing),
        1 => Just(Query::NotANumber),
        1 => Just(Query::Zero),
    ]
}

fn raw_key() -> impl Strategy<Value = usize> {
    prop_oneof![8 => 0..VALID_KEYS, 1 => Just(2usize), 1 => Just(3usize)]
}

/// A creation request: mostly well-formed ones that differ only in who
/// sends which payload with which key (so keys get reused, replayed and
/// expire), and some with any combination of defects.
fn create() -> impl Strategy<Value = Create> {
    let payload = || prop_oneof![3 => 0..3usize, 2 => 3..PAYLOADS.len()];
    let clean = (0..USERS.len(), 0..ORGS.len(), payload(), 0..VALID_KEYS, any::<bool>()).prop_map(
        |(user, org, payload, key, in_header)| Create {
            auth: Auth::Member(user),
            query: Query::Org(org),
            content_type: ContentType::Json,
            body: Body::Valid {
                payload,
                org: BodyOrg::Absent,
                key: if in_header { BodyKey::Absent } else { BodyKey::Key(key) },
            },
            key: if in_header {
                HeaderKey::Quoted(key)
            } else {
                HeaderKey::Absent
            },
        },
    );
    prop_oneof![3 => clean, 2 => any_create()]
}

fn any_create() -> impl Strategy<Value = Create> {
    let content_type = prop_oneof![
        12 => Just(ContentType::Json),
        1 => Just(ContentType::JsonCharset),
        1 => Just(ContentType::VendorJson),
        1 => Just(ContentType::Text),
        1 => Just(ContentType::Missing),
    ];
    let valid = (
        prop_oneof![3 => 0..3usize, 2 => 3..PAYLOADS.len()],
        prop_oneof![
            12 => Just(BodyOrg::Absent),
            3 => Just(BodyOrg::Same),
            1 => Just(BodyOrg::Other),
            1 => Just(BodyOrg::NotInt),
        ],
        prop_oneof![
            12 => Just(BodyKey::Absent),
            4 => raw_key().prop_map(BodyKey::Key),
            1 => Just(BodyKey::NotString),
        ],
    )
        .prop_map(|(payload, org, key)| Body::Valid { payload, org, key });
    let malformed = select(vec![
        Malformed::NotJson,
        Malformed::NotObject,
        Malformed::NameMissing,
        Malformed::NameBlank,
        Malformed::ConfigNotObject,
        Malformed::Oversize,
    ])
    .prop_map(Body::Malformed);
    let key = prop_oneof![
        10 => raw_key().prop_map(HeaderKey::Quoted),
        3 => raw_key().prop_map(HeaderKey::Bare),
        3 => Just(HeaderKey::Absent),
        1 => Just(HeaderKey::Unterminated),
        1 => Just(HeaderKey::Twice),
    ];
    (
        auth(),
        query(),
        content_type,
        prop_oneof![12 => valid, 2 => malformed],
        key,
    )
        .prop_map(|(auth, query, content_type, body, key)| Create {
            auth,
            query,
            content_type,
            body,
            key,
        })
}

/// The reference state machine over [`Api`].
pub struct ApiModel;

impl ReferenceStateMachine for ApiModel {
    type State = Api;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Api> {
        Just(Api::default()).boxed()
    }

    fn transitions(state: &Api) -> BoxedStrategy<Step> {
        let target = if state.agents.is_empty() {
            prop_oneof![Just(Target::NotNumeric), Just(Target::Unknown)].boxed()
        } else {
            prop_oneof![
                6 => (0..state.agents.len()).prop_map(Target::Created),
                1 => Just(Target::NotNumeric),
                1 => Just(Target::Unknown),
            ]
            .boxed()
        };
        let mut steps: Vec<(u32, BoxedStrategy<Step>)> = vec![
            (14, create().prop_map(Step::Create).boxed()),
            (
                2,
                (auth(), query(), target)
                    .prop_map(|(auth, query, target)| Step::Show { auth, query, target })
                    .boxed(),
            ),
            (
                1,
                (auth(), query())
                    .prop_map(|(auth, query)| Step::List { auth, query })
                    .boxed(),
            ),
            (
                1,
                select(vec![1, TTL_SECS, 10 * TTL_SECS])
                    .prop_map(|secs| Step::Advance { secs })
                    .boxed(),
            ),
        ];
        let used: Vec<usize> = scopes()
            .enumerate()
            .filter(|(_, s)| state.expiry_target(*s, true).is_some())
            .map(|(i, _)| i)
            .collect();
        if !used.is_empty() {
            steps.push((
                2,
                (select(used), any::<bool>())
                    .prop_map(|(scope, early)| Step::AdvanceToExpiry { scope, early })
                    .boxed(),
            ));
        }
        Union::new_weighted(steps).boxed()
    }

    fn preconditions(state: &Api, step: &Step) -> bool {
        match step {
            Step::Show {
                target: Target::Created(n),
                ..
            } => *n < state.agents.len(),
            Step::AdvanceToExpiry { scope, early } => scopes()
                .nth(*scope)
                .and_then(|s| state.expiry_target(s, *early))
                .is_some(),
            _ => true,
        }
    }

    fn apply(mut state: Api, step: &Step) -> Api {
        let expected = match step {
            Step::Create(c) => state.create(c),
            Step::Show { auth, query, target } => state.show(*auth, *query, *target),
            Step::List { auth, query } => state.list(*auth, *query),
            Step::Advance { secs } => {
                state.now += secs;
                Expected::Nothing
            }
            Step::AdvanceToExpiry { scope, early } => {
                let scope = scopes().nth(*scope).expect("checked by the preconditions");
                state.now = state
                    .expiry_target(scope, *early)
                    .expect("checked by the preconditions");
                Expected::Nothing
            }
        };
        state.expected = Some(expected);
        state
    }
}
