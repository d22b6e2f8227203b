//! Deliberately broken idempotency strategies, compiled only with the
//! `mutants` feature, for the harness's `mutants` command: each reproduces
//! a bug class seen in real issue trackers, and the harness must catch
//! every one of them. Nothing here is reachable from the service binary's
//! configuration; the harness builds these stores itself.
//!
//! Strategies that replace the store ([`Strategy::base_memory`],
//! [`Strategy::base_postgres`]) and strategies that wrap any store
//! ([`Strategy::decorate`]) are kept apart so a fault-injection layer can
//! sit between the two.

mod replaced;
mod wrapper;

use std::sync::Arc;

use idemproof_models::Terms;

use crate::store::Store;
use crate::store::memory::MemoryStore;
use crate::store::postgres::PgStore;

/// How keys are handled.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The reference implementation.
    Correct,
    /// Look the key up among agents (non-unique index on the key alone,
    /// any tenant, no payload check), insert if absent.
    Legacy,
    /// Keys scoped by endpoint and key only, not by organisation and user.
    Unscoped,
    /// Claims committed before the work and never expiring: a crashed owner
    /// blocks its key forever.
    NoLease,
    /// Failed creations are remembered and replayed as failures.
    CacheFailures,
    /// Replays skip the payload comparison.
    SkipFingerprint,
    /// In-memory check and insert under separate lock acquisitions.
    SplitLock,
}

impl Strategy {
    /// Every broken strategy, in report order.
    pub const BROKEN: [Strategy; 6] = [
        Strategy::Legacy,
        Strategy::Unscoped,
        Strategy::NoLease,
        Strategy::CacheFailures,
        Strategy::SkipFingerprint,
        Strategy::SplitLock,
    ];

    /// Kebab-case name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Correct => "correct",
            Strategy::Legacy => "legacy",
            Strategy::Unscoped => "unscoped",
            Strategy::NoLease => "no-lease",
            Strategy::CacheFailures => "cache-failures",
            Strategy::SkipFingerprint => "skip-fingerprint",
            Strategy::SplitLock => "split-lock",
        }
    }

    /// The bug in one line.
    pub fn describe(self) -> &'static str {
        match self {
            Strategy::Correct => "atomic scoped claim, lease, fingerprint, failures released",
            Strategy::Legacy => "look up by key, then insert (non-unique index on the key alone)",
            Strategy::Unscoped => "key not scoped by organisation and user",
            Strategy::NoLease => {
                "claims committed before the work, without lease: a crashed owner blocks the key forever"
            }
            Strategy::CacheFailures => "failures cached and replayed for the key's lifetime",
            Strategy::SkipFingerprint => "payload fingerprint skipped on replay",
            Strategy::SplitLock => "in-memory check and insert under separate lock acquisitions",
        }
    }

    /// Whether the strategy has a Postgres form (split-lock is a bug of
    /// in-process state only).
    pub fn has_postgres_form(self) -> bool {
        self != Strategy::SplitLock
    }

    fn terms(self, terms: Terms) -> Terms {
        match self {
            // "No lease" is a lease that never ends.
            Strategy::NoLease => Terms {
                lease: chrono::Duration::days(365 * 100),
                ..terms
            },
            _ => terms,
        }
    }

    /// The in-memory store this strategy runs on.
    pub fn base_memory(self, terms: Terms) -> Arc<dyn Store> {
        let store = Arc::new(MemoryStore::new(self.terms(terms)));
        match self {
            Strategy::Legacy | Strategy::SplitLock => Arc::new(replaced::Replaced::memory(self, store)),
            _ => store,
        }
    }

    /// The Postgres store this strategy runs on.
    pub async fn base_postgres(self, url: &str, max_connections: u32, terms: Terms) -> anyhow::Result<Arc<dyn Store>> {
        let store = PgStore::connect(url, max_connections, self.terms(terms)).await?;
        Ok(match self {
            Strategy::Legacy => Arc::new(replaced::Replaced::postgres(self, store).await?),
            Strategy::SplitLock => anyhow::bail!("split-lock has no Postgres form"),
            _ => Arc::new(store),
        })
    }

    /// Wraps a store in this strategy's wrapper, if it has one.
    pub fn decorate(self, store: Arc<dyn Store>) -> Arc<dyn Store> {
        match self {
            Strategy::Unscoped | Strategy::CacheFailures | Strategy::SkipFingerprint | Strategy::NoLease => {
                Arc::new(wrapper::Wrapped::new(self, store))
            }
            Strategy::Correct | Strategy::Legacy | Strategy::SplitLock => store,
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
