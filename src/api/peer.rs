//! The routes other nodes call: `POST /raft/vote` (RequestVote, pre-vote),
//! `POST /raft/append` (AppendEntries, heartbeats) and `POST /raft/snapshot` (one chunk of a
//! snapshot: the fields in the query string, the chunk as the raw body). Bodies and answers are
//! the types of [`crate::raft::rpc`], as JSON.
//!
//! Every route is wrapped in [`guard`], which decides whether the sender is a peer before the
//! body is parsed, and refuses with nothing changed otherwise:
//! 1. without a cluster secret (and without `--insecure-peers` or peer mutual TLS, whose
//!    handshake admits only peers), only loopback source addresses may call (403);
//! 2. with a cluster secret, the request must carry a valid signature of it (see
//!    [`crate::security::peer_auth`]): the body is read (bounded per route), the signature
//!    checked in constant time (401), then the body handed on; the answer is signed too;
//! 3. the request must carry this node's cluster id in `x-kvstore-cluster` (409).
//!
//! Then every decoded message is checked against the protocol's bounds
//! ([`Message::validate`]: no term or index near `u64::MAX`), 400 otherwise.
//!
//! Handlers forward each request to the `RaftActor` and answer with its response. They never
//! interpret Raft messages themselves.

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use futures_util::StreamExt;

use super::errors::{self, ApiError};
use super::AppState;
use crate::raft::actor::SNAPSHOT_CHUNK_BYTES;
use crate::raft::actor::{InboundFrom, RaftError};
use crate::raft::rpc::{AppendRequest, SnapshotRequest, VoteRequest};
use crate::raft::Message;
use crate::security::peer_auth::{PeerKeys, RequestParts, AUTH_HEADER};
use crate::transport::http::{unix_ms, CLUSTER_HEADER, FROM_HEADER};

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

/// Largest RequestVote body (a few numbers and a node id).
pub const MAX_VOTE_BODY_BYTES: usize = 64 * 1024;

/// The most body bytes [`guard`] reads to check a signature, per route.
fn body_limit(path: &str) -> usize {
    match path {
        "/raft/append" => MAX_APPEND_BODY_BYTES,
        "/raft/snapshot" => 2 * SNAPSHOT_CHUNK_BYTES,
        _ => MAX_VOTE_BODY_BYTES,
    }
}

/// Logs the first refusal of each kind and every 100th after it, so a flood of forged
/// requests cannot flood the log.
fn log_refusal(counter: &AtomicU64, path: &str, message: &str) {
    if counter.fetch_add(1, Ordering::Relaxed).is_multiple_of(100) {
        tracing::warn!(path, "peer RPC {message}");
    }
}

fn refuse(req: ServiceRequest, err: ApiError) -> ServiceResponse<BoxBody> {
    req.into_response(err.error_response())
}

/// Decides whether a peer RPC comes from a peer, before its body is parsed (see the module
/// header), and signs the answer when the cluster has a secret.
pub async fn guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    static FOREIGN: AtomicU64 = AtomicU64::new(0);
    static UNSIGNED: AtomicU64 = AtomicU64::new(0);
    static WRONG_CLUSTER: AtomicU64 = AtomicU64::new(0);
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(refuse(req, ApiError::Internal("no state".into())));
    };
    let path = req.path().to_owned();
    let header = |req: &ServiceRequest, name: &str| {
        req.headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let theirs = header(&req, CLUSTER_HEADER);
    // 1. Who may call at all.
    let mut request_mac = None;
    if let Some(keys) = &state.peer_keys {
        // 2. Proof of the secret, over the exact bytes that will be parsed. A missing,
        // malformed or stale proof is refused before the body is read at all.
        let proof = req.headers().get(AUTH_HEADER).map(|v| v.as_bytes());
        let proof = match PeerKeys::precheck(proof, unix_ms()) {
            Ok(p) => p,
            Err(e) => {
                let message = e.to_string();
                log_refusal(&UNSIGNED, &path, &message);
                return Ok(refuse(req, ApiError::PeerUnauthorized(message)));
            }
        };
        let limit = body_limit(&path);
        let mut payload = req.take_payload();
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let Ok(chunk) = chunk else {
                return Ok(refuse(
                    req,
                    ApiError::InvalidJson("the request body could not be read".into()),
                ));
            };
            if body.len() + chunk.len() > limit {
                return Ok(refuse(req, ApiError::BodyTooLarge { limit }));
            }
            body.extend_from_slice(&chunk);
        }
        let body = body.freeze();
        let from = header(&req, FROM_HEADER).unwrap_or_default();
        let path_and_query = req
            .uri()
            .path_and_query()
            .map_or(path.as_str(), |p| p.as_str())
            .to_owned();
        let parts = RequestParts {
            cluster: theirs.as_deref().unwrap_or(""),
            method: req.method().as_str(),
            path_and_query: &path_and_query,
            from: &from,
        };
        match keys.verify(proof, parts, &body) {
            Ok(p) => request_mac = Some(p.mac),
            Err(e) => {
                let message = e.to_string();
                log_refusal(&UNSIGNED, &path, &message);
                return Ok(refuse(req, ApiError::PeerUnauthorized(message)));
            }
        }
        req.set_payload(body.into());
    } else if !(state.peers_open || state.peer_mtls) {
        // Under peer mTLS the handshake already admitted only peers.
        let loopback = req.peer_addr().is_some_and(|a| a.ip().is_loopback());
        if !loopback {
            let message = format!(
                "refused: Raft RPCs from {} are not accepted: without a cluster secret this \
                 node accepts them from loopback addresses only",
                req.peer_addr()
                    .map_or_else(|| "an unknown address".to_owned(), |a| a.ip().to_string())
            );
            log_refusal(&FOREIGN, &path, &message);
            return Ok(refuse(req, ApiError::Forbidden(message)));
        }
    }
    // 3. The same cluster.
    let ours = state.cluster_id.as_str();
    if theirs.as_deref() != Some(ours) {
        let from = sender(req.request()).unwrap_or_else(|| "an unknown sender".to_owned());
        let message = match &theirs {
            Some(t) => format!(
                "refused: this node belongs to cluster {ours:?}, the request from {from} to \
                 cluster {t:?}"
            ),
            None => format!(
                "refused: a Raft RPC must carry the cluster id ({ours:?}) in the {CLUSTER_HEADER} \
                 header"
            ),
        };
        log_refusal(&WRONG_CLUSTER, &path, &message);
        return Ok(refuse(req, ApiError::WrongCluster(message)));
    }
    let res = next.call(req).await?.map_into_boxed_body();
    let (Some(keys), Some(mac)) = (&state.peer_keys, request_mac) else {
        return Ok(res);
    };
    // Sign the answer (status and body) for the sender, bound to its request.
    let (http_req, res) = res.into_parts();
    let status = res.status();
    let (mut head, body) = res.into_parts();
    let bytes = actix_web::body::to_bytes(body)
        .await
        .map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string()))?;
    let signature = keys.sign_answer(&mac, status.as_u16(), &bytes);
    if let Ok(value) = HeaderValue::from_str(&signature) {
        head.headers_mut()
            .insert(HeaderName::from_static(AUTH_HEADER), value);
    }
    let res = head.set_body(BoxBody::new(bytes));
    Ok(ServiceResponse::new(http_req, res))
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
    let msg = Message::VoteRequest(body.into_inner());
    msg.validate().map_err(ApiError::InvalidJson)?;
    forward(&state, &req, msg).await
}

/// `POST /raft/append`.
pub async fn append(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<AppendRequest>,
) -> Result<HttpResponse, ApiError> {
    let msg = Message::AppendRequest(body.into_inner());
    msg.validate().map_err(ApiError::InvalidJson)?;
    forward(&state, &req, msg).await
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
    let msg = Message::SnapshotRequest(chunk);
    msg.validate().map_err(ApiError::InvalidQuery)?;
    forward(&state, &req, msg).await
}
