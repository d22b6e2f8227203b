//! Deployments: an agent published to a channel (a web widget, a Slack
//! workspace, ...). Creating one twice is the same kind of bug as creating
//! an agent twice, so creation takes an idempotency key the same way.

use idemproof_models::{Fingerprint, Timestamp};
use serde::Serialize;
use serde_json::{Map, Value};

use super::agent::{BodyError, FieldError};
use super::bounds::object_problem;
use super::canonical_json;

/// Where an agent can be published.
pub const CHANNELS: [&str; 6] = ["web", "slack", "teams", "whatsapp", "email", "api"];
/// Largest accepted `settings`, in bytes of compact JSON.
pub const MAX_SETTINGS_BYTES: usize = 16_384;
/// The top-level fields of a deployment body, so a problem found in the
/// raw body (see `json_numbers`) can name its field.
pub const BODY_FIELDS: [&str; 4] = ["channel", "settings", "organization_id", "idempotency_key"];

/// A stored deployment, as every endpoint returns it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Deployment {
    /// Server-assigned id.
    pub id: i64,
    /// Owning tenant (the agent's).
    pub organization_id: i64,
    /// The published agent.
    pub agent_id: i64,
    /// Publishing user.
    pub user_id: i64,
    /// One of [`CHANNELS`].
    pub channel: String,
    /// Channel-specific settings (a JSON object).
    pub settings: Value,
    /// Key of the request that created it, if it carried one.
    pub idempotency_key: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
}

/// The validated content of a deployment request: what is fingerprinted
/// and stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentSpec {
    /// One of [`CHANNELS`].
    pub channel: String,
    /// `{}` for omitted or `null`.
    pub settings: Map<String, Value>,
}

impl DeploymentSpec {
    /// SHA-256 over the canonical JSON of the spec. The agent is not in it:
    /// it is part of the key's scope (the endpoint names it).
    pub fn fingerprint(&self) -> Fingerprint {
        let value = serde_json::json!({"channel": self.channel, "settings": self.settings});
        let mut bytes = Vec::new();
        canonical_json::write(&value, &mut bytes);
        Fingerprint::of(&bytes)
    }
}

/// Everything needed to insert a deployment.
#[derive(Debug, Clone)]
pub struct NewDeployment {
    /// Owning tenant (from the query string, checked against the token).
    pub organization_id: i64,
    /// The agent (from the path, checked to be in the organisation).
    pub agent_id: i64,
    /// Publishing user (from the token).
    pub user_id: i64,
    /// Key of the request, stored for traceability.
    pub idempotency_key: Option<String>,
    /// The payload.
    pub spec: DeploymentSpec,
}

/// A deployment request body: the spec and the envelope fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployEnvelope {
    /// The deployment payload.
    pub spec: DeploymentSpec,
    /// `organization_id` in the body, if any (must match the query's).
    pub organization_id: Option<i64>,
    /// `idempotency_key` in the body, if any (unvalidated).
    pub idempotency_key: Option<String>,
}

impl DeployEnvelope {
    /// Validates a parsed JSON body: `{channel, settings?, organization_id?,
    /// idempotency_key?}`; unknown fields are ignored, and every problem of
    /// the deployment fields is reported at once.
    pub fn from_json(body: &Value) -> Result<Self, BodyError> {
        let Some(obj) = body.as_object() else {
            return Err(invalid(vec![error("body", "must be a JSON object".into())]));
        };
        let organization_id = match obj.get("organization_id") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().filter(|id| *id > 0).ok_or_else(|| BodyError::BadRequest {
                code: "invalid_organization_id",
                detail: "organization_id in the body must be a positive integer".into(),
            })?),
        };
        let idempotency_key = match obj.get("idempotency_key") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(BodyError::BadRequest {
                    code: "invalid_idempotency_key",
                    detail: "idempotency_key in the body must be a string".into(),
                });
            }
        };
        let mut errors = Vec::new();
        let channel = match obj.get("channel") {
            None | Some(Value::Null) => {
                errors.push(error("channel", "is required".into()));
                String::new()
            }
            Some(Value::String(s)) if CHANNELS.contains(&s.as_str()) => s.clone(),
            Some(_) => {
                errors.push(error("channel", format!("must be one of {}", CHANNELS.join(", "))));
                String::new()
            }
        };
        let settings = match obj.get("settings") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => {
                errors.extend(object_problem("settings", m, MAX_SETTINGS_BYTES));
                m.clone()
            }
            Some(_) => {
                errors.push(error("settings", "must be a JSON object".into()));
                Map::new()
            }
        };
        if !errors.is_empty() {
            return Err(invalid(errors));
        }
        Ok(Self {
            spec: DeploymentSpec { channel, settings },
            organization_id,
            idempotency_key,
        })
    }
}

fn error(field: &'static str, message: String) -> FieldError {
    FieldError { field, message }
}

fn invalid(errors: Vec<FieldError>) -> BodyError {
    BodyError::Invalid(errors)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(v: Value) -> DeploymentSpec {
        DeployEnvelope::from_json(&v).expect("valid").spec
    }

    #[test]
    fn omitted_and_null_settings_and_key_order_fingerprint_alike() {
        let a = spec(json!({"channel": "web"}));
        let b = spec(json!({"channel": "web", "settings": null, "unknown": 1}));
        let c = spec(json!({"channel": "web", "settings": {}}));
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint(), c.fingerprint());
        let d: Value = serde_json::from_str(r#"{"settings": {"b": 1, "a": 2}, "channel": "slack"}"#).expect("json");
        assert_eq!(
            spec(d).fingerprint(),
            spec(json!({"channel": "slack", "settings": {"a": 2, "b": 1}})).fingerprint()
        );
    }

    #[test]
    fn any_real_change_changes_the_fingerprint() {
        let base = spec(json!({"channel": "web"})).fingerprint();
        assert_ne!(spec(json!({"channel": "slack"})).fingerprint(), base);
        assert_ne!(
            spec(json!({"channel": "web", "settings": {"theme": "dark"}})).fingerprint(),
            base
        );
    }

    #[test]
    fn every_field_error_is_reported() {
        for (body, fields) in [
            (json!({}), vec!["channel"]),
            (json!({"channel": "fax"}), vec!["channel"]),
            (json!({"channel": 3, "settings": []}), vec!["channel", "settings"]),
            (json!([1]), vec!["body"]),
        ] {
            match DeployEnvelope::from_json(&body) {
                Err(BodyError::Invalid(errors)) => {
                    assert_eq!(errors.iter().map(|e| e.field).collect::<Vec<_>>(), fields, "{body}")
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn settings_are_bounded_and_free_of_nul() {
        let sized = |bytes: usize| json!({"k": "v".repeat(bytes - r#"{"k":""}"#.len())});
        let at = |settings: Value| DeployEnvelope::from_json(&json!({"channel": "web", "settings": settings}));
        assert!(at(sized(MAX_SETTINGS_BYTES)).is_ok());
        for refused in [
            sized(MAX_SETTINGS_BYTES + 1),
            json!({"k": "\u{0}"}),
            json!({"k\u{0}": 1}),
            json!({"k": [{"deep": "a\u{0}b"}]}),
        ] {
            match at(refused.clone()) {
                Err(BodyError::Invalid(errors)) => assert_eq!(errors[0].field, "settings", "{refused}"),
                other => panic!("{refused}: {other:?}"),
            }
        }
        let nul_channel = DeployEnvelope::from_json(&json!({"channel": "web\u{0}"}));
        assert!(matches!(nul_channel, Err(BodyError::Invalid(_))));
    }

    #[test]
    fn envelope_fields_are_type_checked() {
        assert!(matches!(
            DeployEnvelope::from_json(&json!({"channel": "web", "organization_id": "1"})),
            Err(BodyError::BadRequest {
                code: "invalid_organization_id",
                ..
            })
        ));
        assert!(matches!(
            DeployEnvelope::from_json(&json!({"channel": "web", "idempotency_key": 1})),
            Err(BodyError::BadRequest {
                code: "invalid_idempotency_key",
                ..
            })
        ));
        let ok = DeployEnvelope::from_json(&json!({"channel": "api", "organization_id": 7, "idempotency_key": "k"}))
            .expect("valid");
        assert_eq!(
            (ok.organization_id, ok.idempotency_key.as_deref()),
            (Some(7), Some("k"))
        );
    }
}
