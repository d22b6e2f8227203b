//! Building and running the application: pick the store, bind the
//! listener, serve until the injected shutdown future resolves.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::auth::Verifier;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::http::metrics::Metrics;
use crate::http::{AppState, router};
use crate::idempotency::Idempotency;
use crate::reaper;
use crate::store::Stores;
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
    stores: Stores,
    clock: Arc<dyn Clock>,
    reap_interval: std::time::Duration,
}

/// The stores `config` selects: Postgres if `DATABASE_URL` is set (after
/// connecting and migrating), in-memory otherwise.
pub async fn connect_stores(config: &Config) -> anyhow::Result<Stores> {
    Ok(match &config.database_url {
        Some(url) => {
            let store = PgStore::connect(
                url,
                config.database_max_connections,
                config.terms(),
                config.database_schema,
            )
            .await?;
            tracing::info!(schema = ?config.database_schema, "using the Postgres store");
            store.stores()
        }
        None => {
            tracing::info!("using the in-memory store (set DATABASE_URL for Postgres)");
            Arc::new(MemoryStore::new(config.terms())).stores()
        }
    })
}

impl Application {
    /// Connects the configured stores and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let stores = connect_stores(&config).await?;
        Self::build_with(config, stores, Arc::new(SystemClock)).await
    }

    /// Binds the listener over given stores and clock (tests and the
    /// harness inject faulty stores and manual clocks here).
    pub async fn build_with(config: Config, stores: Stores, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        if config.auth_secret.is_none() {
            tracing::warn!(
                "AUTH_SECRET is not set: using the built-in development secret. \
                 Anyone can mint tokens for this service. Never deploy like this."
            );
        }
        let state = AppState {
            idempotency: Idempotency::new(stores.keys.clone(), clock.clone(), config.policy()),
            stores: stores.clone(),
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
            stores,
            clock,
            reap_interval: config.idempotency_reap_interval,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let reaper = tokio::spawn(reaper::run(self.stores.keys, self.clock, self.reap_interval));
        tracing::info!(address = %self.address, "listening");
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await;
        reaper.abort();
        served
    }

    /// Serves in a task of the current runtime until the returned handle
    /// is dropped or stopped: the service in process, as tests and the
    /// harness run it.
    pub fn spawn(self) -> Running {
        let url = format!("http://{}", self.address);
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(self.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Running {
            url,
            stop: Some(stop),
            served,
        }
    }
}

/// A service serving in this process; it shuts down when dropped.
pub struct Running {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Fires the graceful shutdown.
    stop: Option<oneshot::Sender<()>>,
    /// The serving task.
    served: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Shuts down gracefully and waits until in-flight requests are done.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.served)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
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
