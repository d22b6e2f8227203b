//! `GET /openapi.json`: the OpenAPI 3.1 document of the API listener,
//! generated from the code. Each handler carries a `#[utoipa::path]`
//! annotation and is registered through utoipa-axum (`http::operations`),
//! which adds its route and its operation together, so the router and the
//! document cannot drift apart. The schemas (`schemas`), parameters
//! (`params`) and responses (`responses`) are built from the constants
//! the validation uses, and every operation's problem responses from the
//! error codes (`http::error::Code`) of the stages it goes through.
//!
//! The document is served unauthenticated, outside the gate and the
//! in-flight cap, like the probes. `/metrics` is not in it: it is served
//! on its own listener (`METRICS_BIND`), never the API's.

pub mod params;
pub mod responses;
pub mod schemas;

use std::sync::LazyLock;

use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::Modify;
use utoipa::OpenApi as _;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

/// The security scheme every `/api/v1` operation requires.
pub const BEARER: &str = "bearerAuth";

/// The document's fixed parts: what it describes, the security scheme,
/// the tags and every schema component.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "idemproof agent service",
        description = "A reference agent service whose idempotency keys hold under concurrency: \
            `POST /api/v1/agents` and `POST /api/v1/agents/{agent_id}/deployments` with an `Idempotency-Key` \
            create at most one resource per (organisation, user, endpoint, key). Errors are RFC 9457 problems \
            with a stable `code` (schema `Problem` lists them all). `/metrics` is not part of this API: it is \
            served on its own listener (`METRICS_BIND`). A request hyper cannot parse at all gets hyper's bare \
            400, 414 or 431 without a body (docs/operations.md).",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    modifiers(&Security),
    tags(
        (name = "agents", description = "Agents of an organisation."),
        (name = "deployments", description = "An agent published to a channel."),
        (name = "probes", description = "Liveness, readiness and this document; no token needed."),
    ),
    components(schemas(
        schemas::JsonNumber,
        schemas::JsonValue,
        schemas::StoredJsonValue,
        schemas::StoredJsonObject,
        schemas::CreateAgentBody,
        schemas::CreateDeploymentBody,
        schemas::Agent,
        schemas::Deployment,
        schemas::AgentReply,
        schemas::AgentPage,
        schemas::DeploymentReply,
        schemas::DeploymentPage,
        schemas::Live,
        schemas::Ready,
        schemas::FieldError,
        schemas::Problem,
        schemas::OpenApiDocument,
    ))
)]
pub struct ApiDoc;

/// Adds the bearer scheme.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        scheme.description = Some(
            "An HS256 JWT with claims `sub` (the user id, a canonical positive decimal string), `orgs` (the \
             integer ids of the user's organisations) and `exp` (required); `nbf` is honoured. \
             `idemproof-service token --user U --org O` mints one with the service's secret."
                .into(),
        );
        components.add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// The document: the fixed parts with every operation of the router.
pub fn document() -> OpenApi {
    super::operations().into_openapi()
}

/// The document as served, serialised once.
static SERVED: LazyLock<Bytes> = LazyLock::new(|| Bytes::from(serde_json::to_vec(&document()).unwrap_or_default()));

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "probes",
    summary = "This OpenAPI 3.1 document",
    responses(responses::Document, responses::OpenProblems)
)]
pub async fn serve() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], SERVED.clone()).into_response()
}

/// The fixed parts alone (the document without operations).
pub(super) fn base() -> OpenApi {
    ApiDoc::openapi()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use serde_json::Value;

    use super::*;
    use crate::http::error::{Code, PROBLEM_JSON, Stage};

    fn doc() -> Value {
        serde_json::to_value(document()).expect("the document serialises")
    }

    /// `(method, path, operation)` of every operation.
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut found = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("a path item") {
                found.push((method.clone(), path.clone(), operation.clone()));
            }
        }
        found
    }

    fn stages_of(operation_id: &str) -> &'static [Stage] {
        match operation_id {
            "createAgent" => responses::CreateProblems::STAGES,
            "createDeployment" => responses::DeployProblems::STAGES,
            "showAgent" | "showDeployment" => responses::ShowProblems::STAGES,
            "listAgents" => responses::ListProblems::STAGES,
            "listDeployments" => responses::NestedListProblems::STAGES,
            "ready" => responses::ReadinessProblems::STAGES,
            "live" | "openapi" => responses::OpenProblems::STAGES,
            other => panic!("an operation this test does not know: {other}"),
        }
    }

    #[test]
    fn it_is_openapi_3_1_with_every_operation_named_once() {
        let doc = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        let ids: Vec<String> = operations(&doc)
            .iter()
            .map(|(_, _, op)| op["operationId"].as_str().expect("an operationId").to_owned())
            .collect();
        let distinct: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len(), "operation ids are unique: {ids:?}");
        for id in &ids {
            stages_of(id);
        }
    }

    #[test]
    fn every_problem_code_is_documented_with_its_status() {
        let doc = doc();
        let listed: BTreeSet<String> = doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
            .as_array()
            .expect("the code enum")
            .iter()
            .map(|c| c.as_str().expect("a name").to_owned())
            .collect();
        let all: BTreeSet<String> = Code::all().iter().map(|c| c.name()).collect();
        assert_eq!(listed, all, "the Problem schema lists every code");

        // Each operation answers, per status, exactly the codes of its stages.
        let mut answered = BTreeSet::new();
        for (method, path, operation) in operations(&doc) {
            let id = operation["operationId"].as_str().expect("id");
            let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for code in Code::all()
                .iter()
                .filter(|c| c.stages().iter().any(|s| stages_of(id).contains(s)))
            {
                expected
                    .entry(code.status().as_u16().to_string())
                    .or_default()
                    .insert(code.name());
            }
            for (status, codes) in &expected {
                let response = &operation["responses"][status];
                let schema = &response["content"][PROBLEM_JSON]["schema"]["allOf"][1]["properties"];
                let documented: BTreeSet<String> = schema["code"]["enum"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{method} {path} documents {status}"))
                    .iter()
                    .map(|c| c.as_str().expect("a name").to_owned())
                    .collect();
                assert_eq!(&documented, codes, "{method} {path} {status}");
                assert_eq!(schema["status"]["enum"][0].to_string(), *status);
                let retry = response["headers"]["Retry-After"]["required"] == true;
                assert_eq!(
                    retry,
                    matches!(status.as_str(), "409" | "429" | "503"),
                    "{method} {path} {status}"
                );
                answered.extend(codes.iter().cloned());
            }
            let problems: BTreeSet<&String> = operation["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .filter(|s| !s.starts_with('2'))
                .collect();
            assert_eq!(
                problems,
                expected.keys().collect(),
                "{method} {path}: no other problem status"
            );
        }
        // Only the routing codes (no operation is there to answer them)
        // are in no operation.
        let unanswered: Vec<Code> = Code::all()
            .iter()
            .copied()
            .filter(|c| !answered.contains(&c.name()))
            .collect();
        assert_eq!(unanswered, [Code::MethodNotAllowed]);
    }

    #[test]
    fn the_api_needs_the_token_and_an_organisation_the_probes_need_nothing() {
        let doc = doc();
        assert_eq!(doc["components"]["securitySchemes"][BEARER]["scheme"], "bearer");
        for (method, path, operation) in operations(&doc) {
            let names: Vec<&str> = operation["parameters"]
                .as_array()
                .map(|ps| ps.iter().filter_map(|p| p["name"].as_str()).collect())
                .unwrap_or_default();
            if path.starts_with("/api/v1/") {
                assert_eq!(
                    operation["security"][0][BEARER],
                    serde_json::json!([]),
                    "{method} {path}"
                );
                assert!(names.contains(&"organization_id"), "{method} {path}");
                assert!(operation["responses"]["401"]["headers"]["WWW-Authenticate"]["required"] == true);
            } else {
                assert!(operation.get("security").is_none(), "{method} {path} is open");
                assert!(operation["responses"].get("401").is_none(), "{method} {path}");
            }
            // Every `{param}` of the path is declared, and no other path parameter.
            let in_path: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            let declared: BTreeSet<&str> = operation["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(in_path, declared, "{method} {path}");
            let creates = method == "post";
            assert_eq!(
                names.contains(&params::IDEMPOTENCY_KEY_HEADER_NAME),
                creates,
                "{method} {path}"
            );
        }
        assert!(params::IDEMPOTENCY_KEY_HEADER_NAME.eq_ignore_ascii_case(crate::http::extract::IDEMPOTENCY_KEY_HEADER));
    }

    #[test]
    fn every_link_names_an_operation_and_its_parameters() {
        let doc = doc();
        let by_id: BTreeMap<String, Value> = operations(&doc)
            .into_iter()
            .map(|(_, _, op)| (op["operationId"].as_str().expect("id").to_owned(), op))
            .collect();
        let mut links = 0;
        for (source, operation) in &by_id {
            for (status, response) in operation["responses"].as_object().expect("responses") {
                let Some(found) = response.get("links").and_then(Value::as_object) else {
                    continue;
                };
                for (name, link) in found {
                    links += 1;
                    let target = &by_id[link["operationId"].as_str().expect("an operationId")];
                    for parameter in link["parameters"].as_object().expect("parameters").keys() {
                        let bare = parameter.split_once('.').map_or(parameter.as_str(), |(_, n)| n);
                        let declared = target["parameters"]
                            .as_array()
                            .expect("parameters")
                            .iter()
                            .any(|p| p["name"] == bare);
                        assert!(declared, "{source} {status} link {name}: {parameter}");
                    }
                }
            }
        }
        assert!(links >= 6, "creations link to what they created: {links}");
        for (id, status) in [
            ("createAgent", "201"),
            ("createAgent", "200"),
            ("createDeployment", "201"),
        ] {
            let links = &by_id[id]["responses"][status]["links"];
            assert!(links.as_object().is_some_and(|l| !l.is_empty()), "{id} {status}");
        }
    }

    #[test]
    fn bounds_come_from_the_validation_constants() {
        use crate::domain::agent::{MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS};
        use crate::domain::deployment::CHANNELS;
        let doc = doc();
        let schemas = &doc["components"]["schemas"];
        let body = &schemas["CreateAgentBody"]["properties"];
        assert_eq!(body["description"]["maxLength"], MAX_DESCRIPTION_CHARS);
        assert_eq!(schemas["Agent"]["properties"]["name"]["maxLength"], MAX_NAME_CHARS);
        assert_eq!(schemas["CreateAgentBody"]["required"], serde_json::json!(["name"]));
        assert_eq!(
            schemas["CreateDeploymentBody"]["properties"]["channel"]["enum"],
            serde_json::json!(CHANNELS)
        );
        let limit = &by_name(&doc, "listAgents", "limit")["schema"];
        assert_eq!(limit["maximum"], crate::http::listing::MAX_LIMIT);
        assert_eq!(limit["default"], crate::http::listing::DEFAULT_LIMIT);
    }

    fn by_name(doc: &Value, operation_id: &str, parameter: &str) -> Value {
        operations(doc)
            .into_iter()
            .find(|(_, _, op)| op["operationId"] == operation_id)
            .and_then(|(_, _, op)| {
                op["parameters"]
                    .as_array()?
                    .iter()
                    .find(|p| p["name"] == parameter)
                    .cloned()
            })
            .unwrap_or_else(|| panic!("{operation_id} has {parameter}"))
    }
}
