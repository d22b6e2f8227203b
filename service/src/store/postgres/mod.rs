//! The Postgres store. Migrations live beside it in `migrations/` and run
//! at start-up.
//!
//! Every state change of a key is one statement:
//! - a new key: one statement inserts the key already completed and the
//!   agent with it (`INSERT ... ON CONFLICT DO NOTHING` feeding the agent
//!   insert), so the common path costs what an unkeyed creation costs;
//! - replay: when that statement finds the key taken, one read of the key
//!   joined with its agent answers a completed key (two round trips, no
//!   write); any other record goes through the claim;
//! - claim: a plain read decides (replay, mismatch, in flight); only a free
//!   key is written, with `INSERT ... ON CONFLICT DO UPDATE ... WHERE <row
//!   is dead>`, so the unique scope constraint arbitrates concurrent claims;
//! - complete: one statement whose CTE flips the row from "in progress
//!   under my token" to "completed" and whose body inserts the agent, so
//!   the agent exists if and only if the key completed, and a claim that
//!   was taken over inserts nothing;
//! - release: delete the row if my token still holds it.

mod queries;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use idemproof_models::{Decision, Fingerprint, KeyRecord, KeyState, LeaseToken, Scope, Terms, Timestamp, decide};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub use self::queries::INSERT_AGENT_WITH_NEW_KEY;
use super::{ChangeSignal, ClaimOutcome, Fresh, Lease, Store, StoreError};
use crate::domain::agent::{Agent, NewAgent};

/// The schema, embedded at compile time.
pub static MIGRATOR: Migrator = sqlx::migrate!("src/store/postgres/migrations");

/// How long start-up keeps retrying a database that is not up yet.
const CONNECT_PATIENCE: Duration = Duration::from_secs(30);

/// Claim attempts before reporting "in flight" when the row keeps changing
/// under us (released or reaped between the upsert and the read).
const CLAIM_ATTEMPTS: usize = 4;

/// Store backed by a Postgres pool.
#[derive(Clone)]
pub struct PgStore {
    /// Connection pool; its size bounds the database work in flight.
    pool: PgPool,
    /// Lease and TTL written into every claim.
    terms: Terms,
}

impl PgStore {
    /// Connects (retrying for up to 30 s while the server starts), applies
    /// pending migrations and returns the store. Each connection runs with
    /// `statement_timeout` set to the lease: a statement that outlives the
    /// lease could otherwise commit after the key was taken over.
    pub async fn connect(url: &str, max_connections: u32, terms: Terms) -> anyhow::Result<Self> {
        // Postgres caps timeouts at INT_MAX milliseconds (about 24 days).
        let lease_ms = terms.lease.num_milliseconds().clamp(1, i64::from(i32::MAX));
        let options = PgConnectOptions::from_str(url)?.options([("statement_timeout", lease_ms.to_string())]);
        let pool_options = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5));
        let started = tokio::time::Instant::now();
        let pool = loop {
            match pool_options.clone().connect_with(options.clone()).await {
                Ok(pool) => break pool,
                Err(e) if started.elapsed() < CONNECT_PATIENCE => {
                    tracing::warn!(error = %e, "database not reachable yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool, terms })
    }

    /// A store over an existing, migrated pool.
    pub fn from_pool(pool: PgPool, terms: Terms) -> Self {
        Self { pool, terms }
    }

    /// The pool, for tests and the harness's direct checks.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The stored record of `scope`, dead or alive.
    pub async fn record(&self, scope: &Scope) -> Result<Option<KeyRecord<i64>>, StoreError> {
        let row: Option<queries::KeyRow> = sqlx::query_as(queries::SELECT_KEY)
            .bind(scope.organization_id)
            .bind(scope.user_id)
            .bind(&scope.endpoint)
            .bind(scope.key.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::unavailable)?;
        row.map(queries::KeyRow::into_record).transpose()
    }
}

#[async_trait]
impl Store for PgStore {
    async fn claim(
        &self,
        scope: &Scope,
        fingerprint: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        // Read first: replays, mismatches and in-flight keys are answered
        // from a plain read. Only a key that `decide` finds free is written,
        // because even a no-op `ON CONFLICT DO UPDATE` locks the row, and a
        // row lock costs a transaction id and a WAL flush at commit.
        let fresh = KeyRecord::<i64>::claimed(fingerprint, token, now, self.terms);
        for _ in 0..CLAIM_ATTEMPTS {
            let existing = self.record(scope).await?;
            match decide(existing.as_ref(), &fingerprint, now) {
                Decision::Claim => {}
                Decision::Replay(id) => return Ok(ClaimOutcome::Replay(id)),
                Decision::Mismatch { original } => return Ok(ClaimOutcome::Mismatch { original }),
                Decision::InFlight { lease_expires_at } => {
                    return Ok(ClaimOutcome::InFlight {
                        lease_expires_at,
                        change: ChangeSignal::Poll,
                    });
                }
            }
            let claimed = sqlx::query(queries::CLAIM)
                .bind(scope.organization_id)
                .bind(scope.user_id)
                .bind(&scope.endpoint)
                .bind(scope.key.as_str())
                .bind(&fingerprint.0[..])
                .bind(token.0)
                .bind(now + self.terms.lease)
                .bind(fresh.created_at)
                .bind(fresh.expires_at)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::unavailable)?;
            if claimed.is_some() {
                return Ok(ClaimOutcome::Acquired);
            }
            // Someone else wrote the row between our read and our claim:
            // read again and decide on what they wrote.
        }
        Ok(ClaimOutcome::InFlight {
            lease_expires_at: now,
            change: ChangeSignal::Poll,
        })
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        sqlx::query(queries::RELEASE)
            .bind(lease.scope.organization_id)
            .bind(lease.scope.user_id)
            .bind(&lease.scope.endpoint)
            .bind(lease.scope.key.as_str())
            .bind(lease.token.0)
            .execute(&self.pool)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    async fn reap_expired(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(queries::REAP)
            .bind(now)
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(done.rows_affected())
    }

    async fn create_agent_fresh(
        &self,
        scope: &Scope,
        fingerprint: Fingerprint,
        new: &NewAgent,
        now: Timestamp,
    ) -> Result<Fresh<Agent>, StoreError> {
        let created = bind_agent(sqlx::query_as::<_, Agent>(queries::INSERT_AGENT_WITH_NEW_KEY), new, now)
            .bind(scope.organization_id)
            .bind(scope.user_id)
            .bind(&scope.endpoint)
            .bind(scope.key.as_str())
            .bind(&fingerprint.0[..])
            .bind(now + self.terms.ttl)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::unavailable)?;
        if let Some(agent) = created {
            return Ok(Fresh::Created(agent));
        }
        // The key has a record. A completed one is replayed from one read
        // of the key and its agent; anything else goes through `claim`.
        let completed: Option<queries::CompletedRow> = sqlx::query_as(queries::SELECT_COMPLETED_KEY)
            .bind(scope.organization_id)
            .bind(scope.user_id)
            .bind(&scope.endpoint)
            .bind(scope.key.as_str())
            .bind(new.organization_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::unavailable)?;
        let Some(row) = completed else { return Ok(Fresh::Taken) };
        let record = KeyRecord {
            fingerprint: Fingerprint::from_slice(&row.key_fingerprint).ok_or_else(corrupt)?,
            state: KeyState::Completed { result: row.agent.id },
            created_at: row.key_created_at,
            expires_at: row.key_expires_at,
        };
        Ok(match decide(Some(&record), &fingerprint, now) {
            Decision::Replay(_) => Fresh::Replayed(row.agent),
            _ => Fresh::Taken,
        })
    }

    async fn create_agent(&self, new: &NewAgent, lease: Option<&Lease>, now: Timestamp) -> Result<Agent, StoreError> {
        let Some(lease) = lease else {
            return bind_agent(sqlx::query_as::<_, Agent>(queries::INSERT_AGENT), new, now)
                .fetch_one(&self.pool)
                .await
                .map_err(StoreError::unavailable);
        };
        bind_agent(
            sqlx::query_as::<_, Agent>(queries::INSERT_AGENT_COMPLETING_CLAIM),
            new,
            now,
        )
        .bind(lease.scope.organization_id)
        .bind(lease.scope.user_id)
        .bind(&lease.scope.endpoint)
        .bind(lease.scope.key.as_str())
        .bind(lease.token.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::unavailable)?
        .ok_or(StoreError::LeaseLost)
    }

    async fn agent(&self, organization_id: i64, id: i64) -> Result<Option<Agent>, StoreError> {
        sqlx::query_as(queries::SELECT_AGENT)
            .bind(organization_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::unavailable)
    }

    async fn agents(&self, organization_id: i64, after: Option<i64>, limit: u32) -> Result<Vec<Agent>, StoreError> {
        sqlx::query_as(queries::LIST_AGENTS)
            .bind(organization_id)
            .bind(after.unwrap_or(i64::MIN))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::unavailable)
    }

    async fn agent_by_id(&self, id: i64) -> Result<Option<Agent>, StoreError> {
        sqlx::query_as(queries::SELECT_AGENT_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::unavailable)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(StoreError::unavailable)
    }
}

/// Binds the twelve agent columns every agent insert starts with.
fn bind_agent<'q, O>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    new: &'q NewAgent,
    now: Timestamp,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    let spec = &new.spec;
    query
        .bind(new.organization_id)
        .bind(new.user_id)
        .bind(&spec.name)
        .bind(&spec.description)
        .bind(&spec.system_prompt)
        .bind(serde_json::Value::Object(spec.config.clone()))
        .bind(serde_json::Value::Object(spec.widget_config.clone()))
        .bind(&spec.agent_type)
        .bind(&spec.industry)
        .bind(spec.auto_optimize)
        .bind(&new.idempotency_key)
        .bind(now)
}

/// A row that breaks the schema's invariants.
fn corrupt() -> StoreError {
    StoreError::unavailable(std::io::Error::other("malformed idempotency_keys row"))
}

impl queries::KeyRow {
    fn into_record(self) -> Result<KeyRecord<i64>, StoreError> {
        let fingerprint = Fingerprint::from_slice(&self.fingerprint).ok_or_else(corrupt)?;
        let state = match (self.lease_token, self.lease_expires_at, self.resource_id) {
            (Some(token), Some(lease_expires_at), None) => KeyState::InProgress {
                token: LeaseToken(token),
                lease_expires_at,
            },
            (None, None, Some(result)) => KeyState::Completed { result },
            _ => return Err(corrupt()),
        };
        Ok(KeyRecord {
            fingerprint,
            state,
            created_at: self.created_at,
            expires_at: self.expires_at,
        })
    }
}
