//! Service configuration: every setting is an environment variable and the
//! matching `--flag`. Durations use humantime (`2s`, `24h`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::idempotency::{InFlightMode, MismatchMode, Policy};
use crate::readiness::ProbeSettings;
use crate::store::memory::MemoryLimits;
use crate::store::postgres::{DEFAULT_REPLAY_CACHE_BYTES, Schema};

/// Secret used when `AUTH_SECRET` is not set and `--insecure-dev-secret`
/// is given. Fine for a laptop, never for a deployment: it is published
/// here, so anyone can mint tokens with it.
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

    /// Bytes of completed keys (and their resources, as JSON) each kind of
    /// resource keeps in this process, so that replays skip the database;
    /// 0 turns the replay cache off.
    #[arg(long, env = "REPLAY_CACHE_BYTES", default_value_t = DEFAULT_REPLAY_CACHE_BYTES)]
    pub replay_cache_bytes: usize,

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

    /// Start without `AUTH_SECRET`, trusting the development secret
    /// published in this source. Local use only: without this flag a
    /// missing secret is a start-up error.
    #[arg(long, env = "INSECURE_DEV_SECRET", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub insecure_dev_secret: bool,

    /// Where `/metrics` is served (its own listener, never the API's);
    /// unset: not served at all.
    #[arg(long, env = "METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,

    /// Time a client has to send a complete request head, counted from
    /// when its connection opened or its previous response was sent: the
    /// slowloris bound, and also the keep-alive idle timeout.
    #[arg(long, env = "HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub http_header_timeout: Duration,

    /// Time a client has to send a whole request body once the service
    /// starts reading it (408 after).
    #[arg(long, env = "HTTP_BODY_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub http_body_timeout: Duration,

    /// How long a response write may stay blocked on a client that does
    /// not read before its connection is closed.
    #[arg(long, env = "HTTP_WRITE_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub http_write_timeout: Duration,

    /// Largest request line target (path and query), in bytes (414 above).
    #[arg(long, env = "MAX_URI_BYTES", default_value_t = 8_192)]
    pub max_uri_bytes: usize,

    /// Largest total size of the request's header lines (431 above).
    #[arg(long, env = "MAX_HEADER_BYTES", default_value_t = 16_384)]
    pub max_header_bytes: usize,

    /// Most header lines in one request (431 above).
    #[arg(long, env = "MAX_HEADERS", default_value_t = 100)]
    pub max_headers: usize,

    /// Open client connections served at once; a connection beyond gets a
    /// 503 and is closed. Lowered at start-up to fit the open-file limit.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// API requests handled at once; one beyond gets 503 at once.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 1_024)]
    pub max_in_flight: usize,

    /// Requests per second each organisation may make to the API; 0: no
    /// limit. A request over its organisation's quota gets 429.
    #[arg(long, env = "RATE_LIMIT_PER_ORG", default_value_t = 0)]
    pub rate_limit_per_org: u32,

    /// Requests an organisation may make in one burst above its rate
    /// (0: the same as `RATE_LIMIT_PER_ORG`).
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 0)]
    pub rate_limit_burst: u32,

    /// Largest list page, in bytes of agents; a page stops early (with a
    /// `next_cursor`) rather than exceed it. At least one agent is sent.
    #[arg(long, env = "LIST_PAGE_MAX_BYTES", default_value_t = 1_048_576)]
    pub list_page_max_bytes: usize,

    /// After SIGTERM: how long open requests may finish before every
    /// connection still open is closed and the process exits.
    #[arg(long, env = "SHUTDOWN_DRAIN_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub shutdown_drain_timeout: Duration,

    /// API requests one organisation may have in flight at once; one
    /// beyond gets 429 at once. 0: no per-organisation cap (only
    /// `MAX_IN_FLIGHT`).
    #[arg(long, env = "MAX_IN_FLIGHT_PER_ORG", default_value_t = 256)]
    pub max_in_flight_per_org: usize,

    /// Time between readiness write probes.
    #[arg(long, env = "READINESS_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub readiness_interval: Duration,

    /// How long a readiness probe waits for a database connection (then
    /// "busy": no verdict) and for its write (then "failed").
    #[arg(long, env = "READINESS_PROBE_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub readiness_probe_timeout: Duration,

    /// Failed write probes in a row that make `/readyz` answer 503.
    #[arg(long, env = "READINESS_FAIL_AFTER", default_value_t = 3)]
    pub readiness_fail_after: u32,

    /// Successful write probes in a row that make `/readyz` answer 200
    /// again.
    #[arg(long, env = "READINESS_RECOVER_AFTER", default_value_t = 2)]
    pub readiness_recover_after: u32,

    /// In-memory store: most idempotency records held at once. At the
    /// bound dead keys are removed to make room; if every key is alive a
    /// new key is refused (503 `store_full`).
    #[arg(long, env = "MEMORY_MAX_KEYS", default_value_t = 1_000_000)]
    pub memory_max_keys: usize,

    /// In-memory store: most bytes of agents and deployments (each counted
    /// as its JSON plus a fixed overhead). Past it every creation is
    /// refused (503 `store_full`); nothing is ever deleted to make room.
    #[arg(long, env = "MEMORY_MAX_RESOURCE_BYTES", default_value_t = 1_073_741_824)]
    pub memory_max_resource_bytes: usize,
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
            replay_cache_bytes: DEFAULT_REPLAY_CACHE_BYTES,
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
            insecure_dev_secret: false,
            metrics_bind: None,
            http_header_timeout: Duration::from_secs(10),
            http_body_timeout: Duration::from_secs(20),
            http_write_timeout: Duration::from_secs(20),
            max_uri_bytes: 8_192,
            max_header_bytes: 16_384,
            max_headers: 100,
            max_connections: 10_000,
            max_in_flight: 1_024,
            rate_limit_per_org: 0,
            rate_limit_burst: 0,
            list_page_max_bytes: 1_048_576,
            shutdown_drain_timeout: Duration::from_secs(20),
            max_in_flight_per_org: 256,
            readiness_interval: Duration::from_secs(2),
            readiness_probe_timeout: Duration::from_secs(1),
            readiness_fail_after: 3,
            readiness_recover_after: 2,
            memory_max_keys: 1_000_000,
            memory_max_resource_bytes: 1_073_741_824,
        }
    }
}

impl Config {
    /// The HS256 secret in force: `AUTH_SECRET`, or the development secret
    /// when `--insecure-dev-secret` allows it; an error otherwise.
    pub fn auth_secret(&self) -> anyhow::Result<&str> {
        match (&self.auth_secret, self.insecure_dev_secret) {
            (Some(secret), _) if secret.is_empty() => anyhow::bail!("AUTH_SECRET is set but empty"),
            (Some(secret), _) => Ok(secret),
            (None, true) => Ok(DEV_AUTH_SECRET),
            (None, false) => anyhow::bail!(
                "AUTH_SECRET is not set: set it to the HS256 key of your tokens, \
                 or pass --insecure-dev-secret (INSECURE_DEV_SECRET=1) to run locally \
                 on the development secret published in the source"
            ),
        }
    }

    /// How the idempotency machinery treats duplicates.
    pub fn policy(&self) -> Policy {
        Policy {
            wait: self.idempotency_wait,
            in_flight: self.idempotency_in_flight,
            mismatch: self.idempotency_mismatch,
        }
    }

    /// The in-memory store's bounds.
    pub fn memory_limits(&self) -> MemoryLimits {
        MemoryLimits {
            max_keys: self.memory_max_keys,
            max_resource_bytes: self.memory_max_resource_bytes,
        }
    }

    /// How the readiness probe runs.
    pub fn probe_settings(&self) -> ProbeSettings {
        ProbeSettings {
            interval: self.readiness_interval.max(Duration::from_millis(1)),
            timeout: self.readiness_probe_timeout,
            fail_after: self.readiness_fail_after.max(1),
            recover_after: self.readiness_recover_after.max(1),
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
        assert!(c.auth_secret().is_err(), "no secret, no start");
        assert_eq!(c.metrics_bind, None, "metrics are off unless asked for");
        assert_eq!(c.rate_limit_per_org, 0, "no rate limit unless asked for");
        assert_eq!(c.max_in_flight_per_org, 256);
        assert_eq!(c.readiness_interval, Duration::from_secs(2));
        assert_eq!((c.readiness_fail_after, c.readiness_recover_after), (3, 2));
        assert_eq!(c.memory_max_keys, 1_000_000);
        assert_eq!(c.memory_max_resource_bytes, 1 << 30);
    }

    #[test]
    fn the_dev_secret_needs_the_explicit_flag() {
        let c = Config::parse_from(["idemproof-service", "--insecure-dev-secret"]);
        assert!(c.insecure_dev_secret);
        let c = Config {
            insecure_dev_secret: true,
            ..Config::default()
        };
        assert_eq!(c.auth_secret().ok(), Some(DEV_AUTH_SECRET));
        let c = Config::parse_from(["idemproof-service", "--insecure-dev-secret=false"]);
        assert!(!c.insecure_dev_secret);
        let c = Config {
            auth_secret: Some("s3cret".into()),
            ..Config::default()
        };
        assert_eq!(c.auth_secret().ok(), Some("s3cret"));
        let c = Config {
            auth_secret: Some(String::new()),
            insecure_dev_secret: true,
            ..Config::default()
        };
        assert!(c.auth_secret().is_err(), "an empty secret is refused even in dev mode");
    }
}
