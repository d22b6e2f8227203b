//! The SQL of the key store, one constant per statement. The statements
//! that also write a resource are composed per resource in
//! `statements.rs`.

use idemproof_models::Timestamp;

/// A raw `idempotency_keys` row.
#[derive(sqlx::FromRow)]
pub(super) struct KeyRow {
    pub fingerprint: Vec<u8>,
    pub lease_token: Option<uuid::Uuid>,
    pub lease_expires_at: Option<Timestamp>,
    pub resource_id: Option<i64>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Claims a scope: inserts an in-progress row, or overwrites the existing
/// row only if it is dead (an abandoned claim past its lease, or a
/// completed key past its TTL), mirroring `KeyRecord::is_dead`. Returns a
/// row if and only if the caller now holds the key. Binds: org, user,
/// endpoint, key, fingerprint, token, lease_expires_at, now, expires_at.
pub(super) const CLAIM: &str = "
INSERT INTO idempotency_keys AS k
    (organization_id, user_id, endpoint, key, fingerprint,
     lease_token, lease_expires_at, resource_id, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9)
ON CONFLICT ON CONSTRAINT idempotency_keys_scope DO UPDATE
SET fingerprint = EXCLUDED.fingerprint,
    lease_token = EXCLUDED.lease_token,
    lease_expires_at = EXCLUDED.lease_expires_at,
    resource_id = NULL,
    created_at = EXCLUDED.created_at,
    expires_at = EXCLUDED.expires_at
WHERE (k.resource_id IS NULL AND k.lease_expires_at <= EXCLUDED.created_at)
   OR (k.resource_id IS NOT NULL AND k.expires_at <= EXCLUDED.created_at)
RETURNING 1";

/// Reads one scope's row. Binds: org, user, endpoint, key.
pub(super) const SELECT_KEY: &str = "
SELECT fingerprint, lease_token, lease_expires_at, resource_id, created_at, expires_at
  FROM idempotency_keys
 WHERE organization_id = $1 AND user_id = $2 AND endpoint = $3 AND key = $4";

/// Deletes a claim still held by the given token, and if it did, notifies
/// the key's waiters (`notify.rs`) at commit. Binds: org, user, endpoint,
/// key, token, the key's notification tag.
pub(super) const RELEASE: &str = "
DELETE FROM idempotency_keys
 WHERE organization_id = $1 AND user_id = $2 AND endpoint = $3 AND key = $4
   AND lease_token = $5
RETURNING pg_notify('idemproof_keys', $6)";

/// Deletes up to $2 rows dead at $1, oldest expiry first, walking the
/// `expires_at` index; rows locked by a concurrent claim are skipped. Rows
/// are matched by their scope, not by `ctid`, which is only unique within
/// one partition of the partitioned schema.
pub(super) const REAP: &str = "
DELETE FROM idempotency_keys k
 USING (SELECT organization_id, user_id, endpoint, key FROM idempotency_keys
         WHERE expires_at <= $1
           AND (resource_id IS NOT NULL OR lease_expires_at <= $1)
         ORDER BY expires_at
         LIMIT $2
         FOR UPDATE SKIP LOCKED) dead
 WHERE (k.organization_id, k.user_id, k.endpoint, k.key)
     = (dead.organization_id, dead.user_id, dead.endpoint, dead.key)";

/// The readiness write probe: `TRUNCATE` gives the table a new, empty
/// file, so the insert must allocate a page, as a growing table does. Run
/// as one simple query, so one implicit transaction.
pub const PROBE_WRITE: &str = "TRUNCATE readiness_probe; INSERT INTO readiness_probe (probed_at) VALUES (now())";
