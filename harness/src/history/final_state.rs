//! The final state, read back after a scenario, and what is asked of it:
//! only the keys and resources of the scenario being judged, so a
//! long-lived service's earlier runs (or earlier scenarios) are never
//! reported again.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{History, ScopeKey};

/// What the scenario's history asks the final state about.
#[derive(Debug, Clone, Default)]
pub struct Judged {
    /// Every keyed scope the scenario used, with the form names sent
    /// with it (to match resources that do not show their key).
    pub scopes: BTreeMap<ScopeKey, BTreeSet<String>>,
    /// Every resource a success named, with the principal it was named to.
    pub acknowledged: BTreeMap<String, (usize, usize)>,
    /// Tenant labels (indices of scopes refer to these).
    pub tenants: Vec<String>,
    /// User labels.
    pub users: Vec<String>,
}

impl Judged {
    /// The scopes and resources of `history`.
    pub fn of(history: &History) -> Self {
        let mut judged = Judged {
            tenants: history.tenants.clone(),
            users: history.users.clone(),
            ..Judged::default()
        };
        for e in &history.events {
            let s = &history.submissions[e.submission];
            if let Some(scope) = history.scope_of(e.submission) {
                judged.scopes.entry(scope).or_default().insert(s.form.name.clone());
            }
            if let Some(id) = e.named_id() {
                judged.acknowledged.entry(id.to_owned()).or_insert((s.tenant, s.user));
            }
        }
        judged
    }

    /// Whether `scope` (given by labels) is judged, and its indices.
    pub fn find(&self, tenant: &str, user: &str, key: &str) -> Option<ScopeKey> {
        let t = self.tenants.iter().position(|l| l == tenant)?;
        let u = self.users.iter().position(|l| l == user)?;
        let scope = (t, u, key.to_owned());
        self.scopes.contains_key(&scope).then_some(scope)
    }
}

/// The final state the checker compares the history with.
#[derive(Debug, Default, Clone)]
pub struct FinalState {
    /// The stored resource of every acknowledged id that could be read
    /// (`None`: it is missing); ids not in the map were not checked.
    pub acknowledged: BTreeMap<String, Option<Value>>,
    /// Whether stored resources read back as the creation answered them,
    /// so they can be compared field by field.
    pub comparable: bool,
    /// Judged scopes holding more than one resource, with the count.
    pub duplicates: Vec<(ScopeKey, usize)>,
    /// Judged scopes still in progress with a live lease, when the store
    /// can be read directly (`None`: the probes decide).
    pub in_progress: Option<Vec<ScopeKey>>,
    /// How the state was read (`store`, `GET by id`, `list`, `SQL count`),
    /// for reports: a check without a source was not made.
    pub sources: Vec<String>,
}
