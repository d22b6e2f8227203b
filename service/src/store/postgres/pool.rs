//! The connections the request path runs its statements on.
//!
//! sqlx's `PgPool` sends a `Sync` round trip on every connection it takes
//! back (sqlx-core 0.8 does this unconditionally, in a task spawned for
//! it, to find connections a cancelled future left mid-statement), and
//! by default on every one it hands out. On the keyed path that was a
//! third of the service's round trips (docs/benchmarks.md, issue 13).
//! These connections are handed out and taken back with no round trip
//! (deadpool: a queue behind a semaphore), and what the tests were for is
//! kept another way:
//!
//! - a statement that did not run to its end (its future was dropped, or
//!   the connection failed under it), or that was refused as a write in a
//!   read-only session (whose setting may be stale), leaves its
//!   connection unsettled, and an unsettled connection is closed instead
//!   of reused;
//! - a connection opened before the last read-only refusal is closed
//!   instead of reused: its session may have started read-only, and keeps
//!   that default for its life (see [`read_only`]);
//! - a connection that may be dead ([`SessionLosses::must_test`]: idle
//!   long, or idle since before the server was last seen dropping
//!   sessions) is tested before it is handed out; one that fails the test
//!   is closed and the next one tried.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, Object, QueueMode, RecycleError, RecycleResult, Timeouts};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgQueryResult, PgRow};
use sqlx::{ConnectOptions, Connection, FromRow, PgConnection, Postgres};

use super::health::{self, SessionLosses};

/// The request path's connections.
#[derive(Clone)]
pub(super) struct Connections {
    pool: managed::Pool<Manager>,
}

/// Opens connections and vets them before reuse.
pub(super) struct Manager {
    options: PgConnectOptions,
    /// Which idle connections may be dead.
    losses: Arc<SessionLosses>,
}

/// A connection and whether its last statement ran to its end.
pub(super) struct Conn {
    raw: PgConnection,
    /// False from the start of a statement until it ends in a way that
    /// leaves the protocol in step (a result, or an error the server
    /// answered).
    settled: bool,
    /// When the last statement ended: how long the connection has idled.
    done_at: Instant,
    /// When the session started: one that started before the last
    /// read-only refusal may have started read-only.
    opened_at: Instant,
}

impl managed::Manager for Manager {
    type Type = Conn;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<Conn, sqlx::Error> {
        let opened_at = Instant::now();
        Ok(Conn {
            raw: self.options.connect().await?,
            settled: true,
            done_at: Instant::now(),
            opened_at,
        })
    }

    async fn recycle(&self, conn: &mut Conn, _: &Metrics) -> RecycleResult<sqlx::Error> {
        if !conn.settled {
            return Err(RecycleError::message("its last statement did not run to its end"));
        }
        if self.losses.read_only_after(conn.opened_at.elapsed()) {
            return Err(RecycleError::message("opened before the last read-only refusal"));
        }
        if self.losses.must_test(conn.done_at.elapsed()) {
            conn.raw.ping().await?;
        }
        Ok(())
    }
}

/// A query with its arguments bound, returning rows of `O`.
type QueryAs<'q, O> = sqlx::query::QueryAs<'q, Postgres, O, PgArguments>;
/// A query with its arguments bound, returning no rows.
type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// A connection handed out; back to the pool when dropped.
pub(super) type Held = Object<Manager>;

/// Why no connection was handed out.
pub(super) type GetError = managed::PoolError<sqlx::Error>;

impl Connections {
    /// Up to `max` connections with `options`, opened on demand; a caller
    /// waits at most `wait` for one, and opening one gives up after
    /// `wait` too.
    pub(super) fn new(options: PgConnectOptions, max: u32, wait: Duration, losses: Arc<SessionLosses>) -> Self {
        let pool = managed::Pool::builder(Manager { options, losses })
            .max_size(max.max(1) as usize)
            // The connection used last is handed out next: fewer server
            // processes stay warm, and theirs stay in cache.
            .queue_mode(QueueMode::Lifo)
            .timeouts(Timeouts {
                wait: Some(wait),
                create: Some(wait),
                recycle: Some(wait),
            })
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .expect("a pool with a runtime and a positive size builds");
        Self { pool }
    }

    /// A connection, within the pool's patience.
    pub(super) async fn get(&self) -> Result<Held, GetError> {
        self.pool.get().await
    }

    /// Closes the idle connections and those handed back from now on;
    /// every [`Self::get`] after this fails.
    pub(super) fn close(&self) {
        self.pool.close();
    }

    /// Whether every connection the pool may open is open and in use.
    pub(super) fn is_busy(&self) -> bool {
        let status = self.pool.status();
        status.size >= status.max_size && status.available == 0
    }

    /// Connections open, idle and allowed, and the callers waiting.
    pub(super) fn status(&self) -> managed::Status {
        self.pool.status()
    }

    /// Runs `query`; at most one row back.
    pub(super) async fn fetch_optional<'q, O>(&self, query: QueryAs<'q, O>) -> Result<Option<O>, sqlx::Error>
    where
        O: Send + Unpin + for<'r> FromRow<'r, PgRow>,
    {
        self.run(async |conn| query.fetch_optional(conn).await).await
    }

    /// Runs `query`; exactly one row back.
    pub(super) async fn fetch_one<'q, O>(&self, query: QueryAs<'q, O>) -> Result<O, sqlx::Error>
    where
        O: Send + Unpin + for<'r> FromRow<'r, PgRow>,
    {
        self.run(async |conn| query.fetch_one(conn).await).await
    }

    /// Runs `query`; every row back.
    pub(super) async fn fetch_all<'q, O>(&self, query: QueryAs<'q, O>) -> Result<Vec<O>, sqlx::Error>
    where
        O: Send + Unpin + for<'r> FromRow<'r, PgRow>,
    {
        self.run(async |conn| query.fetch_all(conn).await).await
    }

    /// Runs `query` for its effect.
    pub(super) async fn execute(&self, query: Query<'_>) -> Result<PgQueryResult, sqlx::Error> {
        self.run(async |conn| query.execute(conn).await).await
    }

    /// Runs `statement` on a connection held for it, and marks the
    /// connection for closing unless the statement ran to its end.
    async fn run<T>(
        &self,
        statement: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let mut conn = self.get().await.map_err(no_connection)?;
        conn.start();
        let result = statement(&mut conn.raw).await;
        conn.end(result)
    }
}

impl Conn {
    /// Runs `sql` as one simple query (one implicit transaction).
    pub(super) async fn simple(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        self.start();
        let result = sqlx::Executor::execute(&mut self.raw, sql).await;
        self.end(result).map(drop)
    }

    fn start(&mut self) {
        self.settled = false;
    }

    /// A statement's result; the connection stays usable unless the
    /// exchange itself broke.
    fn end<T>(&mut self, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        self.settled = !result.as_ref().is_err_and(broken);
        self.done_at = Instant::now();
        result
    }
}

/// Whether `e` means the connection must not be reused: it is out of
/// step with the server or without one (a connection failure, or the TLS
/// layer's), or its session refused a write as read-only.
fn broken(e: &sqlx::Error) -> bool {
    health::retryable(e) || matches!(e, sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed) || read_only(e)
}

/// Whether `e` is a write refused because its session is read-only. A
/// session takes `default_transaction_read_only` when it starts and keeps
/// it, and one on a server that was a standby stays read-only, so after
/// the database is made writable again (or fails over back) only a new
/// session sees it. The refused connection is closed (a connection per
/// refused write, and those are failing anyway), and so is every other
/// opened before the refusal when next handed out: after the outage, one
/// refused write clears the pool of sessions that started read-only. The
/// server ran none of a refused statement (the error ends its implicit
/// transaction), so it may run again (`PgStore::write`).
pub(super) fn read_only(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some(READ_ONLY_SQL_TRANSACTION))
}

/// SQLSTATE `read_only_sql_transaction`.
const READ_ONLY_SQL_TRANSACTION: &str = "25006";

/// The pool's failure to hand out a connection, as a statement's error,
/// named as sqlx's own pool names it: the server's refusal to open one
/// as it came, a wait that ran out as [`sqlx::Error::PoolTimedOut`].
fn no_connection(e: GetError) -> sqlx::Error {
    match e {
        managed::PoolError::Backend(e) => e,
        managed::PoolError::Timeout(_) => sqlx::Error::PoolTimedOut,
        managed::PoolError::Closed => sqlx::Error::PoolClosed,
        other => sqlx::Error::Configuration(other.to_string().into()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use sqlx::postgres::PgSslMode;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// "Busy" means every connection is open and in use, so the readiness
    /// probe can tell a full pool (ready, just loaded) from a database it
    /// cannot reach (not ready): a pool that fails to open any connection
    /// is not busy.
    #[tokio::test]
    async fn a_pool_that_cannot_connect_is_not_busy() {
        let options = PgConnectOptions::new().host("127.0.0.1").port(1);
        let conns = Connections::new(options, 2, Duration::from_millis(200), Arc::default());
        assert!(!conns.is_busy(), "nothing open yet");
        assert!(conns.get().await.is_err(), "port 1 refuses");
        assert!(!conns.is_busy(), "still nothing open");
    }

    /// Whether a connection is handed out again after its statement
    /// failed, by the sessions two failing statements take: a statement
    /// error the server answered keeps the connection; a session that
    /// ended, or one that refused a write as read-only, is not reused.
    /// Nothing here notes a loss (that is the store's part), so these
    /// count what `Conn::end` decides alone.
    #[tokio::test]
    async fn a_connection_whose_statement_failed_is_handed_out_again() {
        let (sessions, errors) = two_failed_statements(Answer::Error("23514")).await;
        assert_eq!(sessions, 1);
        let code = |e: &sqlx::Error| e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned());
        assert!(errors.iter().all(|e| code(e).as_deref() == Some("23514")), "{errors:?}");
    }

    #[tokio::test]
    async fn a_connection_refused_as_read_only_is_not_handed_out_again() {
        let (sessions, errors) = two_failed_statements(Answer::Error(READ_ONLY_SQL_TRANSACTION)).await;
        assert_eq!(sessions, 2);
        assert!(errors.iter().all(read_only), "{errors:?}");
    }

    #[tokio::test]
    async fn a_connection_whose_session_ended_is_not_handed_out_again() {
        let (sessions, errors) = two_failed_statements(Answer::HangUp).await;
        assert_eq!(sessions, 2);
        assert!(errors.iter().all(health::retryable), "{errors:?}");
    }

    /// Runs two statements, one after the other, on a pool whose server
    /// answers each with `answer`; the sessions the server saw, and the
    /// statements' errors.
    async fn two_failed_statements(answer: Answer) -> (usize, Vec<sqlx::Error>) {
        let server = FakeServer::start(answer).await;
        let conns = Connections::new(server.options(), 2, Duration::from_secs(5), Arc::default());
        let mut errors = Vec::new();
        for _ in 0..2 {
            let mut conn = conns.get().await.expect("a session");
            errors.push(conn.simple("SELECT 1").await.expect_err("every query fails"));
        }
        (server.sessions.load(Ordering::SeqCst), errors)
    }

    /// How the fake server answers every query.
    #[derive(Clone, Copy)]
    enum Answer {
        /// An error with this SQLSTATE; the session goes on.
        Error(&'static str),
        /// No answer: the session ends.
        HangUp,
    }

    /// Just enough of a Postgres server (protocol 3) to let sessions in,
    /// with no password and no TLS, and fail their simple queries.
    struct FakeServer {
        addr: std::net::SocketAddr,
        /// Sessions let in so far.
        sessions: Arc<AtomicUsize>,
    }

    impl FakeServer {
        async fn start(answer: Answer) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
            let addr = listener.local_addr().expect("its address");
            let sessions = Arc::new(AtomicUsize::new(0));
            let counted = sessions.clone();
            tokio::spawn(async move {
                while let Ok((socket, _)) = listener.accept().await {
                    counted.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(serve(socket, answer));
                }
            });
            Self { addr, sessions }
        }

        fn options(&self) -> PgConnectOptions {
            PgConnectOptions::new()
                .host(&self.addr.ip().to_string())
                .port(self.addr.port())
                .username("test")
                .ssl_mode(PgSslMode::Disable)
        }
    }

    /// One session: the startup message, then each query's answer.
    async fn serve(mut socket: TcpStream, answer: Answer) -> std::io::Result<()> {
        // StartupMessage: a length that counts itself, then the rest.
        let len = socket.read_u32().await? as usize;
        socket.read_exact(&mut vec![0; len.saturating_sub(4)]).await?;
        socket.write_all(&message(b'R', &0u32.to_be_bytes())).await?; // AuthenticationOk
        socket.write_all(&message(b'Z', b"I")).await?; // ReadyForQuery, idle
        loop {
            let kind = socket.read_u8().await?;
            let len = socket.read_u32().await? as usize;
            socket.read_exact(&mut vec![0; len.saturating_sub(4)]).await?;
            match (kind, answer) {
                (b'Q', Answer::Error(code)) => {
                    let mut fields = Vec::new();
                    for (field, value) in [(b'S', "ERROR"), (b'V', "ERROR"), (b'C', code), (b'M', "refused")] {
                        fields.push(field);
                        fields.extend_from_slice(value.as_bytes());
                        fields.push(0);
                    }
                    fields.push(0);
                    socket.write_all(&message(b'E', &fields)).await?;
                    socket.write_all(&message(b'Z', b"I")).await?;
                }
                (b'Q', Answer::HangUp) | (b'X', _) => return Ok(()),
                _ => {}
            }
        }
    }

    /// A backend message: its type, a length that counts itself, `body`.
    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }
}
