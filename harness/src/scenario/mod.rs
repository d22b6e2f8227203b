//! The named, seeded workloads. Each turns the run's sizes into a
//! [`Plan`]: who submits what, when, how they retry, which faults hit and
//! what each answer must be. The same seed gives the same plan.

mod crash;
mod cross_tenant;
mod db_faults;
mod double_click;
mod edit_resubmit;
mod fix_resubmit;
mod lost_ack;
mod refresh;
mod reordered_retry;
mod replicas;
mod stalled_owner;
mod storm;
mod timeout_retry;

use std::time::Duration;

use rand::{RngExt, SeedableRng};
use serde::Serialize;

use crate::SeededRng;
use crate::client::Wording;
use crate::contract::Semantics;
use crate::deploy::Capabilities;
use crate::driver::{Chain, Plan};
use crate::form::{Form, FormField};
use crate::history::{Expect, RetryPolicy, Submission};

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
    /// The service's answers are lost after it sent them; clients retry.
    LostAck,
    /// A retry spelling the same fields in another order.
    ReorderedRetry,
    /// A submit refused as malformed, fixed and resubmitted with its key.
    FixResubmit,
    /// The owner of a key stalls past its lease; a duplicate comes meanwhile.
    StalledOwner,
}

impl Scenario {
    /// Every scenario, in suite order.
    pub fn all() -> &'static [Scenario] {
        <Self as clap::ValueEnum>::value_variants()
    }

    /// Kebab-case name, as on the command line.
    pub fn name(self) -> String {
        crate::value_name(&self)
    }

    /// Whether the scenario can run on a target with `caps` and this many
    /// tenants and users (`Err` says why not).
    pub fn runs_on(self, caps: Capabilities, tenants: usize, users: usize) -> Result<(), String> {
        let ctx = Ctx {
            seed: 0,
            clients: 1,
            keys: 1,
            storm_clients: 1,
            duration: Duration::from_millis(10),
            nonce: String::new(),
            caps,
            semantics: Semantics::default(),
            tenants,
            users,
            edit: vec![FormField::Name],
            latency: None,
        };
        self.plan(&ctx).map(|_| ())
    }

    /// The plan for this run, or why the scenario cannot run here.
    pub fn plan(self, ctx: &Ctx) -> Result<Plan, String> {
        match self {
            Scenario::DoubleClick => Ok(double_click::plan(ctx)),
            Scenario::TimeoutRetry => timeout_retry::plan(ctx),
            Scenario::Storm => Ok(storm::plan(ctx)),
            Scenario::Refresh => Ok(refresh::plan(ctx)),
            Scenario::EditResubmit => Ok(edit_resubmit::plan(ctx)),
            Scenario::CrossTenant => cross_tenant::plan(ctx),
            Scenario::Crash => crash::plan(ctx),
            Scenario::DbRestart => db_faults::restart(ctx),
            Scenario::DbSlow => db_faults::slow(ctx),
            Scenario::DbDrop => db_faults::drop(ctx),
            Scenario::DbError => db_faults::error(ctx),
            Scenario::Replicas => replicas::plan(ctx),
            Scenario::LostAck => Ok(lost_ack::plan(ctx)),
            Scenario::ReorderedRetry => Ok(reordered_retry::plan(ctx)),
            Scenario::FixResubmit => Ok(fix_resubmit::plan(ctx)),
            Scenario::StalledOwner => stalled_owner::plan(ctx),
        }
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// A black-box service's latency, measured before the scenarios that
/// need it: their retry budgets follow it, so a slow but correct service
/// is not failed for being slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Latency {
    /// Median of the calibration requests.
    pub typical: Duration,
    /// Slowest of them.
    pub slowest: Duration,
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
    /// Prefix making this run's keys and names unique (for long-lived
    /// targets).
    pub nonce: String,
    /// What the deployment allows.
    pub caps: Capabilities,
    /// What the service promises about duplicates and leases.
    pub semantics: Semantics,
    /// How many tenants and users the contract has.
    pub tenants: usize,
    /// See `tenants`.
    pub users: usize,
    /// The form fields `edit-resubmit` changes.
    pub edit: Vec<FormField>,
    /// The service's calibrated latency (black boxes only).
    pub latency: Option<Latency>,
}

impl Ctx {
    /// A generator seeded for `scenario`.
    fn rng(&self, scenario: Scenario) -> SeededRng {
        SeededRng::seed_from_u64(self.seed ^ (scenario as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// A run-unique key.
    fn key(&self, scenario: Scenario, parts: std::fmt::Arguments<'_>) -> String {
        format!("{}-{scenario}-{parts}", self.nonce)
    }

    /// A form whose name is unique to this run.
    fn form(&self, name: std::fmt::Arguments<'_>, rng: &mut SeededRng) -> Form {
        Form::new(format!("{} {name}", self.nonce), rng.random_range(0..10))
    }

    /// Tenant `t` and user `u`, wrapped to the contract's principals.
    fn principal(&self, t: usize, u: usize) -> (usize, usize) {
        (t % self.tenants.max(1), u % self.users.max(1))
    }

    /// Give-up time long enough to outlast a fault window plus a lease
    /// and a wait, so the recovery invariant can judge every submission.
    fn patient(&self) -> Duration {
        self.duration + self.semantics.lease + self.semantics.wait + Duration::from_secs(5)
    }

    /// A client timeout no correct answer needs: 5 s, or twenty times the
    /// slowest calibrated answer.
    fn answer_timeout(&self) -> Duration {
        let slow = self.latency.map_or(Duration::ZERO, |l| l.slowest * 20);
        slow.max(Duration::from_secs(5))
    }
}

/// A submission with the default retry policy and no expectation.
fn submission(client: usize, (tenant, user): (usize, usize), key: Option<String>, form: Form) -> Submission {
    Submission {
        client,
        tenant,
        user,
        key,
        form,
        wording: Wording::Plain,
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
        let who = ctx.principal(c, c % 2);
        let steps = (0..per_client)
            .map(|i| {
                let key = ctx.key(scenario, format_args!("{c}-{i}"));
                let mut s = submission(
                    c,
                    who,
                    Some(key),
                    ctx.form(format_args!("{scenario} {c}/{i}"), &mut rng),
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
        timeout: Duration::from_secs(2).max(ctx.answer_timeout() / 2),
        backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        give_up_after: ctx.patient(),
        same_replica: false,
    }
}
