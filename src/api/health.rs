//! `GET /health`: who this node is and what it believes about leadership, from the
//! `RaftActor`.
//!
//! Read-only: it is also the baseline route of the benchmarks. It must never change state.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::errors::ApiError;
use super::AppState;
use crate::raft::actor::GetStatus;
use crate::raft::NodeStatus;

/// The body of `GET /health`: `{"ok":true, "id", "state", "term", "leaderId", "leader",
/// "lastHeartbeatAgoMs", "votedFor", "url", "peers", "lastLogIndex", "lastLogTerm"}`.
#[derive(Debug, Serialize)]
pub struct Health {
    pub ok: bool,
    #[serde(flatten)]
    pub status: NodeStatus,
}

/// `GET /health`.
pub async fn health(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match state.raft.send(GetStatus).await {
        Ok(status) => Ok(HttpResponse::Ok().json(Health { ok: true, status })),
        Err(e) => {
            tracing::error!(error = %e, "raft actor did not answer");
            Err(ApiError::Internal("raft unavailable".into()))
        }
    }
}
