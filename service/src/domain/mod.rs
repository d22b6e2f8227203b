//! Domain types of the agent service, independent of HTTP and storage.

pub mod agent;
pub mod canonical_json;
pub mod json_numbers;
