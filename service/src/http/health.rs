//! Liveness and readiness probes.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::openapi::responses;

/// `GET /healthz`: the process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "live",
    tag = "probes",
    summary = "Liveness: the process is up",
    responses(responses::Live, responses::OpenProblems)
)]
pub async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: whether the service can create, as the background write
/// probe last concluded (`crate::readiness`); 503 `not_ready` otherwise.
/// It does no store call of its own, so probing it often costs nothing.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "ready",
    tag = "probes",
    summary = "Readiness: whether the service can create",
    description = "The verdict of a background write probe, with hysteresis (READINESS_FAIL_AFTER failed probes \
        make it 503 `not_ready`, READINESS_RECOVER_AFTER good ones 200 again); it does no store call itself.",
    responses(responses::Ready, responses::ReadinessProblems)
)]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if !state.readiness.is_ready() {
        return Err(ApiError::NotReady);
    }
    Ok(Json(json!({"status": "ready"})))
}
