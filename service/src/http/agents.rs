//! The agent endpoints: create (idempotently with a key), show, list.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use idemproof_models::Scope;
use serde::Serialize;

use super::AppState;
use super::creation::{self, Named, one, same_organization, success};
use super::error::ApiError;
use super::extract::{QueryParams, idempotency_key, json_body, organization_id, params};
use super::listing;
use crate::auth::User;
use crate::domain::agent::{self, Agent, CreateEnvelope, NewAgent};
use crate::idempotency::Executed;

/// The idempotency scope's endpoint part for agent creation.
pub const CREATE_ENDPOINT: &str = "POST /api/v1/agents";

const NAMED: Named = Named {
    field: "agent",
    created: "Agent created successfully",
    replayed: "Agent already exists (idempotent response)",
};

/// `data` of the list response.
#[derive(Serialize)]
struct Page<'a> {
    agents: &'a [Agent],
    next_cursor: Option<String>,
}

/// Where an agent is shown.
pub fn location(agent: &Agent) -> String {
    format!("/api/v1/agents/{}?organization_id={}", agent.id, agent.organization_id)
}

/// `POST /api/v1/agents?organization_id=N`.
pub async fn create(
    State(state): State<AppState>,
    user: Result<User, ApiError>,
    query: QueryParams,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let result = create_agent(&state, user, query, &headers, body).await;
    creation::respond(&state, result, &NAMED, location)
}

async fn create_agent(
    state: &AppState,
    user: Result<User, ApiError>,
    query: QueryParams,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Executed<Agent>, ApiError> {
    let user = user?;
    let organization_id = organization_id(&params(query)?, &user)?;
    let body = json_body(headers, body, state.max_body_bytes, &agent::BODY_FIELDS)?;
    let envelope = CreateEnvelope::from_json(&body)?;
    same_organization(envelope.organization_id, organization_id)?;
    let key = idempotency_key(headers, envelope.idempotency_key.as_deref())?;
    state.metrics.record_create(key.is_some());

    let fingerprint = envelope.spec.fingerprint();
    let new = NewAgent {
        organization_id,
        user_id: user.id,
        idempotency_key: key.as_ref().map(|k| k.as_str().to_owned()),
        spec: envelope.spec,
    };
    let scope = key.map(|key| Scope {
        organization_id,
        user_id: user.id,
        endpoint: CREATE_ENDPOINT.to_owned(),
        key,
    });
    creation::create(state, &*state.stores.agents, scope, fingerprint, &new).await
}

/// `GET /api/v1/agents/{id}?organization_id=N`.
pub async fn show(
    State(state): State<AppState>,
    user: User,
    query: QueryParams,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let organization_id = organization_id(&params(query)?, &user)?;
    let agent = find(&state, organization_id, id.ok().map(|Path(id)| id)).await?;
    Ok(success(one(NAMED.field, &agent), None).into_response())
}

/// The agent `id` (a path segment) of `organization_id`, or 404. An id
/// that is not an integer (or not even UTF-8) names no agent.
pub(super) async fn find(state: &AppState, organization_id: i64, id: Option<String>) -> Result<Agent, ApiError> {
    let not_found = || ApiError::NotFound(format!("no such agent in organization {organization_id}"));
    let id = id.and_then(|id| id.parse::<i64>().ok()).ok_or_else(not_found)?;
    state
        .stores
        .agents
        .get(organization_id, id)
        .await?
        .ok_or_else(not_found)
}

/// `GET /api/v1/agents?organization_id=N&limit=L&cursor=C`: keyset
/// pagination by id.
pub async fn list(State(state): State<AppState>, user: User, query: QueryParams) -> Result<Response, ApiError> {
    let params = params(query)?;
    let organization_id = organization_id(&params, &user)?;
    let page = listing::page(
        &*state.stores.agents,
        &params,
        organization_id,
        None,
        state.list_page_max_bytes,
    )
    .await?;
    Ok(success(
        Page {
            agents: &page.items,
            next_cursor: page.next_cursor,
        },
        None,
    )
    .into_response())
}
