-- The readiness probe's table: written by the service's write probe every
-- READINESS_INTERVAL and read by nobody (no tenant data, no client sees
-- it). Each probe truncates it and inserts one row in one transaction:
-- TRUNCATE gives the table a new, empty file, so the insert must allocate
-- a fresh page, the way a creation does whenever a table or index grows.
-- A read-only server, a standby and a full data disk therefore all fail
-- the probe, as they fail creations. Not tenant data, so not partitioned
-- (on a distributed Postgres: a table local to the coordinator).
CREATE TABLE readiness_probe (
    probed_at TIMESTAMPTZ NOT NULL
);
