//! Hardening: the service against hostile clients, one case per finding
//! of the hardening review (issue 12), each bounded in time, on both
//! stores (one Postgres container for the binary). HTTP-level cases use
//! raw sockets (`raw`), so nothing a client library does hides the
//! behaviour. No case asserts a duration: they assert what the server
//! does (closes, answers, keeps serving); the timings are measured by
//! `scripts/hostile-clients.sh` (docs/operations.md).
//!
//! `cargo test --test hardening -- memory::` runs the in-memory half.

mod auth;
mod connections;
mod input;
mod memory_bound;
mod raw;
mod readiness;
mod requests;
mod small_disk;
mod tenancy;

use std::time::Duration;

use idemproof_service::Config;

/// Short bounds so the cases that wait for one stay quick.
pub fn fast(config: &mut Config) {
    config.http_header_timeout = Duration::from_secs(1);
    config.http_body_timeout = Duration::from_secs(1);
    config.http_write_timeout = Duration::from_secs(1);
    config.shutdown_drain_timeout = Duration::from_secs(2);
}

fn main() -> std::process::ExitCode {
    let mut cases = Vec::new();
    cases.extend(connections::cases());
    cases.extend(requests::cases());
    cases.extend(auth::cases());
    cases.extend(input::cases());
    cases.extend(tenancy::cases());
    cases.extend(readiness::cases());
    cases.extend(memory_bound::cases());
    idemproof_testkit::runner::run(cases)
}
