//! A service's HTTP contract, as far as the harness needs it: who the
//! users are and how they authenticate, how a creation is sent and where
//! its key goes, how to read the answer (the id, the replay marker, the
//! status vocabulary) and how to read the final state back. A target file
//! (TOML, `--target file=PATH`) is one of these; the reference service's
//! own is shipped as `harness/targets/idemproof.toml` ([`Contract::reference`]).
//! See "Your own service" in `docs/harness.md` for every field.
//!
//! Loading merges the file over its [`Profile`]'s defaults, expands
//! `${VAR}` references, and validates everything it can before a request
//! is sent (placeholders, pointers, regexes, statuses).

mod builder;
mod profile;
mod read;
mod request;
mod response;
mod semantics;
mod setup;
pub mod template;
mod validate;

use std::path::Path;

use regex::Regex;
use serde::{Deserialize, Serialize};

pub use self::builder::ContractBuilder;
pub use self::profile::Profile;
pub use self::read::{PageKind, Pagination, Read, ReadGet, ReadList, ReadSql};
pub use self::request::{Auth, AuthKind, Create, Encoding, KeyFormat, KeyIn, KeyPlacement, Login, Principals};
pub use self::response::{Class, IdSource, ReplayMarker, ResponseSpec, StatusMatch, Statuses};
pub use self::semantics::{InFlight, Mismatch, Semantics, duration};
pub use self::setup::{Setup, SetupPer};

/// The reference service's target file for agents, shipped with the harness.
pub const REFERENCE_FILE: &str = include_str!("../../targets/idemproof.toml");
/// Its target file for deployments.
pub const DEPLOYMENTS_FILE: &str = include_str!("../../targets/idemproof-deployments.toml");

/// The reference service's creation endpoints, each described by a target
/// file shipped with the harness; the targets the harness starts (and
/// `url=`) attack the one chosen (`--endpoint`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Endpoint {
    /// `POST /api/v1/agents` (`harness/targets/idemproof.toml`).
    #[default]
    Agents,
    /// `POST /api/v1/agents/{agent_id}/deployments`, under an agent the
    /// file's setup creates per tenant (`harness/targets/idemproof-deployments.toml`).
    Deployments,
}

impl Endpoint {
    /// The shipped file: its path in the repository and its text.
    pub fn file(self) -> (&'static str, &'static str) {
        match self {
            Endpoint::Agents => ("harness/targets/idemproof.toml", REFERENCE_FILE),
            Endpoint::Deployments => ("harness/targets/idemproof-deployments.toml", DEPLOYMENTS_FILE),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::value_name(self))
    }
}

/// Everything the harness knows about a service's API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// The defaults this file started from (already merged in).
    #[serde(default)]
    pub profile: Option<Profile>,
    /// Where the service listens (`--target file=` needs it; a URL given
    /// on the command line or in code replaces it).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Tenants and users the simulated clients act as.
    pub principals: Principals,
    /// Fixtures made before each scenario (`[[setup]]`), in order.
    #[serde(default)]
    pub setup: Vec<Setup>,
    /// How each principal authenticates.
    #[serde(default)]
    pub auth: Auth,
    /// The creation request.
    pub create: Create,
    /// Where the idempotency key goes.
    pub key: KeyPlacement,
    /// How to read an answer.
    pub response: ResponseSpec,
    /// What each status means.
    pub statuses: Statuses,
    /// How to read the final state back.
    #[serde(default)]
    pub read: Read,
    /// What the service promises.
    #[serde(default)]
    pub semantics: Semantics,
    /// Where the contract came from, for messages.
    #[serde(skip)]
    pub source: String,
    /// Compiled form of `response.id.regex`.
    #[serde(skip)]
    id_regex: Option<Regex>,
}

impl Contract {
    /// The reference service's contract for agents (the shipped target
    /// file).
    pub fn reference() -> anyhow::Result<Self> {
        Self::reference_for(Endpoint::Agents)
    }

    /// The reference service's contract for one of its endpoints.
    pub fn reference_for(endpoint: Endpoint) -> anyhow::Result<Self> {
        let (path, text) = endpoint.file();
        Self::from_toml(text, path)
    }

    /// The placeholders `[[setup]]` captures, in order.
    pub fn captures(&self) -> impl Iterator<Item = &str> {
        self.setup.iter().flat_map(|s| s.capture.keys().map(String::as_str))
    }

    /// Loads and validates a target file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read target file {}: {e}", path.display()))?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses and validates a target file's text; `source` names it in errors.
    pub fn from_toml(text: &str, source: &str) -> anyhow::Result<Self> {
        let table: toml::Table = text.parse().map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
        Self::from_table(table, source)
    }

    /// From a parsed table: profile merged under it, `${VAR}` expanded.
    pub fn from_table(table: toml::Table, source: &str) -> anyhow::Result<Self> {
        let mut merged = match table.get("profile") {
            Some(p) => {
                let profile: Profile = p
                    .clone()
                    .try_into()
                    .map_err(|e| anyhow::anyhow!("{source}: profile: {e}"))?;
                profile
                    .defaults()
                    .parse::<toml::Table>()
                    .map_err(|e| anyhow::anyhow!("profile {profile:?}: {e}"))?
            }
            None => toml::Table::new(),
        };
        profile::merge(&mut merged, table);
        let mut value = toml::Value::Table(merged);
        expand_env_in(&mut value, "").map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
        let mut contract: Contract = value.try_into().map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
        contract.source = source.to_owned();
        contract.validate().map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
        Ok(contract)
    }

    /// A contract written in code, from a profile.
    pub fn builder(profile: Profile) -> ContractBuilder {
        ContractBuilder::new(profile)
    }

    /// The same contract at another base URL.
    pub fn at(mut self, base_url: &str) -> Self {
        self.base_url = Some(base_url.trim_end_matches('/').to_owned());
        self
    }

    /// The compiled id regex, if any.
    pub fn id_regex(&self) -> Option<&Regex> {
        self.id_regex.as_ref()
    }

    /// `(name, value)` of the replay header, lower-cased name.
    pub fn replay_header(&self) -> Option<(String, String)> {
        let (name, value) = self.response.replay_header.as_deref()?.split_once(':')?;
        Some((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
    }
}

fn expand_env_in(value: &mut toml::Value, path: &str) -> Result<(), String> {
    let lookup = |name: &str| std::env::var(name).ok();
    match value {
        toml::Value::String(s) => {
            *s = template::expand_env(s, &lookup).map_err(|e| format!("{path}: {e}"))?;
        }
        toml::Value::Array(items) => {
            for item in items {
                expand_env_in(item, path)?;
            }
        }
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                expand_env_in(v, &p)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_reference_file_loads() {
        let c = Contract::reference().map_err(|e| e.to_string());
        let c = c.as_ref().map_err(String::as_str);
        assert!(c.is_ok(), "{c:?}");
        if let Ok(c) = c {
            assert_eq!(
                c.statuses.classify(422, Some("idempotency_key_reused")),
                Class::KeyReused
            );
            assert_eq!(c.statuses.classify(422, Some("validation_failed")), Class::Other);
            assert_eq!(c.statuses.classify(201, None), Class::Success);
            assert_eq!(c.statuses.replay_by_status(200), Some(true));
        }
    }

    #[test]
    fn every_shipped_file_loads_with_the_reference_vocabulary() {
        use clap::ValueEnum;
        for &endpoint in Endpoint::value_variants() {
            let c = Contract::reference_for(endpoint).map_err(|e| e.to_string());
            assert!(c.is_ok(), "{endpoint}: {c:?}");
            if let Ok(c) = c {
                assert_eq!(c.profile, Some(Profile::Idemproof), "{endpoint}");
                assert_eq!(c.source, endpoint.file().0);
                // A nested resource's file makes its parent per tenant, and
                // every template that needs it uses it.
                for capture in c.captures() {
                    let used = format!("{{{capture}}}");
                    assert!(c.create.path.contains(&used), "{endpoint}: create.path lacks {used}");
                }
            }
        }
    }

    #[test]
    fn mistakes_are_named() {
        let base = REFERENCE_FILE;
        for (broken, needle) in [
            (base.replace("{tenant}&", "{tenat}&"), "unknown placeholder `{tenat}`"),
            (
                base.replace("pointer = \"/data/agent/id\"", "pointer = \"data\""),
                "not a JSON pointer",
            ),
            (format!("{base}\nsurprise = 1"), "unknown field `surprise`"),
        ] {
            let err = Contract::from_toml(&broken, "t.toml")
                .map(|_| ())
                .map_err(|e| e.to_string());
            assert!(err.as_ref().is_err_and(|e| e.contains(needle)), "{needle}: {err:?}");
        }
    }
}
