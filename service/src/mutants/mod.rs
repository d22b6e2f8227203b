//! Deliberately broken idempotency strategies, compiled only with the
//! `mutants` feature, for the harness's `mutants` command: each reproduces
//! a bug class seen in real issue trackers, and the harness must catch
//! every one of them. Nothing here is reachable from the service binary's
//! configuration; the harness builds these stores itself.
//!
//! Each strategy is one file holding one [`Layer`] that overrides only the
//! store calls it breaks (the two forgotten scopes, `unscoped` and
//! `user-unscoped`, share `unscoped.rs`, the refused replays of
//! `empty-fingerprint-on-complete` and `completed-409` share
//! `replay_refused.rs`, `no-lease` and `lease-equals-ttl` are the
//! claim-first layer alone and differ in their terms, `check-run-store` and
//! `overwrite-winner` share `check_run_store.rs`, `no-fencing` and
//! `reclaim-live` share `unfenced.rs`). A strategy that replaces part of
//! the design (legacy, split-lock) sits right over the backend; one that
//! bends the correct design (the others) sits on top; [`Strategy::stores`]
//! puts a caller's own layer (the harness's fault emulation) between the
//! two, so faults reach a replaced design's calls and a bending strategy
//! sees the faults' failures. The strategies whose bug is in a middleware
//! in front of the service (`front/`) leave the stores alone and wrap the
//! routes instead ([`Strategy::front`]). The ones that read and write key
//! records directly (GET, SET, SET NX) share `records.rs`; the ones with
//! no one-step path stack `claim_first.rs` over their own layer (every
//! request claims, the work takes a while, waiting duplicates poll). Adding a
//! strategy: a variant below, its file, and its arm in
//! [`Strategy::stores`] or [`Strategy::front`].

mod cache_failures;
mod check_run_store;
mod claim_first;
mod fast_path;
mod front;
mod get_then_set;
mod legacy;
mod loser_5xx;
mod records;
mod replay_refused;
mod skip_fingerprint;
mod split_lock;
mod torn_replay;
mod unfenced;
mod unscoped;

use std::sync::Arc;

use clap::ValueEnum;
use idemproof_models::Terms;

use self::claim_first::ClaimFirst;
use self::records::Write;
use self::replay_refused::{Instead, ReplayRefused};
use self::unfenced::{TakesOver, Unfenced};
use self::unscoped::{Forgets, Unscoped};
use crate::store::memory::MemoryStore;
use crate::store::postgres::{PgStore, Schema};
use crate::store::{Resource, StoreError, Stores};

/// How keys are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The reference implementation.
    Correct,
    /// Look the key up among the resources (non-unique index on the key
    /// alone, any tenant, no payload check), insert if absent.
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
    /// Keys scoped by organisation but not by user.
    UserUnscoped,
    /// The in-progress claim lives as long as the completed record.
    LeaseEqualsTtl,
    /// Completion drops the payload fingerprint.
    EmptyFingerprintOnComplete,
    /// The loser of a race for a key answers 503.
    #[value(name = "loser-gets-5xx")]
    #[serde(rename = "loser-gets-5xx")]
    LoserGets5xx,
    /// A duplicate of a completed request gets 409.
    #[value(name = "completed-409")]
    #[serde(rename = "completed-409")]
    Completed409,
    /// The claim is a read and an unconditional write.
    GetThenSet,
    /// The loser of a race stores its result over the winner's.
    OverwriteWinner,
    /// Claims taken over while their owner still runs.
    ReclaimLive,
    /// Client errors stored against the key and replayed.
    CacheClientErrors,
    /// The fingerprint hashes the raw body text.
    OrderSensitiveFingerprint,
    /// Replays of completed keys skip the payload comparison.
    FastPathSkipsValidation,
    /// No claim: look up, run, store.
    CheckRunStore,
    /// The stored result written in two steps, replays between them fail.
    TornReplay,
    /// A stalled owner whose claim was taken over still commits.
    NoFencing,
}

impl Strategy {
    /// Every broken strategy, in report order.
    pub fn broken() -> impl Iterator<Item = Strategy> {
        Strategy::value_variants()
            .iter()
            .copied()
            .filter(|s| *s != Strategy::Correct)
    }

    /// Kebab-case name, as on the command line (derived by clap).
    pub fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
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
            Strategy::UserUnscoped => {
                "key scoped by organisation, not by user: one user's retry gets another's resource"
            }
            Strategy::LeaseEqualsTtl => {
                "claims committed before the work, their lease as long as the record's TTL: a crash wedges the key for a day"
            }
            Strategy::EmptyFingerprintOnComplete => {
                "completion drops the fingerprint: every identical retry of a completed key is refused"
            }
            Strategy::LoserGets5xx => "the loser of a race for a key answers 503 instead of waiting or 409",
            Strategy::Completed409 => "a duplicate of a completed request gets 409 instead of the original's result",
            Strategy::GetThenSet => {
                "claim by a read and an unconditional write: racing duplicates both win, replays name the later"
            }
            Strategy::OverwriteWinner => {
                "no claim; each result stored over the last: racing duplicates both create, replays name the loser"
            }
            Strategy::ReclaimLive => {
                "in-progress claims with no expiry of their own taken over as orphans while their owner runs"
            }
            Strategy::CacheClientErrors => "a 4xx answer stored against the key and replayed to every retry",
            Strategy::OrderSensitiveFingerprint => {
                "the raw body text fingerprinted: the same fields in another order refused as another payload"
            }
            Strategy::FastPathSkipsValidation => {
                "a completed key's fast path skips the payload check: an edited form gets the original"
            }
            Strategy::CheckRunStore => {
                "no claim: look up, run the handler, store the result; racing duplicates both run"
            }
            Strategy::TornReplay => "the result stored in two writes: a replay between them answers 500",
            Strategy::NoFencing => "a stalled owner whose claim was taken over still commits over the new owner",
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
            Strategy::LeaseEqualsTtl => Terms {
                lease: terms.ttl,
                ..terms
            },
            _ => terms,
        }
    }

    /// The in-memory backend this strategy runs on.
    pub fn memory(self, terms: Terms) -> Backend {
        Backend::Memory(Arc::new(MemoryStore::new(self.terms(terms))))
    }

    /// The Postgres backend this strategy runs on.
    pub async fn postgres(
        self,
        url: &str,
        max_connections: u32,
        terms: Terms,
        schema: Schema,
    ) -> anyhow::Result<Backend> {
        if !self.has_postgres_form() {
            anyhow::bail!("{self} has no Postgres form");
        }
        let store = PgStore::connect(url, max_connections, self.terms(terms), schema).await?;
        // The libraries the broken designs stand for read the store on
        // every replay; only the correct design keeps the replay cache.
        let store = if self == Strategy::Correct {
            store
        } else {
            store.with_replay_cache(0)
        };
        if self == Strategy::Legacy {
            legacy::create_index(&store).await?;
        }
        Ok(Backend::Postgres(store))
    }

    /// The stores of `backend` as this strategy breaks them, with
    /// `between` (e.g. fault emulation) applied over the backend and any
    /// replaced part of the design, under any bent part.
    pub fn stores(self, backend: &Backend, between: impl FnOnce(Stores) -> Stores) -> anyhow::Result<Stores> {
        let base = backend.stores();
        let replaced = match self {
            Strategy::Legacy => base.layer(Arc::new(legacy::Legacy::new(backend.clone()))),
            Strategy::SplitLock => match backend {
                Backend::Memory(memory) => base
                    .layer(Arc::new(ClaimFirst { work: false }))
                    .layer(Arc::new(split_lock::SplitLock::new(memory.clone()))),
                Backend::Postgres(_) => anyhow::bail!("{self} has no Postgres form"),
            },
            _ => base,
        };
        let middle = between(replaced);
        Ok(match self {
            Strategy::Unscoped => middle.layer(Arc::new(Unscoped::new(Forgets::TenantAndUser, backend.clone()))),
            // Claims committed before the work, held while it runs, and
            // never expiring (no-lease: a century) or lasting as long as
            // the record (lease-equals-ttl: a day): a crash wedges the key.
            Strategy::NoLease | Strategy::LeaseEqualsTtl => middle.layer(Arc::new(ClaimFirst { work: false })),
            Strategy::CacheFailures => middle.layer(Arc::new(cache_failures::CacheFailures::default())),
            Strategy::SkipFingerprint => middle.layer(Arc::new(skip_fingerprint::SkipFingerprint)),
            Strategy::UserUnscoped => middle.layer(Arc::new(Unscoped::new(Forgets::User, backend.clone()))),
            Strategy::EmptyFingerprintOnComplete => middle.layer(Arc::new(ReplayRefused(Instead::Mismatch))),
            Strategy::LoserGets5xx => middle
                .layer(Arc::new(loser_5xx::LoserGets5xx))
                .layer(Arc::new(ClaimFirst { work: true })),
            Strategy::Completed409 => middle.layer(Arc::new(ReplayRefused(Instead::InFlight))),
            Strategy::GetThenSet => middle
                .layer(Arc::new(get_then_set::GetThenSet::new(backend.clone())))
                .layer(Arc::new(ClaimFirst { work: true })),
            Strategy::OverwriteWinner => middle.layer(Arc::new(check_run_store::CheckRunStore::new(
                backend.clone(),
                Write::Overwrite,
            ))),
            Strategy::CheckRunStore => middle.layer(Arc::new(check_run_store::CheckRunStore::new(
                backend.clone(),
                Write::IfAbsent,
            ))),
            Strategy::ReclaimLive => middle
                .layer(Arc::new(Unfenced::new(backend.clone(), TakesOver::Live)))
                .layer(Arc::new(ClaimFirst { work: true })),
            Strategy::NoFencing => middle
                .layer(Arc::new(Unfenced::new(backend.clone(), TakesOver::Expired)))
                .layer(Arc::new(ClaimFirst { work: true })),
            Strategy::FastPathSkipsValidation => {
                middle.layer(Arc::new(fast_path::FastPathSkipsValidation::new(backend.clone())))
            }
            Strategy::TornReplay => middle.layer(Arc::new(torn_replay::TornReplay::default())),
            Strategy::Correct
            | Strategy::Legacy
            | Strategy::SplitLock
            | Strategy::CacheClientErrors
            | Strategy::OrderSensitiveFingerprint => middle,
        })
    }

    /// The service's routes as this strategy serves them: behind its
    /// middleware for a strategy whose bug is there, unchanged otherwise.
    pub fn front(self, routes: axum::Router) -> axum::Router {
        match self {
            Strategy::CacheClientErrors => front::cache_client_errors(routes),
            Strategy::OrderSensitiveFingerprint => front::raw_fingerprint(routes),
            _ => routes,
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// The backend under a strategy, concretely: what a strategy that looks
/// past the stores' interface (the legacy lookup, unscoped reads) reaches
/// for, and what audits read back.
#[derive(Clone)]
pub enum Backend {
    /// The embedded store.
    Memory(Arc<MemoryStore>),
    /// A Postgres database.
    Postgres(PgStore),
}

impl Backend {
    /// The backend's correct stores.
    pub fn stores(&self) -> Stores {
        match self {
            Backend::Memory(memory) => memory.stores(),
            Backend::Postgres(pg) => pg.stores(),
        }
    }

    /// The resource `id` in whichever tenant holds it.
    async fn any_tenant<R: Resource>(&self, id: i64) -> Result<Option<R>, StoreError> {
        match self {
            Backend::Memory(memory) => Ok(memory.table::<R>().find(|r| r.id() == id)),
            Backend::Postgres(pg) => {
                let sql = format!("SELECT * FROM {} WHERE id = $1", R::TABLE);
                pg.fetch_optional(sqlx::query_as(&sql).bind(id)).await
            }
        }
    }
}
