//! The connection loop: accepts TCP connections and serves HTTP/1.1 on
//! each with hyper, bounded in time and count, and drains on shutdown
//! within a deadline.
//!
//! `axum::serve` is not enough here: it has no header-read or write
//! timeout, no cap on connections and no drain deadline, so a slowloris
//! client could hold a connection forever and one slow client could keep
//! a rolling deploy from ever finishing. This loop is the same few steps
//! (accept, hand the socket to hyper, tell it when shutdown starts) with
//! those bounds added:
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
//! - **lingering close**: a connection is half-closed and its unread input
//!   discarded for a moment before it is closed, so a client still sending
//!   a body it will never need gets the response instead of a reset;
//! - **drain deadline**: on shutdown the listener closes, idle connections
//!   close, open requests may finish; whatever is still open when the
//!   deadline passes is closed.

use std::convert::Infallible;
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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_io_timeout::TimeoutStream;
use tower::ServiceExt;

use super::error::ApiError;
use super::eviction::Registry;

/// Connections beyond the cap that still get a 503 answer (the rest are
/// closed unanswered): enough to tell well-behaved clients to back off,
/// few enough that refusing cannot exhaust file descriptors.
pub const OVERFLOW_CONNECTIONS: usize = 64;

/// Closed connections whose unread input is still being discarded
/// (lingering close) at most at once; past it they close at once.
pub const LINGERING_CONNECTIONS: usize = 64;

/// File descriptors kept free of client connections for everything else
/// the process opens (database pool, metrics listener, logs).
pub const RESERVED_FDS: u64 = 128;

/// How long a newcomer waits for the slot of the idle connection it
/// evicted (the eviction itself takes a task switch).
const EVICTION_WAIT: Duration = Duration::from_secs(1);

/// Lingering close: how long, and how many bytes at most, a closing
/// connection's unread input is read and discarded.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 4 << 20;

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
/// `wanted` lowered to fit under it (with [`RESERVED_FDS`], the overflow
/// and the lingering connections kept free). Logs when it had to lower it.
pub fn fit_connection_cap(wanted: usize) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit; keeping MAX_CONNECTIONS as set");
            return wanted;
        }
    };
    let fitted = fitting(limit, wanted);
    if fitted < wanted {
        tracing::warn!(
            open_file_limit = limit,
            max_connections = fitted,
            "MAX_CONNECTIONS lowered to fit the open-file limit (raise `ulimit -n` for more)"
        );
    }
    fitted
}

/// At most `wanted` connections, and no more than fit under an open-file
/// limit of `limit` beside the reserved descriptors and the overflow and
/// lingering connections; at least one.
fn fitting(limit: u64, wanted: usize) -> usize {
    let room = limit.saturating_sub(RESERVED_FDS + (OVERFLOW_CONNECTIONS + LINGERING_CONNECTIONS) as u64);
    usize::try_from(room).unwrap_or(usize::MAX).min(wanted).max(1)
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
    let registry = Arc::new(Registry::default());
    let lingering = Arc::new(Semaphore::new(LINGERING_CONNECTIONS));
    // Tells every connection to finish its request and close.
    let (draining, drain_signal) = watch::channel(false);
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
        let io = io(stream, &settings);
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            let conn = Conn::new(&served, &router, &registry, &drain_signal, &lingering);
            connections.spawn(conn.serve(io, permit));
        } else if registry.evict_longest_idle() {
            // The evicted connection frees its slot in a moment.
            let conn = Conn::new(&served, &router, &registry, &drain_signal, &lingering);
            let slots = slots.clone();
            connections.spawn(async move {
                if let Ok(Ok(permit)) = tokio::time::timeout(EVICTION_WAIT, slots.acquire_owned()).await {
                    conn.serve(io, permit).await;
                }
            });
        } else if let Ok(permit) = overflow.clone().try_acquire_owned() {
            // Keep-alive off: one 503, then closed (drained like any other).
            let service = hyper::service::service_fn(|_request| {
                std::future::ready(Ok::<_, Infallible>(ApiError::Overloaded.into_response()))
            });
            let conn = refused.serve_connection(io, service);
            let lingering = lingering.clone();
            connections.spawn(async move {
                let mut conn = conn;
                let done = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)).await;
                drop(permit);
                if done.is_ok()
                    && let Ok(_lingering) = lingering.try_acquire_owned()
                {
                    linger(conn.into_parts().io).await;
                }
            });
        }
        // Beyond the overflow allowance the stream is dropped: closed.
    }

    drop(listener);
    let _ = draining.send(true);
    let open = connections.len();
    if open > 0 {
        tracing::info!(connections = open, drain = ?settings.drain, "draining open connections");
    }
    let drained = tokio::time::timeout(settings.drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "drain deadline passed; closing the connections still open"
        );
    }
    connections.shutdown().await;
    Ok(())
}

/// The socket hyper serves: a TCP stream with a write timeout.
type Io = TokioIo<Pin<Box<TimeoutStream<TcpStream>>>>;

/// A request future hyper can poll without pinning it itself.
type Responding = Pin<Box<dyn Future<Output = Result<axum::response::Response, Infallible>> + Send>>;

/// What serving one connection needs.
struct Conn {
    builder: http1::Builder,
    router: Router,
    registry: Arc<Registry>,
    drain_signal: watch::Receiver<bool>,
    lingering: Arc<Semaphore>,
}

/// Why a connection's task stopped serving it.
enum Ended {
    /// hyper finished (the client closed, keep-alive ended, or shutdown).
    Done,
    /// A protocol error or a timeout: the socket is just dropped.
    Failed,
    /// Chosen to make room at the cap while idle.
    Evicted,
}

impl Conn {
    fn new(
        builder: &http1::Builder,
        router: &Router,
        registry: &Arc<Registry>,
        drain_signal: &watch::Receiver<bool>,
        lingering: &Arc<Semaphore>,
    ) -> Self {
        Self {
            builder: builder.clone(),
            router: router.clone(),
            registry: registry.clone(),
            drain_signal: drain_signal.clone(),
            lingering: lingering.clone(),
        }
    }

    /// Serves `io` until the client closes it, the drain ends it, or it is
    /// evicted while idle; then frees the slot.
    async fn serve(self, io: Io, slot: OwnedSemaphorePermit) {
        let Self {
            builder,
            router,
            registry,
            mut drain_signal,
            lingering,
        } = self;
        let tracked = registry.open();
        let service = {
            let (registry, tracked) = (registry.clone(), tracked.clone());
            hyper::service::service_fn(move |request: Request<Incoming>| -> Responding {
                let busy = registry.busy(&tracked);
                let call = router.clone().oneshot(request);
                Box::pin(async move {
                    let response = call.await;
                    drop(busy);
                    response
                })
            })
        };
        let mut conn = builder.serve_connection(io, service);
        let mut draining = *drain_signal.borrow();
        if draining {
            Pin::new(&mut conn).graceful_shutdown();
        }
        let ended = loop {
            tokio::select! {
                done = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => {
                    break if done.is_ok() { Ended::Done } else { Ended::Failed };
                }
                _ = drain_signal.changed(), if !draining => {
                    // Idle: closes now; busy: after this response.
                    draining = true;
                    Pin::new(&mut conn).graceful_shutdown();
                }
                () = tracked.eviction.notified() => break Ended::Evicted,
            }
        };
        registry.close(&tracked);
        // The slot is free from here: a lingering close holds a lingering
        // permit instead, or is skipped when too many already linger.
        drop(slot);
        if let Ended::Done = ended
            && let Ok(_lingering) = lingering.try_acquire_owned()
        {
            linger(conn.into_parts().io).await;
        }
    }
}

/// Closes a connection the way servers must when a request body may still
/// be arriving (a 401, 413 or 429 answered without reading it): half-close,
/// then read and discard for a moment before closing. Closing a socket
/// with unread data makes the kernel send a reset, and a client that gets
/// the reset before it read the response loses the response.
async fn linger(io: Io) {
    let mut stream = io.into_inner();
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 8192];
    let mut left = LINGER_BYTES;
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
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

fn io(stream: TcpStream, settings: &ServeSettings) -> Io {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failed_peer_is_skipped_without_backoff() {
        for kind in [
            io::ErrorKind::ConnectionRefused,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::ConnectionReset,
        ] {
            assert!(is_connection_error(&kind.into()), "{kind:?}");
        }
        // Out of file descriptors (EMFILE): the listener's trouble, which
        // the loop waits out instead of spinning on it.
        assert!(!is_connection_error(&io::Error::from_raw_os_error(24)));
        assert!(!is_connection_error(&io::ErrorKind::OutOfMemory.into()));
    }

    #[test]
    fn the_connection_cap_fits_the_open_file_limit() {
        let others = RESERVED_FDS as usize + OVERFLOW_CONNECTIONS + LINGERING_CONNECTIONS;
        // A small limit: the cap and everything else use it exactly.
        assert_eq!(fitting(1024, 10_000) + others, 1024);
        // A large one leaves the cap as wanted.
        assert_eq!(fitting(1 << 20, 10_000), 10_000);
        // Too small for anything: one connection still.
        assert_eq!(fitting(10, 10_000), 1);
    }
}
