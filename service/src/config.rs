//! Service configuration: every setting is an environment variable and the
//! matching `--flag`. Durations use humantime (`2s`, `24h`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Secret used when `AUTH_SECRET` is not set. Fine for a laptop, never for
/// a deployment: start-up logs a warning when it is in use.
pub const DEV_AUTH_SECRET: &str = "idemproof-dev-secret-do-not-deploy";

/// All of the service's settings.
#[derive(Debug, Clone, Parser)]
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

/// What a duplicate request gets while the original is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InFlightMode {
    /// Wait up to `IDEMPOTENCY_WAIT` for the original, then replay it.
    Wait,
    /// Answer 409 at once.
    Reject,
}

/// What a reused key with a different payload gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MismatchMode {
    /// 422 `idempotency_key_reused`.
    Reject,
    /// Return the original result, ignoring the new payload (the legacy
    /// behaviour, kept for clients that depend on it).
    Replay,
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
        ]);
        assert_eq!(c.bind.port(), 0);
        assert_eq!(c.idempotency_ttl, Duration::from_secs(2));
        assert_eq!(c.idempotency_in_flight, InFlightMode::Reject);
        assert_eq!(c.idempotency_mismatch, MismatchMode::Replay);
    }

    #[test]
    fn clap_defaults_and_default_agree() {
        let parsed = Config::try_parse_from(["idemproof-service"]);
        // The environment may set some of them; compare the ones it cannot.
        if let Ok(parsed) = parsed
            && std::env::vars().all(|(k, _)| !k.starts_with("IDEMPOTENCY_"))
        {
            let d = Config::default();
            assert_eq!(parsed.idempotency_ttl, d.idempotency_ttl);
            assert_eq!(parsed.idempotency_lease, d.idempotency_lease);
            assert_eq!(parsed.idempotency_wait, d.idempotency_wait);
            assert_eq!(parsed.idempotency_reap_interval, d.idempotency_reap_interval);
        }
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
