//! The document's schemas, built from the constants the validation uses
//! (`domain::agent`, `domain::deployment`, `domain::json_numbers`,
//! `idemproof_models::MAX_KEY_LEN`), so a bound changes in one place.
//!
//! Request schemas say exactly what the service accepts, as far as JSON
//! Schema can: a schema-valid body is never refused as invalid, a
//! schema-invalid one always is (schemathesis checks both directions).
//! What JSON Schema cannot say is in the descriptions: the byte bounds of
//! `config`, `widget_config` and `settings`, and that a body's
//! `organization_id` and `idempotency_key` must agree with the query and
//! the header. Response schemas are closed (`additionalProperties:
//! false`), so a field added to a resource without its schema fails the
//! document's tests.

use std::borrow::Cow;

use idemproof_models::MAX_KEY_LEN;
use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::domain::agent::{
    DEFAULT_AGENT_TYPE, MAX_CONFIG_BYTES, MAX_DESCRIPTION_CHARS, MAX_LABEL_CHARS, MAX_NAME_CHARS,
    MAX_SYSTEM_PROMPT_CHARS, MAX_WIDGET_CONFIG_BYTES,
};
use crate::domain::deployment::{CHANNELS, MAX_SETTINGS_BYTES};
use crate::domain::json_numbers::MAX_FLOAT_DIGITS;
use crate::http::error::{Code, PROBLEM_TYPE_PREFIX};

/// A string without U+0000 (Postgres cannot store it).
pub const NO_NUL: &str = r"^[^\u0000]*$";

/// What `str::trim` removes: Unicode `White_Space`, spelled out so that
/// every regex engine reading the document agrees (`\s` differs between
/// them).
const WHITE_SPACE: &str = r"\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// An idempotency key: 1 to `MAX_KEY_LEN` printable ASCII characters.
pub fn key_pattern() -> String {
    format!("^[!-~]{{1,{MAX_KEY_LEN}}}$")
}

/// The `Idempotency-Key` header: an RFC 8941 sf-string holding a key
/// (`"..."`, with `\"` and `\\` escapes), or the key as a bare token.
pub fn key_header_pattern() -> String {
    let rest = MAX_KEY_LEN - 1;
    format!(r#"^(?:"(?:[!#-\[\]-~]|\\["\\]){{1,{MAX_KEY_LEN}}}"|[!#-~][!-~]{{0,{rest}}})$"#)
}

/// An agent name: 1 to `MAX_NAME_CHARS` characters once trimmed, no NUL
/// (white space around it is allowed and removed).
fn name_pattern() -> String {
    let w = WHITE_SPACE;
    let middle = MAX_NAME_CHARS - 2;
    format!(r"^[{w}]*[^{w}\u0000](?:[^\u0000]{{0,{middle}}}[^{w}\u0000])?[{w}]*$")
}

/// The name of a schema in `components/schemas`, as a `$ref`.
pub fn reference(name: &str) -> RefOr<Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(name))
}

/// `type` with `null` allowed too.
fn or_null(t: Type) -> SchemaType {
    [t, Type::Null].into_iter().collect()
}

fn integer_id(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(1))
        .maximum(Some(i64::MAX))
        .description(Some(description))
}

/// An optional text field of a creation body: `null`, or at most
/// `max_chars` characters without NUL (blank counts as omitted).
fn optional_text(max_chars: usize, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(or_null(Type::String))
        .max_length(Some(max_chars))
        .pattern(Some(NO_NUL))
        .description(Some(description))
}

/// An optional object field of a creation body, stored as sent.
fn optional_object(max_bytes: usize, description: &str) -> AnyOfBuilder {
    AnyOfBuilder::new()
        .item(reference(StoredJsonObject::NAME))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(format!(
            "{description} At most {max_bytes} bytes as compact JSON; `null` or omitted is `{{}}`."
        )))
}

/// Declares a schema type: its component name and how to build it.
macro_rules! component {
    ($(#[$doc:meta])* $type:ident = $name:literal, $build:expr $(, depends on $($dep:ident),*)?) => {
        $(#[$doc])*
        pub struct $type;

        impl $type {
            /// Its name in `components/schemas`.
            pub const NAME: &'static str = $name;
        }

        impl PartialSchema for $type {
            fn schema() -> RefOr<Schema> {
                $build.into()
            }
        }

        impl ToSchema for $type {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }

            fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
                $($(
                    schemas.push(($dep::NAME.to_owned(), <$dep as PartialSchema>::schema()));
                    <$dep as ToSchema>::schemas(schemas);
                )*)?
                let _ = schemas;
            }
        }
    };
}

component!(
    /// A JSON number the service stores as sent: an integer from −2⁶³ to
    /// 2⁶⁴−1, or a normal double (or zero) in that range.
    JsonNumber = "JsonNumber",
    AnyOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Number).minimum(Some(f64::MIN_POSITIVE)).maximum(Some(u64::MAX)))
        .item(ObjectBuilder::new().schema_type(Type::Number).minimum(Some(i64::MIN)).maximum(Some(-f64::MIN_POSITIVE)))
        .item(ObjectBuilder::new().schema_type(Type::Number).enum_values(Some([0])))
        .description(Some(format!(
            "A number stored exactly as sent: an integer from -2^63 to 2^64-1, or a number with a fraction or \
             an exponent of at most {MAX_FLOAT_DIGITS} significant digits whose magnitude a normal double holds, \
             or zero. Other numbers would come back changed and are refused (422); send them as strings."
        )))
);

component!(
    /// Any JSON value whose numbers are [`JsonNumber`]s.
    JsonValue = "JsonValue",
    AnyOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::Null, Type::Boolean, Type::String])))
        .item(reference(JsonNumber::NAME))
        .item(ArrayBuilder::new().items(reference("JsonValue")))
        .item(ObjectBuilder::new().additional_properties(Some(reference("JsonValue"))))
        .description(Some("Any JSON value whose numbers are JsonNumbers.")),
    depends on JsonNumber
);

component!(
    /// A JSON value that can be stored: no NUL in any string or key, and
    /// only [`JsonNumber`]s.
    StoredJsonValue = "StoredJsonValue",
    AnyOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::Null, Type::Boolean])))
        .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some(NO_NUL)))
        .item(reference(JsonNumber::NAME))
        .item(ArrayBuilder::new().items(reference("StoredJsonValue")))
        .item(reference("StoredJsonObject"))
        .description(Some("A JSON value with no NUL (U+0000) in any string or key, and only JsonNumbers.")),
    depends on JsonNumber
);

component!(
    /// A JSON object that can be stored.
    StoredJsonObject = "StoredJsonObject",
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(ObjectBuilder::new().schema_type(Type::String).pattern(Some(NO_NUL))))
        .additional_properties(Some(reference(StoredJsonValue::NAME))),
    depends on StoredJsonValue
);

component!(
    /// `POST /api/v1/agents`: the creation body.
    CreateAgentBody = "CreateAgentBody",
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "An agent to create. Unknown fields are ignored (their numbers must still be JsonNumbers).",
        ))
        .property(
            "name",
            ObjectBuilder::new().schema_type(Type::String).pattern(Some(name_pattern())).description(Some(format!(
                "1 to {MAX_NAME_CHARS} characters once trimmed of white space, no NUL."
            ))),
        )
        .required("name")
        .property("description", optional_text(MAX_DESCRIPTION_CHARS, "Free text."))
        .property(
            "system_prompt",
            optional_text(MAX_SYSTEM_PROMPT_CHARS, "Instructions given to the model."),
        )
        .property("config", optional_object(MAX_CONFIG_BYTES, "Arbitrary settings."))
        .property(
            "widget_config",
            optional_object(MAX_WIDGET_CONFIG_BYTES, "Settings of the embeddable widget."),
        )
        .property(
            "agent_type",
            optional_text(
                MAX_LABEL_CHARS,
                &format!("Kind of agent; `{DEFAULT_AGENT_TYPE}` when null, blank or omitted."),
            ),
        )
        .property("industry", optional_text(MAX_LABEL_CHARS, "Industry label."))
        .property(
            "auto_optimize",
            ObjectBuilder::new()
                .schema_type(or_null(Type::Boolean))
                .description(Some("Whether the agent tunes itself; `false` when null or omitted.")),
        )
        .property("organization_id", body_organization_id())
        .property("idempotency_key", body_key())
        .additional_properties(Some(reference(JsonValue::NAME)))
        .examples([serde_json::json!({
            "name": "Support bot",
            "description": "Answers questions about orders",
            "system_prompt": "You are a helpful support agent.",
            "config": {"temperature": 0.2, "max_tokens": 512},
            "agent_type": "assistant",
            "industry": "retail",
            "auto_optimize": false
        })]),
    depends on StoredJsonObject, JsonValue
);

component!(
    /// `POST /api/v1/agents/{agent_id}/deployments`: the creation body.
    CreateDeploymentBody = "CreateDeploymentBody",
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "A deployment to create. Unknown fields are ignored (their numbers must still be JsonNumbers).",
        ))
        .property(
            "channel",
            ObjectBuilder::new().schema_type(Type::String).enum_values(Some(CHANNELS)).description(Some("Where the agent is published.")),
        )
        .required("channel")
        .property("settings", optional_object(MAX_SETTINGS_BYTES, "Channel-specific settings."))
        .property("organization_id", body_organization_id())
        .property("idempotency_key", body_key())
        .additional_properties(Some(reference(JsonValue::NAME)))
        .examples([serde_json::json!({"channel": "web", "settings": {"theme": "dark"}})]),
    depends on StoredJsonObject, JsonValue
);

fn body_organization_id() -> ObjectBuilder {
    integer_id("If present, must equal the `organization_id` query parameter (400 `organization_mismatch`).")
        .schema_type(or_null(Type::Integer))
}

fn body_key() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(or_null(Type::String))
        .pattern(Some(key_pattern()))
        .description(Some(
            "The idempotency key, for clients that cannot set the `Idempotency-Key` header. If both are \
             sent they must be equal (400 `conflicting_idempotency_keys`).",
        ))
}

/// A stored text field in a response.
fn text(min: usize, max: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(min))
        .max_length(Some(max))
}

fn nullable_text(max: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(or_null(Type::String))
        .max_length(Some(max))
}

fn timestamp() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
}

fn stored_key() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(or_null(Type::String))
        .pattern(Some(key_pattern()))
        .description(Some("Key of the request that created it, if it carried one."))
}

/// A closed object: every property listed is required, no other allowed.
fn closed(properties: Vec<(&str, RefOr<Schema>)>) -> ObjectBuilder {
    properties
        .into_iter()
        .fold(
            ObjectBuilder::new().schema_type(Type::Object),
            |object, (name, schema)| object.property(name, schema).required(name),
        )
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
}

component!(
    /// An agent, as every endpoint returns it.
    Agent = "Agent",
    closed(vec![
        ("id", integer_id("Server-assigned id.").into()),
        ("organization_id", integer_id("Owning tenant.").into()),
        ("user_id", integer_id("Creating user.").into()),
        ("name", text(1, MAX_NAME_CHARS).into()),
        ("description", nullable_text(MAX_DESCRIPTION_CHARS).into()),
        ("system_prompt", nullable_text(MAX_SYSTEM_PROMPT_CHARS).into()),
        ("config", ObjectBuilder::new().schema_type(Type::Object).into()),
        ("widget_config", reference(StoredJsonObject::NAME)),
        ("agent_type", text(1, MAX_LABEL_CHARS).into()),
        ("industry", nullable_text(MAX_LABEL_CHARS).into()),
        ("auto_optimize", ObjectBuilder::new().schema_type(Type::Boolean).into()),
        ("idempotency_key", stored_key().into()),
        ("created_at", timestamp().into()),
    ]),
    depends on StoredJsonObject
);

component!(
    /// A deployment, as every endpoint returns it.
    Deployment = "Deployment",
    closed(vec![
        ("id", integer_id("Server-assigned id.").into()),
        ("organization_id", integer_id("Owning tenant (the agent's).").into()),
        ("agent_id", integer_id("The published agent.").into()),
        ("user_id", integer_id("Publishing user.").into()),
        ("channel", ObjectBuilder::new().schema_type(Type::String).enum_values(Some(CHANNELS)).into()),
        ("settings", reference(StoredJsonObject::NAME)),
        ("idempotency_key", stored_key().into()),
        ("created_at", timestamp().into()),
    ]),
    depends on StoredJsonObject
);

/// `{"status": "success", "data": data, "message"?: string}`.
fn envelope(data: ObjectBuilder) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "status",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["success"])),
        )
        .required("status")
        .property("data", data)
        .required("data")
        .property(
            "message",
            ObjectBuilder::new().schema_type(Type::String).description(Some(
                "What happened (creations only): created, or an idempotent replay.",
            )),
        )
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
}

/// A page of `field`: the resources and the cursor of the next page.
fn page(field: &str, item: &str) -> ObjectBuilder {
    envelope(closed(vec![
        (field, ArrayBuilder::new().items(reference(item)).into()),
        (
            "next_cursor",
            ObjectBuilder::new()
                .schema_type(or_null(Type::String))
                .pattern(Some(super::params::CURSOR_PATTERN))
                .description(Some("Pass as `cursor` for the next page; null on the last page."))
                .into(),
        ),
    ]))
}

component!(
    /// One agent in the success envelope.
    AgentReply = "AgentReply",
    envelope(closed(vec![("agent", reference(Agent::NAME))])),
    depends on Agent
);

component!(
    /// A page of agents in the success envelope.
    AgentPage = "AgentPage",
    page("agents", Agent::NAME),
    depends on Agent
);

component!(
    /// One deployment in the success envelope.
    DeploymentReply = "DeploymentReply",
    envelope(closed(vec![("deployment", reference(Deployment::NAME))])),
    depends on Deployment
);

component!(
    /// A page of deployments in the success envelope.
    DeploymentPage = "DeploymentPage",
    page("deployments", Deployment::NAME),
    depends on Deployment
);

/// `{"status": status}`.
fn status_only(status: &str) -> ObjectBuilder {
    closed(vec![(
        "status",
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some([status]))
            .into(),
    )])
}

component!(
    /// `/healthz`.
    Live = "Live",
    status_only("ok")
);

component!(
    /// `/readyz`.
    Ready = "Ready",
    status_only("ready")
);

component!(
    /// One reason a body failed validation.
    FieldError = "FieldError",
    closed(vec![
        (
            "field",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("The top-level body field at fault, or `body`."))
                .into(),
        ),
        ("message", ObjectBuilder::new().schema_type(Type::String).into()),
    ])
);

component!(
    /// An RFC 9457 problem, the body of every error response.
    Problem = "Problem",
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(format!(
            "RFC 9457 problem details (`application/problem+json`). `code` is stable and says what happened; \
             `detail` is for humans. Every code: {}.",
            Code::all().iter().map(|c| format!("`{}` ({})", c.name(), c.status().as_u16())).collect::<Vec<_>>().join(", ")
        )))
        .property(
            "type",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(format!("^{PROBLEM_TYPE_PREFIX}[a-z_]+$")))
                .description(Some(format!("`{PROBLEM_TYPE_PREFIX}` followed by the code."))),
        )
        .required("type")
        .property("title", ObjectBuilder::new().schema_type(Type::String).description(Some("The status's reason phrase.")))
        .required("title")
        .property("status", ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(400)).maximum(Some(599)))
        .required("status")
        .property("detail", ObjectBuilder::new().schema_type(Type::String))
        .required("detail")
        .property(
            "code",
            ObjectBuilder::new().schema_type(Type::String).enum_values(Some(Code::all().iter().map(|c| c.name()))),
        )
        .required("code")
        .property(
            "errors",
            ArrayBuilder::new()
                .items(reference(FieldError::NAME))
                .min_items(Some(1))
                .description(Some("`validation_failed` only: every field at fault.")),
        )
        .additional_properties(Some(AdditionalProperties::FreeForm(false))),
    depends on FieldError
);

component!(
    /// `/openapi.json` itself.
    OpenApiDocument = "OpenApiDocument",
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("openapi", ObjectBuilder::new().schema_type(Type::String).pattern(Some(r"^3\.1\.\d+$")))
        .required("openapi")
        .property("paths", ObjectBuilder::new().schema_type(Type::Object))
        .required("paths")
        .description(Some("This document (OpenAPI 3.1)."))
);
