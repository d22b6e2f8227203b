//! What happened: every request the harness sent, when it was sent, when
//! it returned and what it got, plus the faults injected. The checker reads
//! nothing else (and the final store view).

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::target::Fault;

/// What a client wants done: one submission of a form, retried as the
/// client's policy says.
#[derive(Debug, Clone, Serialize)]
pub struct Submission {
    /// Which simulated client (browser) sends it.
    pub client: usize,
    /// Tenant.
    pub org: i64,
    /// User.
    pub user: i64,
    /// The form's idempotency key, if the client sends one.
    pub key: Option<String>,
    /// The JSON body.
    pub payload: Value,
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
    /// Must end in 201: a new form session creates a new agent.
    Created,
    /// Must end in 422: the key was reused with another payload.
    Mismatch,
    /// Must end in 2xx naming the agent submission `n` got.
    SameAgentAs(usize),
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
    /// Which replica answered.
    pub replica: usize,
    /// Microseconds from the scenario start to the request being sent.
    pub invoke_us: u64,
    /// Microseconds from the scenario start to the answer (or timeout).
    pub return_us: u64,
    /// What came back.
    pub outcome: Outcome,
}

/// What an attempt got.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Outcome {
    /// An HTTP response.
    Response {
        /// Status code.
        status: u16,
        /// `Idempotent-Replayed: true` was present.
        replayed: bool,
        /// Problem `code`, on errors.
        code: Option<String>,
        /// The agent in a success envelope.
        agent: Option<Value>,
    },
    /// The client gave up waiting.
    Timeout,
    /// Connection refused, reset or closed.
    Transport {
        /// Short description.
        error: String,
    },
}

impl Outcome {
    /// The status code, if a response arrived.
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Response { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The agent id in a success response.
    pub fn agent_id(&self) -> Option<i64> {
        match self {
            Outcome::Response { agent: Some(a), .. } => a["id"].as_i64(),
            _ => None,
        }
    }

    /// Whether a client would retry this (timeouts, transport errors, 409
    /// and 5xx) rather than stop (2xx, other 4xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            Outcome::Response { status, .. } => *status == 409 || *status >= 500,
            Outcome::Timeout | Outcome::Transport { .. } => true,
        }
    }

    /// One-word description for tables and timelines.
    pub fn label(&self) -> String {
        match self {
            Outcome::Response {
                status,
                replayed,
                code,
                agent,
            } => {
                let mut s = status.to_string();
                if let Some(a) = agent {
                    s.push_str(&format!(" agent {}", a["id"]));
                    if let (Some(org), Some(user)) = (a["organization_id"].as_i64(), a["user_id"].as_i64()) {
                        s.push_str(&format!(" (org {org} user {user})"));
                    }
                }
                if *replayed {
                    s.push_str(" replayed");
                }
                if let Some(code) = code {
                    s.push_str(&format!(" {code}"));
                }
                s
            }
            Outcome::Timeout => "client timeout".to_owned(),
            Outcome::Transport { error } => error.clone(),
        }
    }
}

/// A fault injected at some time.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    /// Microseconds from the scenario start.
    pub at_us: u64,
    /// Which fault.
    pub fault: Fault,
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
    /// The scenario's start: every `*_us` time counts from here.
    #[serde(skip)]
    pub t0: Option<tokio::time::Instant>,
}

impl History {
    /// Events of one submission, in attempt order.
    pub fn attempts(&self, submission: usize) -> Vec<&Event> {
        let mut events: Vec<_> = self.events.iter().filter(|e| e.submission == submission).collect();
        events.sort_by_key(|e| (e.phase == Phase::Probe, e.attempt));
        events
    }
}

/// Microseconds in a duration, saturating.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
