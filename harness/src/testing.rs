//! The suite from a `cargo test` of your own service: add this crate as a
//! dev-dependency, describe the API (a target file, or
//! [`Contract::builder`]), and run the scenarios against your axum
//! [`Router`](axum::Router) in process (driven through tower's `Service`,
//! no socket) or against a URL.
//!
//! ```no_run
//! use idemproof_harness::contract::Contract;
//! use idemproof_harness::testing::Harness;
//!
//! # fn app() -> axum::Router { axum::Router::new() }
//! #[tokio::test(flavor = "multi_thread")]
//! async fn idempotency_keys_hold() -> anyhow::Result<()> {
//!     let contract = Contract::from_file("tests/orders.toml".as_ref())?;
//!     let report = Harness::router(contract, app()).run().await?;
//!     report.assert_clean();
//!     Ok(())
//! }
//! ```
//!
//! Scenarios a black box cannot take (a crash, database faults, several
//! replicas) are skipped, saying why; everything else runs, the HTTP
//! fault proxy's `lost-ack` included.

use crate::contract::Contract;
use crate::deploy::{ServiceSettings, Target};
use crate::report::RunReport;
use crate::scenario::Scenario;
use crate::suite::{self, Environment, Sizes};

/// Seed used unless one is given: fixed, so a failure replays.
pub const DEFAULT_SEED: u64 = 1;

/// A suite run, configured.
pub struct Harness {
    target: Target,
    sizes: Sizes,
    scenarios: Vec<Scenario>,
}

impl Harness {
    /// Your axum router, driven in process.
    pub fn router(contract: Contract, router: axum::Router) -> Self {
        Self::target(Target::router(contract, router))
    }

    /// A service listening at `url`.
    pub fn url(contract: Contract, url: &str) -> Self {
        Self::target(Target::url(contract, url))
    }

    /// Any target.
    pub fn target(target: Target) -> Self {
        Self {
            target,
            sizes: Sizes::smoke(DEFAULT_SEED),
            scenarios: Scenario::all().to_vec(),
        }
    }

    /// Sizes of the run (default: [`Sizes::smoke`], seconds per scenario).
    pub fn sizes(mut self, sizes: Sizes) -> Self {
        self.sizes = sizes;
        self
    }

    /// The seed (default [`DEFAULT_SEED`]).
    pub fn seed(mut self, seed: u64) -> Self {
        self.sizes.seed = seed;
        self
    }

    /// Only these scenarios (default: all).
    pub fn scenarios(mut self, scenarios: &[Scenario]) -> Self {
        self.scenarios = scenarios.to_vec();
        self
    }

    /// Runs the scenarios; see [`RunReport::assert_clean`].
    pub async fn run(&self) -> anyhow::Result<RunReport> {
        let env = Environment::start(self.target.needs_postgres())
            .await
            .map_err(anyhow::Error::msg)?;
        let settings = ServiceSettings::new(idemproof_service::config::DEV_AUTH_SECRET.to_owned());
        let report = suite::run(&self.target, &env, &settings, &self.sizes, &self.scenarios, false).await;
        env.stop().await;
        report
    }
}
