//! The document's parameters: what `http::extract` and `http::listing`
//! parse, with the same bounds.

use utoipa::IntoParams;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{Required, Schema};

use super::schemas::key_header_pattern;
use crate::http::listing::{DEFAULT_LIMIT, MAX_LIMIT};

/// `http::extract::IDEMPOTENCY_KEY_HEADER` as the IETF draft spells it.
pub const IDEMPOTENCY_KEY_HEADER_NAME: &str = "Idempotency-Key";

/// A cursor as the service returns it: an id, in canonical decimal.
pub const CURSOR_PATTERN: &str = "^(0|[1-9][0-9]*)$";

fn parameter(
    name: &str,
    at: ParameterIn,
    required: bool,
    schema: impl Into<Schema>,
    description: &str,
) -> ParameterBuilder {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(at)
        .required(if required { Required::True } else { Required::False })
        .schema(Some(schema.into()))
        .description(Some(description))
}

fn with_example(parameter: ParameterBuilder, example: serde_json::Value) -> ParameterBuilder {
    parameter.example(Some(example))
}

fn id() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(1))
        .maximum(Some(i64::MAX))
}

/// Declares a set of parameters: a type implementing `IntoParams`.
macro_rules! parameters {
    ($(#[$doc:meta])* $type:ident => [$($param:expr),* $(,)?]) => {
        $(#[$doc])*
        pub struct $type;

        impl IntoParams for $type {
            fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
                vec![$(Parameter::from($param)),*]
            }
        }
    };
}

parameters!(
    /// `?organization_id=N`, on every `/api/v1` operation.
    Organization => [with_example(parameter(
        "organization_id",
        ParameterIn::Query,
        true,
        id(),
        "The organisation (tenant) the request acts in; the token's `orgs` must hold it (403 otherwise).",
    ), 1.into())]
);

parameters!(
    /// The `Idempotency-Key` header of the creation operations.
    IdempotencyKey => [with_example(parameter(
        IDEMPOTENCY_KEY_HEADER_NAME,
        ParameterIn::Header,
        false,
        ObjectBuilder::new().schema_type(Type::String).pattern(Some(key_header_pattern())),
        "The idempotency key (IETF draft-ietf-httpapi-idempotency-key-header): an RFC 8941 sf-string \
         (`\"8e03978e-...\"`) or, for older clients, the bare key; the key is 1-255 printable ASCII \
         characters. A retry with the same key and payload replays the original (200, \
         `Idempotent-Replayed: true`); the same key with another payload is 422 \
         `idempotency_key_reused`; while the original runs, a duplicate waits for it (up to \
         IDEMPOTENCY_WAIT) or gets 409. Keys are scoped per organisation, user and endpoint. The body's \
         `idempotency_key` is the alternative for clients that cannot set headers.",
    ), "\"8e03978e-40d5-43e8-bc93-6894a57f9324\"".into())]
);

parameters!(
    /// `?limit=L&cursor=C` of the list operations.
    Page => [
        parameter(
            "limit",
            ParameterIn::Query,
            false,
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(MAX_LIMIT))
                .default(Some(DEFAULT_LIMIT.into())),
            "Most resources on the page (a page also stops before LIST_PAGE_MAX_BYTES of JSON).",
        ),
        parameter(
            "cursor",
            ParameterIn::Query,
            false,
            AnyOfBuilder::new()
                .item(id().minimum(Some(0)))
                .item(ObjectBuilder::new().schema_type(Type::String).max_length(Some(0))),
            "The previous page's `next_cursor`; empty or omitted for the first page.",
        ),
    ]
);

parameters!(
    /// `{id}` of an agent.
    AgentId => [parameter("id", ParameterIn::Path, true, id(), "The agent's id.")]
);

parameters!(
    /// `{agent_id}` of the agent whose deployments these are.
    ParentAgentId => [parameter("agent_id", ParameterIn::Path, true, id(), "The agent's id.")]
);

parameters!(
    /// `{agent_id}` and `{id}` of a deployment.
    DeploymentId => [
        parameter("agent_id", ParameterIn::Path, true, id(), "The agent's id."),
        parameter("id", ParameterIn::Path, true, id(), "The deployment's id."),
    ]
);
