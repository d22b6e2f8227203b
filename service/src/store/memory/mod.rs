//! The embedded store: keys in an [`idemproof_models::ClaimTable`], each
//! kind of resource in a [`Table`] of its own. Fast and dependency-free;
//! everything is lost when the process exits, so it suits development,
//! tests and single-process experiments, not deployments.
//!
//! Bounded (`MEMORY_MAX_KEYS`, `MEMORY_MAX_RESOURCE_BYTES`, see
//! [`MemoryLimits`]): at a bound new creations are refused with
//! [`StoreError::Full`] and nothing is written. Dead keys are removed to
//! make room before a new key is refused; a live key is never dropped,
//! and keys that have a record are answered as always (replays included).
//! Resources are never deleted, so a store whose resource budget is spent
//! stays full until the process restarts.
//!
//! Lock order: the claim table's lock is taken before a resource table's
//! (the one-step path and completion insert the resource under it).

mod budget;
mod table;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use idemproof_models::{Claim, ClaimTable, Fingerprint, LeaseToken, Scope, Terms, Timestamp};
use tokio::sync::oneshot;

use self::budget::Budget;
pub use self::budget::{MemoryLimits, RESOURCES_FULL_RETRY_SECS, ROW_OVERHEAD_BYTES, SMALLEST_ROW_BYTES};
use self::table::MemoryResources;
pub use self::table::Table;
use super::{ChangeSignal, ClaimOutcome, KeyStore, Lease, Resource, StoreError, Stores};
use crate::readiness::Probe;

/// In-process store.
pub struct MemoryStore {
    /// Idempotency records of every endpoint.
    claims: Arc<ClaimTable<i64>>,
    /// One [`Table`] per resource type, made on first use, as a database
    /// holds one table per name: a new kind of resource needs no field here.
    tables: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
    /// The bytes every table draws its rows from.
    budget: Arc<Budget>,
    /// Lease and TTL of the claims (kept for [`Self::terms`]).
    terms: Terms,
}

impl MemoryStore {
    /// An empty, unbounded store.
    pub fn new(terms: Terms) -> Self {
        Self::bounded(terms, MemoryLimits::UNBOUNDED)
    }

    /// An empty store within `limits`.
    pub fn bounded(terms: Terms, limits: MemoryLimits) -> Self {
        Self {
            claims: Arc::new(ClaimTable::bounded(terms, limits.max_keys)),
            tables: Mutex::new(HashMap::new()),
            budget: Arc::new(Budget::new(limits.max_resource_bytes)),
            terms,
        }
    }

    /// The lease and TTL the store's claims are written with.
    pub fn terms(&self) -> Terms {
        self.terms
    }

    /// Bytes of resources stored, as the budget counts them.
    pub fn resource_bytes(&self) -> usize {
        self.budget.used()
    }

    /// The idempotency records, for inspection by tests.
    pub fn claims(&self) -> &ClaimTable<i64> {
        &self.claims
    }

    /// The table holding every `R`, in every tenant: for tests and audits
    /// (and the broken strategies' unscoped lookups), never for requests.
    pub fn table<R: Resource>(&self) -> Arc<Table<R>> {
        let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let table = tables
            .entry(TypeId::of::<R>())
            .or_insert_with(|| Arc::new(Table::<R>::new(self.budget.clone())));
        // Entries are keyed by the type of their rows, so this cannot fail.
        Arc::clone(table)
            .downcast::<Table<R>>()
            .expect("the table of a resource type is stored under that type")
    }

    /// The stores of every kind of resource over this store.
    pub fn stores(self: &Arc<Self>) -> Stores {
        Stores {
            keys: self.clone(),
            agents: Arc::new(self.resources()),
            deployments: Arc::new(self.resources()),
        }
    }

    fn resources<R: Resource>(&self) -> MemoryResources<R> {
        MemoryResources::new(self.claims.clone(), self.table())
    }
}

#[async_trait]
impl KeyStore for MemoryStore {
    async fn claim(
        &self,
        scope: &Scope,
        fingerprint: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        let (tx, rx) = oneshot::channel();
        let waker = Box::new(move || {
            let _ = tx.send(());
        });
        Ok(match self.claims.claim(scope, fingerprint, token, now, Some(waker)) {
            Claim::Acquired => ClaimOutcome::Acquired,
            Claim::Replay(id) => ClaimOutcome::Replay(id),
            Claim::Mismatch { original } => ClaimOutcome::Mismatch { original },
            Claim::InFlight { lease_expires_at } => ClaimOutcome::InFlight {
                lease_expires_at,
                change: ChangeSignal::Notified(rx),
            },
            Claim::Full { room_at } => {
                let wait = room_at.map_or(RESOURCES_FULL_RETRY_SECS, |at| {
                    let ms = (at - now).num_milliseconds().max(0);
                    u64::try_from(ms).unwrap_or(0).div_ceil(1_000).max(1)
                });
                return Err(StoreError::Full { retry_after_secs: wait });
            }
        })
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.claims.release(&lease.scope, lease.token);
        Ok(())
    }

    async fn reap_expired(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        Ok(self.claims.reap_expired(now, limit as usize) as u64)
    }

    /// Room for one more key (after removing dead ones) and for a small
    /// resource; nothing else can stop a creation in memory.
    async fn probe_write(&self, now: Timestamp, _patience: Duration) -> Probe {
        if self.claims.has_room(now) && self.budget.remaining() >= SMALLEST_ROW_BYTES {
            Probe::Wrote
        } else {
            Probe::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_reports_the_terms_it_writes_claims_with() {
        let terms = Terms {
            lease: chrono::Duration::seconds(7),
            ttl: chrono::Duration::minutes(3),
        };
        assert_ne!(terms, Terms::default());
        assert_eq!(MemoryStore::new(terms).terms(), terms);
    }
}
