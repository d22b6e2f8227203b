//! `no-lease`: claims committed before the work and never expiring (its
//! backend's lease is a century, see `Strategy::terms`), and no one-step
//! path, so every creation holds a visible claim while it works and a
//! crashed owner blocks its key forever.
//!
//! `lease-equals-ttl` uses this layer too, with a lease as long as the
//! record's TTL (24 h by default): a crash wedges the key for a day.
//! Real bugs: express-idempotency #32, powertools-lambda #53.

use async_trait::async_trait;
use idemproof_models::{Fingerprint, Scope, Timestamp};

use crate::store::{Layer, OneStep, Resource, Resources, StoreError};

pub(super) struct NoLease;

#[async_trait]
impl Layer for NoLease {
    /// Every request goes through a claim.
    async fn insert_one_step<R: Resource>(
        &self,
        _next: &dyn Resources<R>,
        _scope: &Scope,
        _fingerprint: Fingerprint,
        _new: &R::New,
        _now: Timestamp,
    ) -> Result<OneStep<R>, StoreError> {
        Ok(OneStep::Taken)
    }
}
