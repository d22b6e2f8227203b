//! How the services the harness starts itself are configured: the one
//! place the service crate's configuration types meet the harness's own
//! [`Semantics`].

use std::time::Duration;

use idemproof_service::config::Config;
use idemproof_service::idempotency::{InFlightMode, MismatchMode};
use idemproof_service::mutants::Strategy;
use idemproof_service::store::postgres::Schema;
use serde::{Serialize, Serializer};

use crate::contract::{Endpoint, InFlight, Mismatch, Semantics};

/// Settings of the reference service processes the harness starts.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceSettings {
    /// Correct or one of the broken strategies.
    pub strategy: Strategy,
    /// HS256 secret for minting tokens.
    #[serde(skip)]
    pub secret: String,
    /// `IDEMPOTENCY_MISMATCH`, `IDEMPOTENCY_IN_FLIGHT`, `IDEMPOTENCY_LEASE`
    /// (short, so crash recovery fits in a run) and `IDEMPOTENCY_WAIT`.
    pub semantics: Semantics,
    /// `DATABASE_MAX_CONNECTIONS` per replica.
    pub pool_size: u32,
    /// `DATABASE_SCHEMA` of the database the Postgres targets create.
    #[serde(serialize_with = "clap_name")]
    pub schema: Schema,
    /// Which creation endpoint the clients use (and so which resource the
    /// final state is read from), through its shipped target file.
    pub endpoint: Endpoint,
}

fn clap_name<S: Serializer, T: clap::ValueEnum>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::value_name(value))
}

impl ServiceSettings {
    /// The harness's defaults: correct strategy, 2 s lease, 1 s wait.
    pub fn new(secret: String) -> Self {
        Self {
            strategy: Strategy::Correct,
            secret,
            semantics: Semantics {
                lease: Duration::from_secs(2),
                wait: Duration::from_secs(1),
                ..Semantics::default()
            },
            pool_size: 16,
            schema: Schema::Plain,
            endpoint: Endpoint::Agents,
        }
    }

    /// What a report calls the service beside its target: the endpoint
    /// unless it is agents, the schema on Postgres unless it is plain
    /// (`deployments, partitioned`); empty when both are the defaults.
    pub fn label(&self, on_postgres: bool) -> String {
        let mut parts = Vec::new();
        if self.endpoint != Endpoint::Agents {
            parts.push(self.endpoint.to_string());
        }
        if on_postgres && self.schema != Schema::Plain {
            parts.push(crate::value_name(&self.schema));
        }
        parts.join(", ")
    }

    fn in_flight(&self) -> InFlightMode {
        match self.semantics.in_flight {
            InFlight::Wait => InFlightMode::Wait,
            InFlight::Reject => InFlightMode::Reject,
        }
    }

    fn mismatch(&self) -> MismatchMode {
        match self.semantics.mismatch {
            Mismatch::Reject => MismatchMode::Reject,
            Mismatch::Replay => MismatchMode::Replay,
        }
    }

    /// The in-process service's configuration.
    pub(super) fn config(&self) -> Config {
        Config {
            bind: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            auth_secret: Some(self.secret.clone()),
            idempotency_lease: self.semantics.lease,
            idempotency_wait: self.semantics.wait,
            idempotency_in_flight: self.in_flight(),
            idempotency_mismatch: self.mismatch(),
            database_max_connections: self.pool_size,
            ..Config::default()
        }
    }

    /// Environment of a child replica (everything but BIND and the URL).
    pub(super) fn env(&self) -> Vec<(String, String)> {
        let d = |d: Duration| humantime::format_duration(d).to_string();
        vec![
            ("AUTH_SECRET".into(), self.secret.clone()),
            ("IDEMPOTENCY_LEASE".into(), d(self.semantics.lease)),
            ("IDEMPOTENCY_WAIT".into(), d(self.semantics.wait)),
            (
                "IDEMPOTENCY_IN_FLIGHT".into(),
                format!("{:?}", self.in_flight()).to_lowercase(),
            ),
            (
                "IDEMPOTENCY_MISMATCH".into(),
                format!("{:?}", self.mismatch()).to_lowercase(),
            ),
            ("DATABASE_MAX_CONNECTIONS".into(), self.pool_size.to_string()),
            ("DATABASE_SCHEMA".into(), crate::value_name(&self.schema)),
            ("LOG_FORMAT".into(), "text".into()),
        ]
    }
}
