//! The routes other nodes call: `POST /raft/vote` (RequestVote, pre-vote),
//! `POST /raft/append` (AppendEntries, heartbeats) and `POST /raft/snapshot` (one chunk of a
//! snapshot: the fields in the query string, the chunk as the raw body). Bodies and answers are
//! the types of [`crate::raft::rpc`], as JSON.
//!
//! Handlers forward each request to the `RaftActor` and answer with its response. They never
//! interpret Raft messages themselves.

use actix_web::{web, HttpRequest, HttpResponse};

use super::errors::{self, ApiError};
use super::AppState;
use crate::raft::actor::SNAPSHOT_CHUNK_BYTES;
use crate::raft::actor::{InboundFrom, RaftError};
use crate::raft::rpc::{AppendRequest, SnapshotRequest, VoteRequest};
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

/// Body settings for `/raft/snapshot`: room for one chunk.
pub fn chunk_config() -> web::PayloadConfig {
    web::PayloadConfig::new(2 * SNAPSHOT_CHUNK_BYTES)
}

/// Query settings for `/raft/snapshot`: errors in the API's shape.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(errors::query_error)
}

/// The sender's base URL, as it says in `x-kvstore-from` (for the fault layer only).
fn sender(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(crate::transport::http::FROM_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn forward(
    state: &AppState,
    req: &HttpRequest,
    msg: Message,
) -> Result<HttpResponse, ApiError> {
    let from = sender(req);
    match state.raft.send(InboundFrom { msg, from }).await {
        Ok(Ok(Message::VoteResponse(r))) => Ok(HttpResponse::Ok().json(r)),
        Ok(Ok(Message::AppendResponse(r))) => Ok(HttpResponse::Ok().json(r)),
        Ok(Ok(Message::SnapshotResponse(r))) => Ok(HttpResponse::Ok().json(r)),
        Ok(Ok(other)) => Err(ApiError::Internal(format!(
            "unexpected raft reply: {other:?}"
        ))),
        Ok(Err(e @ RaftError::Dropped)) => Err(ApiError::Unavailable(e.to_string())),
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
    req: HttpRequest,
    body: web::Json<VoteRequest>,
) -> Result<HttpResponse, ApiError> {
    forward(&state, &req, Message::VoteRequest(body.into_inner())).await
}

/// `POST /raft/append`.
pub async fn append(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<AppendRequest>,
) -> Result<HttpResponse, ApiError> {
    forward(&state, &req, Message::AppendRequest(body.into_inner())).await
}

/// `POST /raft/snapshot?term=..&leaderId=..&leaderUrl=..&index=..&lastTerm=..&offset=..&done=..&seq=..`
/// with the chunk as the body.
pub async fn snapshot(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<SnapshotRequest>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let mut chunk = query.into_inner();
    chunk.data = body.to_vec();
    forward(&state, &req, Message::SnapshotRequest(chunk)).await
}
