//! `idemproof`: see the crate docs and `docs/harness.md`.

use std::process::ExitCode;

use clap::Parser;
use idemproof_harness::cli::{self, Cli};

fn main() -> ExitCode {
    // Replicas of the service under test are this binary, re-executed.
    idemproof_harness::deploy::child::run_if_child();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // In-process services log every injected failure; the
                // report says what matters. RUST_LOG brings them back.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,idemproof_service=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(cli::run(cli)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(2)
        }
    }
}
