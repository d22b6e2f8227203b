//! The invariants an idempotency key promises, and the real bug each one
//! guards against.

use serde::Serialize;

/// One promise the checker verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Invariant {
    /// Concurrent requests for one key create at most one resource.
    AtMostOneCreation,
    /// A request sent after a success for its key returned never creates anew.
    NoRecreateAfterSuccess,
    /// Every success for a key names the same resource.
    OneAgentPerKey,
    /// Every answer naming a resource shows it unchanged.
    ReplayUnchanged,
    /// In reject mode, a reused key with another payload is refused, never
    /// answered with another payload's resource.
    MismatchRefused,
    /// An identical retry is never refused as "key reused", and once its
    /// key completed it gets the key's resource.
    IdenticalRetryHonoured,
    /// No answer shows another tenant's or user's resource.
    TenantIsolation,
    /// Only the contract's errors, and outages only during faults.
    CleanErrors,
    /// Once faults end, every client that keeps retrying gets through.
    Recovers,
    /// After the run no key is still in progress.
    NoStuckKeys,
    /// Every acknowledged resource exists in the final state, as acknowledged.
    AcknowledgedDurable,
    /// The final state holds at most one resource per key.
    NoExtraAgents,
    /// The scenario's own promise about a submission's answer.
    Expectation,
}

impl Invariant {
    /// Every invariant, in report order.
    pub fn all() -> &'static [Invariant] {
        <Self as clap::ValueEnum>::value_variants()
    }

    /// Kebab-case name.
    pub fn name(self) -> String {
        crate::value_name(&self)
    }

    /// The real bug the invariant catches.
    pub fn guards_against(self) -> &'static str {
        match self {
            Invariant::AtMostOneCreation => {
                "check-then-insert races: two concurrent requests both miss and both insert"
            }
            Invariant::NoRecreateAfterSuccess => {
                "lost or expired records: a retry after success (or after a lost answer) creates a duplicate"
            }
            Invariant::OneAgentPerKey => "replays pointing at the wrong resource",
            Invariant::ReplayUnchanged => "replays rebuilt from changed state instead of the original result",
            Invariant::MismatchRefused => {
                "payload check skipped on replay: an edited form silently gets the old resource"
            }
            Invariant::IdenticalRetryHonoured => {
                "fingerprints lost or computed differently: every identical retry refused as another payload"
            }
            Invariant::TenantIsolation => {
                "keys not scoped per tenant or user: one customer's key replays another's resource"
            }
            Invariant::CleanErrors => "unhandled failures surfacing as 500s, or errors outside any fault",
            Invariant::Recovers => "failures cached and replayed for a day; keys stuck after a crash",
            Invariant::NoStuckKeys => "in-progress claims with no lease, stuck forever after the owner died",
            Invariant::AcknowledgedDurable => "acknowledging before the write commits; losing writes on crash",
            Invariant::NoExtraAgents => "duplicates a client never saw (e.g. the timed-out original and its retry)",
            Invariant::Expectation => "scenario-specific: refresh must create, edits must be refused",
        }
    }
}

impl std::fmt::Display for Invariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}
