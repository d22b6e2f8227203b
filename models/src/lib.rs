//! # idemproof-models
//!
//! The domain of idempotency keys, shared by the service, the harness and
//! the verification suites: what a key is, which scope it is unique in,
//! the life of its record, and the in-memory claim logic.
//!
//! The crate has no async runtime on purpose: the claim logic is plain
//! synchronous code over mutexes, so `tests/loom.rs` can model-check the
//! exact code the service runs (built with `--cfg loom`, [`sync`] swaps in
//! loom's primitives).
//!
//! ## Layout
//!
//! - [`key`]: `IdempotencyKey` (validated), `Scope` (org, user, endpoint,
//!   key), `Fingerprint` (SHA-256 of a normalised payload), `LeaseToken`.
//! - [`record`]: `KeyRecord` and its states, the `Terms` (lease, TTL) and
//!   [`decide`](record::decide), the one rule both stores follow.
//! - [`claim_table`]: `ClaimTable`, the in-memory store's one-step path,
//!   atomic claim, completion, release, wake-ups and reaping, sharded by a
//!   hash of the scope.
//! - `sync`: the std/loom shim.

pub mod claim_table;
pub mod key;
pub mod record;
mod sync;

pub use claim_table::{Claim, ClaimTable, CompleteError, Waker};
pub use key::{Fingerprint, IdempotencyKey, KeyError, LeaseToken, MAX_KEY_LEN, Scope};
pub use record::{Decision, KeyRecord, KeyState, Terms, Timestamp, decide};
