//! Building and running the application: pick the store, bind the
//! listener, serve until the injected shutdown future resolves.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::auth::Verifier;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::http::metrics::Metrics;
use crate::http::{AppState, router};
use crate::idempotency::{Idempotency, Policy};
use crate::reaper;
use crate::store::Store;
use crate::store::memory::MemoryStore;
use crate::store::postgres::PgStore;

/// A bound, ready-to-serve service.
pub struct Application {
    /// Bound before serving, so `port()` is known (tests bind port 0).
    listener: TcpListener,
    /// The actual address, after port 0 was resolved.
    address: SocketAddr,
    /// Routes with their state.
    router: axum::Router,
    /// Handed to the reaper task when serving starts.
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    reap_interval: std::time::Duration,
}

/// The store `config` selects: Postgres if `DATABASE_URL` is set (after
/// connecting and migrating), in-memory otherwise.
pub async fn connect_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match &config.database_url {
        Some(url) => {
            let store = PgStore::connect(url, config.database_max_connections, config.terms()).await?;
            tracing::info!("using the Postgres store");
            Arc::new(store)
        }
        None => {
            tracing::info!("using the in-memory store (set DATABASE_URL for Postgres)");
            Arc::new(MemoryStore::new(config.terms()))
        }
    })
}

impl Application {
    /// Connects the configured store and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let store = connect_store(&config).await?;
        Self::build_with(config, store, Arc::new(SystemClock)).await
    }

    /// Binds the listener over a given store and clock (tests inject
    /// faulty stores and manual clocks here).
    pub async fn build_with(config: Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        if config.auth_secret.is_none() {
            tracing::warn!(
                "AUTH_SECRET is not set: using the built-in development secret. \
                 Anyone can mint tokens for this service. Never deploy like this."
            );
        }
        let policy = Policy {
            wait: config.idempotency_wait,
            in_flight: config.idempotency_in_flight,
            mismatch: config.idempotency_mismatch,
        };
        let state = AppState {
            idempotency: Idempotency::new(store.clone(), clock.clone(), policy),
            store: store.clone(),
            clock: clock.clone(),
            verifier: Arc::new(Verifier::new(config.auth_secret())?),
            metrics: Arc::new(Metrics::default()),
            max_body_bytes: config.max_body_bytes,
        };
        let listener = TcpListener::bind(config.bind).await?;
        let address = listener.local_addr()?;
        Ok(Self {
            listener,
            address,
            router: router(state),
            store,
            clock,
            reap_interval: config.idempotency_reap_interval,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let reaper = tokio::spawn(reaper::run(self.store, self.clock, self.reap_interval));
        tracing::info!(address = %self.address, "listening");
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await;
        reaper.abort();
        served
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
