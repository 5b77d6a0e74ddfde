//! The routes other nodes call: `POST /raft/vote` (RequestVote, pre-vote) and
//! `POST /raft/append` (AppendEntries, heartbeats). JSON bodies are the types of
//! [`crate::raft::rpc`].
//!
//! Handlers forward each request to the `RaftActor` and answer with its response. They never
//! interpret Raft messages themselves.

use actix_web::{web, HttpResponse};

use super::errors::{self, ApiError};
use super::AppState;
use crate::raft::actor::Inbound;
use crate::raft::rpc::{AppendRequest, VoteRequest};
use crate::raft::Message;

/// Largest AppendEntries body accepted (batches of entries are larger than client requests).
pub const MAX_APPEND_BODY_BYTES: usize = 64 * 1024 * 1024;

/// JSON settings for `/raft/append`: a larger limit, errors in the API's shape.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_APPEND_BODY_BYTES)
        .content_type_required(false)
        .error_handler(errors::json_error)
}

async fn forward(state: &AppState, msg: Message) -> Result<HttpResponse, ApiError> {
    match state.raft.send(Inbound(msg)).await {
        Ok(Ok(Message::VoteResponse(r))) => Ok(HttpResponse::Ok().json(r)),
        Ok(Ok(Message::AppendResponse(r))) => Ok(HttpResponse::Ok().json(r)),
        Ok(Ok(other)) => Err(ApiError::Internal(format!(
            "unexpected raft reply: {other:?}"
        ))),
        Ok(Err(e)) => Err(ApiError::Internal(e.to_string())),
        Err(e) => {
            tracing::error!(error = %e, "raft actor did not answer");
            Err(ApiError::Internal("raft unavailable".into()))
        }
    }
}

/// `POST /raft/vote`.
pub async fn vote(
    state: web::Data<AppState>,
    body: web::Json<VoteRequest>,
) -> Result<HttpResponse, ApiError> {
    forward(&state, Message::VoteRequest(body.into_inner())).await
}

/// `POST /raft/append`.
pub async fn append(
    state: web::Data<AppState>,
    body: web::Json<AppendRequest>,
) -> Result<HttpResponse, ApiError> {
    forward(&state, Message::AppendRequest(body.into_inner())).await
}
