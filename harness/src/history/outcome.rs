//! What one attempt got, read through the contract: the class of the
//! answer, the resource it names, and what marks it as a replay.
//!
//! Timeouts, dropped connections and 5xx are *indeterminate* (Jepsen's
//! "info"): the request may or may not have taken effect. The checker
//! never counts them as "nothing happened"; a later success for the key
//! must still name the one resource.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::contract::Class;
use crate::form::FormField;

/// What an attempt got.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Outcome {
    /// An HTTP answer.
    Response {
        /// Status code.
        status: u16,
        /// What it means by the contract.
        class: Class,
        /// Marked as a replay (`None`: the contract has no marker).
        replayed: Option<bool>,
        /// Error code, if the contract says where codes are.
        code: Option<String>,
        /// The resource a success names.
        id: Option<String>,
        /// (tenant, user) the resource says it belongs to, as text.
        owner: Option<(Option<String>, Option<String>)>,
        /// Form fields as the resource shows them, as text.
        #[serde(skip)]
        fields: BTreeMap<FormField, String>,
        /// The resource, volatile fields removed, for comparisons.
        #[serde(skip)]
        resource: Option<Value>,
    },
    /// The client gave up waiting.
    Timeout,
    /// Connection refused, reset or closed, or the answer cut short.
    Transport {
        /// Short description.
        error: String,
    },
}

impl Outcome {
    /// The status code, if an answer arrived.
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Response { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The class, if an answer arrived.
    pub fn class(&self) -> Option<Class> {
        match self {
            Outcome::Response { class, .. } => Some(*class),
            _ => None,
        }
    }

    /// Whether the answer is a success (created or replayed).
    pub fn is_success(&self) -> bool {
        self.class() == Some(Class::Success)
    }

    /// The resource id in a success.
    pub fn id(&self) -> Option<&str> {
        match self {
            Outcome::Response {
                class: Class::Success,
                id: Some(id),
                ..
            } => Some(id),
            _ => None,
        }
    }

    /// The resource, for comparisons.
    pub fn resource(&self) -> Option<&Value> {
        match self {
            Outcome::Response { resource, .. } => resource.as_ref(),
            _ => None,
        }
    }

    /// Whether the request may have taken effect without the client
    /// knowing: a timeout, a transport failure or a 5xx.
    pub fn is_indeterminate(&self) -> bool {
        match self {
            Outcome::Response { status, .. } => *status >= 500,
            Outcome::Timeout | Outcome::Transport { .. } => true,
        }
    }

    /// Whether a client would retry this (indeterminate outcomes, "in
    /// flight", "unavailable") rather than stop (successes, refusals).
    pub fn is_retryable(&self) -> bool {
        match self {
            Outcome::Response { class, status, .. } => {
                matches!(class, Class::InFlight | Class::Unavailable) || *status >= 500
            }
            Outcome::Timeout | Outcome::Transport { .. } => true,
        }
    }

    /// One-line description for tables and timelines.
    pub fn label(&self) -> String {
        match self {
            Outcome::Response {
                status,
                class,
                replayed,
                code,
                id,
                owner,
                ..
            } => {
                let mut s = status.to_string();
                match (class, id) {
                    (Class::Success, Some(id)) => s.push_str(&format!(" id {id}")),
                    (Class::Success, None) => s.push_str(" (no id found)"),
                    (Class::Other, _) => {}
                    (class, _) => s.push_str(&format!(" {}", serde_name(class))),
                }
                if let Some((tenant, user)) = owner {
                    s.push_str(&format!(
                        " (tenant {} user {})",
                        tenant.as_deref().unwrap_or("?"),
                        user.as_deref().unwrap_or("?")
                    ));
                }
                if *replayed == Some(true) {
                    s.push_str(" replayed");
                }
                if let Some(code) = code {
                    s.push_str(&format!(" {code}"));
                }
                s
            }
            Outcome::Timeout => "client timeout".to_owned(),
            Outcome::Transport { error } => error.clone(),
        }
    }
}

/// The kebab-case serde name of a unit variant.
pub fn serde_name(v: &impl Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}
