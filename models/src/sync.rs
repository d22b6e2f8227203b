//! The synchronisation primitives the claim logic is built on.
//!
//! Under `RUSTFLAGS="--cfg loom"` these are loom's instrumented versions, so
//! `tests/loom.rs` can explore every interleaving of the very code the
//! service runs; otherwise they are `std`'s.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};
