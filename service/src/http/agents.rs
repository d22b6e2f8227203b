//! The agent endpoints. Creation is the first user of the idempotency
//! machinery: it names its scope, fingerprints the normalised payload and
//! hands the store calls to [`Idempotency::execute`].

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use idemproof_models::Scope;
use serde::Serialize;

use super::AppState;
use super::error::ApiError;
use super::extract::{QueryParams, idempotency_key, json_body, organization_id, params};
use super::metrics::Outcome;
use crate::auth::User;
use crate::domain::agent::{Agent, BodyError, CreateEnvelope, NewAgent};
use crate::idempotency::{Executed, Refused};

/// The idempotency scope's endpoint part for agent creation.
pub const CREATE_ENDPOINT: &str = "POST /api/v1/agents";

/// Response header marking a replayed result (as Stripe does).
pub const REPLAYED_HEADER: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Default and largest page size of the list endpoint.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

/// The success envelope shared by the agent endpoints.
#[derive(Serialize)]
struct Envelope<T> {
    status: &'static str,
    data: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
}

/// `data` of the single-agent responses.
#[derive(Serialize)]
struct One<'a> {
    agent: &'a Agent,
}

/// `data` of the list response.
#[derive(Serialize)]
struct Page<'a> {
    agents: &'a [Agent],
    next_cursor: Option<String>,
}

fn success<T: Serialize>(data: T, message: Option<&'static str>) -> Json<Envelope<T>> {
    Json(Envelope {
        status: "success",
        data,
        message,
    })
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
    state.metrics.record(match &result {
        Ok(Executed::Created(_)) => Outcome::Created,
        Ok(Executed::Replayed(_)) => Outcome::Replayed,
        Err(ApiError::KeyReused) => Outcome::Mismatch,
        Err(ApiError::InFlight) => Outcome::Conflict,
        Err(ApiError::Unavailable(_)) => Outcome::Error,
        Err(_) => Outcome::Invalid,
    });
    let (status, agent, message) = match result? {
        Executed::Created(agent) => (StatusCode::CREATED, agent, "Agent created successfully"),
        Executed::Replayed(agent) => (StatusCode::OK, agent, "Agent already exists (idempotent response)"),
    };
    let location = format!("/api/v1/agents/{}?organization_id={}", agent.id, agent.organization_id);
    let mut response = (status, success(One { agent: &agent }, Some(message))).into_response();
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if status == StatusCode::OK {
        response
            .headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    Ok(response)
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
    let body = json_body(headers, body, state.max_body_bytes)?;
    let envelope = CreateEnvelope::from_json(&body).map_err(|e| match e {
        BodyError::BadRequest { code, detail } => ApiError::bad_request(code, detail),
        BodyError::Invalid(errors) => ApiError::Validation(errors),
    })?;
    if envelope.organization_id.is_some_and(|id| id != organization_id) {
        return Err(ApiError::bad_request(
            "organization_mismatch",
            "organization_id in the body differs from the query parameter",
        ));
    }
    let key = idempotency_key(headers, envelope.idempotency_key.as_deref())?;
    state.metrics.record_create(key.is_some());

    let fingerprint = envelope.spec.fingerprint();
    let new = NewAgent {
        organization_id,
        user_id: user.id,
        idempotency_key: key.as_ref().map(|k| k.as_str().to_owned()),
        spec: envelope.spec,
    };
    let Some(key) = key else {
        let agent = state.store.create_agent(&new, None, state.clock.now()).await?;
        return Ok(Executed::Created(agent));
    };

    let scope = Scope {
        organization_id,
        user_id: user.id,
        endpoint: CREATE_ENDPOINT.to_owned(),
        key,
    };
    let new = std::sync::Arc::new(new);
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let (fresh_store, fresh_clock, fresh_new) = (store.clone(), clock.clone(), new.clone());
    let replay_store = store.clone();
    let executed = state
        .idempotency
        .execute(
            scope.clone(),
            fingerprint,
            move |scope| async move {
                fresh_store
                    .create_agent_fresh(&scope, fingerprint, &fresh_new, fresh_clock.now())
                    .await
            },
            move |lease| async move { store.create_agent(&new, Some(&lease), clock.now()).await },
            move |id| async move { replay_store.agent(organization_id, id).await },
        )
        .await;
    match &executed {
        Ok(Executed::Replayed(agent)) => tracing::info!(
            user_id = user.id,
            organization_id,
            key = %scope.key,
            agent_id = agent.id,
            "idempotent replay"
        ),
        Err(Refused::Mismatch) => tracing::info!(
            user_id = user.id,
            organization_id,
            key = %scope.key,
            "idempotency key reused with a different payload"
        ),
        _ => {}
    }
    executed.map_err(|e| match e {
        Refused::Mismatch => ApiError::KeyReused,
        Refused::InFlight => ApiError::InFlight,
        Refused::Store(e) => ApiError::Unavailable(e),
    })
}

/// `GET /api/v1/agents/{id}?organization_id=N`.
pub async fn show(
    State(state): State<AppState>,
    user: User,
    query: QueryParams,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let organization_id = organization_id(&params(query)?, &user)?;
    let not_found = || ApiError::NotFound(format!("no such agent in organization {organization_id}"));
    // An id that is not an integer (or not even UTF-8) names no agent.
    let agent_id = id
        .ok()
        .and_then(|Path(id)| id.parse::<i64>().ok())
        .ok_or_else(not_found)?;
    let agent = state
        .store
        .agent(organization_id, agent_id)
        .await?
        .ok_or_else(not_found)?;
    Ok(success(One { agent: &agent }, None).into_response())
}

/// `GET /api/v1/agents?organization_id=N&limit=L&cursor=C`: keyset
/// pagination by id; `cursor` is opaque to clients (today the last id seen).
pub async fn list(State(state): State<AppState>, user: User, query: QueryParams) -> Result<Response, ApiError> {
    let params = params(query)?;
    let organization_id = organization_id(&params, &user)?;
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_limit",
                    format!("limit must be an integer from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let after =
        match params.get("cursor").filter(|c| !c.is_empty()) {
            None => None,
            Some(raw) => Some(raw.parse::<i64>().map_err(|_| {
                ApiError::bad_request("invalid_cursor", "cursor must be a value returned as next_cursor")
            })?),
        };
    let page = super::page::fetch(
        state.store.as_ref(),
        organization_id,
        after,
        limit,
        state.list_page_max_bytes,
    )
    .await?;
    Ok(success(
        Page {
            agents: &page.agents,
            next_cursor: page.next_cursor,
        },
        None,
    )
    .into_response())
}
