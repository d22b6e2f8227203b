//! Loom model checks of the in-memory claim logic (`ClaimTable`).
//!
//! Built only with `RUSTFLAGS="--cfg loom"`: `idemproof-models` then builds
//! its `sync` shim over loom's instrumented `Mutex`, so each model below
//! runs the exact code the service runs while loom explores the thread
//! interleavings (bounded by `LOOM_MAX_PREEMPTIONS`). CI runs
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 CARGO_TARGET_DIR=target-loom \
//!     cargo test -p idemproof-models --release --test loom
//! ```
//!
//! Each model reports how many interleavings it explored on stderr. What
//! every model states and what it would catch is in `docs/verification.md`.
//! Without `--cfg loom` this test crate is empty.

#![cfg(loom)]

// The crate root is `tests/loom.rs`, so its modules live in `tests/loom/`.
#[path = "loom/bound.rs"]
mod bound;
#[path = "loom/claims.rs"]
mod claims;
#[path = "loom/isolation.rs"]
mod isolation;
#[path = "loom/leases.rs"]
mod leases;
#[path = "loom/one_step.rs"]
mod one_step;
#[path = "loom/one_step_claims.rs"]
mod one_step_claims;
#[path = "loom/shards.rs"]
mod shards;
#[path = "loom/support.rs"]
mod support;
#[path = "loom/wakeups.rs"]
mod wakeups;
