//! One Postgres container per run (or test binary), one fresh database per
//! scenario (or test case).
//!
//! The image comes from `IDEMPROOF_PG_IMAGE` (default: the official
//! `postgres:17`); `scripts/postgres-image.sh` builds a local one on
//! machines that cannot pull. Docker missing is a loud failure, unless the
//! developer opted out with `IDEMPROOF_SKIP_DOCKER=1` (never set in CI).
//!
//! Clients connect to the container's bridge address when the host can
//! reach it (Docker on Linux), else to the port Docker publishes on
//! loopback. The published port goes through Docker's userland proxy, a
//! process that copies every byte: on the 2-core machine of
//! `docs/benchmarks.md` it took half the round trips a client could make
//! and charged its CPU to whatever was being measured. A database across a
//! real network has no such hop. `IDEMPROOF_PG_PUBLISHED_PORT=1` keeps the
//! published port, to compare.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use tokio::net::TcpStream;

/// Env var naming the Postgres image (`name:tag`).
pub const IMAGE_VAR: &str = "IDEMPROOF_PG_IMAGE";
/// Default image: what a developer with internet access gets.
pub const DEFAULT_IMAGE: &str = "postgres:17";
/// Env var that skips (rather than fails) Docker-backed tests.
pub const SKIP_VAR: &str = "IDEMPROOF_SKIP_DOCKER";
/// Env var that makes clients use the published port even when the
/// container's bridge address is reachable.
pub const PUBLISHED_PORT_VAR: &str = "IDEMPROOF_PG_PUBLISHED_PORT";

/// Whether the developer asked to skip Docker-backed tests.
pub fn docker_opted_out() -> bool {
    std::env::var(SKIP_VAR).is_ok_and(|v| v == "1")
}

/// A running Postgres container.
pub struct PgServer {
    container: ContainerAsync<GenericImage>,
    /// Where clients connect (see the module doc); Docker may pick another
    /// port or address when the container is restarted.
    addr: Mutex<SocketAddr>,
    /// Numbers fresh databases.
    next_db: AtomicU32,
}

impl PgServer {
    /// Starts the container for correctness work (tests, suites): durability
    /// off (`fsync=off`), which changes no visible semantics while the
    /// server runs, and room for many connections. Waits until it accepts
    /// connections; the error says what to do.
    pub async fn start() -> Result<Self, String> {
        Self::start_with(&["max_connections=400", "fsync=off"]).await
    }

    /// Starts the container with Postgres's durable defaults, for
    /// measurements: commits wait for the WAL flush, as in production.
    pub async fn start_for_benchmarks() -> Result<Self, String> {
        Self::start_with(&["max_connections=400"]).await
    }

    /// Starts the container with extra `-c name=value` settings.
    pub async fn start_with(settings: &[&str]) -> Result<Self, String> {
        let image = std::env::var(IMAGE_VAR).unwrap_or_else(|_| DEFAULT_IMAGE.to_owned());
        let (name, tag) = image.rsplit_once(':').unwrap_or((&image, "latest"));
        let container = GenericImage::new(name, tag)
            .with_exposed_port(5432.tcp())
            .with_wait_for(WaitFor::message_on_stderr(
                "database system is ready to accept connections",
            ))
            .with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust")
            // Named, not Docker's "default", so its address can be looked up.
            .with_network("bridge")
            .with_cmd(
                std::iter::once("postgres".to_owned())
                    .chain(settings.iter().flat_map(|s| ["-c".to_owned(), (*s).to_owned()])),
            )
            .with_startup_timeout(Duration::from_secs(120))
            .start()
            .await
            .map_err(|e| {
                format!(
                    "could not start the Postgres container from image `{image}`: {e}.\n\
                     This needs a reachable Docker engine and that image. Run \
                     `bash scripts/docker-up.sh` and `bash scripts/postgres-image.sh` \
                     (or set {IMAGE_VAR} to an image you have); to skip Docker-backed \
                     tests in a quick local loop set {SKIP_VAR}=1."
                )
            })?;
        let server = Self {
            container,
            addr: Mutex::new(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
            next_db: AtomicU32::new(0),
        };
        server
            .locate()
            .await
            .map_err(|e| format!("no address for Postgres: {e}"))?;
        Ok(server)
    }

    /// Finds where clients should connect, once the server accepts
    /// connections on its published port.
    async fn locate(&self) -> anyhow::Result<SocketAddr> {
        let port = self.container.get_host_port_ipv4(5432.tcp()).await?;
        let published = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        self.set_addr(published);
        self.wait_until_ready().await.map_err(anyhow::Error::msg)?;
        if std::env::var(PUBLISHED_PORT_VAR).is_ok_and(|v| v == "1") {
            return Ok(published);
        }
        let Ok(ip) = self.container.get_bridge_ip_address().await else {
            return Ok(published);
        };
        let direct = SocketAddr::new(ip, 5432);
        let reachable = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(direct)).await;
        if matches!(reachable, Ok(Ok(_))) {
            self.set_addr(direct);
            return Ok(direct);
        }
        Ok(published)
    }

    fn set_addr(&self, addr: SocketAddr) {
        *self.addr.lock().unwrap_or_else(|p| p.into_inner()) = addr;
    }

    /// Polls until a real connection works: the official image logs
    /// "ready" once during initialisation too, before it listens on TCP.
    async fn wait_until_ready(&self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match PgConnection::connect(&self.url("postgres")).await {
                Ok(conn) => {
                    let _ = conn.close().await;
                    return Ok(());
                }
                Err(e) if tokio::time::Instant::now() > deadline => {
                    return Err(format!("Postgres container never accepted connections: {e}"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Where Postgres listens right now.
    pub fn addr(&self) -> SocketAddr {
        *self.addr.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// URL of database `db`, directly (not through the harness's proxy).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@{}/{db}", self.addr())
    }

    /// Creates an empty database and returns its URL.
    pub async fn fresh_database(&self) -> anyhow::Result<String> {
        Ok(self.url(&self.create_database().await?))
    }

    /// Creates an empty database and returns its name.
    pub async fn create_database(&self) -> anyhow::Result<String> {
        let name = format!(
            "idemproof_{}_{}",
            std::process::id(),
            self.next_db.fetch_add(1, Ordering::SeqCst)
        );
        let mut admin = PgConnection::connect(&self.url("postgres")).await?;
        admin.execute(format!("CREATE DATABASE {name}").as_str()).await?;
        let _ = admin.close().await;
        Ok(name)
    }

    /// `docker stop`: the server shuts down; its data survives.
    pub async fn stop(&self) -> anyhow::Result<()> {
        self.container.stop().await?;
        Ok(())
    }

    /// Starts the stopped container again, waits until it accepts
    /// connections and returns its (possibly new) address.
    pub async fn start_again(&self) -> anyhow::Result<SocketAddr> {
        self.container.start().await?;
        self.locate().await
    }

    /// Stops and removes the container.
    pub async fn remove(self) {
        let _ = self.container.rm().await;
    }
}
