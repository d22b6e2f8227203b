//! The command line: serve (no subcommand), or one of the tools that go
//! with the service: `token` mints a bearer token with the service's own
//! secret, `openapi` prints the document `GET /openapi.json` serves.

use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::startup::shutdown_signal;
use crate::{Application, auth, http, telemetry};

/// `idemproof-service [SETTINGS] [COMMAND]`.
#[derive(Debug, Parser)]
#[command(name = "idemproof-service", version, about)]
pub struct Cli {
    /// Every setting, as for serving (the tools read the secret from them).
    #[command(flatten)]
    pub config: Config,
    /// A tool to run instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The tools.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a bearer token for a user of some organisations, signed with
    /// the secret the service verifies (`AUTH_SECRET`, or the development
    /// secret with `--insecure-dev-secret`): for curl, schemathesis and
    /// other clients.
    Token {
        /// The user (the token's `sub`), a positive integer.
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
        user: i64,
        /// An organisation the user belongs to (the token's `orgs`); repeat
        /// for several.
        #[arg(long = "org", required = true, value_parser = clap::value_parser!(i64).range(1..))]
        orgs: Vec<i64>,
        /// How long the token is valid.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
    /// Print the OpenAPI 3.1 document (what `GET /openapi.json` serves).
    Openapi,
}

impl Cli {
    /// Serves until SIGTERM or Ctrl-C, or runs the tool.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            None => {
                telemetry::init(self.config.log_format);
                let app = Application::build(self.config).await?;
                app.run_until_stopped(shutdown_signal()).await?;
            }
            Some(Command::Token { user, orgs, ttl }) => {
                let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1);
                println!("{}", auth::mint(self.config.auth_secret()?, user, &orgs, ttl)?);
            }
            Some(Command::Openapi) => {
                println!("{}", serde_json::to_string_pretty(&http::openapi::document())?);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Verifier;
    use crate::config::DEV_AUTH_SECRET;

    #[test]
    fn settings_come_before_the_tool() {
        let cli = Cli::parse_from([
            "idemproof-service",
            "--insecure-dev-secret",
            "token",
            "--user",
            "7",
            "--org",
            "3",
            "--org",
            "4",
        ]);
        assert!(cli.config.insecure_dev_secret);
        let Some(Command::Token { user, orgs, ttl }) = cli.command else {
            panic!("a token command: {cli:?}");
        };
        assert_eq!((user, orgs, ttl), (7, vec![3, 4], Duration::from_secs(3600)));
        assert!(Cli::try_parse_from(["idemproof-service", "token", "--user", "0", "--org", "1"]).is_err());
        assert!(
            Cli::try_parse_from(["idemproof-service", "token", "--user", "1"]).is_err(),
            "an org is required"
        );
        assert!(
            Cli::parse_from(["idemproof-service"]).command.is_none(),
            "no command serves"
        );
    }

    #[test]
    fn a_minted_token_is_one_the_service_accepts() {
        let token = auth::mint(DEV_AUTH_SECRET, 7, &[3], 60).expect("mint");
        let user = Verifier::new(DEV_AUTH_SECRET)
            .expect("verifier")
            .verify(&token)
            .expect("valid");
        assert_eq!(user.id, 7);
        assert!(user.is_member_of(3) && !user.is_member_of(4));
    }
}
