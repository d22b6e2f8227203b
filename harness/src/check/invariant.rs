//! The invariants an idempotency key promises, and the real bug each one
//! guards against.

use serde::Serialize;

/// One promise the checker verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Invariant {
    /// At most one 201 per key among requests that overlapped.
    AtMostOneCreation,
    /// A request that starts after a success returned never creates anew.
    NoRecreateAfterSuccess,
    /// Every success for a key names the same agent.
    OneAgentPerKey,
    /// Every response naming an agent shows it unchanged.
    ReplayUnchanged,
    /// A reused key with another payload gets 422, never another payload's agent.
    MismatchGets422,
    /// No response shows another organisation's or user's agent.
    TenantIsolation,
    /// Only 409, 422 and (during faults) 503 are errors; no other 4xx or 5xx.
    CleanErrors,
    /// Once faults end, every client that keeps retrying gets through.
    Recovers,
    /// After the run no key is still in progress.
    NoStuckKeys,
    /// Every acknowledged agent exists in the store, as acknowledged.
    AcknowledgedDurable,
    /// The store holds at most one agent per key.
    NoExtraAgents,
    /// The scenario's own promise about a submission's answer.
    Expectation,
}

impl Invariant {
    /// Every invariant, in report order.
    pub const ALL: [Invariant; 12] = [
        Invariant::AtMostOneCreation,
        Invariant::NoRecreateAfterSuccess,
        Invariant::OneAgentPerKey,
        Invariant::ReplayUnchanged,
        Invariant::MismatchGets422,
        Invariant::TenantIsolation,
        Invariant::CleanErrors,
        Invariant::Recovers,
        Invariant::NoStuckKeys,
        Invariant::AcknowledgedDurable,
        Invariant::NoExtraAgents,
        Invariant::Expectation,
    ];

    /// Kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::AtMostOneCreation => "at-most-one-creation",
            Invariant::NoRecreateAfterSuccess => "no-recreate-after-success",
            Invariant::OneAgentPerKey => "one-agent-per-key",
            Invariant::ReplayUnchanged => "replay-unchanged",
            Invariant::MismatchGets422 => "mismatch-gets-422",
            Invariant::TenantIsolation => "tenant-isolation",
            Invariant::CleanErrors => "clean-errors",
            Invariant::Recovers => "recovers",
            Invariant::NoStuckKeys => "no-stuck-keys",
            Invariant::AcknowledgedDurable => "acknowledged-durable",
            Invariant::NoExtraAgents => "no-extra-agents",
            Invariant::Expectation => "expectation",
        }
    }

    /// The real bug the invariant catches.
    pub fn guards_against(self) -> &'static str {
        match self {
            Invariant::AtMostOneCreation => {
                "check-then-insert races: two concurrent requests both miss and both insert"
            }
            Invariant::NoRecreateAfterSuccess => "lost or expired records: a retry after success creates a duplicate",
            Invariant::OneAgentPerKey => "replays pointing at the wrong resource",
            Invariant::ReplayUnchanged => "replays rebuilt from changed state instead of the original result",
            Invariant::MismatchGets422 => "payload check skipped on replay: an edited form silently gets the old agent",
            Invariant::TenantIsolation => "keys not scoped per tenant: one customer's key replays another's agent",
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
        f.write_str(self.name())
    }
}
