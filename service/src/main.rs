//! `idemproof-service`: see the crate docs and the README.

use clap::Parser;
use idemproof_service::startup::shutdown_signal;
use idemproof_service::{Application, Config, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init(config.log_format);
    let app = Application::build(config).await?;
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(())
}
