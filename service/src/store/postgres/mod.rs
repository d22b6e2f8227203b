//! The Postgres store. Migrations live beside it in `migrations/` (and,
//! for the same schema declared `PARTITION BY HASH (organization_id)`, in
//! `migrations_partitioned/`) and run at start-up.
//!
//! Every state change of a key is one statement:
//! - a key with no record: one statement inserts the key already completed
//!   and the resource with it (see `statements.rs`), so the common path
//!   costs what a creation without a key costs;
//! - replay: a completed key this process has seen is answered from its
//!   replay cache (`replay_cache.rs`: no round trip); otherwise, when that
//!   statement finds the key taken, one read of the key joined with its
//!   resource answers a completed key (two round trips, no write); any
//!   other record goes through the claim;
//! - claim: a plain read decides (replay, mismatch, in flight); only a free
//!   key is written, with `INSERT ... ON CONFLICT DO UPDATE ... WHERE <row
//!   is dead>`, so the unique scope constraint arbitrates concurrent claims;
//! - complete: one statement whose CTE flips the row from "in progress
//!   under my token" to "completed" and whose body inserts the resource;
//! - release: delete the row if my token still holds it.
//!
//! Completing and releasing notify every process's waiting duplicates at
//! commit (`notify.rs`).
//!
//! Statements run on connections handed out and taken back with no round
//! trip (`pool.rs`); one is tested before use only when it may be dead
//! (`health.rs`), not on every checkout and return as sqlx's pool does.
//!
//! The write probe behind `/readyz` truncates `readiness_probe` and
//! inserts one row into it, in one transaction (see its migration).

mod health;
mod notify;
mod pool;
mod queries;
mod replay_cache;
mod resources;
mod statements;

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool::managed::PoolError;
use idemproof_models::{Decision, Fingerprint, KeyRecord, KeyState, LeaseToken, Scope, Terms, Timestamp, decide};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use self::resources::PgResources;
pub use self::statements::one_step_sql;
use super::{ChangeSignal, ClaimOutcome, KeyStore, Lease, PoolUse, StoreError, Stores};
use crate::readiness::Probe;

/// The schema, embedded at compile time.
pub static MIGRATOR: Migrator = sqlx::migrate!("src/store/postgres/migrations");

/// The same schema with every table `PARTITION BY HASH (organization_id)`.
pub static PARTITIONED_MIGRATOR: Migrator = sqlx::migrate!("src/store/postgres/migrations_partitioned");

/// How a new database declares its tables. Chosen when the database is
/// created: each declaration has its own migration history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Schema {
    /// Plain tables.
    #[default]
    Plain,
    /// Every table partitioned by hash of `organization_id`, as a
    /// distributed Postgres (Citus) shards by its distribution column: the
    /// database then refuses any unique constraint that does not contain
    /// the tenant (docs/scaling.md).
    Partitioned,
}

impl Schema {
    fn migrator(self) -> &'static Migrator {
        match self {
            Schema::Plain => &MIGRATOR,
            Schema::Partitioned => &PARTITIONED_MIGRATOR,
        }
    }
}

/// The replay cache's budget per kind of resource unless
/// [`PgStore::with_replay_cache`] says otherwise (`REPLAY_CACHE_BYTES`).
pub const DEFAULT_REPLAY_CACHE_BYTES: usize = 64 << 20;

/// How long a statement waits for a connection (or for one to open)
/// before it answers 503.
const ACQUIRE_PATIENCE: Duration = Duration::from_secs(5);

/// How long start-up keeps retrying a database that is not up yet.
const CONNECT_PATIENCE: Duration = Duration::from_secs(30);

/// Claim attempts before reporting "in flight" when the row keeps changing
/// under us (released or reaped between the upsert and the read).
const CLAIM_ATTEMPTS: usize = 4;

/// The key store over a Postgres pool, and the handle every resource
/// store of the same database shares.
#[derive(Clone)]
pub struct PgStore {
    /// The request path's connections; their number bounds the database
    /// work in flight.
    conns: pool::Connections,
    /// sqlx's pool, for what is not on the request path: migrations, the
    /// broken strategies' own statements (`mutants`), tests' direct reads.
    /// It opens connections on demand: after start-up, one stays idle.
    pool: PgPool,
    /// Lease and TTL written into every claim.
    terms: Terms,
    /// The replay cache's budget per kind of resource, in bytes (0: none).
    replay_cache_bytes: usize,
    /// This process's duplicates waiting for an in-flight key, woken by
    /// the notification its claim's end sends (`notify.rs`).
    waiters: Arc<notify::Waiters>,
    /// The listening connection, open while any handle lives.
    _listening: Arc<notify::Listening>,
    /// When the server was last seen dropping sessions: which pooled
    /// connections to test before use (`health.rs`).
    losses: Arc<health::SessionLosses>,
}

/// A request connection held by a test ([`PgStore::hold`]).
pub struct HeldConnection(#[allow(dead_code, reason = "held for its drop")] pool::Held);

impl PgStore {
    /// Connects (retrying for up to 30 s while the server starts), applies
    /// pending migrations of `schema` and returns the store. Each
    /// connection runs with `statement_timeout` set to the lease: a
    /// statement that outlives the lease could otherwise commit after the
    /// key was taken over.
    pub async fn connect(url: &str, max_connections: u32, terms: Terms, schema: Schema) -> anyhow::Result<Self> {
        // Postgres caps timeouts at INT_MAX milliseconds (about 24 days).
        let lease_ms = terms.lease.num_milliseconds().clamp(1, i64::from(i32::MAX));
        let options = PgConnectOptions::from_str(url)?.options([("statement_timeout", lease_ms.to_string())]);
        let losses = Arc::new(health::SessionLosses::default());
        let pool_options = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_PATIENCE);
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
        schema.migrator().run(&pool).await?;
        let waiters = Arc::default();
        let listening = notify::listen(&options, &waiters, &losses).await?;
        let conns = pool::Connections::new(options, max_connections, ACQUIRE_PATIENCE, Arc::clone(&losses));
        Ok(Self {
            conns,
            pool,
            terms,
            replay_cache_bytes: DEFAULT_REPLAY_CACHE_BYTES,
            waiters,
            _listening: Arc::new(listening),
            losses,
        })
    }

    /// The same store whose [`Self::stores`] keep a replay cache of
    /// `bytes` per kind of resource (0: none; `replay_cache.rs`).
    pub fn with_replay_cache(self, bytes: usize) -> Self {
        Self {
            replay_cache_bytes: bytes,
            ..self
        }
    }

    /// The stores of every kind of resource over this database.
    pub fn stores(&self) -> Stores {
        Stores {
            keys: Arc::new(self.clone()),
            agents: Arc::new(PgResources::new(self.clone())),
            deployments: Arc::new(PgResources::new(self.clone())),
        }
    }

    /// Runs `statement`, which writes nothing, again while its connection
    /// turns out dead ([`health::read`]).
    pub(super) async fn read<T, F, Fut>(&self, statement: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        health::read(&self.losses, statement).await.map_err(|e| self.failed(e))
    }

    /// Runs `statement`, which writes, a second time if its session
    /// refused it as read-only: the server ran none of it, and the second
    /// run is on a session opened since the refusal (`pool.rs` closes the
    /// older ones), which sees whether the database is writable now. So
    /// after a read-only outage the first write on a session that started
    /// read-only does not fail. Any other failure is not run again: the
    /// statement may have committed.
    pub(super) async fn write<T, F, Fut>(&self, statement: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        match statement().await {
            Err(e) if pool::read_only(&e) => {
                self.note(&e);
                statement().await.map_err(|e| self.failed(e))
            }
            other => other.map_err(|e| self.failed(e)),
        }
    }

    /// The store's error for a failed statement, noted (see
    /// [`Self::note`]).
    pub(super) fn failed(&self, e: sqlx::Error) -> StoreError {
        self.note(&e);
        StoreError::unavailable(e)
    }

    /// What a failure says about the other connections: a dead one marks
    /// every idle one for a test (`health.rs`); a read-only refusal marks
    /// every one opened before it for closing (`pool.rs`).
    fn note(&self, e: &sqlx::Error) {
        if health::retryable(e) {
            self.losses.heard();
        } else if pool::read_only(e) {
            self.losses.refused_read_only();
        }
    }

    /// A pool on the store's database, for tests' own statements and
    /// set-up (not the one requests use).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs a broken strategy's statement on the connections requests
    /// use, so that a comparison with the correct store measures the
    /// designs and not two pools (sqlx's tests every connection it takes
    /// back, a round trip these do not pay).
    #[cfg(feature = "mutants")]
    pub(crate) async fn fetch_optional<'q, O>(
        &self,
        query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ) -> Result<Option<O>, StoreError>
    where
        O: Send + Unpin + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        self.conns.fetch_optional(query).await.map_err(|e| self.failed(e))
    }

    /// [`Self::fetch_optional`] for a statement run for its effect.
    #[cfg(feature = "mutants")]
    pub(crate) async fn execute(
        &self,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<(), StoreError> {
        self.conns.execute(query).await.map(drop).map_err(|e| self.failed(e))
    }

    /// One of the connections requests use, held out of their reach until
    /// dropped (tests of a busy pool, of idle connections).
    pub async fn hold(&self) -> Result<HeldConnection, StoreError> {
        self.conns
            .get()
            .await
            .map(HeldConnection)
            .map_err(StoreError::unavailable)
    }

    /// Closes every connection of the store: each statement after this
    /// fails at once, as with a database out of reach.
    pub async fn close(&self) {
        self.conns.close();
        self.pool.close().await;
    }

    /// The lease and TTL the store's claims are written with.
    pub fn terms(&self) -> Terms {
        self.terms
    }

    /// [`KeyStore::claim`] but for the signal an in-flight answer carries
    /// (always `Poll` here).
    async fn decide_and_claim(
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
        let record = KeyRecord::<i64>::claimed(fingerprint, token, now, self.terms);
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
            let claimed = self
                .write(|| {
                    self.conns.fetch_optional(
                        sqlx::query_as::<_, (i32,)>(queries::CLAIM)
                            .bind(scope.organization_id)
                            .bind(scope.user_id)
                            .bind(&scope.endpoint)
                            .bind(scope.key.as_str())
                            .bind(&fingerprint.0[..])
                            .bind(token.0)
                            .bind(now + self.terms.lease)
                            .bind(record.created_at)
                            .bind(record.expires_at),
                    )
                })
                .await?;
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

    /// The stored record of `scope`, dead or alive.
    pub async fn record(&self, scope: &Scope) -> Result<Option<KeyRecord<i64>>, StoreError> {
        let row: Option<queries::KeyRow> = self
            .read(|| {
                self.conns.fetch_optional(
                    sqlx::query_as(queries::SELECT_KEY)
                        .bind(scope.organization_id)
                        .bind(scope.user_id)
                        .bind(&scope.endpoint)
                        .bind(scope.key.as_str()),
                )
            })
            .await?;
        row.map(queries::KeyRow::into_record).transpose()
    }
}

#[async_trait]
impl KeyStore for PgStore {
    async fn claim(
        &self,
        scope: &Scope,
        fingerprint: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        // Registered before the read (`notify.rs` says why).
        let tag = notify::tag(scope);
        let changed = self.waiters.register(&tag);
        match self.decide_and_claim(scope, fingerprint, token, now).await {
            Ok(ClaimOutcome::InFlight { lease_expires_at, .. }) => Ok(ClaimOutcome::InFlight {
                lease_expires_at,
                change: ChangeSignal::Notified(changed),
            }),
            other => {
                drop(changed);
                self.waiters.forget(&tag);
                other
            }
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.write(|| {
            self.conns.execute(
                sqlx::query(queries::RELEASE)
                    .bind(lease.scope.organization_id)
                    .bind(lease.scope.user_id)
                    .bind(&lease.scope.endpoint)
                    .bind(lease.scope.key.as_str())
                    .bind(lease.token.0)
                    .bind(notify::tag(&lease.scope)),
            )
        })
        .await?;
        Ok(())
    }

    async fn reap_expired(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError> {
        let done = self
            .write(|| {
                self.conns
                    .execute(sqlx::query(queries::REAP).bind(now).bind(i64::from(limit)))
            })
            .await?;
        Ok(done.rows_affected())
    }

    async fn probe_write(&self, _now: Timestamp, patience: Duration) -> Probe {
        // The checkout runs in a task of its own: a connection that takes
        // longer than `patience` to open is still opened, and left in the
        // pool for the next probe, instead of being given up on each time
        // (a server slow to accept would then never be seen recovering).
        let conns = self.conns.clone();
        let checkout = tokio::spawn(async move { conns.get().await });
        let mut conn = match tokio::time::timeout(patience, checkout).await {
            Ok(Ok(Ok(conn))) => conn,
            // No connection in time. If every connection is out doing work
            // the pool is busy, which says nothing about writes; otherwise
            // the pool was trying to open one and could not (the server is
            // down or refuses us).
            Ok(Ok(Err(PoolError::Timeout(_)))) | Err(_) if self.conns.is_busy() => return Probe::Busy,
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = %e, "readiness probe: no connection");
                return Probe::Failed;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness probe: the checkout task failed");
                return Probe::Failed;
            }
            Err(_) => {
                tracing::warn!("readiness probe: no connection in time, and the pool is not busy");
                return Probe::Failed;
            }
        };
        // One implicit transaction (a multi-statement simple query). A
        // write that hangs is a write that fails: bounded by `patience`
        // too, on top of the connection's statement timeout.
        let write = conn.simple(queries::PROBE_WRITE);
        match tokio::time::timeout(patience, write).await {
            Ok(Ok(_)) => Probe::Wrote,
            Ok(Err(e)) => {
                let e = self.failed(e);
                tracing::warn!(error = %e, "readiness probe: the write failed");
                Probe::Failed
            }
            Err(_) => {
                // The connection was left mid-statement: it is closed, not
                // reused (`pool.rs`).
                tracing::warn!("readiness probe: the write did not commit in time");
                Probe::Failed
            }
        }
    }

    fn pool_use(&self) -> Option<PoolUse> {
        let status = self.conns.status();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Some(PoolUse {
            in_use: count(status.size.saturating_sub(status.available)),
            idle: count(status.available.min(status.size)),
            waiting: count(status.waiting),
            max: count(status.max_size),
        })
    }
}

/// A row that breaks the schema's invariants.
pub(super) fn corrupt() -> StoreError {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Start-up waits [`CONNECT_PATIENCE`] for a database that is not up
    /// yet (one starting beside the service), then gives up, so a service
    /// pointed at the wrong address exits instead of hanging. Time is
    /// paused: the clock jumps over every wait once nothing else runs.
    #[tokio::test(start_paused = true)]
    async fn start_up_retries_an_unreachable_database_for_its_patience_then_fails() {
        let started = tokio::time::Instant::now();
        let connect = PgStore::connect("postgres://u@127.0.0.1:1/db", 2, Terms::default(), Schema::Plain);
        let result = tokio::time::timeout(4 * CONNECT_PATIENCE, connect)
            .await
            .expect("start-up gave up within four times its patience");
        assert!(result.is_err(), "port 1 refuses");
        let waited = started.elapsed();
        assert!(waited >= CONNECT_PATIENCE, "gave up after {waited:?}");
    }
}
