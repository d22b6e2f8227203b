//! The contract suite: the service's HTTP API, run against the in-memory
//! store and against Postgres in both schemas, plain and partitioned by
//! tenant (one container for the binary, one database per case). Every
//! case runs on every backend unless marked Postgres-only.
//!
//! `cargo test --test contract -- memory::` runs the in-memory part only,
//! `-- partitioned::` the partitioned schema's. The OpenAPI document and
//! schemathesis (`openapi`) and the `/metrics` lint (`metrics`) need the
//! tools `scripts/tools.sh` provisions.

mod bad_input;
mod concurrency;
mod creation;
mod deployments;
mod described;
mod lifecycle;
mod lost_sessions;
mod metrics;
mod openapi;
mod postgres_only;
mod reads;

fn main() -> std::process::ExitCode {
    let mut cases = Vec::new();
    cases.extend(creation::cases());
    cases.extend(concurrency::cases());
    cases.extend(deployments::cases());
    cases.extend(bad_input::cases());
    cases.extend(lifecycle::cases());
    cases.extend(reads::cases());
    cases.extend(openapi::cases());
    cases.extend(described::cases());
    cases.extend(metrics::cases());
    cases.extend(postgres_only::cases());
    cases.extend(lost_sessions::cases());
    idemproof_testkit::runner::run(cases)
}
