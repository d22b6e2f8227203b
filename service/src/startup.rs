//! Building and running the application: pick the stores, bind the
//! listeners, serve until the injected shutdown future resolves, then
//! drain within the deadline.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::auth::Verifier;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::http::rate_limit::{self, OrgRateLimiter};
use crate::http::request_head::HeadLimits;
use crate::http::server::{self, ServeSettings};
use crate::http::tenant_limit::TenantInFlight;
use crate::http::{AppState, metrics_router, router};
use crate::idempotency::Idempotency;
use crate::metrics::Metrics;
use crate::readiness::{self, ProbeSettings, Readiness};
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
    /// The `/metrics` listener and its address, when `METRICS_BIND` is set.
    metrics: Option<(TcpListener, SocketAddr)>,
    /// Counters behind `/metrics`.
    metrics_state: Arc<Metrics>,
    /// Connection-loop bounds of both listeners.
    serve: ServeSettings,
    /// Pruned while serving.
    rate_limiter: Option<Arc<OrgRateLimiter>>,
    /// Fed by the write probe while serving, read by `/readyz`.
    readiness: Arc<Readiness>,
    /// How the write probe runs.
    probe: ProbeSettings,
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
            .await?
            .with_replay_cache(config.replay_cache_bytes);
            tracing::info!(schema = ?config.database_schema, "using the Postgres store");
            store.stores()
        }
        None => {
            tracing::info!("using the in-memory store (set DATABASE_URL for Postgres)");
            Arc::new(MemoryStore::bounded(config.terms(), config.memory_limits())).stores()
        }
    })
}

impl Application {
    /// Connects the configured stores and binds the listeners.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let stores = connect_stores(&config).await?;
        Self::build_with(config, stores, Arc::new(SystemClock)).await
    }

    /// Binds the listeners over given stores and clock (tests and the
    /// harness inject faulty stores and manual clocks here).
    pub async fn build_with(config: Config, stores: Stores, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let secret = config.auth_secret()?;
        if config.auth_secret.is_none() {
            tracing::warn!(
                "--insecure-dev-secret: using the development secret published in the source. \
                 Anyone can mint tokens for this service. Never deploy like this."
            );
        }
        let metrics = Arc::new(Metrics::default());
        metrics.operational.watch_pool(stores.keys.clone());
        let rate_limiter = OrgRateLimiter::new(config.rate_limit_per_org, config.rate_limit_burst).map(Arc::new);
        let probe = config.probe_settings();
        let readiness = Arc::new(Readiness::new(probe.fail_after, probe.recover_after));
        let state = AppState {
            idempotency: Idempotency::new(stores.keys.clone(), clock.clone(), config.policy())
                .observed(metrics.clone()),
            stores: stores.clone(),
            clock: clock.clone(),
            verifier: Arc::new(Verifier::new(secret)?),
            metrics: metrics.clone(),
            max_body_bytes: config.max_body_bytes,
            body_timeout: config.http_body_timeout,
            rate_limiter: rate_limiter.clone(),
            list_page_max_bytes: config.list_page_max_bytes,
            head_limits: HeadLimits {
                max_uri_bytes: config.max_uri_bytes,
                max_header_bytes: config.max_header_bytes,
                max_headers: config.max_headers,
            },
            max_in_flight: config.max_in_flight.max(1),
            tenant_in_flight: TenantInFlight::new(config.max_in_flight_per_org).map(Arc::new),
            readiness: readiness.clone(),
        };
        let serve = ServeSettings {
            header_timeout: config.http_header_timeout,
            write_timeout: config.http_write_timeout,
            max_connections: server::fit_connection_cap(config.max_connections.max(1)),
            // hyper's own (bodiless) 414/431 only above twice ours.
            backstop_head_bytes: 2 * (config.max_header_bytes + config.max_uri_bytes),
            backstop_headers: 2 * config.max_headers,
            drain: config.shutdown_drain_timeout,
        };
        let listener = TcpListener::bind(config.bind).await?;
        let address = listener.local_addr()?;
        let metrics_listener = match config.metrics_bind {
            Some(bind) => {
                let listener = TcpListener::bind(bind).await?;
                let address = listener.local_addr()?;
                Some((listener, address))
            }
            None => None,
        };
        Ok(Self {
            listener,
            address,
            router: router(state),
            metrics: metrics_listener,
            metrics_state: metrics,
            serve,
            rate_limiter,
            readiness,
            probe,
            stores,
            clock,
            reap_interval: config.idempotency_reap_interval,
        })
    }

    /// The same application with its routes wrapped by `wrap` (the
    /// harness puts a broken strategy's middleware in front this way).
    pub fn map_routes(mut self, wrap: impl FnOnce(axum::Router) -> axum::Router) -> Self {
        self.router = wrap(self.router);
        self
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The address `/metrics` is served on, if any.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, address)| *address)
    }

    /// Serves until `shutdown` resolves, then drains open requests for at
    /// most `SHUTDOWN_DRAIN_TIMEOUT` and returns.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let prober = tokio::spawn(readiness::run(
            self.stores.keys.clone(),
            self.clock.clone(),
            self.readiness,
            self.metrics_state.clone(),
            self.probe,
        ));
        let reaper = tokio::spawn(reaper::run(
            self.stores.keys,
            self.clock,
            self.reap_interval,
            self.metrics_state.clone(),
        ));
        let pruner = self.rate_limiter.map(|limiter| {
            tokio::spawn(async move {
                let mut every = tokio::time::interval(rate_limit::PRUNE_INTERVAL);
                loop {
                    every.tick().await;
                    limiter.prune();
                }
            })
        });
        // One signal, two listeners.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let on_stop = || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }
        };
        let metrics = self.metrics.map(|(listener, address)| {
            tracing::info!(%address, "serving /metrics");
            let router = metrics_router(self.metrics_state);
            tokio::spawn(server::serve(listener, router, self.serve.clone(), on_stop()))
        });
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        tracing::info!(address = %self.address, "listening");
        let served = server::serve(self.listener, self.router, self.serve, on_stop()).await;
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        reaper.abort();
        prober.abort();
        if let Some(pruner) = pruner {
            pruner.abort();
        }
        served
    }

    /// Serves in a task of the current runtime until the returned handle
    /// is dropped or stopped: the service in process, as tests and the
    /// harness run it.
    pub fn spawn(self) -> Running {
        let url = format!("http://{}", self.address);
        let metrics_url = self.metrics_address().map(|address| format!("http://{address}"));
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(self.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Running {
            url,
            metrics_url,
            stop: Some(stop),
            served,
        }
    }
}

/// A service serving in this process; it shuts down when dropped.
pub struct Running {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Where `/metrics` is served (`http://ADDRESS`), if `METRICS_BIND` is
    /// set.
    pub metrics_url: Option<String>,
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
