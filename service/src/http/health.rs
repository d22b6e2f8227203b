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

/// `GET /readyz`: the store answers (503 otherwise).
pub async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.stores.ping().await?;
    Ok(Json(json!({"status": "ready"})))
}
