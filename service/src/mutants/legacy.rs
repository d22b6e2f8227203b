//! `legacy`: the design this project replaces. No key record at all: look
//! for a resource created with the key (through a non-unique index on the
//! key alone, in any tenant, whatever its payload) and insert one if none
//! is found. Two concurrent requests both miss and both insert.

use std::time::Duration;

use async_trait::async_trait;
use idemproof_models::{Fingerprint, Scope, Timestamp};

use super::Backend;
use crate::store::postgres::PgStore;
use crate::store::{Layer, OneStep, Resource, Resources, StoreError};

/// In memory, the gap between the lookup and its insert stands for the
/// database round trip that separated them in the original system.
const LOOKUP_TO_INSERT: Duration = Duration::from_millis(1);

/// The legacy design's index: on the key alone, not unique.
pub(super) async fn create_index(store: &PgStore) -> anyhow::Result<()> {
    for table in ["agents", "deployments"] {
        sqlx::query(&format!(
            "CREATE INDEX IF NOT EXISTS {table}_idempotency_key_legacy ON {table} (idempotency_key)"
        ))
        .execute(store.pool())
        .await?;
    }
    Ok(())
}

pub(super) struct Legacy {
    backend: Backend,
}

impl Legacy {
    pub(super) fn new(backend: Backend) -> Self {
        Self { backend }
    }

    /// The legacy lookup: the first resource created with this key, in any
    /// tenant.
    async fn with_key<R: Resource>(&self, key: &str) -> Result<Option<R>, StoreError> {
        match &self.backend {
            Backend::Memory(memory) => Ok(memory.table::<R>().find(|r| r.idempotency_key() == Some(key))),
            Backend::Postgres(pg) => {
                let sql = format!(
                    "SELECT * FROM {} WHERE idempotency_key = $1 ORDER BY id LIMIT 1",
                    R::TABLE
                );
                pg.fetch_optional(sqlx::query_as(&sql).bind(key)).await
            }
        }
    }
}

#[async_trait]
impl Layer for Legacy {
    /// Check, then insert: every request, keyed or not by a record.
    async fn insert_one_step<R: Resource>(
        &self,
        next: &dyn Resources<R>,
        scope: &Scope,
        _fingerprint: Fingerprint,
        new: &R::New,
        now: Timestamp,
    ) -> Result<OneStep<R>, StoreError> {
        if let Some(found) = self.with_key::<R>(scope.key.as_str()).await? {
            return Ok(OneStep::Replayed(found));
        }
        if let Backend::Memory(_) = self.backend {
            tokio::time::sleep(LOOKUP_TO_INSERT).await;
        }
        next.insert(new, now).await.map(OneStep::Created)
    }
}
