//! The key store: claims, releases and reaping of idempotency records,
//! whatever resource they guard.

use std::time::Duration;

use async_trait::async_trait;
use idemproof_models::{Fingerprint, LeaseToken, Scope, Timestamp};
use tokio::sync::oneshot;

use super::StoreError;
use crate::readiness::Probe;

/// A claim this request holds on a scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The claimed scope.
    pub scope: Scope,
    /// Proves ownership on completion and release.
    pub token: LeaseToken,
}

/// What [`KeyStore::claim`] found.
#[derive(Debug)]
pub enum ClaimOutcome {
    /// The caller now holds the key.
    Acquired,
    /// Completed with the same payload; the created resource's id.
    Replay(i64),
    /// Used with another payload; the original resource's id if it completed.
    Mismatch {
        /// The original resource, if any.
        original: Option<i64>,
    },
    /// Another request holds the key.
    InFlight {
        /// When that claim is considered abandoned.
        lease_expires_at: Timestamp,
        /// How to learn that it changed.
        change: ChangeSignal,
    },
}

/// How a waiting request learns that an in-flight key changed.
#[derive(Debug)]
pub enum ChangeSignal {
    /// The store will fire this once the claim completes or goes away.
    Notified(oneshot::Receiver<()>),
    /// The store cannot notify (another process may own the key): poll.
    Poll,
}

/// Idempotency records, keyed by [`Scope`]. Completing a claim writes the
/// resource too, so it is a method of the resource's store
/// ([`super::Resources::insert_completing`]), as is the one-step path.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Claims `scope` for `token` at `now` if [`idemproof_models::decide`]
    /// says it is free, atomically with that decision.
    async fn claim(
        &self,
        scope: &Scope,
        fingerprint: Fingerprint,
        token: LeaseToken,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError>;

    /// Gives the claim up so a retry may take the key at once. A no-op if
    /// the claim is gone or completed.
    async fn release(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Deletes up to `limit` keys that are dead at `now`; returns how many.
    async fn reap_expired(&self, now: Timestamp, limit: u32) -> Result<u64, StoreError>;

    /// Whether a creation could be stored now, found by doing the smallest
    /// write that needs what a creation needs, into nothing clients see:
    /// on Postgres a committed write that allocates a fresh page (so a
    /// read-only server, a standby and a full data disk all fail it), in
    /// memory room under the store's bounds. [`Probe::Busy`] when no
    /// connection could be had within `patience` because every one is in
    /// use: that says nothing about writes.
    async fn probe_write(&self, now: Timestamp, patience: Duration) -> Probe;

    /// How the store's database connection pool is used now, for
    /// `/metrics`; `None` for a store without one (the in-memory store).
    fn pool_use(&self) -> Option<PoolUse> {
        None
    }
}

/// A snapshot of a connection pool's use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    /// Connections held by a store call.
    pub in_use: u32,
    /// Connections open and free.
    pub idle: u32,
    /// Statements waiting for a connection.
    pub waiting: u32,
    /// The most connections the pool opens.
    pub max: u32,
}
