//! The routes other nodes call: `POST /raft/vote` (RequestVote, pre-vote),
//! `POST /raft/append` (AppendEntries, heartbeats) and `POST /raft/snapshot` (one chunk of a
//! snapshot: the fields in the query string, the chunk as the raw body). Bodies and answers are
//! the types of [`crate::raft::rpc`], as JSON.
//!
//! Every route first checks, before the body is read, that the request carries this node's
//! cluster id in `x-kvstore-cluster` ([`same_cluster`]); a request from another cluster (or
//! without one) is refused with 409 and changes nothing.
//!
//! Handlers forward each request to the `RaftActor` and answer with its response. They never
//! interpret Raft messages themselves.

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

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

/// Refuses a peer RPC whose `x-kvstore-cluster` is not this node's cluster id, before its body
/// is parsed. The first refusal, and every 100th after it, is logged as a warning.
pub async fn same_cluster<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    static REFUSED: AtomicU64 = AtomicU64::new(0);
    let ours = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.cluster_id.clone())
        .unwrap_or_default();
    let theirs = req
        .headers()
        .get(crate::transport::http::CLUSTER_HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if theirs.as_deref() == Some(ours.as_str()) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let from = sender(req.request()).unwrap_or_else(|| "an unknown sender".to_owned());
    let message = match &theirs {
        Some(t) => format!(
            "refused: this node belongs to cluster {ours:?}, the request from {from} to \
             cluster {t:?}"
        ),
        None => format!(
            "refused: a Raft RPC must carry the cluster id ({ours:?}) in the {} header",
            crate::transport::http::CLUSTER_HEADER
        ),
    };
    if REFUSED.fetch_add(1, Ordering::Relaxed).is_multiple_of(100) {
        tracing::warn!(path = req.path(), "peer RPC {message}");
    }
    let res = ApiError::WrongCluster(message).error_response();
    Ok(req.into_response(res).map_into_right_body())
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
