//! Liveness and readiness probes.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;

/// `GET /healthz`: the process is up.
pub async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: whether the service can create, as the background write
/// probe last concluded (`crate::readiness`); 503 `not_ready` otherwise.
/// It does no store call of its own, so probing it often costs nothing.
pub async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if !state.readiness.is_ready() {
        return Err(ApiError::NotReady);
    }
    Ok(Json(json!({"status": "ready"})))
}
