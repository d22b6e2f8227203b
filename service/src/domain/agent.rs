//! Agents: what a client sends to create one, how that payload is
//! validated and normalised, and what is stored and returned.

use idemproof_models::{Fingerprint, Timestamp};
use serde::Serialize;
use serde_json::{Map, Value};

use super::bounds::{NUL_MESSAGE, object_problem};
use super::canonical_json;

/// Longest accepted agent name, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// Longest accepted description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4_000;
/// Longest accepted agent type or industry, in characters.
pub const MAX_LABEL_CHARS: usize = 64;
/// Longest accepted system prompt, in characters (up to 256 KiB of UTF-8).
pub const MAX_SYSTEM_PROMPT_CHARS: usize = 65_536;
/// Largest accepted `config`, in bytes of compact JSON.
pub const MAX_CONFIG_BYTES: usize = 65_536;
/// Largest accepted `widget_config`, in bytes of compact JSON.
pub const MAX_WIDGET_CONFIG_BYTES: usize = 16_384;
/// The top-level fields of a creation body, so a problem found in the raw
/// body (see `json_numbers`) can name its field.
pub const BODY_FIELDS: [&str; 10] = [
    "name",
    "description",
    "system_prompt",
    "config",
    "widget_config",
    "agent_type",
    "industry",
    "auto_optimize",
    "organization_id",
    "idempotency_key",
];
/// Agent type used when the client sends none.
pub const DEFAULT_AGENT_TYPE: &str = "assistant";

/// A stored agent, as every endpoint returns it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Agent {
    /// Server-assigned id.
    pub id: i64,
    /// Owning tenant.
    pub organization_id: i64,
    /// Creating user.
    pub user_id: i64,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Instructions given to the model.
    pub system_prompt: Option<String>,
    /// Arbitrary JSON object.
    pub config: Value,
    /// Arbitrary JSON object for the embeddable widget.
    pub widget_config: Value,
    /// Kind of agent.
    pub agent_type: String,
    /// Industry label.
    pub industry: Option<String>,
    /// Whether the agent tunes itself.
    pub auto_optimize: bool,
    /// Key of the request that created it, if it carried one.
    pub idempotency_key: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
}

/// The validated, normalised content of a creation request: exactly what
/// is fingerprinted and stored. Normalising first is what makes "the same
/// payload" semantic: key order, `null` versus omitted, and omitted versus
/// the default value all give the same spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSpec {
    /// Trimmed, 1..=255 characters.
    pub name: String,
    /// `None` for omitted, `null` or blank.
    pub description: Option<String>,
    /// `None` for omitted, `null` or blank.
    pub system_prompt: Option<String>,
    /// `{}` for omitted or `null`.
    pub config: Map<String, Value>,
    /// `{}` for omitted or `null`.
    pub widget_config: Map<String, Value>,
    /// [`DEFAULT_AGENT_TYPE`] for omitted, `null` or blank.
    pub agent_type: String,
    /// `None` for omitted, `null` or blank.
    pub industry: Option<String>,
    /// `false` for omitted or `null`.
    pub auto_optimize: bool,
}

impl AgentSpec {
    /// SHA-256 over the canonical JSON of the normalised spec.
    pub fn fingerprint(&self) -> Fingerprint {
        let value = serde_json::json!({
            "name": self.name,
            "description": self.description,
            "system_prompt": self.system_prompt,
            "config": self.config,
            "widget_config": self.widget_config,
            "agent_type": self.agent_type,
            "industry": self.industry,
            "auto_optimize": self.auto_optimize,
        });
        let mut bytes = Vec::new();
        canonical_json::write(&value, &mut bytes);
        Fingerprint::of(&bytes)
    }
}

/// Everything needed to insert an agent.
#[derive(Debug, Clone)]
pub struct NewAgent {
    /// Owning tenant (from the query string, checked against the token).
    pub organization_id: i64,
    /// Creating user (from the token).
    pub user_id: i64,
    /// Key of the request, stored for traceability.
    pub idempotency_key: Option<String>,
    /// The payload.
    pub spec: AgentSpec,
}

/// The fields of a creation body that are not part of the agent itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateEnvelope {
    /// The agent payload.
    pub spec: AgentSpec,
    /// `organization_id` in the body, if any (must match the query's).
    pub organization_id: Option<i64>,
    /// `idempotency_key` in the body, if any (unvalidated).
    pub idempotency_key: Option<String>,
}

/// One reason a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

/// A field of a creation body that is not part of the resource: getting
/// it wrong is a bad request (400), not a validation failure (422).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeField {
    /// `organization_id`, which names the tenant.
    OrganizationId,
    /// `idempotency_key`, the alternative to the header.
    IdempotencyKey,
}

/// Why a creation body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// `organization_id` or `idempotency_key` has the wrong type (400).
    BadRequest {
        /// The field at fault.
        field: EnvelopeField,
        /// Explanation for the client.
        detail: String,
    },
    /// The agent fields fail validation (422).
    Invalid(Vec<FieldError>),
}

impl CreateEnvelope {
    /// Validates and normalises a parsed JSON body. Unknown fields are
    /// ignored; every agent-field problem is reported at once.
    pub fn from_json(body: &Value) -> Result<Self, BodyError> {
        let Some(obj) = body.as_object() else {
            return Err(BodyError::Invalid(vec![FieldError {
                field: "body",
                message: "must be a JSON object".into(),
            }]));
        };
        let organization_id = match obj.get("organization_id") {
            None | Some(Value::Null) => None,
            Some(v) => Some(positive_integer(v).ok_or_else(|| BodyError::BadRequest {
                field: EnvelopeField::OrganizationId,
                detail: "organization_id in the body must be a positive integer".into(),
            })?),
        };
        let idempotency_key = match obj.get("idempotency_key") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(BodyError::BadRequest {
                    field: EnvelopeField::IdempotencyKey,
                    detail: "idempotency_key in the body must be a string".into(),
                });
            }
        };

        let mut errors = Vec::new();
        let name = match obj.get("name") {
            None | Some(Value::Null) => {
                errors.push(field_error("name", "is required"));
                String::new()
            }
            Some(Value::String(s)) => {
                let trimmed = s.trim();
                if trimmed.is_empty() {
                    errors.push(field_error("name", "must not be empty"));
                } else if trimmed.contains('\0') {
                    errors.push(field_error("name", NUL_MESSAGE));
                } else if trimmed.chars().count() > MAX_NAME_CHARS {
                    errors.push(field_error(
                        "name",
                        &format!("must be at most {MAX_NAME_CHARS} characters"),
                    ));
                }
                trimmed.to_owned()
            }
            Some(_) => {
                errors.push(field_error("name", "must be a string"));
                String::new()
            }
        };
        let description = optional_text(obj, "description", MAX_DESCRIPTION_CHARS, &mut errors);
        let system_prompt = optional_text(obj, "system_prompt", MAX_SYSTEM_PROMPT_CHARS, &mut errors);
        let agent_type = optional_text(obj, "agent_type", MAX_LABEL_CHARS, &mut errors)
            .unwrap_or_else(|| DEFAULT_AGENT_TYPE.to_owned());
        let industry = optional_text(obj, "industry", MAX_LABEL_CHARS, &mut errors);
        let config = optional_object(obj, "config", MAX_CONFIG_BYTES, &mut errors);
        let widget_config = optional_object(obj, "widget_config", MAX_WIDGET_CONFIG_BYTES, &mut errors);
        let auto_optimize = match obj.get("auto_optimize") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                errors.push(field_error("auto_optimize", "must be a boolean"));
                false
            }
        };
        if !errors.is_empty() {
            return Err(BodyError::Invalid(errors));
        }
        Ok(Self {
            spec: AgentSpec {
                name,
                description,
                system_prompt,
                config,
                widget_config,
                agent_type,
                industry,
                auto_optimize,
            },
            organization_id,
            idempotency_key,
        })
    }
}

/// A positive integer that fits in an `i64`, written as JSON writes one:
/// `7`, or `7.0` (JSON Schema's `integer` is any number without a
/// fraction, so a client's JSON library may send either).
pub(super) fn positive_integer(value: &Value) -> Option<i64> {
    let exact = value.as_i64().or_else(|| {
        let float = value.as_f64()?;
        // 2^63 as a double: the first value out of range.
        (float.fract() == 0.0 && float < 9.223_372_036_854_776e18).then_some(float as i64)
    });
    exact.filter(|id| *id > 0)
}

fn field_error(field: &'static str, message: &str) -> FieldError {
    FieldError {
        field,
        message: message.to_owned(),
    }
}

fn optional_text(
    obj: &Map<String, Value>,
    field: &'static str,
    max_chars: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match obj.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) if s.chars().count() > max_chars => {
            errors.push(field_error(field, &format!("must be at most {max_chars} characters")));
            None
        }
        Some(Value::String(s)) if s.contains('\0') => {
            errors.push(field_error(field, NUL_MESSAGE));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(field_error(field, "must be a string"));
            None
        }
    }
}

fn optional_object(
    obj: &Map<String, Value>,
    field: &'static str,
    max_bytes: usize,
    errors: &mut Vec<FieldError>,
) -> Map<String, Value> {
    match obj.get(field) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => {
            errors.extend(object_problem(field, m, max_bytes));
            m.clone()
        }
        Some(_) => {
            errors.push(field_error(field, "must be a JSON object"));
            Map::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(v: Value) -> AgentSpec {
        CreateEnvelope::from_json(&v).expect("valid").spec
    }

    #[test]
    fn omitted_null_and_default_fields_fingerprint_alike() {
        let minimal = spec(json!({"name": "Bot"}));
        let explicit = spec(json!({
            "auto_optimize": false, "config": null, "widget_config": {}, "description": null,
            "agent_type": "assistant", "industry": "", "name": "  Bot ", "unknown": 1
        }));
        assert_eq!(minimal, explicit);
        assert_eq!(minimal.fingerprint(), explicit.fingerprint());
    }

    #[test]
    fn nested_key_order_does_not_change_the_fingerprint() {
        let a = spec(json!({"name": "Bot", "config": {"a": 1, "b": {"c": 2, "d": 3}}}));
        let b: Value =
            serde_json::from_str(r#"{"config": {"b": {"d": 3, "c": 2}, "a": 1}, "name": "Bot"}"#).expect("json");
        assert_eq!(a.fingerprint(), spec(b).fingerprint());
    }

    #[test]
    fn any_real_change_changes_the_fingerprint() {
        let base = spec(json!({"name": "Bot"})).fingerprint();
        for changed in [
            json!({"name": "Bot2"}),
            json!({"name": "Bot", "description": "d"}),
            json!({"name": "Bot", "system_prompt": "p"}),
            json!({"name": "Bot", "config": {"a": 1}}),
            json!({"name": "Bot", "widget_config": {"a": 1}}),
            json!({"name": "Bot", "agent_type": "voice"}),
            json!({"name": "Bot", "industry": "retail"}),
            json!({"name": "Bot", "auto_optimize": true}),
        ] {
            assert_ne!(spec(changed.clone()).fingerprint(), base, "{changed}");
        }
    }

    #[test]
    fn bad_names_are_validation_errors() {
        for body in [
            json!({}),
            json!({"name": ""}),
            json!({"name": "   "}),
            json!({"name": 5}),
            json!({"name": "x".repeat(256)}),
        ] {
            match CreateEnvelope::from_json(&body) {
                Err(BodyError::Invalid(errors)) => assert_eq!(errors[0].field, "name", "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        assert!(CreateEnvelope::from_json(&json!({"name": "x".repeat(255)})).is_ok());
    }

    #[test]
    fn every_field_error_is_reported() {
        let body = json!({"name": 1, "config": [], "auto_optimize": "yes", "description": 3});
        let Err(BodyError::Invalid(errors)) = CreateEnvelope::from_json(&body) else {
            panic!("expected validation errors");
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["name", "description", "config", "auto_optimize"]);
    }

    #[test]
    fn envelope_fields_are_type_checked() {
        assert!(matches!(
            CreateEnvelope::from_json(&json!({"name": "a", "organization_id": "1"})),
            Err(BodyError::BadRequest {
                field: EnvelopeField::OrganizationId,
                ..
            })
        ));
        assert!(matches!(
            CreateEnvelope::from_json(&json!({"name": "a", "idempotency_key": 1})),
            Err(BodyError::BadRequest {
                field: EnvelopeField::IdempotencyKey,
                ..
            })
        ));
        let ok = CreateEnvelope::from_json(&json!({"name": "a", "organization_id": 7, "idempotency_key": "k"}))
            .expect("valid");
        assert_eq!(ok.organization_id, Some(7));
        for (id, expected) in [
            (json!(7.0), Some(7)),
            (json!(7.5), None),
            (json!(0), None),
            (json!(-7.0), None),
            (json!(9.3e18), None),
            // 2^63, the first double out of range, and the last one in it.
            (json!(9_223_372_036_854_775_808.0_f64), None),
            (json!(9_223_372_036_854_774_784.0_f64), Some(9_223_372_036_854_774_784)),
            (json!(u64::MAX), None),
        ] {
            assert_eq!(positive_integer(&id), expected, "{id}");
        }
        assert_eq!(ok.idempotency_key.as_deref(), Some("k"));
    }

    #[test]
    fn nul_anywhere_is_a_validation_error() {
        for (field, body) in [
            ("name", json!({"name": "a\u{0}b"})),
            ("description", json!({"name": "a", "description": "\u{0}"})),
            ("system_prompt", json!({"name": "a", "system_prompt": "x\u{0}"})),
            ("agent_type", json!({"name": "a", "agent_type": "\u{0}"})),
            ("industry", json!({"name": "a", "industry": "re\u{0}tail"})),
            ("config", json!({"name": "a", "config": {"k\u{0}": 1}})),
            (
                "config",
                json!({"name": "a", "config": {"k": ["ok", {"deep": "\u{0}"}]}}),
            ),
            ("widget_config", json!({"name": "a", "widget_config": {"k": "\u{0}"}})),
        ] {
            match CreateEnvelope::from_json(&body) {
                Err(BodyError::Invalid(errors)) => assert_eq!(errors[0].field, field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn field_sizes_are_bounded() {
        let at = |field: &str, v: Value| CreateEnvelope::from_json(&json!({"name": "a", field: v}));
        assert!(at("system_prompt", json!("p".repeat(MAX_SYSTEM_PROMPT_CHARS))).is_ok());
        assert!(at("system_prompt", json!("p".repeat(MAX_SYSTEM_PROMPT_CHARS + 1))).is_err());
        let sized = |bytes: usize| json!({"k": "v".repeat(bytes - r#"{"k":""}"#.len())});
        assert!(at("config", sized(MAX_CONFIG_BYTES)).is_ok());
        assert!(at("config", sized(MAX_CONFIG_BYTES + 1)).is_err());
        assert!(at("widget_config", sized(MAX_WIDGET_CONFIG_BYTES)).is_ok());
        assert!(at("widget_config", sized(MAX_WIDGET_CONFIG_BYTES + 1)).is_err());
    }

    #[test]
    fn non_objects_are_validation_errors() {
        assert!(matches!(
            CreateEnvelope::from_json(&json!([1])),
            Err(BodyError::Invalid(_))
        ));
    }
}
