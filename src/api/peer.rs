//! The routes other nodes call: `POST /raft/vote` (RequestVote, pre-vote),
//! `POST /raft/append` (AppendEntries, heartbeats), `POST /raft/timeout-now` (TimeoutNow: a
//! leader hands over its leadership), `POST /raft/read-index` (a follower asks the leader for
//! a read index, `--follower-reads`) and `POST /raft/snapshot` (one chunk of a
//! snapshot: the fields in the query string, the chunk as the raw body). Bodies and answers are
//! the types of [`crate::raft::rpc`] through [`crate::codec::peer`]: JSON, or binary when the
//! request's content type is `application/x-kvstore-raft`; each answer is in its request's
//! format (a snapshot chunk's answer is binary when the request accepts it), and every answer
//! carries `x-kvstore-raft-codec: 1`, which tells the sender it may send binary (not with
//! `--peer-codec json`, which makes this node read and answer JSON only, like a node before
//! the codec). A body that does not decode is 400.
//!
//! Every route is wrapped in [`guard`], which decides whether the sender is a peer before the
//! body is parsed, and refuses with nothing changed otherwise:
//! 1. without a cluster secret (and without `--insecure-peers` or peer mutual TLS, whose
//!    handshake admits only peers), only loopback source addresses may call (403);
//! 2. with a cluster secret, the request must carry a valid signature of it (see
//!    [`crate::security::peer_auth`]), checked in constant time before any of the body is read
//!    (401); then the body is read (bounded per route in size and time) and must hash to the
//!    signed digest (401) before it is handed on; the answer is signed too;
//! 3. the request must carry this node's cluster id in `x-kvstore-cluster` (409).
//!
//! Then every decoded message is checked against the protocol's bounds
//! ([`Message::validate`]: no term or index near `u64::MAX`), 400 otherwise.
//!
//! Handlers hand each request to the `RaftActor` (as a [`Deliver`]) and answer with its
//! response; with `KVSTORE_FAULTS=1` the fault layer's rule for the sender may delay or drop
//! that answer (see [`crate::transport::faults`]). They never interpret Raft messages
//! themselves.

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use futures_util::StreamExt;

use super::errors::{self, ApiError};
use super::{AppState, Limits};
use crate::codec::peer::{
    self as codec, CodecError, Format, Kind, PeerCodec, BINARY_CONTENT_TYPE, CODEC_HEADER,
    CODEC_VERSION,
};
use crate::raft::actor::SNAPSHOT_CHUNK_BYTES;
use crate::raft::core::{MAX_BATCH_BYTES, MAX_BATCH_ENTRIES};
use crate::raft::rpc::{AppendRequest, SnapshotRequest};
use crate::raft::Message;
use crate::security::peer_auth::{body_digest, AuthError, PeerKeys, RequestParts, AUTH_HEADER};
use crate::transport::faults::{AnswerFate, Fate};
use crate::transport::http::{unix_ms, CLUSTER_HEADER, FROM_HEADER};
use crate::transport::{Deliver, DeliveryError};

/// serde_json writes a control character of a key or value as `\u00XX`: one byte of UTF-8
/// becomes at most six bytes of JSON (quotes and backslashes two, everything else one).
pub const JSON_ESCAPE_FACTOR: usize = 6;

/// The JSON of one entry apart from its key and value: `{"index":N,"term":N,"payload":{"kind":
/// "command","command":{"op":"delete","key":""}}},` is under 120 bytes with 20-digit numbers.
const ENTRY_JSON_OVERHEAD: usize = 160;

/// The JSON of an AppendEntries apart from its entries: field names, six numbers, the leader's
/// id (at most `MAX_NODE_ID_BYTES` = 128, at most doubled by escaping) and URL (a host name is
/// at most 253 bytes): under 2 KiB.
const APPEND_JSON_OVERHEAD: usize = 64 * 1024;

/// Largest AppendEntries body a legitimate leader sends to a node with these `limits`. The
/// leader's batch ([`crate::raft::log::RaftLog::entries_from`]) holds at most
/// [`MAX_BATCH_ENTRIES`] entries whose size hints (32 + key + value) add up to at most
/// [`MAX_BATCH_BYTES`], or a single entry when one alone is larger; a key or value (and a
/// compare-and-set `ifValue`, a second value) is at most the limit the leader accepted it
/// under, plus an idempotency stamp (a key of at most 128 bytes and two numbers). In JSON each byte of them may grow
/// [`JSON_ESCAPE_FACTOR`]-fold, and each entry and the request add their fixed parts.
/// Default limits (4 KiB keys, 1 MiB values): about 6.3 MiB; the largest settings (1 MiB keys,
/// 8 MiB values): about 54 MiB. Every node of a cluster must have the same limits: a follower
/// with smaller ones refuses (413) a leader's batch that holds a larger entry.
pub fn max_append_body_bytes(limits: &Limits) -> usize {
    let largest_entry = 32
        + limits.max_key_bytes
        + 2 * limits.max_value_bytes
        + crate::store::command::MAX_IDEMPOTENCY_KEY_BYTES
        + 64;
    let batch = MAX_BATCH_BYTES.max(largest_entry);
    JSON_ESCAPE_FACTOR * batch + MAX_BATCH_ENTRIES * ENTRY_JSON_OVERHEAD + APPEND_JSON_OVERHEAD
}

/// Largest RequestVote body: `{"term":N,"candidateId":ID,"lastLogIndex":N,"lastLogTerm":N,
/// "preVote":false}` with an id of at most 128 bytes (at most doubled by escaping, as ids have
/// no control characters) is under 512 bytes.
pub const MAX_VOTE_BODY_BYTES: usize = 4 * 1024;

/// Longest query string of `/raft/snapshot`: eight fields, of which the leader's id (128 bytes)
/// and URL (a host name of at most 253 bytes) may triple in percent-encoding: under 2 KiB.
pub const MAX_SNAPSHOT_QUERY_BYTES: usize = 4 * 1024;

/// Largest snapshot chunk body: the leader reads the file in chunks of exactly
/// [`SNAPSHOT_CHUNK_BYTES`] (the last one shorter). The whole snapshot is capped separately
/// (`MAX_SNAPSHOT_BYTES`), as it is written to a temporary file chunk by chunk.
pub const MAX_CHUNK_BYTES: usize = SNAPSHOT_CHUNK_BYTES;

/// JSON settings for `/raft/append`: the bound of [`max_append_body_bytes`], errors in the
/// API's shape.
pub fn json_config(limits: &Limits) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(max_append_body_bytes(limits))
        .content_type_required(false)
        .error_handler(errors::json_error)
}

/// JSON settings for `/raft/vote`: [`MAX_VOTE_BODY_BYTES`], errors in the API's shape.
pub fn vote_json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_VOTE_BODY_BYTES)
        .content_type_required(false)
        .error_handler(errors::json_error)
}

/// The fields of a snapshot chunk from its query string, refused (414) beyond
/// [`MAX_SNAPSHOT_QUERY_BYTES`] before it is parsed.
pub fn decode_snapshot_query(query: &str) -> Result<SnapshotRequest, ApiError> {
    if query.len() > MAX_SNAPSHOT_QUERY_BYTES {
        return Err(ApiError::QueryTooLong {
            limit: MAX_SNAPSHOT_QUERY_BYTES,
        });
    }
    web::Query::<SnapshotRequest>::from_query(query)
        .map(web::Query::into_inner)
        .map_err(|e| match e {
            actix_web::error::QueryPayloadError::Deserialize(e) => {
                ApiError::InvalidQuery(e.to_string())
            }
            other => ApiError::InvalidQuery(other.to_string()),
        })
}

/// An AppendEntries holds at most as many entries as a leader sends in one batch.
pub fn check_append(req: &AppendRequest) -> Result<(), ApiError> {
    if req.entries.len() > MAX_BATCH_ENTRIES {
        return Err(ApiError::InvalidJson(format!(
            "{} entries in one AppendEntries; a leader sends at most {MAX_BATCH_ENTRIES}",
            req.entries.len()
        )));
    }
    Ok(())
}

/// The most body bytes [`guard`] reads after checking a signature, per route (its pattern,
/// so `/raft/%61ppend` is the append route): the same bounds the routes' own decoders apply.
fn body_limit(path: &str, limits: &Limits) -> usize {
    match path {
        "/raft/append" => max_append_body_bytes(limits),
        "/raft/snapshot" => MAX_CHUNK_BYTES,
        _ => MAX_VOTE_BODY_BYTES,
    }
}

/// Longest a signed request's body may take to arrive (a slow sender holds a connection and a
/// buffer no longer than this): as long as a snapshot chunk's RPC may take.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The host (and port) a request names: `Host`, or the URI's authority (HTTP/2).
fn request_host(req: &ServiceRequest) -> String {
    req.headers()
        .get(actix_web::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default()
}

/// A body whose declared `Content-Length` is over `limit` is 413 before a byte is read.
fn refuse_declared_over(
    headers: &actix_web::http::header::HeaderMap,
    limit: usize,
) -> Result<(), ApiError> {
    let declared = headers
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    Ok(())
}

/// Read the whole body of `req`, at most `limit` bytes (a larger declared or actual length is
/// 413 at once) within [`BODY_READ_TIMEOUT`].
async fn read_body(req: &mut ServiceRequest, limit: usize) -> Result<web::Bytes, ApiError> {
    refuse_declared_over(req.headers(), limit)?;
    let mut payload = req.take_payload();
    let read = async {
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|_| ApiError::InvalidJson("the request body could not be read".into()))?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::BodyTooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    actix_web::rt::time::timeout(BODY_READ_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::InvalidJson(format!(
                "the request body did not arrive within {} s",
                BODY_READ_TIMEOUT.as_secs()
            )))
        })
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
/// header), and signs the answer when the cluster has a secret. Every answer, a refusal too,
/// says that this node understands binary bodies (unless `--peer-codec json`).
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let announce = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|s| s.peer_codec == PeerCodec::Auto);
    let mut res = checked(req, next).await?;
    if announce {
        res.headers_mut().insert(
            HeaderName::from_static(CODEC_HEADER),
            HeaderValue::from_static(CODEC_VERSION),
        );
    }
    Ok(res)
}

/// [`guard`]'s checks and signature.
async fn checked(
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
        // 2. Proof of the secret. The header (time, body digest, mac) is checked before a byte
        // of the body is read: without the secret nobody can make this node buffer anything.
        let proof = req.headers().get(AUTH_HEADER).map(|v| v.as_bytes());
        let from = header(&req, FROM_HEADER).unwrap_or_default();
        let host = request_host(&req);
        let path_and_query = req
            .uri()
            .path_and_query()
            .map_or(path.as_str(), |p| p.as_str())
            .to_owned();
        let parts = RequestParts {
            cluster: theirs.as_deref().unwrap_or(""),
            host: &host,
            method: req.method().as_str(),
            path_and_query: &path_and_query,
            from: &from,
        };
        let proof = match PeerKeys::precheck(proof, unix_ms()).and_then(|p| keys.verify(p, parts)) {
            Ok(p) => p,
            Err(e) => {
                let message = e.to_string();
                log_refusal(&UNSIGNED, &path, &message);
                return Ok(refuse(req, ApiError::PeerUnauthorized(message)));
            }
        };
        // Then the body, bounded in size and time, must be the one that was signed.
        let limit = body_limit(
            req.match_pattern().as_deref().unwrap_or(&path),
            &state.limits,
        );
        let body = match read_body(&mut req, limit).await {
            Ok(body) => body,
            Err(e) => return Ok(refuse(req, e)),
        };
        if body_digest(&body) != proof.body_sha {
            let message = AuthError::BodyMismatch.to_string();
            log_refusal(&UNSIGNED, &path, &message);
            return Ok(refuse(req, ApiError::PeerUnauthorized(message)));
        }
        request_mac = Some(proof.mac);
        req.set_payload(body.into());
    } else if !(state.peers_open || state.peer_mtls) {
        // Under peer mTLS the handshake already admitted only peers. Otherwise: loopback
        // sources only (an IPv4 peer on a dual-stack socket shows as ::ffff:127.0.0.1), and a
        // loopback Host, so a web page cannot reach this node through DNS rebinding.
        let loopback = req
            .peer_addr()
            .is_some_and(|a| a.ip().to_canonical().is_loopback());
        let host = request_host(&req);
        let local_host =
            host.is_empty() || crate::config::is_loopback_url(&format!("http://{host}"));
        if !loopback || !local_host {
            let message = format!(
                "refused: Raft RPCs from {} to {host:?} are not accepted: without a cluster \
                 secret this node accepts them from loopback addresses to a loopback host only",
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

/// Hand `msg` to the local Raft actor and answer with its response. With the fault layer on
/// (`KVSTORE_FAULTS=1`), its rule for the sender decides first what becomes of the answer: the
/// request is handled either way, then the answer may wait and may be lost.
async fn deliver_to_raft(
    state: &AppState,
    req: &HttpRequest,
    msg: Message,
) -> Result<HttpResponse, ApiError> {
    let format = answer_format(state, req);
    let fate = match &state.faults {
        Some(faults) => {
            let from = sender(req);
            faults.send(AnswerFate { from }).await.ok().flatten()
        }
        None => None,
    };
    let answer = state.raft.send(Deliver(msg)).await;
    if let Some(Fate { dropped, delay }) = fate {
        if let Some(d) = delay {
            actix_web::rt::time::sleep(d).await;
        }
        if dropped {
            return Err(ApiError::Unavailable(
                "answer dropped by fault injection".into(),
            ));
        }
    }
    match answer {
        Ok(Ok(reply)) if !reply.is_request() => {
            let body = codec::encode(&reply, format)
                .map_err(|e| ApiError::Internal(format!("unexpected raft reply: {e}")))?;
            Ok(HttpResponse::Ok()
                .content_type(format.content_type())
                .body(body))
        }
        Ok(Ok(other)) => Err(ApiError::Internal(format!(
            "unexpected raft reply: {other:?}"
        ))),
        Ok(Err(DeliveryError::Refused(why))) => Err(ApiError::Unavailable(why)),
        Ok(Err(e @ (DeliveryError::NotARequest | DeliveryError::Stopped))) => {
            Err(ApiError::Internal(e.to_string()))
        }
        Err(e) => {
            tracing::error!(error = %e, "raft actor did not answer");
            Err(ApiError::Internal("raft unavailable".into()))
        }
    }
}

/// The format of a request's body: binary only with the binary content type, and only when
/// this node speaks it (a node with `--peer-codec json` reads everything as JSON, as before).
fn request_format(state: &AppState, req: &HttpRequest) -> Format {
    if state.peer_codec == PeerCodec::Json {
        return Format::Json;
    }
    Format::of_content_type(
        req.headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .map(|v| v.as_bytes()),
    )
}

/// The format of the answer: the request's, or binary for a request (a snapshot chunk, raw
/// bytes) that accepts it.
fn answer_format(state: &AppState, req: &HttpRequest) -> Format {
    let accepts_binary = state.peer_codec == PeerCodec::Auto
        && req
            .headers()
            .get(actix_web::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains(BINARY_CONTENT_TYPE));
    if accepts_binary {
        Format::Binary
    } else {
        request_format(state, req)
    }
}

/// Read a request body of at most `limit` bytes (413 beyond, before more is read) and decode
/// the message of kind `kind` in it (400 if it is none).
async fn receive(
    state: &AppState,
    req: &HttpRequest,
    body: web::Payload,
    limit: usize,
    kind: Kind,
) -> Result<Message, ApiError> {
    refuse_declared_over(req.headers(), limit)?;
    let bytes = match body.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => return Err(ApiError::InvalidJson(e.to_string())),
        Err(_) => return Err(ApiError::BodyTooLarge { limit }),
    };
    codec::decode(&bytes, request_format(state, req), kind).map_err(|e| match e {
        CodecError::Json(why) => ApiError::InvalidJson(why),
        other => ApiError::BadRequest(other.to_string()),
    })
}

/// A request of `kind` bounded like a vote (a term, an id, a few flags): read, checked and
/// handed to the Raft actor.
async fn small_request(
    state: &AppState,
    req: &HttpRequest,
    body: web::Payload,
    kind: Kind,
) -> Result<HttpResponse, ApiError> {
    let msg = receive(state, req, body, MAX_VOTE_BODY_BYTES, kind).await?;
    msg.validate().map_err(ApiError::InvalidJson)?;
    deliver_to_raft(state, req, msg).await
}

/// `POST /raft/vote`.
pub async fn vote(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    small_request(&state, &req, body, Kind::VoteRequest).await
}

/// `POST /raft/timeout-now`.
pub async fn timeout_now(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    small_request(&state, &req, body, Kind::TimeoutNowRequest).await
}

/// `POST /raft/read-index`: a follower asks this node, as leader, for a read index (answered
/// by the Raft actor from its lease or after a heartbeat round; 503 when it does not lead).
pub async fn read_index(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    small_request(&state, &req, body, Kind::ReadIndexRequest).await
}

/// `POST /raft/append`.
pub async fn append(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let limit = max_append_body_bytes(&state.limits);
    let msg = receive(&state, &req, body, limit, Kind::AppendRequest).await?;
    if let Message::AppendRequest(r) = &msg {
        check_append(r)?;
    }
    msg.validate().map_err(ApiError::InvalidJson)?;
    deliver_to_raft(&state, &req, msg).await
}

/// `POST /raft/snapshot?term=..&leaderId=..&leaderUrl=..&index=..&lastTerm=..&offset=..&done=..&seq=..`
/// with the chunk as the body (at most [`MAX_CHUNK_BYTES`], else 413 before more is read).
pub async fn snapshot(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut chunk = decode_snapshot_query(req.query_string())?;
    let too_big = ApiError::BodyTooLarge {
        limit: MAX_CHUNK_BYTES,
    };
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_CHUNK_BYTES as u64) {
        return Err(too_big);
    }
    let data = match body.to_bytes_limited(MAX_CHUNK_BYTES).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            return Err(ApiError::InvalidJson(format!(
                "cannot read the snapshot chunk: {e}"
            )))
        }
        Err(_) => return Err(too_big),
    };
    chunk.data = data.to_vec();
    let msg = Message::SnapshotRequest(chunk);
    msg.validate().map_err(ApiError::InvalidQuery)?;
    deliver_to_raft(&state, &req, msg).await
}
