//! Service replicas run as child processes of the harness itself: the
//! harness binary (or a test binary that calls [`run_if_child`] first)
//! re-executes itself with [`CHILD_ENV`] set, and that child serves the
//! agent API (over Postgres if given `DATABASE_URL`, else in memory) with
//! the strategy it was given. Being a real
//! process is what lets the `crash` scenario `kill -9` it.
//!
//! The parent holds the child's stdin. Closing it (or dying) ends the
//! child; a line `work-delay <ms>` makes every creation take that much
//! longer between its start and its write (see [`WORK_DELAY_COMMAND`]).

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use idemproof_service::clock::SystemClock;
use idemproof_service::mutants::{Backend, Strategy};
use idemproof_service::{Application, Config};

use super::FaultState;

/// The stdin command setting the work delay, followed by milliseconds.
pub const WORK_DELAY_COMMAND: &str = "work-delay";

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

/// Follows the parent's commands, and exits when the parent harness goes
/// away, however it went (even `kill -9`): the parent holds the write end
/// of our stdin, so reading it returns end-of-file only when the parent is
/// gone.
fn follow_parent(faults: Arc<FaultState>) {
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if let Some(ms) = line.strip_prefix(WORK_DELAY_COMMAND)
                && let Ok(ms) = ms.trim().parse::<u64>()
            {
                faults.set_work_delay(Duration::from_millis(ms));
            }
        }
        std::process::exit(0);
    });
}

fn serve(strategy: &str) -> anyhow::Result<()> {
    let faults = Arc::new(FaultState::new(0));
    follow_parent(faults.clone());
    let strategy = <Strategy as clap::ValueEnum>::from_str(strategy, true).map_err(anyhow::Error::msg)?;
    // Settings come from the same env vars the service binary reads.
    let config = Config::parse_from(["idemproof-service"]);
    idemproof_service::telemetry::init(config.log_format);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        // Over Postgres when given a database, else in memory (the load
        // mode measures an in-memory service in its own process too).
        let backend = match &config.database_url {
            Some(url) => {
                strategy
                    .postgres(
                        url,
                        config.database_max_connections,
                        config.terms(),
                        config.database_schema,
                    )
                    .await?
            }
            None => strategy.memory(config.terms()),
        };
        // The correct design keeps the replay cache it is configured with.
        let backend = match backend {
            Backend::Postgres(pg) if strategy == Strategy::Correct => {
                Backend::Postgres(pg.with_replay_cache(config.replay_cache_bytes))
            }
            other => other,
        };
        let stores = strategy.stores(&backend, |s| s.layer(faults))?;
        let app = Application::build_with(config, stores, Arc::new(SystemClock))
            .await?
            .map_routes(|routes| strategy.front(routes));
        println!("{READY_PREFIX} {}", app.port());
        app.run_until_stopped(idemproof_service::startup::shutdown_signal())
            .await?;
        Ok(())
    })
}
