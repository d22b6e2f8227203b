//! Storage, split by what is stored: idempotency keys in one [`KeyStore`],
//! each kind of resource (agents, deployments) in a [`Resources`] store.
//! Each has one implementation per backend, [`memory`] (the default,
//! embedded) and [`postgres`], and both follow
//! [`idemproof_models::decide`]; `tests/contract/` runs the same HTTP suite
//! against each.
//!
//! Keys and resources meet in exactly two writes, which must be atomic:
//! the one-step path (a key with no record gets its resource and its
//! completed record together) and the completion of a claim (the resource
//! is inserted if and only if the claim still holds). Both are methods of
//! [`Resources`], generic over the [`Resource`]: a resource describes its
//! own insert once (its table, columns and binds, and how to build it in
//! memory), and each backend composes that insert with the key's write
//! (one SQL statement on Postgres, one critical section in memory). A new
//! kind of resource therefore gets both atomic writes, on both backends,
//! by implementing [`Resource`] (see `agents.rs`, `deployments.rs`) and
//! taking a field in [`Stores`].
//!
//! Broken strategies and fault emulation change the stores' behaviour
//! through a [`Layer`], which overrides only the calls it changes.

mod agents;
mod deployments;
mod keys;
mod layer;
pub mod memory;
pub mod postgres;
mod resource;

use std::sync::Arc;
use std::time::Duration;

use idemproof_models::Timestamp;

pub use self::keys::{ChangeSignal, ClaimOutcome, KeyStore, Lease, PoolUse};
pub use self::layer::{Layer, Layered};
pub use self::resource::{Listed, OneStep, PageBound, PgQuery, Resource, Resources};
use crate::domain::agent::Agent;
use crate::domain::deployment::Deployment;
use crate::readiness::Probe;

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
    /// A bounded store (the in-memory one) has no room for what a new
    /// creation would add, even after removing dead keys; nothing was
    /// written (answered as 503 `store_full`).
    #[error("the store is full")]
    Full {
        /// When room may come, rounded up to whole seconds.
        retry_after_secs: u64,
    },
}

impl StoreError {
    /// Wraps any backend error.
    pub fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(e))
    }
}

/// Everything the service stores, one store per concern, all on one
/// backend.
#[derive(Clone)]
pub struct Stores {
    /// Idempotency keys of every endpoint.
    pub keys: Arc<dyn KeyStore>,
    /// Agents (`/api/v1/agents`).
    pub agents: Arc<dyn Resources<Agent>>,
    /// Deployments of agents (`/api/v1/agents/{id}/deployments`).
    pub deployments: Arc<dyn Resources<Deployment>>,
}

impl Stores {
    /// The same stores seen through `layer`: every call goes to the layer,
    /// which may change it or pass it on.
    pub fn layer<L: Layer>(self, layer: Arc<L>) -> Self {
        Self {
            keys: Arc::new(Layered::new(layer.clone(), self.keys)),
            agents: Arc::new(Layered::new(layer.clone(), self.agents)),
            deployments: Arc::new(Layered::new(layer, self.deployments)),
        }
    }

    /// Whether the backend can take a creation now ([`KeyStore::probe_write`]).
    pub async fn probe_write(&self, now: Timestamp, patience: Duration) -> Probe {
        self.keys.probe_write(now, patience).await
    }
}
