//! [`HttpTransport`]: Raft RPCs as JSON over HTTP (`POST {peer}/raft/vote`, `/raft/append`,
//! `/raft/timeout-now`; `/raft/snapshot` carries its fields in the query string and a chunk of
//! bytes as the body), to the URL of the member the Raft actor names (from the replicated
//! configuration: the transport keeps no list of peers of its own).
//!
//! One awc client per transport, made on the actor's thread and reused for every call, so
//! connections are kept alive. Every call carries this node's cluster id (`x-kvstore-cluster`),
//! which the receiver checks before it reads the body. With a cluster secret, every call is
//! signed and every successful answer must carry a valid signature bound to the call, or it is
//! refused as a protocol error before it is parsed ([`crate::security::peer_auth`]). Every call
//! is bounded by the RPC timeout. Failures are classified, never retried here.

use std::sync::Arc;
use std::time::Duration;

use awc::error::SendRequestError;
use futures_util::future::{ready, LocalBoxFuture};
use futures_util::FutureExt;
use serde::de::DeserializeOwned;

use super::{Transport, TransportError};
use crate::raft::rpc::{AppendResponse, SnapshotResponse, TimeoutNowResponse, VoteResponse};
use crate::raft::{Member, Message};
use crate::security::peer_auth::{PeerKeys, RequestParts, AUTH_HEADER};

/// Largest RPC answer accepted. A peer answers a vote, an AppendEntries or a snapshot chunk
/// with a few numbers and flags (under 300 bytes of JSON), or refuses it with the API's error
/// shape, whose message names at most ids and URLs (under 2 KiB).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Time allowed for one snapshot chunk: more than a heartbeat-sized RPC, since the last chunk's
/// answer waits until the follower has checked and stored the whole snapshot.
const SNAPSHOT_CHUNK_TIMEOUT: Duration = Duration::from_secs(30);

/// Raft RPCs over HTTP to the members' base URLs.
pub struct HttpTransport {
    client: awc::Client,
    /// This node's base URL, sent as `x-kvstore-from` (the fault layer of the receiver uses it).
    me: String,
    /// This node's cluster id, sent as `x-kvstore-cluster` (the receiver refuses another).
    cluster: String,
    /// The cluster secret: every call is signed, every answer checked.
    keys: Option<Arc<PeerKeys>>,
}

/// The header naming the sender of a Raft RPC.
pub const FROM_HEADER: &str = "x-kvstore-from";

/// The header carrying the sender's cluster id on every Raft RPC.
pub const CLUSTER_HEADER: &str = "x-kvstore-cluster";

impl HttpTransport {
    /// A transport from `me` (this node's base URL); every call times out after `timeout`;
    /// every call carries `cluster`. Must be made on the thread that will use it.
    pub fn new(me: String, timeout: Duration, cluster: String) -> Self {
        Self::with_tls(me, timeout, cluster, None)
    }

    /// [`HttpTransport::new`] that reaches `https://` peers with `tls` (rustls: the CA it
    /// trusts and, under mutual TLS, the certificate it presents).
    pub fn with_tls(
        me: String,
        timeout: Duration,
        cluster: String,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Self {
        let client = crate::tls::awc_client(tls.as_ref(), timeout, timeout);
        Self {
            client,
            me,
            cluster,
            keys: None,
        }
    }

    /// This transport, signing every call with the cluster secret's `keys` and checking every
    /// answer (no change with `None`).
    pub fn signed_with(mut self, keys: Option<Arc<PeerKeys>>) -> Self {
        self.keys = keys;
        self
    }

    /// Sign `req` (whose body is `body`) when the cluster has a secret: the header added, and
    /// what checking the answer needs.
    fn sign(&self, req: awc::ClientRequest, body: &[u8]) -> (awc::ClientRequest, Option<Signed>) {
        let Some(keys) = &self.keys else {
            return (req, None);
        };
        let uri = req.get_uri();
        let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let host = uri.authority().map_or("", |a| a.as_str()).to_owned();
        let parts = RequestParts {
            cluster: &self.cluster,
            host: &host,
            method: "POST",
            path_and_query: &path_and_query,
            from: &self.me,
        };
        let (header, mac) = keys.sign_request(parts, unix_ms(), body);
        let signed = Signed {
            keys: keys.clone(),
            mac,
        };
        (req.insert_header((AUTH_HEADER, header)), Some(signed))
    }
}

/// What checking a signed call's answer needs.
struct Signed {
    keys: Arc<PeerKeys>,
    mac: Vec<u8>,
}

fn classify(err: SendRequestError) -> TransportError {
    match err {
        SendRequestError::Timeout => TransportError::Timeout,
        other => TransportError::Unreachable(other.to_string()),
    }
}

async fn post<Resp: DeserializeOwned>(
    req: awc::ClientRequest,
    body: Vec<u8>,
    signed: Option<Signed>,
) -> Result<Resp, TransportError> {
    let mut res = req.send_body(body).await.map_err(classify)?;
    let status = res.status();
    let bytes = res
        .body()
        .limit(MAX_RESPONSE_BYTES)
        .await
        .map_err(|e| TransportError::Unreachable(format!("reading the answer: {e}")))?;
    if !status.is_success() {
        return Err(TransportError::Remote {
            status: status.as_u16(),
            message: String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned(),
        });
    }
    if let Some(Signed { keys, mac }) = signed {
        let proof = res.headers().get(AUTH_HEADER).map(|v| v.as_bytes());
        keys.verify_answer(proof, &mac, status.as_u16(), &bytes)
            .map_err(|e| TransportError::Protocol(format!("answer refused: {e}")))?;
    }
    serde_json::from_slice(&bytes).map_err(|e| TransportError::Protocol(e.to_string()))
}

/// Milliseconds since the Unix epoch by the wall clock: signatures compare the clocks of
/// different machines, so only wall time makes sense for them.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Transport for HttpTransport {
    fn call(
        &self,
        to: &Member,
        msg: Message,
    ) -> LocalBoxFuture<'static, Result<Message, TransportError>> {
        // The member's URL comes from the replicated configuration (checked there:
        // http(s)://host:port).
        let base = to.url.as_str();
        if let Message::SnapshotRequest(mut r) = msg {
            let data = std::mem::take(&mut r.data);
            let req = match self
                .client
                .post(format!("{base}/raft/snapshot"))
                .timeout(SNAPSHOT_CHUNK_TIMEOUT)
                .insert_header(("content-type", "application/octet-stream"))
                .insert_header((FROM_HEADER, self.me.as_str()))
                .insert_header((CLUSTER_HEADER, self.cluster.as_str()))
                .query(&r)
            {
                Ok(req) => req,
                Err(e) => return ready(Err(TransportError::Protocol(e.to_string()))).boxed_local(),
            };
            let (req, signed) = self.sign(req, &data);
            return async move {
                post::<SnapshotResponse>(req, data, signed)
                    .await
                    .map(Message::SnapshotResponse)
            }
            .boxed_local();
        }
        let (path, body) = match &msg {
            Message::VoteRequest(r) => ("/raft/vote", serde_json::to_vec(r)),
            Message::AppendRequest(r) => ("/raft/append", serde_json::to_vec(r)),
            Message::TimeoutNowRequest(r) => ("/raft/timeout-now", serde_json::to_vec(r)),
            other => {
                let why = format!("not a request: {other:?}");
                return ready(Err(TransportError::Protocol(why))).boxed_local();
            }
        };
        let body = match body {
            Ok(b) => b,
            Err(e) => return ready(Err(TransportError::Protocol(e.to_string()))).boxed_local(),
        };
        let req = self
            .client
            .post(format!("{base}{path}"))
            .insert_header(("content-type", "application/json"))
            .insert_header((FROM_HEADER, self.me.as_str()))
            .insert_header((CLUSTER_HEADER, self.cluster.as_str()));
        let (req, signed) = self.sign(req, &body);
        async move {
            if path == "/raft/vote" {
                post::<VoteResponse>(req, body, signed)
                    .await
                    .map(Message::VoteResponse)
            } else if path == "/raft/timeout-now" {
                post::<TimeoutNowResponse>(req, body, signed)
                    .await
                    .map(Message::TimeoutNowResponse)
            } else {
                post::<AppendResponse>(req, body, signed)
                    .await
                    .map(Message::AppendResponse)
            }
        }
        .boxed_local()
    }
}
