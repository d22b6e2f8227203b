//! `idemproof-service`: see the crate docs and the README.

use clap::Parser;
use idemproof_service::cli::Cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Cli::parse().run().await
}
