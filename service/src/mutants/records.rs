//! Direct access to key records, for the strategies whose bug is in how
//! they read and write them: a plain read, an unconditional write, a
//! write only if absent, none of them atomic with anything else. The
//! correct stores never do this (their claim decides and writes in one
//! statement or one critical section); these helpers are the "GET",
//! "SET" and "SET NX" of the libraries the strategies reproduce.

use std::convert::Infallible;

use idemproof_models::{Fingerprint, KeyRecord, KeyState, LeaseToken, Scope, Terms, Timestamp};

use super::Backend;
use crate::store::{Lease, Resource, Resources, StoreError};

/// Writes `record` over whatever is stored (`SET`) or only where nothing
/// is (`SET NX`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Write {
    Overwrite,
    IfAbsent,
}

impl Backend {
    /// The lease and TTL the backend writes claims with.
    pub(super) fn terms(&self) -> Terms {
        match self {
            Backend::Memory(memory) => memory.terms(),
            Backend::Postgres(pg) => pg.terms(),
        }
    }

    /// The record stored for `scope`, dead or alive.
    pub(super) async fn record(&self, scope: &Scope) -> Result<Option<KeyRecord<i64>>, StoreError> {
        match self {
            Backend::Memory(memory) => Ok(memory.claims().record(scope)),
            Backend::Postgres(pg) => pg.record(scope).await,
        }
    }

    /// Stores `record` for `scope` as `write` says.
    pub(super) async fn put(&self, scope: &Scope, record: &KeyRecord<i64>, write: Write) -> Result<(), StoreError> {
        match self {
            Backend::Memory(memory) => {
                let claims = memory.claims();
                if write == Write::IfAbsent && claims.record(scope).is_some() {
                    return Ok(());
                }
                // In memory a record is written as a claim, then completed.
                let token = record.token().unwrap_or_else(LeaseToken::random);
                claims.insert_claim(scope, record.fingerprint, token, record.created_at);
                if let KeyState::Completed { result } = record.state {
                    let _ = claims.complete(scope, token, || Ok::<_, Infallible>(result));
                }
                Ok(())
            }
            Backend::Postgres(pg) => {
                let (token, lease_expires_at, resource_id) = match record.state {
                    KeyState::InProgress {
                        token,
                        lease_expires_at,
                    } => (Some(token.0), Some(lease_expires_at), None),
                    KeyState::Completed { result } => (None, None, Some(result)),
                };
                let on_conflict = match write {
                    Write::Overwrite => {
                        "DO UPDATE SET fingerprint = EXCLUDED.fingerprint, lease_token = EXCLUDED.lease_token, \
                         lease_expires_at = EXCLUDED.lease_expires_at, resource_id = EXCLUDED.resource_id, \
                         created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at"
                    }
                    Write::IfAbsent => "DO NOTHING",
                };
                let sql = format!(
                    "INSERT INTO idempotency_keys (organization_id, user_id, endpoint, key, fingerprint, \
                     lease_token, lease_expires_at, resource_id, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT ON CONSTRAINT idempotency_keys_scope {on_conflict}"
                );
                pg.execute(
                    sqlx::query(&sql)
                        .bind(scope.organization_id)
                        .bind(scope.user_id)
                        .bind(&scope.endpoint)
                        .bind(scope.key.as_str())
                        .bind(&record.fingerprint.0[..])
                        .bind(token)
                        .bind(lease_expires_at)
                        .bind(resource_id)
                        .bind(record.created_at)
                        .bind(record.expires_at),
                )
                .await
            }
        }
    }
}

/// A completed record of `fingerprint` naming `id`, from `now`.
pub(super) fn completed(fingerprint: Fingerprint, id: i64, now: Timestamp, terms: Terms) -> KeyRecord<i64> {
    KeyRecord {
        fingerprint,
        state: KeyState::Completed { result: id },
        created_at: now,
        expires_at: now + terms.ttl,
    }
}

/// The completion of libraries with no fencing: the work's resource is
/// inserted whoever holds the key now, and the key's record is then set
/// to name it (keeping the stored fingerprint), over whatever is there.
/// The correct completion writes nothing once its claim was taken over.
pub(super) async fn complete_unfenced<R: Resource>(
    backend: &Backend,
    next: &dyn Resources<R>,
    lease: &Lease,
    new: &R::New,
    now: Timestamp,
) -> Result<R, StoreError> {
    match next.insert_completing(lease, new, now).await {
        Err(StoreError::LeaseLost) => {}
        done => return done,
    }
    let created = next.insert(new, now).await?;
    let fingerprint = backend
        .record(&lease.scope)
        .await?
        .map_or(Fingerprint([0; 32]), |r| r.fingerprint);
    let record = completed(fingerprint, created.id(), now, backend.terms());
    backend.put(&lease.scope, &record, Write::Overwrite).await?;
    Ok(created)
}
