-- The schema of ../migrations/, declared PARTITION BY HASH (organization_id),
-- one file per migration there with the same version. Postgres refuses a
-- unique constraint on a partitioned table unless it contains the partition
-- key, which is the rule a distributed Postgres (Citus) enforces for its
-- distribution column: a database migrated from here proves that every
-- constraint the design relies on is tenant-local (docs/scaling.md).
--
-- Differences from the plain schema, all forced by partitioning: ids come
-- from a sequence (identity columns on partitioned tables need Postgres 17),
-- and primary keys lead with organization_id from the start.

CREATE TABLE agents (
    id              BIGSERIAL,
    organization_id BIGINT      NOT NULL,
    user_id         BIGINT      NOT NULL,
    name            TEXT        NOT NULL,
    description     TEXT,
    system_prompt   TEXT,
    config          JSONB       NOT NULL DEFAULT '{}',
    widget_config   JSONB       NOT NULL DEFAULT '{}',
    agent_type      TEXT        NOT NULL,
    industry        TEXT,
    auto_optimize   BOOLEAN     NOT NULL DEFAULT FALSE,
    idempotency_key TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    CONSTRAINT agents_pkey PRIMARY KEY (organization_id, id)
) PARTITION BY HASH (organization_id);
CREATE TABLE agents_p0 PARTITION OF agents FOR VALUES WITH (MODULUS 4, REMAINDER 0);
CREATE TABLE agents_p1 PARTITION OF agents FOR VALUES WITH (MODULUS 4, REMAINDER 1);
CREATE TABLE agents_p2 PARTITION OF agents FOR VALUES WITH (MODULUS 4, REMAINDER 2);
CREATE TABLE agents_p3 PARTITION OF agents FOR VALUES WITH (MODULUS 4, REMAINDER 3);

CREATE TABLE idempotency_keys (
    organization_id  BIGINT      NOT NULL,
    user_id          BIGINT      NOT NULL,
    endpoint         TEXT        NOT NULL,
    key              TEXT        NOT NULL,
    fingerprint      BYTEA       NOT NULL CHECK (length(fingerprint) = 32),
    lease_token      UUID,
    lease_expires_at TIMESTAMPTZ,
    resource_id      BIGINT,
    created_at       TIMESTAMPTZ NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL,
    CONSTRAINT idempotency_keys_scope PRIMARY KEY (organization_id, user_id, endpoint, key),
    CONSTRAINT idempotency_keys_state CHECK (
        (lease_token IS NULL) = (lease_expires_at IS NULL)
        AND (lease_token IS NULL) <> (resource_id IS NULL)
    )
) PARTITION BY HASH (organization_id);
CREATE TABLE idempotency_keys_p0 PARTITION OF idempotency_keys FOR VALUES WITH (MODULUS 4, REMAINDER 0);
CREATE TABLE idempotency_keys_p1 PARTITION OF idempotency_keys FOR VALUES WITH (MODULUS 4, REMAINDER 1);
CREATE TABLE idempotency_keys_p2 PARTITION OF idempotency_keys FOR VALUES WITH (MODULUS 4, REMAINDER 2);
CREATE TABLE idempotency_keys_p3 PARTITION OF idempotency_keys FOR VALUES WITH (MODULUS 4, REMAINDER 3);

CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);
