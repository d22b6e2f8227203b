//! What every creation endpoint shares once it has validated its request:
//! the create itself (at once without a key, through the idempotency
//! machinery with one), the response (201, or 200 marked as a replay), its
//! metric, and running detached from the connection.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use idemproof_models::{Fingerprint, Scope};
use serde::Serialize;

use super::AppState;
use super::error::ApiError;
use super::metrics::Outcome;
use crate::domain::agent::BodyError;
use crate::idempotency::{Begun, Executed, Refused};
use crate::store::{Resource, Resources, StoreError};

/// Response header marking a replayed result (as Stripe does).
pub const REPLAYED_HEADER: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Creates `new` in `resources`: at once without a key, idempotently in
/// `scope` with one. This is the whole path from a handler to the store.
pub(super) async fn create<R: Resource>(
    state: &AppState,
    resources: &dyn Resources<R>,
    scope: Option<Scope>,
    fingerprint: Fingerprint,
    new: &R::New,
) -> Result<Executed<R>, ApiError> {
    let Some(scope) = scope else {
        return Ok(Executed::Created(resources.insert(new, state.clock.now()).await?));
    };
    let executed = match state.idempotency.begin(resources, &scope, fingerprint, new).await {
        Ok(Begun::Created(created)) => Ok(Executed::Created(created)),
        Ok(Begun::Replayed(original)) => Ok(Executed::Replayed(original)),
        Ok(Begun::Claimed(claim)) => claim.complete(resources, new).await.map(Executed::Created),
        Err(refused) => Err(refused),
    };
    match &executed {
        Ok(Executed::Replayed(original)) => tracing::info!(
            user_id = scope.user_id,
            organization_id = scope.organization_id,
            endpoint = %scope.endpoint,
            key = %scope.key,
            resource_id = original.id(),
            "idempotent replay"
        ),
        Err(Refused::Mismatch) => tracing::info!(
            user_id = scope.user_id,
            organization_id = scope.organization_id,
            endpoint = %scope.endpoint,
            key = %scope.key,
            "idempotency key reused with a different payload"
        ),
        _ => {}
    }
    Ok(executed?)
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Mismatch => ApiError::KeyReused,
            Refused::InFlight => ApiError::InFlight,
            Refused::Store(e) => e.into(),
        }
    }
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::BadRequest { code, detail } => ApiError::bad_request(code, detail),
            BodyError::Invalid(errors) => ApiError::Validation(errors),
        }
    }
}

/// A body's `organization_id`, if any, must be the query's.
pub(super) fn same_organization(from_body: Option<i64>, organization_id: i64) -> Result<(), ApiError> {
    match from_body {
        Some(id) if id != organization_id => Err(ApiError::bad_request(
            "organization_mismatch",
            "organization_id in the body differs from the query parameter",
        )),
        _ => Ok(()),
    }
}

/// How a creation endpoint names what it creates in its responses.
pub(super) struct Named {
    /// The field of `data` holding the resource (`"agent"`).
    pub field: &'static str,
    /// `message` of a 201.
    pub created: &'static str,
    /// `message` of a replay.
    pub replayed: &'static str,
}

/// The success envelope of every endpoint.
#[derive(Serialize)]
pub(super) struct Envelope<T> {
    status: &'static str,
    data: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
}

/// `{"status": "success", "data": ..., "message": ...}`.
pub(super) fn success<T: Serialize>(data: T, message: Option<&'static str>) -> Json<Envelope<T>> {
    Json(Envelope {
        status: "success",
        data,
        message,
    })
}

/// `data` holding one resource under `field`.
pub(super) fn one<'a, R>(field: &'static str, resource: &'a R) -> BTreeMap<&'static str, &'a R> {
    BTreeMap::from([(field, resource)])
}

/// Counts `result` and answers it: 201 with `location`, or 200 with
/// `Idempotent-Replayed: true`; a refusal is its problem response.
pub(super) fn respond<R: Serialize>(
    state: &AppState,
    result: Result<Executed<R>, ApiError>,
    named: &Named,
    location: impl FnOnce(&R) -> String,
) -> Result<Response, ApiError> {
    state.metrics.record(match &result {
        Ok(Executed::Created(_)) => Outcome::Created,
        Ok(Executed::Replayed(_)) => Outcome::Replayed,
        Err(ApiError::KeyReused) => Outcome::Mismatch,
        Err(ApiError::InFlight) => Outcome::Conflict,
        Err(ApiError::Unavailable(_)) => Outcome::Error,
        Err(ApiError::StoreFull { .. }) => Outcome::StoreFull,
        Err(_) => Outcome::Invalid,
    });
    let (status, resource, message) = match result? {
        Executed::Created(created) => (StatusCode::CREATED, created, named.created),
        Executed::Replayed(original) => (StatusCode::OK, original, named.replayed),
    };
    let location = location(&resource);
    let mut response = (status, success(one(named.field, &resource), Some(message))).into_response();
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

/// Runs a creation request (every `POST` of the API) as its own task,
/// detached from the connection: if the client gives up (a timeout, a
/// closed tab) the request still runs to its end, so the client's retry
/// finds a result to replay rather than a claim orphaned half-way (which
/// would block the key for a lease). The in-flight slots it takes (global
/// and per organisation) are held by that task, so a client that hangs up
/// does not give back a slot its creation still uses. Reads stay attached:
/// a read nobody waits for stops.
pub(super) async fn detached(request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    tokio::spawn(next.run(request))
        .await
        .unwrap_or_else(|e| ApiError::Unavailable(StoreError::unavailable(e)).into_response())
}
