//! [`HttpTransport`]: Raft RPCs over HTTP (`POST {peer}/raft/vote`, `/raft/append`,
//! `/raft/timeout-now`, `/raft/read-index`; `/raft/snapshot` carries its fields in the query string and a chunk of
//! bytes as the body), to the URL of the member the Raft actor names (from the replicated
//! configuration: the transport keeps no list of peers of its own).
//!
//! Bodies and answers go through [`crate::codec::peer`]. Each peer starts in JSON, which every
//! node speaks; once one of its answers carries `x-kvstore-raft-codec: 1` the peer gets binary
//! bodies, and it goes back to JSON if it refuses a binary body (400 or 415: a downgraded
//! node). The codec each peer gets is remembered per URL, on this thread only.
//!
//! One awc client per transport, made on the actor's thread and reused for every call, so
//! connections are kept alive. Every call carries this node's cluster id (`x-kvstore-cluster`),
//! which the receiver checks before it reads the body. With a cluster secret, every call is
//! signed and every successful answer must carry a valid signature bound to the call, or it is
//! refused as a protocol error before it is parsed ([`crate::security::peer_auth`]). Every call
//! is bounded by the RPC timeout. Failures are classified, never retried here.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use awc::error::SendRequestError;
use futures_util::future::{ready, LocalBoxFuture};
use futures_util::FutureExt;

use super::{Transport, TransportError};
use crate::codec::peer::{self, Format, Kind, PeerCodec, BINARY_CONTENT_TYPE, CODEC_HEADER};
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
    /// Whether this node may send binary bodies at all (`--peer-codec`).
    codec: PeerCodec,
    /// The peers (by URL) that said they understand binary bodies.
    binary_peers: Rc<RefCell<HashMap<String, bool>>>,
}

/// Most peers whose codec is remembered: more than a cluster has members (removed members'
/// entries are dropped when it fills; they start again in JSON).
const MAX_REMEMBERED_PEERS: usize = 64;

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
            codec: PeerCodec::default(),
            binary_peers: Rc::default(),
        }
    }

    /// This transport with peer codec `codec` (`json`: never send binary bodies).
    pub fn with_codec(mut self, codec: PeerCodec) -> Self {
        self.codec = codec;
        self
    }

    /// The format of the next body for the peer at `url`.
    fn format_for(&self, url: &str) -> Format {
        let binary = self.codec == PeerCodec::Auto
            && self.binary_peers.borrow().get(url).copied() == Some(true);
        if binary {
            Format::Binary
        } else {
            Format::Json
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

/// What one call needs to learn from its answer: which peer, in which format it was sent.
struct Learn {
    url: String,
    sent: Format,
    codec: PeerCodec,
    binary_peers: Rc<RefCell<HashMap<String, bool>>>,
}

impl Learn {
    /// Remember whether the peer takes binary bodies, from its answer's `status` and headers.
    fn record_answer(&self, status: u16, headers: &awc::http::header::HeaderMap) {
        if self.codec != PeerCodec::Auto {
            return;
        }
        let mut peers = self.binary_peers.borrow_mut();
        let says_binary = headers
            .get(CODEC_HEADER)
            .is_some_and(|v| v.as_bytes() == peer::CODEC_VERSION.as_bytes());
        let refused_binary = self.sent == Format::Binary && (status == 400 || status == 415);
        let binary = says_binary && !refused_binary;
        if peers.get(&self.url).copied() == Some(binary) {
            return;
        }
        if peers.len() >= MAX_REMEMBERED_PEERS && !peers.contains_key(&self.url) {
            peers.clear();
        }
        if binary || refused_binary || peers.contains_key(&self.url) {
            tracing::debug!(peer = %self.url, binary, "peer codec");
            peers.insert(self.url.clone(), binary);
        }
    }
}

async fn post(
    req: awc::ClientRequest,
    body: Vec<u8>,
    signed: Option<Signed>,
    kind: Kind,
    learn: Learn,
) -> Result<Message, TransportError> {
    let mut res = req.send_body(body).await.map_err(classify)?;
    let status = res.status();
    let bytes = res
        .body()
        .limit(MAX_RESPONSE_BYTES)
        .await
        .map_err(|e| TransportError::Unreachable(format!("reading the answer: {e}")))?;
    if !status.is_success() {
        // A refusal is not signed: a forged one can at worst send this peer JSON (which
        // every node reads) until its next answer says binary again.
        learn.record_answer(status.as_u16(), res.headers());
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
    // Only an answer whose signature held (when the cluster has a secret) says what codec
    // the peer speaks.
    learn.record_answer(status.as_u16(), res.headers());
    // An answer is in the format of its request (an old node's always in JSON).
    let format = Format::of_content_type(
        res.headers()
            .get(awc::http::header::CONTENT_TYPE)
            .map(|v| v.as_bytes()),
    );
    peer::decode(&bytes, format, kind).map_err(|e| TransportError::Protocol(e.to_string()))
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
        let format = self.format_for(base);
        let learn = Learn {
            url: base.to_owned(),
            sent: format,
            codec: self.codec,
            binary_peers: self.binary_peers.clone(),
        };
        if let Message::SnapshotRequest(mut r) = msg {
            let data = std::mem::take(&mut r.data);
            let mut req = self
                .client
                .post(format!("{base}/raft/snapshot"))
                .timeout(SNAPSHOT_CHUNK_TIMEOUT)
                .insert_header(("content-type", "application/octet-stream"))
                .insert_header((FROM_HEADER, self.me.as_str()))
                .insert_header((CLUSTER_HEADER, self.cluster.as_str()));
            if format == Format::Binary {
                // The chunk is raw bytes either way; the answer may be binary.
                req = req.insert_header(("accept", BINARY_CONTENT_TYPE));
            }
            let req = match req.query(&r) {
                Ok(req) => req,
                Err(e) => return ready(Err(TransportError::Protocol(e.to_string()))).boxed_local(),
            };
            let (req, signed) = self.sign(req, &data);
            return post(req, data, signed, Kind::SnapshotResponse, learn).boxed_local();
        }
        let (path, answer) = match &msg {
            Message::VoteRequest(_) => ("/raft/vote", Kind::VoteResponse),
            Message::AppendRequest(_) => ("/raft/append", Kind::AppendResponse),
            Message::TimeoutNowRequest(_) => ("/raft/timeout-now", Kind::TimeoutNowResponse),
            Message::ReadIndexRequest(_) => ("/raft/read-index", Kind::ReadIndexResponse),
            other => {
                let why = format!("not a request: {other:?}");
                return ready(Err(TransportError::Protocol(why))).boxed_local();
            }
        };
        let body = match peer::encode(&msg, format) {
            Ok(b) => b,
            Err(e) => return ready(Err(TransportError::Protocol(e.to_string()))).boxed_local(),
        };
        let req = self
            .client
            .post(format!("{base}{path}"))
            .insert_header(("content-type", format.content_type()))
            .insert_header((FROM_HEADER, self.me.as_str()))
            .insert_header((CLUSTER_HEADER, self.cluster.as_str()));
        let (req, signed) = self.sign(req, &body);
        post(req, body, signed, answer, learn).boxed_local()
    }
}
