//! The document's responses: the successes with their headers and links
//! (create → show, create → retry, ...), and every operation's problem
//! responses, derived from the [`Code`]s of the stages it goes through.

use std::collections::BTreeMap;

use utoipa::IntoResponses;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::link::{Link, LinkBuilder};
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, RefOr, Response, ResponseBuilder, Schema};

use super::schemas::{self, reference};
use crate::http::REPLAYED_HEADER;
use crate::http::error::{Code, PROBLEM_JSON, Stage};

const JSON: &str = "application/json";

/// A header with `required: true` (utoipa's `Header` has no field for it).
fn required_header(schema: impl Into<RefOr<Schema>>, description: &str) -> Header {
    HeaderBuilder::new()
        .schema(Some(schema))
        .description(Some(description))
        .extensions(Some([("required", true)].into_iter().collect()))
        .build()
}

fn location() -> Header {
    required_header(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^/api/v1/")),
        "Where the resource is shown.",
    )
}

fn replayed() -> Header {
    required_header(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["true"])),
        "This is the response of an earlier request with the same key, not a new creation.",
    )
}

fn json(description: &str, schema: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content(JSON, ContentBuilder::new().schema(Some(reference(schema))).build())
}

/// A link to `operation` with `parameters` (`name` → runtime expression).
fn link(operation: &str, parameters: &[(&str, &str)]) -> Link {
    parameters
        .iter()
        .fold(LinkBuilder::new().operation_id(operation), |link, (name, value)| {
            link.parameter(*name, *value)
        })
        .build()
}

/// The same request again: the same body and organisation. When the key
/// is in the body, that is a retry with the same key. (The header cannot
/// be carried over: a link expression for a header the first request did
/// not send has no value.)
fn retry(operation: &str, path_parameters: &[&str]) -> Link {
    let mut parameters = vec![(
        "organization_id".to_owned(),
        "$request.query.organization_id".to_owned(),
    )];
    parameters.extend(
        path_parameters
            .iter()
            .map(|p| (format!("path.{p}"), format!("$request.path.{p}"))),
    );
    parameters
        .into_iter()
        .fold(LinkBuilder::new().operation_id(operation), |link, (name, value)| {
            link.parameter(name, value)
        })
        .request_body(Some("$request.body"))
        .description(
            "The same body again: with its `idempotency_key`, a retry that is replayed (200), never created twice.",
        )
        .build()
}

/// 201 and 200 (a replay) of a creation, with their links.
fn created(resource: &str, reply: &str, links: impl Fn() -> Vec<(&'static str, Link)>) -> [(String, Response); 2] {
    let with_links = |mut response: ResponseBuilder| {
        for (name, link) in links() {
            response = response.link(name, link);
        }
        response
    };
    let created = json(&format!("Created: this request created the {resource}."), reply).header("Location", location());
    let replayed = json(
        &format!("An idempotent replay: an earlier request with the same key and payload created the {resource}."),
        reply,
    )
    .header("Location", location())
    .header(REPLAYED_HEADER.as_str(), replayed());
    [
        ("201".to_owned(), with_links(created).build()),
        ("200".to_owned(), with_links(replayed).build()),
    ]
}

/// Declares a type whose `IntoResponses` is `$build`.
macro_rules! responses {
    ($(#[$doc:meta])* $type:ident => $build:expr) => {
        $(#[$doc])*
        pub struct $type;

        impl IntoResponses for $type {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                $build.into_iter().map(|(status, response): (String, Response)| (status, response.into())).collect()
            }
        }
    };
}

const AGENT: &str = "$response.body#/data/agent/id";
const AGENT_ORG: &str = "$response.body#/data/agent/organization_id";
const DEPLOYMENT: &str = "$response.body#/data/deployment/id";
const DEPLOYMENT_AGENT: &str = "$response.body#/data/deployment/agent_id";
const DEPLOYMENT_ORG: &str = "$response.body#/data/deployment/organization_id";

responses!(
    /// `createAgent`'s successes.
    AgentCreated => created("agent", schemas::AgentReply::NAME, || vec![
        ("showAgent", link("showAgent", &[("id", AGENT), ("organization_id", AGENT_ORG)])),
        ("listDeployments", link("listDeployments", &[("agent_id", AGENT), ("organization_id", AGENT_ORG)])),
        ("createDeployment", link("createDeployment", &[("agent_id", AGENT), ("organization_id", AGENT_ORG)])),
        ("retryCreateAgent", retry("createAgent", &[])),
    ])
);

responses!(
    /// `showAgent`'s success.
    AgentShown => [("200".to_owned(), json("The agent.", schemas::AgentReply::NAME).build())]
);

responses!(
    /// `listAgents`' success.
    AgentsListed => [(
        "200".to_owned(),
        json("A page of the organisation's agents, by id.", schemas::AgentPage::NAME).build(),
    )]
);

responses!(
    /// `createDeployment`'s successes.
    DeploymentCreated => created("deployment", schemas::DeploymentReply::NAME, || vec![
        (
            "showDeployment",
            link(
                "showDeployment",
                &[("agent_id", DEPLOYMENT_AGENT), ("id", DEPLOYMENT), ("organization_id", DEPLOYMENT_ORG)],
            ),
        ),
        ("showAgent", link("showAgent", &[("id", DEPLOYMENT_AGENT), ("organization_id", DEPLOYMENT_ORG)])),
        ("retryCreateDeployment", retry("createDeployment", &["agent_id"])),
    ])
);

responses!(
    /// `showDeployment`'s success.
    DeploymentShown => [("200".to_owned(), json("The deployment.", schemas::DeploymentReply::NAME).build())]
);

responses!(
    /// `listDeployments`' success.
    DeploymentsListed => [(
        "200".to_owned(),
        json("A page of the agent's deployments, by id.", schemas::DeploymentPage::NAME).build(),
    )]
);

responses!(
    /// `live`'s success.
    Live => [("200".to_owned(), json("The process is up.", schemas::Live::NAME).build())]
);

responses!(
    /// `ready`'s success.
    Ready => [(
        "200".to_owned(),
        json("The last write probes found the store writable.", schemas::Ready::NAME).build(),
    )]
);

responses!(
    /// `openapi`'s success.
    Document => [("200".to_owned(), json("This document.", schemas::OpenApiDocument::NAME).build())]
);

/// The problem responses of an operation that goes through `stages`: one
/// per status, listing the codes it can answer with that status.
pub fn problems(stages: &[Stage]) -> Vec<(String, Response)> {
    let mut by_status: BTreeMap<u16, Vec<Code>> = BTreeMap::new();
    for &code in Code::all() {
        if code.stages().iter().any(|s| stages.contains(s)) {
            by_status.entry(code.status().as_u16()).or_default().push(code);
        }
    }
    by_status
        .into_iter()
        .map(|(status, codes)| (status.to_string(), problem(status, &codes)))
        .collect()
}

fn problem(status: u16, codes: &[Code]) -> Response {
    let names: Vec<String> = codes.iter().map(|c| c.name()).collect();
    let reason = codes[0].status().canonical_reason().unwrap_or("Error");
    let schema = AllOfBuilder::new().item(reference(schemas::Problem::NAME)).item(
        ObjectBuilder::new()
            .property(
                "status",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .enum_values(Some([status])),
            )
            .property(
                "code",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(names.clone())),
            ),
    );
    let listed: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    let mut response = ResponseBuilder::new()
        .description(format!("{reason}: {}.", listed.join(", ")))
        .content(PROBLEM_JSON, ContentBuilder::new().schema(Some(schema)).build());
    if codes.iter().all(|c| c.retry_after()) {
        response = response.header(
            "Retry-After",
            required_header(
                ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)),
                "Seconds to wait before retrying.",
            ),
        );
    }
    if codes.contains(&Code::Unauthorized) {
        response = response.header(
            "WWW-Authenticate",
            required_header(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["Bearer"])),
                "The scheme to authenticate with.",
            ),
        );
    }
    response.build()
}

/// Declares the problems of an operation kind: the stages it goes through.
macro_rules! problems {
    ($($(#[$doc:meta])* $type:ident = [$($stage:ident),*];)*) => {
        $(
            $(#[$doc])*
            pub struct $type;

            impl $type {
                /// The stages this kind of operation goes through.
                pub const STAGES: &'static [Stage] = &[$(Stage::$stage),*];
            }

            impl IntoResponses for $type {
                fn responses() -> BTreeMap<String, RefOr<Response>> {
                    problems(Self::STAGES).into_iter().map(|(status, response)| (status, response.into())).collect()
                }
            }
        )*
    };
}

problems! {
    /// The probes and the document: only the connection and head checks.
    OpenProblems = [Head];
    /// `/readyz`.
    ReadinessProblems = [Head, Readiness];
    /// `createAgent`.
    CreateProblems = [Head, Gate, Transfer, Payload, Create, Store];
    /// `createDeployment`: as `createAgent`, and the agent may not exist.
    DeployProblems = [Head, Gate, Transfer, Payload, Create, Lookup, Store];
    /// `showAgent`, `showDeployment`.
    ShowProblems = [Head, Gate, Transfer, Lookup, Store];
    /// `listAgents`.
    ListProblems = [Head, Gate, Transfer, Page, Store];
    /// `listDeployments`: as `listAgents`, and the agent may not exist.
    NestedListProblems = [Head, Gate, Transfer, Page, Lookup, Store];
}
