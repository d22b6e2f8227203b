-- Deployments, partitioned like their agents (same modulus, so an agent and
-- its deployments land in partitions of the same remainder).
CREATE TABLE deployments (
    id              BIGSERIAL,
    organization_id BIGINT      NOT NULL,
    agent_id        BIGINT      NOT NULL,
    user_id         BIGINT      NOT NULL,
    channel         TEXT        NOT NULL,
    settings        JSONB       NOT NULL DEFAULT '{}',
    idempotency_key TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    CONSTRAINT deployments_pkey PRIMARY KEY (organization_id, id),
    CONSTRAINT deployments_agent FOREIGN KEY (organization_id, agent_id) REFERENCES agents (organization_id, id)
) PARTITION BY HASH (organization_id);
CREATE TABLE deployments_p0 PARTITION OF deployments FOR VALUES WITH (MODULUS 4, REMAINDER 0);
CREATE TABLE deployments_p1 PARTITION OF deployments FOR VALUES WITH (MODULUS 4, REMAINDER 1);
CREATE TABLE deployments_p2 PARTITION OF deployments FOR VALUES WITH (MODULUS 4, REMAINDER 2);
CREATE TABLE deployments_p3 PARTITION OF deployments FOR VALUES WITH (MODULUS 4, REMAINDER 3);

CREATE INDEX deployments_agent_id ON deployments (organization_id, agent_id, id);
