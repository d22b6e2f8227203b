//! A TCP proxy between the service replicas and Postgres, so the harness
//! can inject the network faults of `db-slow` and `db-drop` and follow the
//! database across a container restart (its address may change).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Fault-injecting TCP proxy to the Postgres server.
pub struct DbProxy {
    /// Where the services connect.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

struct Shared {
    /// Current upstream address (changes when the container restarts).
    upstream: Mutex<SocketAddr>,
    /// Delay added to every chunk forwarded, in microseconds.
    latency_us: AtomicU64,
    /// Bumped to sever every open connection.
    generation: watch::Sender<u64>,
}

impl DbProxy {
    /// Starts forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream: Mutex::new(upstream),
            latency_us: AtomicU64::new(0),
            generation: watch::channel(0).0,
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Self { addr, shared, accept })
    }

    /// Points new connections at another upstream address.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self.shared.upstream.lock().unwrap_or_else(|p| p.into_inner()) = upstream;
    }

    /// Adds `latency` before every forwarded chunk, both ways.
    pub fn set_latency(&self, latency: Duration) {
        self.shared
            .latency_us
            .store(latency.as_micros() as u64, Ordering::SeqCst);
    }

    /// Closes every open connection at once (as a network drop would).
    pub fn sever_all(&self) {
        self.shared.generation.send_modify(|g| *g += 1);
    }

    /// A handle that severs every open connection when called, for a
    /// background task.
    pub fn severer(&self) -> impl Fn() + Send + 'static {
        let shared = self.shared.clone();
        move || shared.generation.send_modify(|g| *g += 1)
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.sever_all();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((client, _)) = listener.accept().await {
        let shared = shared.clone();
        // Subscribed before the upstream is read: a sever that comes while
        // this connection is still being made ends it too, and one that
        // came earlier was preceded by any `set_upstream` it goes with.
        let mut severed = shared.generation.subscribe();
        tokio::spawn(async move {
            let upstream = *shared.upstream.lock().unwrap_or_else(|p| p.into_inner());
            let server = tokio::select! {
                server = TcpStream::connect(upstream) => server,
                _ = severed.changed() => return,
            };
            let Ok(server) = server else {
                return; // dropping `client` refuses it, like a dead server
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::select! {
                _ = pump(cr, sw, &shared) => {}
                _ = pump(sr, cw, &shared) => {}
                _ = severed.changed() => {}
            }
        });
    }
}

async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, shared: &Shared) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let latency = shared.latency_us.load(Ordering::Relaxed);
        if latency > 0 {
            tokio::time::sleep(Duration::from_micros(latency)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
