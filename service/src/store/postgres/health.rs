//! Which idle connections to test before use. sqlx's pool tests every
//! connection it hands out by default and every one it takes back (a
//! `Sync` round trip each: on the keyed path, two thirds of all round
//! trips). A connection in steady use needs no test: its last statement
//! ran to its end an instant ago (`pool.rs` closes one that did not). The
//! ones worth testing are those idle for a while ([`IDLE_TEST`]: a
//! firewall or the server's `idle_session_timeout` may have dropped
//! them), and those that went idle before the server was last seen
//! dropping sessions (restart, failover, `pg_terminate_backend`). The
//! second is seen by the notification listener (`notify.rs`), which is
//! always reading, so it hears a lost session at once, before any request
//! would.
//!
//! A session the server drops on its own while its connection idles here
//! is missed until a statement uses it. That statement's failure marks
//! every idle connection for a test, as a loss heard would. A read then
//! runs again on another connection (`PgStore::read`; [`retryable`] says
//! which failures): it writes nothing, so running it again is always
//! safe. A write answers 503 (it may have run), and its connection is
//! closed.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Idle longer than this and a connection is tested before use.
pub(super) const IDLE_TEST: Duration = Duration::from_secs(10);

/// Runs of a statement that writes nothing when its connection turns out
/// dead: the first failure marks every idle connection for a test, so
/// the second run finds a live one unless the server is down, and the
/// third says it is.
pub(super) const READ_ATTEMPTS: usize = 3;

/// Runs `statement`, which writes nothing, up to [`READ_ATTEMPTS`] times
/// while it fails [`retryable`]-ly, each such failure heard in `losses`
/// before the next run; answers the last run's result.
pub(super) async fn read<T, F, Fut>(losses: &SessionLosses, statement: F) -> Result<T, sqlx::Error>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut attempts = 1;
    loop {
        match statement().await {
            Err(e) if retryable(&e) && attempts < READ_ATTEMPTS => {
                losses.heard();
                attempts += 1;
            }
            other => return other,
        }
    }
}

/// When the server was last seen dropping this process's sessions, and
/// when a session last refused a write as read-only (`pool.rs`).
#[derive(Default)]
pub(super) struct SessionLosses {
    lost: Moment,
    read_only: Moment,
}

impl SessionLosses {
    /// Records a lost session, now.
    pub(super) fn heard(&self) {
        self.lost.record();
    }

    /// Records a write refused as read-only, now.
    pub(super) fn refused_read_only(&self) {
        self.read_only.record();
    }

    /// Whether a connection idle for `idle_for` must be tested before
    /// use: idle long, or idle since before the last loss heard.
    pub(super) fn must_test(&self, idle_for: Duration) -> bool {
        idle_for >= IDLE_TEST || self.lost.since(idle_for)
    }

    /// Whether a write was refused as read-only since a connection open
    /// for `open_for` was opened.
    pub(super) fn read_only_after(&self, open_for: Duration) -> bool {
        self.read_only.since(open_for)
    }
}

/// The last time something happened, recorded from any thread.
struct Moment {
    /// A fixed instant the times below count from.
    origin: Instant,
    /// Nanoseconds from `origin` to the last record; 0: none yet.
    last: AtomicU64,
}

impl Default for Moment {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            last: AtomicU64::new(0),
        }
    }
}

impl Moment {
    fn record(&self) {
        let since = self.origin.elapsed().as_nanos().max(1);
        self.last
            .fetch_max(u64::try_from(since).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Whether it was recorded at or after the instant `ago` before now.
    fn since(&self, ago: Duration) -> bool {
        let last = self.last.load(Ordering::Relaxed);
        last != 0 && self.origin.elapsed().saturating_sub(ago) <= Duration::from_nanos(last)
    }
}

/// Whether `e` says the connection failed, not the statement: the
/// session is gone (socket closed or reset, the server terminating it,
/// the protocol out of step), so a statement that writes nothing can run
/// again on another connection.
pub(super) fn retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        // Class 57P: operator intervention (admin shutdown, crash
        // shutdown, cannot connect now); class 08: connection exception.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("57P") || code.starts_with("08")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_connection_is_not_tested_until_a_loss_is_heard() {
        let losses = SessionLosses::default();
        assert!(!losses.must_test(Duration::ZERO));
        assert!(!losses.must_test(IDLE_TEST - Duration::from_millis(1)));
        assert!(losses.must_test(IDLE_TEST), "idle long: tested");
        std::thread::sleep(Duration::from_millis(20));
        losses.heard();
        assert!(
            losses.must_test(Duration::from_millis(10)),
            "idle since before the loss: tested"
        );
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            !losses.must_test(Duration::from_millis(5)),
            "back in the pool after the loss: not tested"
        );
    }

    #[test]
    fn only_sessions_opened_before_a_read_only_refusal_are_suspect() {
        let losses = SessionLosses::default();
        assert!(!losses.read_only_after(Duration::from_secs(3600)), "no refusal yet");
        std::thread::sleep(Duration::from_millis(20));
        losses.refused_read_only();
        assert!(losses.read_only_after(Duration::from_millis(10)), "opened before it");
        assert!(!losses.must_test(Duration::ZERO), "a refusal is not a lost session");
        std::thread::sleep(Duration::from_millis(20));
        assert!(!losses.read_only_after(Duration::from_millis(5)), "opened since");
    }

    /// Runs of [`read`] over a statement that fails with `failure` up to
    /// `failing` times, then answers: how many runs, and the result. A
    /// statement that kept being run would stop failing after a dozen, so
    /// a read that never gives up shows as too many runs, not as a hang.
    async fn runs(failing: usize, failure: fn() -> sqlx::Error) -> (usize, Result<usize, sqlx::Error>, bool) {
        let losses = SessionLosses::default();
        let ran = std::sync::atomic::AtomicUsize::new(0);
        let result = read(&losses, || {
            let run = ran.fetch_add(1, Ordering::Relaxed) + 1;
            async move {
                if run <= failing.min(12) {
                    Err(failure())
                } else {
                    Ok(run)
                }
            }
        })
        .await;
        // Heard at all: recorded at some point since the losses began.
        let heard = losses.lost.since(Duration::from_secs(3600));
        (ran.into_inner(), result, heard)
    }

    fn reset() -> sqlx::Error {
        sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into())
    }

    #[tokio::test]
    async fn a_read_runs_again_on_a_dead_connection_up_to_its_attempts() {
        let (ran, result, heard) = runs(1, reset).await;
        assert_eq!((ran, result.ok()), (2, Some(2)), "one dead connection, then an answer");
        assert!(heard, "the dead connection was heard");
        let (ran, result, _) = runs(READ_ATTEMPTS - 1, reset).await;
        assert_eq!(
            (ran, result.ok()),
            (READ_ATTEMPTS, Some(READ_ATTEMPTS)),
            "the last attempt answers"
        );
        let (ran, result, _) = runs(usize::MAX, reset).await;
        assert_eq!(ran, READ_ATTEMPTS, "a server that stays down is given up on");
        assert!(matches!(result, Err(sqlx::Error::Io(_))), "{result:?}");
    }

    #[tokio::test]
    async fn a_read_that_failed_for_another_reason_runs_once() {
        let (ran, result, heard) = runs(usize::MAX, || sqlx::Error::RowNotFound).await;
        assert_eq!(ran, 1);
        assert!(matches!(result, Err(sqlx::Error::RowNotFound)), "{result:?}");
        assert!(!heard, "a failed statement is not a lost session");
    }

    #[test]
    fn only_connection_failures_are_retried() {
        assert!(retryable(&sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into())));
        assert!(retryable(&sqlx::Error::Protocol("out of step".into())));
        assert!(!retryable(&sqlx::Error::RowNotFound));
        assert!(!retryable(&sqlx::Error::PoolTimedOut));
    }
}
