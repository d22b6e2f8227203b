//! What a kind of resource must say about itself to be stored, and the
//! store every kind gets from it.

use async_trait::async_trait;
use idemproof_models::{Fingerprint, Scope, Timestamp};
use sqlx::postgres::{PgArguments, PgRow};

use super::{Lease, StoreError};

/// A Postgres statement returning rows of `R`, with arguments bound so far.
pub type PgQuery<'q, R> = sqlx::query::QueryAs<'q, sqlx::Postgres, R, PgArguments>;

/// A kind of resource created through the API: what both backends need to
/// insert and find it. Each backend's [`Resources`] store is generic over
/// it, so implementing this (one file per resource, next to this one) is
/// all a new endpoint writes to get its inserts composed with key writes.
///
/// Every resource table has an `id BIGINT` drawn from the table's own
/// sequence and an `organization_id`, leading its primary key.
pub trait Resource:
    Clone + Send + Sync + Unpin + 'static + serde::Serialize + for<'r> sqlx::FromRow<'r, PgRow>
{
    /// What creating one takes: validated, normalised, its tenant included.
    type New: Send + Sync + 'static;

    /// The Postgres table.
    const TABLE: &'static str;

    /// The columns an insert writes besides `id`, in [`Resource::bind`]'s
    /// order.
    const COLUMNS: &'static [&'static str];

    /// For a resource nested under another (a deployment under its agent),
    /// the column naming the parent, which listings filter by.
    const PARENT: Option<&'static str> = None;

    /// Binds the values of [`Resource::COLUMNS`] for `new`, created at `now`.
    fn bind<'q>(new: &'q Self::New, now: Timestamp, query: PgQuery<'q, Self>) -> PgQuery<'q, Self>;

    /// The row an insert of `new` at `now` stores under `id` (in memory).
    fn build(id: i64, new: &Self::New, now: Timestamp) -> Self;

    /// Server-assigned id.
    fn id(&self) -> i64;

    /// Owning tenant.
    fn organization_id(&self) -> i64;

    /// The parent's id, for a nested resource.
    fn parent_id(&self) -> Option<i64> {
        None
    }

    /// The key of the request that created it, stored for traceability
    /// (and the legacy design's lookup).
    fn idempotency_key(&self) -> Option<&str>;
}

/// What [`Resources::insert_one_step`] did.
#[derive(Debug, PartialEq)]
pub enum OneStep<R> {
    /// The key had no record: `R` was created and the key completed with it.
    Created(R),
    /// The key is completed, live, with this payload: the resource it
    /// points at, found without going through a claim. Nothing was written.
    Replayed(R),
    /// Any other record (in flight, another payload, dead, or one that
    /// appeared meanwhile): nothing was written, and the caller goes the
    /// long way through [`super::KeyStore::claim`], which decides on it.
    Taken,
}

/// How much one listing call may return: at most `rows` resources, and
/// no more than `bytes` of their JSON (with a separator each) unless the
/// first alone is larger, so a page always progresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageBound {
    /// Most resources.
    pub rows: u32,
    /// Most bytes of JSON, past the first resource.
    pub bytes: usize,
}

/// A listing as the store cut it.
#[derive(Debug, PartialEq)]
pub struct Listed<R> {
    /// The resources, by id.
    pub items: Vec<R>,
    /// Whether more resources follow the last one.
    pub more: bool,
}

/// One kind of resource on one backend, with the two writes that commit a
/// resource together with its key.
#[async_trait]
pub trait Resources<R: Resource>: Send + Sync + 'static {
    /// Inserts a resource created without a key.
    async fn insert(&self, new: &R::New, now: Timestamp) -> Result<R, StoreError>;

    /// The one-step path: if the key has no record at all, inserts the
    /// resource and records the key as completed with it, atomically. If
    /// the key is completed and [`idemproof_models::decide`] would replay
    /// it, answers [`OneStep::Replayed`] with the resource (of the scope's
    /// organisation only), so a replay skips the claim. Otherwise
    /// [`OneStep::Taken`], with nothing written.
    async fn insert_one_step(
        &self,
        scope: &Scope,
        fingerprint: Fingerprint,
        new: &R::New,
        now: Timestamp,
    ) -> Result<OneStep<R>, StoreError>;

    /// Inserts the resource and completes `lease`'s claim with it,
    /// atomically, and only if the lease still holds
    /// ([`StoreError::LeaseLost`] otherwise, with nothing written).
    async fn insert_completing(&self, lease: &Lease, new: &R::New, now: Timestamp) -> Result<R, StoreError>;

    /// The resource `id` if it belongs to `organization_id`.
    async fn get(&self, organization_id: i64, id: i64) -> Result<Option<R>, StoreError>;

    /// The resources of `organization_id` whose parent is `parent` (`None`
    /// for a resource that is not nested, the parent's id for one that is)
    /// with ids above `after`, by id, within `bound`: the backend stops
    /// reading at the bound (in rows and in bytes), so a page of large
    /// resources is never fetched whole to be cut afterwards. Each backend
    /// measures a resource's JSON its own way (memory exactly, Postgres as
    /// `row_to_json`), so callers that need an exact bound re-check it.
    async fn list(
        &self,
        organization_id: i64,
        parent: Option<i64>,
        after: Option<i64>,
        bound: PageBound,
    ) -> Result<Listed<R>, StoreError>;
}
