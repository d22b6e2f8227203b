//! One kind of resource on Postgres, and its [`Resources`] store.

use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use idemproof_models::{Decision, Fingerprint, KeyRecord, KeyState, Scope, Timestamp, decide};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::replay_cache::ReplayCache;
use super::statements::Statements;
use super::{PgStore, corrupt};
use crate::store::{Lease, Listed, OneStep, PageBound, Resource, Resources, StoreError};

/// The [`Resources`] store of `R` on Postgres.
pub(super) struct PgResources<R> {
    store: PgStore,
    /// `R`'s statements, composed once.
    sql: Arc<Statements>,
    /// The completed keys seen here, replayed without a round trip.
    cache: ReplayCache<R>,
    rows: PhantomData<fn() -> R>,
}

impl<R: Resource> PgResources<R> {
    pub(super) fn new(store: PgStore) -> Self {
        Self {
            cache: ReplayCache::new(store.replay_cache_bytes),
            store,
            sql: Arc::new(Statements::of::<R>()),
            rows: PhantomData,
        }
    }
}

/// A row of [`Statements::replay`]: a resource and the key record that
/// points at it.
struct Completed<R> {
    resource: R,
    fingerprint: Vec<u8>,
    created_at: Timestamp,
    expires_at: Timestamp,
}

impl<'r, R: sqlx::FromRow<'r, PgRow>> sqlx::FromRow<'r, PgRow> for Completed<R> {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            resource: R::from_row(row)?,
            fingerprint: row.try_get("key_fingerprint")?,
            created_at: row.try_get("key_created_at")?,
            expires_at: row.try_get("key_expires_at")?,
        })
    }
}

/// A row of [`Statements::list`]: a resource and whether another follows.
struct ListedRow<R> {
    resource: R,
    more: bool,
}

impl<'r, R: sqlx::FromRow<'r, PgRow>> sqlx::FromRow<'r, PgRow> for ListedRow<R> {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            resource: R::from_row(row)?,
            more: row.try_get("page_more")?,
        })
    }
}

#[async_trait]
impl<R: Resource> Resources<R> for PgResources<R> {
    async fn insert(&self, new: &R::New, now: Timestamp) -> Result<R, StoreError> {
        self.store
            .write(|| {
                self.store
                    .conns
                    .fetch_one(R::bind(new, now, sqlx::query_as(&self.sql.insert)))
            })
            .await
    }

    async fn insert_one_step(
        &self,
        scope: &Scope,
        fingerprint: Fingerprint,
        new: &R::New,
        now: Timestamp,
    ) -> Result<OneStep<R>, StoreError> {
        if let Some(resource) = self.cache.replay(scope, &fingerprint, now) {
            return Ok(OneStep::Replayed(resource));
        }
        let expires_at = now + self.store.terms.ttl;
        let created = self
            .store
            .write(|| {
                self.store.conns.fetch_optional(
                    R::bind(new, now, sqlx::query_as(&self.sql.one_step))
                        .bind(scope.organization_id)
                        .bind(scope.user_id)
                        .bind(&scope.endpoint)
                        .bind(scope.key.as_str())
                        .bind(&fingerprint.0[..])
                        .bind(now)
                        .bind(expires_at),
                )
            })
            .await?;
        if let Some(created) = created {
            self.cache.completed(scope, fingerprint, &created, now, expires_at);
            return Ok(OneStep::Created(created));
        }
        // The key has a record. A completed one is replayed from one read
        // of the key and its resource; anything else goes through `claim`.
        let completed: Option<Completed<R>> = self
            .store
            .read(|| {
                self.store.conns.fetch_optional(
                    sqlx::query_as(&self.sql.replay)
                        .bind(scope.organization_id)
                        .bind(scope.user_id)
                        .bind(&scope.endpoint)
                        .bind(scope.key.as_str()),
                )
            })
            .await?;
        let Some(row) = completed else {
            return Ok(OneStep::Taken);
        };
        let record = KeyRecord {
            fingerprint: Fingerprint::from_slice(&row.fingerprint).ok_or_else(corrupt)?,
            state: KeyState::Completed {
                result: row.resource.id(),
            },
            created_at: row.created_at,
            expires_at: row.expires_at,
        };
        Ok(match decide(Some(&record), &fingerprint, now) {
            Decision::Replay(_) => {
                self.cache
                    .completed(scope, fingerprint, &row.resource, row.created_at, row.expires_at);
                OneStep::Replayed(row.resource)
            }
            _ => OneStep::Taken,
        })
    }

    async fn insert_completing(&self, lease: &Lease, new: &R::New, now: Timestamp) -> Result<R, StoreError> {
        self.store
            .write(|| {
                self.store.conns.fetch_optional(
                    R::bind(new, now, sqlx::query_as(&self.sql.completing))
                        .bind(lease.scope.organization_id)
                        .bind(lease.scope.user_id)
                        .bind(&lease.scope.endpoint)
                        .bind(lease.scope.key.as_str())
                        .bind(lease.token.0)
                        .bind(super::notify::tag(&lease.scope)),
                )
            })
            .await?
            .ok_or(StoreError::LeaseLost)
    }

    async fn get(&self, organization_id: i64, id: i64) -> Result<Option<R>, StoreError> {
        self.store
            .read(|| {
                self.store
                    .conns
                    .fetch_optional(sqlx::query_as(&self.sql.get).bind(organization_id).bind(id))
            })
            .await
    }

    async fn list(
        &self,
        organization_id: i64,
        parent: Option<i64>,
        after: Option<i64>,
        bound: PageBound,
    ) -> Result<Listed<R>, StoreError> {
        let rows: Vec<ListedRow<R>> = self
            .store
            .read(|| {
                let query = sqlx::query_as(&self.sql.list)
                    .bind(organization_id)
                    .bind(after.unwrap_or(i64::MIN))
                    .bind(i64::from(bound.rows))
                    .bind(i64::try_from(bound.bytes).unwrap_or(i64::MAX));
                self.store.conns.fetch_all(match R::PARENT {
                    Some(_) => query.bind(parent),
                    None => query,
                })
            })
            .await?;
        let more = rows.last().is_some_and(|row| row.more);
        Ok(Listed {
            items: rows.into_iter().map(|row| row.resource).collect(),
            more,
        })
    }
}
