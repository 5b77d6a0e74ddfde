//! `/admin/faults`: the switch of the in-app fault layer (see [`crate::transport::faults`]).
//! `GET` shows the rules, `POST` replaces them (`{"rules":[{"peer":URL or "*","cut":bool,
//! "drop":0..1,"delayMs":[min,max],"duplicate":0..1}]}`), `DELETE` removes them all.
//!
//! The route answers only on a node started with `KVSTORE_FAULTS=1`; anywhere else it refuses
//! with 403, so a production node can never be told to drop its messages.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::errors::ApiError;
use super::AppState;
use crate::raft::actor::{GetFaults, SetFaults};
use crate::transport::faults::FaultRules;

fn enabled(state: &AppState) -> Result<(), ApiError> {
    if state.faults_enabled {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "fault injection is disabled; start the node with KVSTORE_FAULTS=1 to use /admin/faults"
                .into(),
        ))
    }
}

fn answer(rules: FaultRules) -> HttpResponse {
    HttpResponse::Ok().json(json!({"ok": true, "rules": rules.rules}))
}

async fn set(state: &AppState, rules: FaultRules) -> Result<HttpResponse, ApiError> {
    let status = state
        .raft
        .send(crate::raft::actor::GetStatus)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    rules
        .validate(&status.peers)
        .map_err(ApiError::InvalidJson)?;
    state
        .raft
        .send(SetFaults(rules.clone()))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(answer(rules))
}

/// `GET /admin/faults`.
pub async fn show(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    enabled(&state)?;
    let rules = state
        .raft
        .send(GetFaults)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(answer(rules))
}

/// `POST /admin/faults`.
pub async fn replace(
    state: web::Data<AppState>,
    body: web::Json<FaultRules>,
) -> Result<HttpResponse, ApiError> {
    enabled(&state)?;
    set(&state, body.into_inner()).await
}

/// `DELETE /admin/faults`.
pub async fn clear(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    enabled(&state)?;
    set(&state, FaultRules::default()).await
}
