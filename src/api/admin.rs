//! `/admin/faults`: the switch of the in-app fault layer (see [`crate::transport::faults`]).
//! `GET` shows the rules, `POST` replaces them (`{"rules":[{"peer":URL or "*","cut":bool,
//! "drop":0..1,"delayMs":[min,max],"duplicate":0..1}]}`), `DELETE` removes them all.
//!
//! The route answers only on a node started with `KVSTORE_FAULTS=1`; anywhere else it refuses
//! with 403, so a production node can never be told to drop its messages.

use actix::Addr;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::errors::ApiError;
use super::AppState;
use crate::transport::faults::{FaultRules, FaultsActor, GetFaults, SetFaults};

fn enabled(state: &AppState) -> Result<&Addr<FaultsActor>, ApiError> {
    state.faults.as_ref().ok_or_else(|| {
        ApiError::Forbidden(
            "fault injection is disabled; start the node with KVSTORE_FAULTS=1 to use /admin/faults"
                .into(),
        )
    })
}

fn answer(rules: FaultRules) -> HttpResponse {
    HttpResponse::Ok().json(json!({"ok": true, "rules": rules.rules}))
}

async fn set(
    state: &AppState,
    faults: &Addr<FaultsActor>,
    rules: FaultRules,
) -> Result<HttpResponse, ApiError> {
    let status = state
        .raft
        .send(crate::raft::actor::GetStatus)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    rules
        .validate(&status.peers)
        .map_err(ApiError::InvalidJson)?;
    faults
        .send(SetFaults(rules.clone()))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(answer(rules))
}

/// `GET /admin/faults`.
pub async fn show(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let rules = enabled(&state)?
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
    let faults = enabled(&state)?;
    set(&state, faults, body.into_inner()).await
}

/// `DELETE /admin/faults`.
pub async fn clear(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let faults = enabled(&state)?;
    set(&state, faults, FaultRules::default()).await
}
