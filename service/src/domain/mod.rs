//! Domain types of the agent service, independent of HTTP and storage:
//! what a client sends to create each resource, how it is validated and
//! fingerprinted, and what is stored.

pub mod agent;
pub mod bounds;
pub mod canonical_json;
pub mod deployment;
pub mod json_numbers;
