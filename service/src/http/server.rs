//! The connection loop: accepts TCP connections and serves HTTP/1.1 on
//! each with hyper, bounded in time and count, and drains on shutdown
//! within a deadline.
//!
//! `axum::serve` is not enough here: it has no header-read or write
//! timeout, no cap on connections and no drain deadline, so a slowloris
//! client could hold a connection forever and one slow client could keep
//! a rolling deploy from ever finishing. This loop is the same few steps
//! (accept, hand the socket to hyper, watch it for graceful shutdown)
//! with those bounds added:
//!
//! - **header timeout** (hyper's `header_read_timeout`): a request head
//!   must arrive in full within it, counted from when the connection
//!   opened or its previous response was written, so it bounds both a
//!   slowloris head and an idle keep-alive connection;
//! - **write timeout** (`tokio-io-timeout`): a response write blocked for
//!   that long on a client that does not read closes the connection;
//! - **connection cap**: at most `max_connections` connections are served;
//!   at the cap a newcomer takes the place of the connection idle the
//!   longest (`eviction`); when none is idle, the next few get a 503
//!   problem response and are closed, any more are closed at once (a
//!   connection costs a file descriptor even to refuse);
//! - **head size backstop**: hyper refuses heads larger than twice the
//!   configured header and URI limits; below that, `request_head` answers
//!   414/431 with a problem body (hyper's own answers have no body);
//! - **drain deadline**: on shutdown the listener closes, idle connections
//!   close, open requests may finish; whatever is still open when the
//!   deadline passes is closed.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::IntoResponse;
use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_io_timeout::TimeoutStream;
use tower::ServiceExt;

use super::error::ApiError;
use super::eviction::Registry;

/// Connections beyond the cap that still get a 503 answer (the rest are
/// closed unanswered): enough to tell well-behaved clients to back off,
/// few enough that refusing cannot exhaust file descriptors.
pub const OVERFLOW_CONNECTIONS: usize = 64;

/// File descriptors kept free of client connections for everything else
/// the process opens (database pool, metrics listener, logs).
pub const RESERVED_FDS: u64 = 128;

/// How long a newcomer waits for the slot of the idle connection it
/// evicted (the eviction itself takes a task switch).
const EVICTION_WAIT: Duration = Duration::from_secs(1);

/// Pause after an accept error that is not about one connection (e.g.
/// out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The bounds of one listener.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// Complete request head within this, from connection start or the
    /// previous response.
    pub header_timeout: Duration,
    /// Longest a response write may stay blocked.
    pub write_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Hyper's own head limits, above the ones `request_head` answers
    /// with a problem body: bytes of the whole head, and header lines.
    pub backstop_head_bytes: usize,
    /// See `backstop_head_bytes`.
    pub backstop_headers: usize,
    /// After shutdown starts, how long open connections may finish.
    pub drain: Duration,
}

/// The soft open-file limit raised as far as the hard limit allows, and
/// `wanted` lowered to fit under it (with [`RESERVED_FDS`] and the overflow
/// connections kept free). Logs when it had to lower it.
pub fn fit_connection_cap(wanted: usize) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit; keeping MAX_CONNECTIONS as set");
            return wanted;
        }
    };
    let room = limit.saturating_sub(RESERVED_FDS + OVERFLOW_CONNECTIONS as u64);
    let fitted = usize::try_from(room).unwrap_or(usize::MAX).min(wanted).max(1);
    if fitted < wanted {
        tracing::warn!(
            open_file_limit = limit,
            max_connections = fitted,
            "MAX_CONNECTIONS lowered to fit the open-file limit (raise `ulimit -n` for more)"
        );
    }
    fitted
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains
/// for at most `settings.drain`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ServeSettings,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let served = hyper_builder(&settings, true);
    let refused = hyper_builder(&settings, false);
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let overflow = Arc::new(Semaphore::new(OVERFLOW_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let registry = Arc::new(Registry::default());
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);

    loop {
        // Finished connection tasks are reaped here, so the set holds only
        // the open ones.
        while connections.try_join_next().is_some() {}
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            builder: served.clone(),
            router: router.clone(),
            registry: registry.clone(),
            watcher: graceful.watcher(),
            settings: settings.clone(),
        };
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            connections.spawn(conn.serve(stream, permit));
        } else if registry.evict_longest_idle() {
            // The evicted connection frees its slot in a moment.
            let slots = slots.clone();
            connections.spawn(async move {
                if let Ok(Ok(permit)) = tokio::time::timeout(EVICTION_WAIT, slots.acquire_owned()).await {
                    conn.serve(stream, permit).await;
                }
            });
        } else if let Ok(permit) = overflow.clone().try_acquire_owned() {
            let service = hyper::service::service_fn(|_request| async {
                Ok::<_, std::convert::Infallible>(ApiError::Overloaded.into_response())
            });
            let refusal = graceful.watch(refused.serve_connection(io(stream, &settings), service));
            connections.spawn(async move {
                let _ = refusal.await;
                drop(permit);
            });
        } else {
            drop(stream);
        }
    }

    drop(listener);
    let open = graceful.count();
    if open > 0 {
        tracing::info!(connections = open, drain = ?settings.drain, "draining open connections");
    }
    if tokio::time::timeout(settings.drain, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "drain deadline passed; closing the connections still open"
        );
    }
    connections.shutdown().await;
    Ok(())
}

/// What serving one connection needs.
struct Conn {
    builder: http1::Builder,
    router: Router,
    registry: Arc<Registry>,
    watcher: Watcher,
    settings: ServeSettings,
}

impl Conn {
    /// Serves `stream` until it closes, shutdown drains it, or it is
    /// evicted while idle; the slot is freed then.
    async fn serve(self, stream: TcpStream, slot: OwnedSemaphorePermit) {
        let Self {
            builder,
            router,
            registry,
            watcher,
            settings,
        } = self;
        let tracked = registry.open();
        let service = {
            let (registry, tracked) = (registry.clone(), tracked.clone());
            hyper::service::service_fn(move |request: Request<Incoming>| {
                let busy = registry.busy(&tracked);
                let call = router.clone().oneshot(request);
                async move {
                    let response = call.await;
                    drop(busy);
                    response
                }
            })
        };
        let conn = watcher.watch(builder.serve_connection(io(stream, &settings), service));
        tokio::select! {
            _ = conn => {}
            () = tracked.eviction.notified() => {}
        }
        registry.close(&tracked);
        drop(slot);
    }
}

fn hyper_builder(settings: &ServeSettings, keep_alive: bool) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout)
        .keep_alive(keep_alive)
        .max_buf_size(settings.backstop_head_bytes.max(8192))
        .max_headers(settings.backstop_headers);
    builder
}

fn io(stream: TcpStream, settings: &ServeSettings) -> TokioIo<Pin<Box<TimeoutStream<TcpStream>>>> {
    let mut stream = TimeoutStream::new(stream);
    stream.set_write_timeout(Some(settings.write_timeout));
    TokioIo::new(Box::pin(stream))
}

/// Errors about the one connection being accepted, not the listener
/// (the peer gave up meanwhile): accept the next one at once.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}
