//! How the machinery treats duplicates: the deployment's choices, set by
//! `IDEMPOTENCY_WAIT`, `IDEMPOTENCY_IN_FLIGHT` and `IDEMPOTENCY_MISMATCH`.

use std::time::Duration;

use clap::ValueEnum;

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

/// How the machinery treats duplicates.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Longest a duplicate waits for an in-flight original.
    pub wait: Duration,
    /// Wait for in-flight originals, or refuse at once.
    pub in_flight: InFlightMode,
    /// Refuse a reused key with another payload, or replay the original.
    pub mismatch: MismatchMode,
}
