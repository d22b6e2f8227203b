//! The SQL of the Postgres store, one constant per statement.

use idemproof_models::Timestamp;

use crate::domain::agent::Agent;

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

/// A row of [`SELECT_COMPLETED_KEY`]: an agent and the key record that
/// points at it.
#[derive(sqlx::FromRow)]
pub(super) struct CompletedRow {
    #[sqlx(flatten)]
    pub agent: Agent,
    pub key_fingerprint: Vec<u8>,
    pub key_created_at: Timestamp,
    pub key_expires_at: Timestamp,
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

/// Deletes a claim still held by the given token. Binds: org, user,
/// endpoint, key, token.
pub(super) const RELEASE: &str = "
DELETE FROM idempotency_keys
 WHERE organization_id = $1 AND user_id = $2 AND endpoint = $3 AND key = $4
   AND lease_token = $5";

/// Deletes up to $2 rows dead at $1, oldest expiry first, walking the
/// `expires_at` index; rows locked by a concurrent claim are skipped.
pub(super) const REAP: &str = "
DELETE FROM idempotency_keys
 WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM idempotency_keys
     WHERE expires_at <= $1
       AND (resource_id IS NOT NULL OR lease_expires_at <= $1)
     ORDER BY expires_at
     LIMIT $2
     FOR UPDATE SKIP LOCKED))";

/// Inserts an agent. Binds $1..$12: organization_id, user_id, name,
/// description, system_prompt, config, widget_config, agent_type,
/// industry, auto_optimize, idempotency_key, created_at.
pub(super) const INSERT_AGENT: &str = "
INSERT INTO agents
    (organization_id, user_id, name, description, system_prompt, config,
     widget_config, agent_type, industry, auto_optimize, idempotency_key, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
RETURNING *";

/// The one-step path for a new key: the CTE inserts the key already
/// completed, with a fresh agent id, and the agent is inserted with that id
/// only if the key was new. A concurrent insert of the same scope makes
/// this statement wait for it and then do nothing. No row back means the
/// key has a record and nothing was written (an agent id was drawn and
/// left unused). Binds $1..$12 as [`INSERT_AGENT`], then the scope (org,
/// user, endpoint, key), the fingerprint and expires_at.
pub const INSERT_AGENT_WITH_NEW_KEY: &str = "
WITH completed AS (
    INSERT INTO idempotency_keys
        (organization_id, user_id, endpoint, key, fingerprint, resource_id, created_at, expires_at)
    VALUES ($13, $14, $15, $16, $17, nextval(pg_get_serial_sequence('agents', 'id')), $12, $18)
    ON CONFLICT ON CONSTRAINT idempotency_keys_scope DO NOTHING
    RETURNING resource_id
)
INSERT INTO agents
    (id, organization_id, user_id, name, description, system_prompt, config,
     widget_config, agent_type, industry, auto_optimize, idempotency_key, created_at)
SELECT resource_id, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM completed
RETURNING *";

/// A completed key's record with the agent it points at, if that agent is
/// in organisation $5: a replay in one read. Binds: org, user, endpoint,
/// key, the agent's org.
pub(super) const SELECT_COMPLETED_KEY: &str = "
SELECT a.*, k.fingerprint AS key_fingerprint,
       k.created_at AS key_created_at, k.expires_at AS key_expires_at
  FROM idempotency_keys k
  JOIN agents a ON a.id = k.resource_id AND a.organization_id = $5
 WHERE k.organization_id = $1 AND k.user_id = $2 AND k.endpoint = $3 AND k.key = $4";

/// Completes a claim and inserts its agent in one statement: the CTE moves
/// the key from "in progress under token $17" to "completed" with a fresh
/// agent id, and the agent is inserted with that id only if the CTE
/// matched. No row back means the lease was lost and nothing was written.
/// Binds $1..$12 as [`INSERT_AGENT`], then the scope (org, user, endpoint,
/// key) and the token.
pub(super) const INSERT_AGENT_COMPLETING_CLAIM: &str = "
WITH completed AS (
    UPDATE idempotency_keys
       SET resource_id = nextval(pg_get_serial_sequence('agents', 'id')),
           lease_token = NULL,
           lease_expires_at = NULL
     WHERE organization_id = $13 AND user_id = $14 AND endpoint = $15 AND key = $16
       AND lease_token = $17
 RETURNING resource_id
)
INSERT INTO agents
    (id, organization_id, user_id, name, description, system_prompt, config,
     widget_config, agent_type, industry, auto_optimize, idempotency_key, created_at)
SELECT resource_id, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM completed
RETURNING *";

/// One agent of one organisation. Binds: org, id.
pub(super) const SELECT_AGENT: &str = "
SELECT * FROM agents WHERE organization_id = $1 AND id = $2";

/// One agent, whatever its organisation. Binds: id.
pub(super) const SELECT_AGENT_BY_ID: &str = "
SELECT * FROM agents WHERE id = $1";

/// A page of an organisation's agents by id. Binds: org, after, limit.
pub(super) const LIST_AGENTS: &str = "
SELECT * FROM agents WHERE organization_id = $1 AND id > $2 ORDER BY id LIMIT $3";
