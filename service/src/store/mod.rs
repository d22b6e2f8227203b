//! Storage behind one trait, with one implementation per backend:
//! [`memory`] (the default, embedded) and [`postgres`]. Both follow
//! [`idemproof_models::decide`]; `tests/contract.rs` runs the same HTTP
//! suite against each.

pub mod memory;
pub mod postgres;

use async_trait::async_trait;
use idemproof_models::{Fingerprint, LeaseToken, Scope, Timestamp};
use tokio::sync::oneshot;

use crate::domain::agent::{Agent, NewAgent};

/// A claim this request holds on a scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The claimed scope.
    pub scope: Scope,
    /// Proves ownership on completion and release.
    pub token: LeaseToken,
}

/// What [`Store::claim`] found.
#[derive(Debug)]
pub enum ClaimOutcome {
    /// The caller now holds the key.
    Acquired,
    /// Completed with the same payload; the created resource's id.
    Replay(i64),
    /// Used with another payload; the original resource's id if it completed.
    Mismatch {
        /// The original resource, if any.
        original: Option<i64>,
    },
    /// Another request holds the key.
    InFlight {
        /// When that claim is considered abandoned.
        lease_expires_at: Timestamp,
        /// How to learn that it changed.
        change: ChangeSignal,
    },
}

/// What the one-step path ([`Store::create_agent_fresh`]) did.
#[derive(Debug, PartialEq)]
pub enum Fresh<T> {
    /// The key had no record: `T` was created and the key completed with it.
    Created(T),
    /// The key is completed, live, with this payload: the resource it
    /// points at, found without going through a claim. Nothing was written.
    Replayed(T),
    /// Any other record (in flight, another payload, dead, or one that
    /// appeared meanwhile): nothing was written, and the caller goes the
    /// long way through [`Store::claim`], which decides on it.
    Taken,
}

/// How a waiting request learns that an in-flight key changed.
#[derive(Debug)]
pub enum ChangeSignal {
    /// The store will fire this once the claim completes or goes away.
    Notified(oneshot::Receiver<()>),
    /// The store cannot notify (another process may own the key): poll.
    Poll,
}

/// Storage failures. None of them carries text that reaches a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or failed (answered as 503).
    #[error("store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The caller's claim was taken over after its lease expired, so its
    /// work was not committed.
    #[error("the idempotency claim was lost")]
    LeaseLost,
    /// A completed key points at a resource that does not exist.
    #[error("idempotency record {0} points at a missing resource")]
    Dangling(i64),
}

impl StoreError {
    /// Wraps any backend error.
    pub fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(e))
    }
}

/// Everything the service stores.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Claims `scope` for `token` at `now` if [`idemproof_models::decide`]
    /// says it is free, atomically with that decision.
    async fn claim(
        &self,
        scope: &Scope,
        fingerprint: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError>;

    /// Gives the claim up so a retry may take the key at once. A no-op if
    /// the claim is gone or completed.
    async fn release(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Deletes up to `limit` keys that are dead at `now`; returns how many.
    async fn reap_expired(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError>;

    /// The one-step path for a key: inserts the agent and records the key
    /// as completed with it, atomically, if the key has no record at all.
    /// If the key is completed and [`idemproof_models::decide`] would
    /// replay it, answers [`Fresh::Replayed`] with the agent (of
    /// `agent.organization_id` only), so a replay skips the claim's
    /// separate reads. Otherwise [`Fresh::Taken`], with nothing written.
    async fn create_agent_fresh(
        &self,
        scope: &Scope,
        fingerprint: Fingerprint,
        agent: &NewAgent,
        now: Timestamp,
    ) -> Result<Fresh<Agent>, StoreError>;

    /// Inserts an agent. With a lease, the insert and the completion of the
    /// claim commit together, and only if the lease still holds
    /// ([`StoreError::LeaseLost`] otherwise, with nothing written).
    async fn create_agent(&self, agent: &NewAgent, lease: Option<&Lease>, now: Timestamp) -> Result<Agent, StoreError>;

    /// The agent `id` if it belongs to `organization_id`.
    async fn agent(&self, organization_id: i64, id: i64) -> Result<Option<Agent>, StoreError>;

    /// The agent `id` in whichever organisation holds it. Never reachable
    /// over HTTP: for verification tools that audit the store.
    async fn agent_by_id(&self, id: i64) -> Result<Option<Agent>, StoreError>;

    /// Up to `limit` agents of `organization_id` with ids above `after`, by id.
    async fn agents(&self, organization_id: i64, after: Option<i64>, limit: u32) -> Result<Vec<Agent>, StoreError>;

    /// Whether the backend answers.
    async fn ping(&self) -> Result<(), StoreError>;
}
