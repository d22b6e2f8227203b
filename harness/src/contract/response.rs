//! The answer side of a target file: where the id is, what marks a
//! replay, and what each status means.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::form::FormField;

/// What marks a replay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplayMarker {
    /// The status: in `statuses.replayed` and not in `statuses.created`.
    Status,
    /// `replay_header`.
    Header,
    /// Both the status and the header.
    Both,
    /// Nothing: a replay is a success naming an id seen before.
    #[default]
    None,
}

/// Where the resource id is in a success.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdSource {
    /// A JSON pointer into the body.
    #[serde(default)]
    pub pointer: Option<String>,
    /// A response header (e.g. `Location`).
    #[serde(default)]
    pub header: Option<String>,
    /// A regex applied to the header (or pointed-at text): its first
    /// capture group is the id.
    #[serde(default)]
    pub regex: Option<String>,
}

/// How to read an answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseSpec {
    /// Where the id is.
    pub id: IdSource,
    /// JSON pointer to the resource in a success body (`""`: the body).
    #[serde(default)]
    pub resource: String,
    /// What marks a replay.
    #[serde(default)]
    pub replay: ReplayMarker,
    /// `Name: value` of the replay header.
    #[serde(default)]
    pub replay_header: Option<String>,
    /// JSON pointers (into the body) that may differ between an original
    /// and its replay: request ids, timestamps. Left out of comparisons.
    #[serde(default)]
    pub volatile: Vec<String>,
    /// JSON pointer to the error code in error bodies.
    #[serde(default)]
    pub code: Option<String>,
    /// JSON pointer, in the resource, to the tenant that owns it.
    #[serde(default)]
    pub tenant: Option<String>,
    /// JSON pointer, in the resource, to the user that owns it.
    #[serde(default)]
    pub user: Option<String>,
    /// JSON pointers, in the resource, to where each form field shows.
    #[serde(default)]
    pub fields: BTreeMap<FormField, String>,
}

/// One entry of a status list: a status, or a status with an error code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StatusMatch {
    /// Any answer with this status.
    Status(u16),
    /// This status with this code (at `response.code`).
    WithCode {
        /// HTTP status.
        status: u16,
        /// Error code.
        code: String,
    },
}

impl StatusMatch {
    pub(super) fn status(&self) -> u16 {
        match self {
            StatusMatch::Status(s) | StatusMatch::WithCode { status: s, .. } => *s,
        }
    }
}

/// What the statuses mean. A status in `created` or `replayed` is a
/// success; everything not listed anywhere is an unclean error.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statuses {
    /// A new resource.
    #[serde(default)]
    pub created: Vec<StatusMatch>,
    /// The stored result of an earlier request.
    #[serde(default)]
    pub replayed: Vec<StatusMatch>,
    /// The original is still running; retry.
    #[serde(default)]
    pub in_flight: Vec<StatusMatch>,
    /// The key was used with another payload.
    #[serde(default)]
    pub key_reused: Vec<StatusMatch>,
    /// A key is required.
    #[serde(default)]
    pub missing_key: Vec<StatusMatch>,
    /// Temporarily unavailable; nothing happened; retry.
    #[serde(default)]
    pub unavailable: Vec<StatusMatch>,
}

/// What an answer means, by the contract's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// Created or replayed: it names the resource.
    Success,
    /// The original is still running.
    InFlight,
    /// The key was used with another payload.
    KeyReused,
    /// The service wanted a key.
    MissingKey,
    /// Temporarily unavailable.
    Unavailable,
    /// Anything the contract does not list.
    Other,
}

impl Statuses {
    pub(super) fn lists(&self) -> [(Class, &[StatusMatch]); 6] {
        [
            (Class::Success, &self.created),
            (Class::Success, &self.replayed),
            (Class::InFlight, &self.in_flight),
            (Class::KeyReused, &self.key_reused),
            (Class::MissingKey, &self.missing_key),
            (Class::Unavailable, &self.unavailable),
        ]
    }

    /// The class of an answer: entries with a code first, then statuses.
    pub fn classify(&self, status: u16, code: Option<&str>) -> Class {
        let lists = self.lists();
        for (class, list) in lists {
            if list
                .iter()
                .any(|m| matches!(m, StatusMatch::WithCode { status: s, code: c } if *s == status && Some(c.as_str()) == code))
            {
                return class;
            }
        }
        for (class, list) in lists {
            if list.iter().any(|m| matches!(m, StatusMatch::Status(s) if *s == status)) {
                return class;
            }
        }
        Class::Other
    }

    /// Whether a success status alone says "replay" (in `replayed`, not
    /// in `created`), "creation" (the reverse), or nothing.
    pub fn replay_by_status(&self, status: u16) -> Option<bool> {
        let has = |list: &[StatusMatch]| list.iter().any(|m| m.status() == status);
        match (has(&self.created), has(&self.replayed)) {
            (true, false) => Some(false),
            (false, true) => Some(true),
            _ => None,
        }
    }
}
