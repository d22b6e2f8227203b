//! The deployment endpoints, nested under an agent: create (idempotently
//! with a key), show, list. Creation adopts the idempotency machinery the
//! way agent creation does; its scope's endpoint names the agent, so one
//! key deploys one agent once.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use idemproof_models::Scope;
use serde::Serialize;

use super::AppState;
use super::agents;
use super::creation::{self, Named, one, same_organization, success};
use super::error::ApiError;
use super::extract::{QueryParams, idempotency_key, json_body, organization_id, params};
use super::listing;
use crate::auth::User;
use crate::domain::deployment::{self, DeployEnvelope, Deployment, NewDeployment};
use crate::idempotency::Executed;

const NAMED: Named = Named {
    field: "deployment",
    created: "Deployment created successfully",
    replayed: "Deployment already exists (idempotent response)",
};

/// The idempotency scope's endpoint part for deploying agent `agent_id`.
pub fn create_endpoint(agent_id: i64) -> String {
    format!("POST /api/v1/agents/{agent_id}/deployments")
}

/// Where a deployment is shown.
pub fn location(d: &Deployment) -> String {
    format!(
        "/api/v1/agents/{}/deployments/{}?organization_id={}",
        d.agent_id, d.id, d.organization_id
    )
}

/// `data` of the list response.
#[derive(Serialize)]
struct Page<'a> {
    deployments: &'a [Deployment],
    next_cursor: Option<String>,
}

/// `POST /api/v1/agents/{agent_id}/deployments?organization_id=N`.
pub async fn create(
    State(state): State<AppState>,
    user: Result<User, ApiError>,
    query: QueryParams,
    agent_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let result = deploy(&state, user, query, agent_id, &headers, body).await;
    creation::respond(&state, result, &NAMED, location)
}

async fn deploy(
    state: &AppState,
    user: Result<User, ApiError>,
    query: QueryParams,
    agent_id: Result<Path<String>, PathRejection>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Executed<Deployment>, ApiError> {
    let user = user?;
    let organization_id = organization_id(&params(query)?, &user)?;
    let body = json_body(headers, body, state.max_body_bytes, &deployment::BODY_FIELDS)?;
    let envelope = DeployEnvelope::from_json(&body)?;
    same_organization(envelope.organization_id, organization_id)?;
    let key = idempotency_key(headers, envelope.idempotency_key.as_deref())?;
    let agent = agents::find(state, organization_id, agent_id.ok().map(|Path(id)| id)).await?;
    state.metrics.record_create(key.is_some());

    let fingerprint = envelope.spec.fingerprint();
    let new = NewDeployment {
        organization_id,
        agent_id: agent.id,
        user_id: user.id,
        idempotency_key: key.as_ref().map(|k| k.as_str().to_owned()),
        spec: envelope.spec,
    };
    let scope = key.map(|key| Scope {
        organization_id,
        user_id: user.id,
        endpoint: create_endpoint(agent.id),
        key,
    });
    creation::create(state, &*state.stores.deployments, scope, fingerprint, &new).await
}

/// `GET /api/v1/agents/{agent_id}/deployments/{id}?organization_id=N`.
pub async fn show(
    State(state): State<AppState>,
    user: User,
    query: QueryParams,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let organization_id = organization_id(&params(query)?, &user)?;
    let not_found = || ApiError::NotFound(format!("no such deployment in organization {organization_id}"));
    let (agent_id, id) = ids
        .ok()
        .and_then(|Path((agent, id))| Some((agent.parse::<i64>().ok()?, id.parse::<i64>().ok()?)))
        .ok_or_else(not_found)?;
    let deployment = state
        .stores
        .deployments
        .get(organization_id, id)
        .await?
        .filter(|d| d.agent_id == agent_id)
        .ok_or_else(not_found)?;
    Ok(success(one(NAMED.field, &deployment), None).into_response())
}

/// `GET /api/v1/agents/{agent_id}/deployments?organization_id=N&limit=L&cursor=C`:
/// the agent's deployments, keyset pagination by id; 404 if the agent is
/// not in the organisation.
pub async fn list(
    State(state): State<AppState>,
    user: User,
    query: QueryParams,
    agent_id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let params = params(query)?;
    let organization_id = organization_id(&params, &user)?;
    let agent = agents::find(&state, organization_id, agent_id.ok().map(|Path(id)| id)).await?;
    let page = listing::page(
        &*state.stores.deployments,
        &params,
        organization_id,
        Some(agent.id),
        state.list_page_max_bytes,
    )
    .await?;
    Ok(success(
        Page {
            deployments: &page.items,
            next_cursor: page.next_cursor,
        },
        None,
    )
    .into_response())
}
