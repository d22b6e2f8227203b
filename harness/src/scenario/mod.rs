//! The named, seeded workloads. Each turns the run's sizes into a
//! [`Plan`]: who submits what, when, how they retry, which faults hit and
//! what each answer must be. The same seed gives the same plan.

mod crash;
mod cross_tenant;
mod db_faults;
mod double_click;
mod edit_resubmit;
mod refresh;
mod replicas;
mod storm;
mod timeout_retry;

use std::time::Duration;

use rand::{RngExt, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};

use crate::SeededRng;
use crate::driver::{Chain, Plan};
use crate::history::{Expect, RetryPolicy, Submission};
use crate::target::{Capabilities, ServiceSettings};

/// A named workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Two submissions of one form a few milliseconds apart.
    DoubleClick,
    /// Client timeouts shorter than the server's latency, retried with the same key.
    TimeoutRetry,
    /// Many clients released together on one key, over many keys.
    Storm,
    /// A new form session makes a new key: a new agent, on purpose.
    Refresh,
    /// The same key with an edited payload.
    EditResubmit,
    /// The same key string across organisations and users.
    CrossTenant,
    /// `kill -9` a service process mid-load, restart it, keep retrying.
    Crash,
    /// The database stops mid-load and comes back.
    DbRestart,
    /// Latency between service and database.
    DbSlow,
    /// Connections between service and database keep being cut.
    DbDrop,
    /// The database rejects some inserts; retries stay on their replica.
    DbError,
    /// Several replicas share the database; retries land on another one.
    Replicas,
}

impl Scenario {
    /// Every scenario, in suite order.
    pub const ALL: [Scenario; 12] = [
        Scenario::DoubleClick,
        Scenario::TimeoutRetry,
        Scenario::Storm,
        Scenario::Refresh,
        Scenario::EditResubmit,
        Scenario::CrossTenant,
        Scenario::Crash,
        Scenario::DbRestart,
        Scenario::DbSlow,
        Scenario::DbDrop,
        Scenario::DbError,
        Scenario::Replicas,
    ];

    /// Kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::DoubleClick => "double-click",
            Scenario::TimeoutRetry => "timeout-retry",
            Scenario::Storm => "storm",
            Scenario::Refresh => "refresh",
            Scenario::EditResubmit => "edit-resubmit",
            Scenario::CrossTenant => "cross-tenant",
            Scenario::Crash => "crash",
            Scenario::DbRestart => "db-restart",
            Scenario::DbSlow => "db-slow",
            Scenario::DbDrop => "db-drop",
            Scenario::DbError => "db-error",
            Scenario::Replicas => "replicas",
        }
    }

    /// The plan for this run, or why the scenario cannot run here.
    pub fn plan(self, ctx: &Ctx) -> Result<Plan, String> {
        match self {
            Scenario::DoubleClick => Ok(double_click::plan(ctx)),
            Scenario::TimeoutRetry => timeout_retry::plan(ctx),
            Scenario::Storm => Ok(storm::plan(ctx)),
            Scenario::Refresh => Ok(refresh::plan(ctx)),
            Scenario::EditResubmit => Ok(edit_resubmit::plan(ctx)),
            Scenario::CrossTenant => Ok(cross_tenant::plan(ctx)),
            Scenario::Crash => crash::plan(ctx),
            Scenario::DbRestart => db_faults::restart(ctx),
            Scenario::DbSlow => db_faults::slow(ctx),
            Scenario::DbDrop => db_faults::drop(ctx),
            Scenario::DbError => db_faults::error(ctx),
            Scenario::Replicas => replicas::plan(ctx),
        }
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything a plan depends on.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Seeds every random choice of the plan.
    pub seed: u64,
    /// Concurrent clients (browsers) for the continuous scenarios.
    pub clients: usize,
    /// Distinct keys for the per-key scenarios.
    pub keys: usize,
    /// Clients per key in `storm`.
    pub storm_clients: usize,
    /// Load window of each scenario.
    pub duration: Duration,
    /// Prefix making this run's keys unique (for long-lived targets).
    pub nonce: String,
    /// What the deployment allows.
    pub caps: Capabilities,
    /// How the service handles duplicates and leases.
    pub settings: ServiceSettings,
}

impl Ctx {
    /// A generator seeded for `scenario`.
    fn rng(&self, scenario: Scenario) -> SeededRng {
        SeededRng::seed_from_u64(self.seed ^ (scenario as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// A run-unique key.
    fn key(&self, scenario: Scenario, parts: std::fmt::Arguments<'_>) -> String {
        format!("{}-{}-{parts}", self.nonce, scenario.name())
    }

    /// Give-up time long enough to outlast a fault window plus a lease
    /// and a wait, so the recovery invariant can judge every submission.
    fn patient(&self) -> Duration {
        self.duration + self.settings.lease + self.settings.wait + Duration::from_secs(5)
    }
}

/// Organisations the scenarios use (tokens are minted per organisation).
pub const ORGS: [i64; 4] = [1, 2, 3, 4];

/// A payload: a name unique to its form plus some nested config, so that
/// key order and nesting are exercised.
fn payload(name: String, rng: &mut SeededRng) -> Value {
    json!({
        "name": name,
        "description": "created by the idemproof harness",
        "config": {"temperature": rng.random_range(0..10), "tools": ["search", "email"]},
    })
}

/// A submission with the default retry policy and no expectation.
fn submission(client: usize, org: i64, user: i64, key: Option<String>, payload: Value) -> Submission {
    Submission {
        client,
        org,
        user,
        key,
        payload,
        replica: 0,
        retry: RetryPolicy::default(),
        expect: Expect::Any,
    }
}

/// `clients` users each submitting fresh forms back to back until the
/// window closes: the steady load the fault scenarios hit.
fn continuous(ctx: &Ctx, scenario: Scenario, retry: RetryPolicy, plan: &mut Plan) {
    let mut rng = ctx.rng(scenario);
    // Bounded: no client can submit more than this many forms.
    let per_client = (ctx.duration.as_millis() / 5).clamp(1, 2_000) as usize;
    for c in 0..ctx.clients {
        let org = ORGS[c % ORGS.len()];
        let user = 1 + (c % 2) as i64;
        let steps = (0..per_client)
            .map(|i| {
                let key = ctx.key(scenario, format_args!("{c}-{i}"));
                let mut s = submission(
                    c,
                    org,
                    user,
                    Some(key),
                    payload(format!("{scenario} {c}/{i}"), &mut rng),
                );
                s.retry = retry;
                s.replica = c % ctx.caps.replicas.max(1);
                plan.submit(s)
            })
            .collect();
        plan.chains.push(Chain {
            start: Duration::from_millis((c as u64 * 3) % 50),
            group: None,
            gap: Duration::from_millis(rng.random_range(0..5)),
            steps,
        });
    }
    plan.window = ctx.duration;
}

/// Retries for the fault scenarios: patient, backing off to 500 ms.
fn fault_retry(ctx: &Ctx) -> RetryPolicy {
    RetryPolicy {
        attempts: 200,
        timeout: Duration::from_secs(2),
        backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        give_up_after: ctx.patient(),
        same_replica: false,
    }
}
