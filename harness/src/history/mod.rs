//! What happened: every request the harness sent, when it was sent, when
//! it returned and what it got, plus the faults injected; and beside it
//! the final state read back afterwards ([`final_state`]). The checker
//! reads nothing else.

pub mod final_state;
mod outcome;

use std::time::Duration;

use serde::Serialize;

pub use self::outcome::Outcome;
use crate::client::Wording;
use crate::fault::FaultRecord;
use crate::form::Form;

/// What a client wants done: one submission of a form, retried as the
/// client's policy says.
#[derive(Debug, Clone, Serialize)]
pub struct Submission {
    /// Which simulated client (browser) sends it.
    pub client: usize,
    /// Tenant, an index into the contract's tenants.
    pub tenant: usize,
    /// User, an index into the contract's users.
    pub user: usize,
    /// The form's idempotency key, if the client sends one.
    pub key: Option<String>,
    /// What the user typed.
    pub form: Form,
    /// How its body is spelled.
    pub wording: Wording,
    /// First replica to send to; retries move on to the next one.
    pub replica: usize,
    /// Retry behaviour.
    #[serde(skip)]
    pub retry: RetryPolicy,
    /// What the final answer must be, beyond the general invariants.
    pub expect: Expect,
}

/// How a client retries.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all.
    pub attempts: u32,
    /// Client timeout of the first attempt; attempt `n` waits `n` times as
    /// long, so a retry eventually outlasts a slow server.
    pub timeout: Duration,
    /// First pause between attempts; doubles each time, up to `max_backoff`.
    pub backoff: Duration,
    /// Longest pause between attempts.
    pub max_backoff: Duration,
    /// No new attempt starts this long after the first one.
    pub give_up_after: Duration,
    /// Retries go back to the replica of the first attempt (a load
    /// balancer with session affinity) instead of moving on to the next.
    pub same_replica: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            timeout: Duration::from_secs(5),
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
            give_up_after: Duration::from_secs(10),
            same_replica: false,
        }
    }
}

/// A scenario-specific promise about a submission's final answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "of")]
pub enum Expect {
    /// Only the general invariants apply.
    Any,
    /// Must end in a success naming a resource no other key got: a new
    /// form session creates a new resource.
    Created,
    /// Must end refused as "key reused": the key was reused with another
    /// payload.
    Mismatch,
    /// Must end in a success naming the resource submission `n` got.
    SameAgentAs(usize),
    /// Must end refused as the client's own error (a 4xx the contract
    /// does not class as about the key): its body was malformed.
    Rejected,
}

/// Why the harness sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Part of the scenario's workload.
    Load,
    /// After the run: is the key still usable?
    Probe,
}

/// One HTTP attempt.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Index into [`History::submissions`].
    pub submission: usize,
    /// 1-based attempt number within the submission.
    pub attempt: u32,
    /// Load or probe.
    pub phase: Phase,
    /// Which replica it was sent to.
    pub replica: usize,
    /// Microseconds from the scenario start to the request being sent.
    pub invoke_us: u64,
    /// Microseconds from the scenario start to the answer (or timeout).
    pub return_us: u64,
    /// What the client got.
    pub outcome: Outcome,
    /// What the service answered when the client never got it (the fault
    /// proxy dropped or cut the answer): the request did happen.
    pub unseen: Option<Outcome>,
}

impl Event {
    /// The service's answers to this attempt: the one the client saw and
    /// the one the proxy kept from it.
    pub fn answers(&self) -> impl Iterator<Item = &Outcome> {
        std::iter::once(&self.outcome).chain(self.unseen.as_ref())
    }

    /// The resource a success named, seen by the client or not.
    pub fn named_id(&self) -> Option<&str> {
        self.answers().filter(|o| o.is_success()).find_map(Outcome::id)
    }
}

/// Everything recorded in one scenario run.
#[derive(Debug, Default, Serialize)]
pub struct History {
    /// What the clients wanted.
    pub submissions: Vec<Submission>,
    /// Every attempt, in completion order.
    pub events: Vec<Event>,
    /// Faults, in order.
    pub faults: Vec<FaultRecord>,
    /// When the last fault was removed (if any was injected).
    pub healed_at_us: Option<u64>,
    /// Labels of the contract's tenants, for reports.
    pub tenants: Vec<String>,
    /// Labels of the contract's users.
    pub users: Vec<String>,
    /// The scenario's start: every `*_us` time counts from here.
    #[serde(skip)]
    pub t0: Option<tokio::time::Instant>,
}

/// (tenant, user, key): the scope a key is unique in (indices into the
/// contract's principals).
pub type ScopeKey = (usize, usize, String);

/// A scope with its principals named, for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScopeLabel {
    /// Tenant, as the contract names it.
    pub tenant: String,
    /// User.
    pub user: String,
    /// The idempotency key.
    pub key: String,
}

impl History {
    /// Events of one submission, in attempt order.
    pub fn attempts(&self, submission: usize) -> Vec<&Event> {
        let mut events: Vec<_> = self.events.iter().filter(|e| e.submission == submission).collect();
        events.sort_by_key(|e| (e.phase == Phase::Probe, e.attempt));
        events
    }

    /// The scope of a submission, if it sent a key.
    pub fn scope_of(&self, submission: usize) -> Option<ScopeKey> {
        let s = &self.submissions[submission];
        s.key.clone().map(|k| (s.tenant, s.user, k))
    }

    /// The tenant's label.
    pub fn tenant(&self, i: usize) -> &str {
        self.tenants.get(i).map_or("?", String::as_str)
    }

    /// The user's label.
    pub fn user(&self, i: usize) -> &str {
        self.users.get(i).map_or("?", String::as_str)
    }

    /// A scope with its principals named.
    pub fn label(&self, scope: &ScopeKey) -> ScopeLabel {
        ScopeLabel {
            tenant: self.tenant(scope.0).to_owned(),
            user: self.user(scope.1).to_owned(),
            key: scope.2.clone(),
        }
    }
}

/// Microseconds in a duration, saturating.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
