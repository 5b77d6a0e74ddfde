//! [`Forwarder`]: sends a client request that reached a follower on to the leader, and relays
//! the leader's answer (plus an `x-kvstore-leader` header naming it).
//!
//! One awc client per HTTP worker thread, made on that thread and reused (keep-alive). A
//! forwarded request carries `x-kvstore-forwarded`, and a node never forwards such a request
//! again, so requests cannot loop between nodes that disagree about the leader. The client's
//! `Authorization` header travels along unchanged: the leader checks the token again, and so
//! does a write's `Idempotency-Key` (the caller adds one of its own when the client sent none,
//! so that it may re-send the write safely). The leader's `x-kvstore-index` and
//! `x-kvstore-idempotent-replay` headers are relayed.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use actix_web::http::Method;
use actix_web::HttpResponse;

use super::middleware::X_REQUEST_ID;
use crate::raft::LeaderInfo;

/// Marks a request forwarded by another node; its value is that node's id.
pub const X_KVSTORE_FORWARDED: HeaderName = HeaderName::from_static("x-kvstore-forwarded");
/// On a forwarded answer: the base URL of the leader that produced it.
pub const X_KVSTORE_LEADER: HeaderName = HeaderName::from_static("x-kvstore-leader");
/// On answers of `/get`, `/set`, `/delete`, `/keys`: the serving node's applied index (for a
/// write, at least the write's index).
pub const X_KVSTORE_INDEX: HeaderName = HeaderName::from_static("x-kvstore-index");
/// On a write's answer: it is the recorded first outcome of its `Idempotency-Key`.
pub const X_KVSTORE_IDEMPOTENT_REPLAY: HeaderName =
    HeaderName::from_static("x-kvstore-idempotent-replay");
/// The client's key making a write exactly-once.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// On a forwarded write: its `Idempotency-Key` was made by the forwarding node (the client sent
/// none), so the leader remembers it only as long as re-sends can come (see
/// `api::kv::MADE_KEY_WINDOW`), not for the whole window clients' keys get.
pub const X_KVSTORE_KEY_MADE: HeaderName = HeaderName::from_static("x-kvstore-key-made");

/// Largest answer a leader gives to a client request on a node with these `limits`: a `GET`'s
/// `{"ok":true,"key":K,"value":V,...}` with K and V JSON-escaped (each byte at most six, see
/// [`super::peer::JSON_ESCAPE_FACTOR`]), or a `GET /keys` page: at most
/// [`super::keys::KEYS_MAX_BYTES`] of keys and values, plus the last key and value that crossed
/// it, escaped, plus [`super::keys::KEYS_MAX_LIMIT`] entries' fixed JSON (field names, a
/// modIndex: under 64 bytes each); every other answer (writes, errors) is far smaller than the
/// 4 KiB added for the envelope. Default limits: about 30 MiB (a `/keys` page).
pub fn max_relayed_bytes(limits: &super::Limits) -> usize {
    let one = limits.max_key_bytes + limits.max_value_bytes;
    let get = super::peer::JSON_ESCAPE_FACTOR * one;
    let keys = super::peer::JSON_ESCAPE_FACTOR * (super::keys::KEYS_MAX_BYTES + one)
        + super::keys::KEYS_MAX_LIMIT * 64;
    get.max(keys) + 4096
}

/// Why a forward got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardError {
    /// The request may have reached the leader (it was sent, or partly sent): a write may have
    /// been applied. `false` only when no connection could be made.
    pub maybe_delivered: bool,
    pub message: String,
}

/// A client request as it goes to the leader.
#[derive(Debug)]
pub struct ForwardRequest<'a> {
    pub method: Method,
    /// The route, e.g. `/set`.
    pub path: &'a str,
    pub query: &'a [(&'a str, &'a str)],
    /// The JSON body, if any.
    pub body: Option<serde_json::Value>,
    /// The client's request id, so the leader's log line carries it too.
    pub request_id: Option<&'a str>,
    /// The client's `Authorization` header, unchanged (the leader checks the token again).
    pub authorization: Option<&'a HeaderValue>,
    /// This node's id (the value of `x-kvstore-forwarded`).
    pub this_node: &'a str,
    /// How long the leader has to answer.
    pub timeout: Duration,
    /// A write's `Idempotency-Key` (the client's or one of this node's). With one, a 503 that
    /// says the write "may or may not" have been applied is reported as a maybe-delivered
    /// failure, so the caller re-sends it under the same key.
    pub idempotency_key: Option<&'a str>,
    /// `idempotency_key` was made by this node, not sent by the client.
    pub key_made_here: bool,
}

/// Forwards requests to the leader. Create one per worker thread.
pub struct Forwarder {
    client: awc::Client,
    /// Largest answer relayed (see [`max_relayed_bytes`]).
    max_answer: usize,
}

impl Default for Forwarder {
    fn default() -> Self {
        Self::new()
    }
}

/// Longest wait for a connection (TCP and TLS handshake) to the leader.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Forwarder {
    /// A forwarder with its own client (call on the thread that will use it); plain HTTP only.
    pub fn new() -> Self {
        Self::with_tls(None)
    }

    /// A forwarder that reaches `https://` leaders with `tls` (the CA it trusts).
    pub fn with_tls(tls: Option<&Arc<rustls::ClientConfig>>) -> Self {
        // Each call sets its own timeout, from the deadline.
        let client = crate::tls::awc_client(tls, CONNECT_TIMEOUT, Duration::from_secs(3600));
        Forwarder {
            client,
            max_answer: max_relayed_bytes(&super::Limits::default()),
        }
    }

    /// The largest answer relayed; a longer one is an error (see [`max_relayed_bytes`]).
    pub fn with_answer_limit(mut self, bytes: usize) -> Self {
        self.max_answer = bytes;
        self
    }

    /// Send `req` to `leader` and turn its answer into ours. `Err` says why there is no answer
    /// and whether the request may have been delivered.
    pub async fn forward(
        &self,
        leader: &LeaderInfo,
        fwd: &ForwardRequest<'_>,
    ) -> Result<HttpResponse, ForwardError> {
        let not_sent = |e: String| ForwardError {
            maybe_delivered: false,
            message: e,
        };
        let maybe_sent = |e: String| ForwardError {
            maybe_delivered: true,
            message: e,
        };
        let mut req = self
            .client
            .request(fwd.method.clone(), format!("{}{}", leader.url, fwd.path))
            .timeout(fwd.timeout)
            .insert_header((X_KVSTORE_FORWARDED, fwd.this_node));
        if let Some(id) = fwd.request_id {
            req = req.insert_header((X_REQUEST_ID, id));
        }
        if let Some(auth) = fwd.authorization {
            req = req.insert_header((AUTHORIZATION, auth.clone()));
        }
        if let Some(key) = fwd.idempotency_key {
            req = req.insert_header((IDEMPOTENCY_KEY, key));
            if fwd.key_made_here {
                req = req.insert_header((X_KVSTORE_KEY_MADE, "1"));
            }
        }
        if !fwd.query.is_empty() {
            req = req.query(&fwd.query).map_err(|e| not_sent(e.to_string()))?;
        }
        let sent = match &fwd.body {
            Some(b) => req.send_json(b).await,
            None => req.send().await,
        };
        let mut res = sent.map_err(|e| {
            use awc::error::{ConnectError, SendRequestError};
            match e {
                // awc also reports a connection closed after the request went out (the leader
                // died before answering) as `Connect(Disconnected)`: that one may have arrived.
                SendRequestError::Connect(ConnectError::Disconnected) => {
                    maybe_sent("connection closed before the answer".into())
                }
                // No connection was made: the leader never saw the request.
                SendRequestError::Connect(c) => not_sent(c.to_string()),
                other => maybe_sent(other.to_string()),
            }
        })?;
        let bytes = res
            .body()
            .limit(self.max_answer)
            .await
            .map_err(|e| maybe_sent(e.to_string()))?;
        if fwd.idempotency_key.is_some()
            && res.status() == actix_web::http::StatusCode::SERVICE_UNAVAILABLE
            && bytes.windows(14).any(|w| w == b"may or may not")
        {
            // The leader does not know whether it applied the write: with a key, re-sending
            // it is safe (a retry answers the first outcome).
            let why = String::from_utf8_lossy(&bytes).into_owned();
            return Err(maybe_sent(format!("the leader answered 503: {why}")));
        }
        let mut out = HttpResponse::build(res.status());
        for name in [CONTENT_TYPE, X_KVSTORE_INDEX, X_KVSTORE_IDEMPOTENT_REPLAY] {
            if let Some(v) = res.headers().get(&name) {
                out.insert_header((name, v.clone()));
            }
        }
        out.insert_header((X_KVSTORE_LEADER, leader.url.as_str()));
        Ok(out.body(bytes))
    }
}
