//! Service replicas run as child processes of the harness itself: the
//! harness binary (or a test binary that calls [`run_if_child`] first)
//! re-executes itself with [`CHILD_ENV`] set, and that child serves the
//! agent API (over Postgres if given `DATABASE_URL`, else in memory) with
//! the strategy it was given. Being a real
//! process is what lets the `crash` scenario `kill -9` it.

use std::sync::Arc;

use clap::Parser;
use idemproof_service::clock::SystemClock;
use idemproof_service::mutants::Strategy;
use idemproof_service::{Application, Config};

/// Set (to a strategy name) in a child's environment.
pub const CHILD_ENV: &str = "IDEMPROOF_HARNESS_CHILD";
/// First line a child prints on stdout once it listens: `<PREFIX> <port>`.
pub const READY_PREFIX: &str = "IDEMPROOF_LISTENING";

/// If this process is a harness child, serves until killed and exits;
/// otherwise returns. Call first thing in `main`.
pub fn run_if_child() {
    let Ok(strategy) = std::env::var(CHILD_ENV) else {
        return;
    };
    let code = match serve(&strategy) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("harness child failed: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

/// Exits when the parent harness goes away, however it went (even
/// `kill -9`): the parent holds the write end of our stdin, so reading it
/// returns end-of-file only when the parent is gone.
fn exit_with_parent() {
    std::thread::spawn(|| {
        use std::io::Read;
        let mut buf = [0u8; 64];
        while matches!(std::io::stdin().read(&mut buf), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
}

fn serve(strategy: &str) -> anyhow::Result<()> {
    exit_with_parent();
    let strategy = <Strategy as clap::ValueEnum>::from_str(strategy, true).map_err(anyhow::Error::msg)?;
    // Settings come from the same env vars the service binary reads.
    let config = Config::parse_from(["idemproof-service"]);
    idemproof_service::telemetry::init(config.log_format);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        // Over Postgres when given a database, else in memory (the load
        // mode measures an in-memory service in its own process too).
        let base = match &config.database_url {
            Some(url) => {
                strategy
                    .base_postgres(url, config.database_max_connections, config.terms())
                    .await?
            }
            None => strategy.base_memory(config.terms()),
        };
        let store = strategy.decorate(base);
        let app = Application::build_with(config, store, Arc::new(SystemClock)).await?;
        println!("{READY_PREFIX} {}", app.port());
        app.run_until_stopped(idemproof_service::startup::shutdown_signal())
            .await?;
        Ok(())
    })
}
