//! The embedded store: keys in an [`idemproof_models::ClaimTable`], each
//! kind of resource in a [`Table`] of its own. Fast and dependency-free;
//! everything is lost when the process exits, so it suits development,
//! tests and single-process experiments, not deployments.
//!
//! Lock order: the claim table's lock is taken before a resource table's
//! (the one-step path and completion insert the resource under it).

mod table;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use idemproof_models::{Claim, ClaimTable, Fingerprint, LeaseToken, Scope, Terms, Timestamp};
use tokio::sync::oneshot;

use self::table::MemoryResources;
pub use self::table::Table;
use super::{ChangeSignal, ClaimOutcome, KeyStore, Lease, Resource, StoreError, Stores};

/// In-process store.
pub struct MemoryStore {
    /// Idempotency records of every endpoint.
    claims: Arc<ClaimTable<i64>>,
    /// One [`Table`] per resource type, made on first use, as a database
    /// holds one table per name: a new kind of resource needs no field here.
    tables: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new(terms: Terms) -> Self {
        Self {
            claims: Arc::new(ClaimTable::new(terms)),
            tables: Mutex::new(HashMap::new()),
        }
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
            .or_insert_with(|| Arc::new(Table::<R>::default()));
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
        })
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.claims.release(&lease.scope, lease.token);
        Ok(())
    }

    async fn reap_expired(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        Ok(self.claims.reap_expired(now, limit as usize) as u64)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
