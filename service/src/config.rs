//! Service configuration: every setting is an environment variable and the
//! matching `--flag`. Durations use humantime (`2s`, `24h`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::idempotency::{InFlightMode, MismatchMode, Policy};
use crate::store::postgres::Schema;

/// Secret used when `AUTH_SECRET` is not set. Fine for a laptop, never for
/// a deployment: start-up logs a warning when it is in use.
pub const DEV_AUTH_SECRET: &str = "idemproof-dev-secret-do-not-deploy";

/// All of the service's settings.
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(name = "idemproof-service", version, about)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Postgres connection URL; unset selects the in-memory store.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Size of the Postgres connection pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,

    /// How a new database declares its tables: `plain`, or `partitioned`
    /// by hash of organization_id (docs/scaling.md).
    #[arg(long, env = "DATABASE_SCHEMA", value_enum, default_value_t = Schema::Plain)]
    pub database_schema: Schema,

    /// HS256 key for bearer JWTs.
    #[arg(long, env = "AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: Option<String>,

    /// How long a key is remembered; afterwards the same key creates anew.
    #[arg(long, env = "IDEMPOTENCY_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub idempotency_ttl: Duration,

    /// How long an unfinished claim blocks its key after its owner died.
    #[arg(long, env = "IDEMPOTENCY_LEASE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub idempotency_lease: Duration,

    /// How long a duplicate waits for an in-flight original.
    #[arg(long, env = "IDEMPOTENCY_WAIT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub idempotency_wait: Duration,

    /// What a duplicate gets while the original is in flight.
    #[arg(long, env = "IDEMPOTENCY_IN_FLIGHT", value_enum, default_value_t = InFlightMode::Wait)]
    pub idempotency_in_flight: InFlightMode,

    /// What a reused key with another payload gets.
    #[arg(long, env = "IDEMPOTENCY_MISMATCH", value_enum, default_value_t = MismatchMode::Reject)]
    pub idempotency_mismatch: MismatchMode,

    /// How often expired keys are reaped.
    #[arg(long, env = "IDEMPOTENCY_REAP_INTERVAL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idempotency_reap_interval: Duration,

    /// Largest accepted request body; larger ones get 413.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1_048_576)]
    pub max_body_bytes: usize,

    /// Log line format (level via `RUST_LOG`).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    /// The documented defaults, ignoring the environment (tests build on
    /// this and must not pick up a developer's `DATABASE_URL`).
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            database_max_connections: 16,
            database_schema: Schema::Plain,
            auth_secret: None,
            idempotency_ttl: Duration::from_secs(24 * 3600),
            idempotency_lease: Duration::from_secs(30),
            idempotency_wait: Duration::from_secs(10),
            idempotency_in_flight: InFlightMode::Wait,
            idempotency_mismatch: MismatchMode::Reject,
            idempotency_reap_interval: Duration::from_secs(60),
            max_body_bytes: 1_048_576,
            log_format: LogFormat::Text,
        }
    }
}

impl Config {
    /// The HS256 secret in force.
    pub fn auth_secret(&self) -> &str {
        self.auth_secret.as_deref().unwrap_or(DEV_AUTH_SECRET)
    }

    /// How the idempotency machinery treats duplicates.
    pub fn policy(&self) -> Policy {
        Policy {
            wait: self.idempotency_wait,
            in_flight: self.idempotency_in_flight,
            mismatch: self.idempotency_mismatch,
        }
    }

    /// Lease and TTL as the stores need them.
    pub fn terms(&self) -> idemproof_models::Terms {
        let to_chrono = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        idemproof_models::Terms {
            lease: to_chrono(self.idempotency_lease),
            ttl: to_chrono(self.idempotency_ttl),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_humantime_and_modes() {
        let c = Config::parse_from([
            "idemproof-service",
            "--bind",
            "127.0.0.1:0",
            "--idempotency-ttl",
            "2s",
            "--idempotency-in-flight",
            "reject",
            "--idempotency-mismatch",
            "replay",
            "--database-schema",
            "partitioned",
        ]);
        assert_eq!(c.bind.port(), 0);
        assert_eq!(c.idempotency_ttl, Duration::from_secs(2));
        assert_eq!(c.idempotency_in_flight, InFlightMode::Reject);
        assert_eq!(c.idempotency_mismatch, MismatchMode::Replay);
        assert_eq!(c.database_schema, Schema::Partitioned);
    }

    #[test]
    fn clap_defaults_and_default_agree() {
        // With every `env` source removed, so the test environment (CI sets
        // none, a developer may set DATABASE_URL) cannot change the answer.
        let command = <Config as clap::CommandFactory>::command().mut_args(|arg| arg.env(None::<&'static str>));
        let matches = command
            .try_get_matches_from(["idemproof-service"])
            .expect("no argument is required");
        let parsed = <Config as clap::FromArgMatches>::from_arg_matches(&matches).expect("the defaults parse");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn defaults_match_the_documented_table() {
        let c = Config::default();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.idempotency_ttl, Duration::from_secs(86_400));
        assert_eq!(c.idempotency_lease, Duration::from_secs(30));
        assert_eq!(c.idempotency_wait, Duration::from_secs(10));
        assert_eq!(c.max_body_bytes, 1_048_576);
        assert_eq!(c.auth_secret(), DEV_AUTH_SECRET);
    }
}
