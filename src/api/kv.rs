//! The client API of the original project: `PUT /set`, `GET /get`, `DELETE /delete`.
//!
//! Writes are proposed to the `RaftActor` and answered once their entry is committed and applied
//! (the apply outcome decides: a delete of a missing key is a 404 wherever it was sent). Reads are
//! linearizable by default (ReadIndex, then a read of the `StoreActor` at that index) or, with
//! `consistency=stale`, a plain local read. On a follower, requests are forwarded to the leader.
//! Every request is bounded by the request timeout. Handlers own no state and never touch the map
//! directly.

use std::time::Duration;

use actix_web::http::Method;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use tokio::time::{timeout_at, Instant};

use super::errors::ApiError;
use super::forward::{ForwardError, ForwardRequest, Forwarder, X_KVSTORE_FORWARDED};
use super::middleware::RequestId;
use super::{AppState, Limits};
use crate::raft::actor::{ClientError, ClientReadIndex, ClientWrite, IsRemoved};
use crate::raft::LeaderInfo;
use crate::store::actor::{read_at, Get};
use crate::store::{Command, CommandOutcome};

/// Pause between attempts while no leader is known.
const RETRY_PAUSE: Duration = Duration::from_millis(25);

/// Body of `PUT /set`: a JSON object with string fields `key` and `value` (other fields are
/// ignored). Unlike serde's derive, a JSON array is refused: only an object is a valid body.
#[derive(Debug, Clone, Serialize)]
pub struct SetRequest {
    pub key: String,
    pub value: String,
}

impl<'de> Deserialize<'de> for SetRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = SetRequest;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#"an object like {"key":"name","value":"luffy"}"#)
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<SetRequest, A::Error> {
                use serde::de::Error;
                let (mut key, mut value) = (None, None);
                while let Some(field) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let slot = match field.as_ref() {
                        "key" => &mut key,
                        "value" => &mut value,
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            continue;
                        }
                    };
                    if slot.is_some() {
                        return Err(A::Error::custom(format_args!("duplicate field `{field}`")));
                    }
                    *slot = Some(map.next_value::<String>()?);
                }
                Ok(SetRequest {
                    key: key.ok_or_else(|| A::Error::missing_field("key"))?,
                    value: value.ok_or_else(|| A::Error::missing_field("value"))?,
                })
            }
        }
        d.deserialize_map(Fields)
    }
}

/// Query of `GET /get` and `DELETE /delete`. `key` is optional here so that its absence gets
/// our own message rather than serde's.
#[derive(Debug, Deserialize)]
pub struct KeyQuery {
    pub key: Option<String>,
    /// `linearizable` (default) or `stale` (GET only).
    pub consistency: Option<String>,
}

/// `{"ok":true,"message":"stored","key":"name"}` and `{"ok":true,"message":"deleted",...}`.
#[derive(Debug, Serialize)]
struct WriteReply<'a> {
    ok: bool,
    message: &'static str,
    key: &'a str,
}

/// `{"ok":true,"key":"name","value":"luffy"}`.
#[derive(Debug, Serialize)]
struct GetReply<'a> {
    ok: bool,
    key: &'a str,
    value: &'a str,
}

fn check_key(limits: &Limits, key: &str) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::EmptyKey);
    }
    if key.len() > limits.max_key_bytes {
        return Err(ApiError::KeyTooLarge {
            len: key.len(),
            limit: limits.max_key_bytes,
        });
    }
    Ok(())
}

fn check_value(limits: &Limits, value: &str) -> Result<(), ApiError> {
    if value.len() > limits.max_value_bytes {
        return Err(ApiError::ValueTooLarge {
            len: value.len(),
            limit: limits.max_value_bytes,
        });
    }
    Ok(())
}

fn required_key(q: &KeyQuery) -> Result<&str, ApiError> {
    q.key
        .as_deref()
        .ok_or_else(|| ApiError::InvalidQuery("missing query parameter `key`".into()))
}

pub(super) fn actor_gone(what: &str, err: actix::MailboxError) -> ApiError {
    tracing::error!(error = %err, "{what} actor did not answer");
    ApiError::Internal(format!("{what} unavailable"))
}

/// A client request on its way to the leader: what it is, how it looks when forwarded, and the
/// bound on how long it may take. (`api::cluster` routes its requests the same way.)
pub(super) struct Routed<'a> {
    pub(super) state: &'a AppState,
    fwd: &'a Forwarder,
    req: &'a HttpRequest,
    pub(super) deadline: Instant,
    method: Method,
    /// The path it is forwarded to (percent-encoded where needed).
    path: &'a str,
    query: &'a [(&'a str, &'a str)],
    body: Option<serde_json::Value>,
    /// Whether sending it twice is harmless (a read): a forward that may have been delivered
    /// is then retried instead of reported.
    idempotent: bool,
}

/// Where a request was answered.
pub(super) enum Answer<T> {
    /// By this node, the leader.
    Here(T),
    /// By the leader, whose answer is relayed as it is.
    Forwarded(HttpResponse),
}

impl<'a> Routed<'a> {
    /// `method path` for this request, its deadline starting now; no query, no body, not
    /// idempotent until said otherwise.
    pub(super) fn new(
        state: &'a AppState,
        fwd: &'a Forwarder,
        req: &'a HttpRequest,
        method: Method,
        path: &'a str,
    ) -> Self {
        Routed {
            state,
            fwd,
            req,
            deadline: Instant::now() + state.request_timeout,
            method,
            path,
            query: &[],
            body: None,
            idempotent: false,
        }
    }

    fn query(self, query: &'a [(&'a str, &'a str)]) -> Self {
        Routed { query, ..self }
    }

    /// The JSON body it is forwarded with.
    pub(super) fn body(self, body: serde_json::Value) -> Self {
        Routed {
            body: Some(body),
            ..self
        }
    }

    pub(super) fn idempotent(self) -> Self {
        Routed {
            idempotent: true,
            ..self
        }
    }

    pub(super) fn timeout_secs(&self) -> f64 {
        self.state.request_timeout.as_secs_f64()
    }

    /// Wait a little before trying again; `Err` once the deadline has passed.
    pub(super) async fn pause(&self, why: impl FnOnce() -> ApiError) -> Result<(), ApiError> {
        if Instant::now() + RETRY_PAUSE >= self.deadline {
            return Err(why());
        }
        tokio::time::sleep(RETRY_PAUSE).await;
        Ok(())
    }

    /// Run `here` (which asks the RaftActor and fails with `NotLeader` off the leader) until it
    /// answers, forwarding to the leader it names, waiting while no leader is known, all within
    /// the deadline. The one routing loop of every client request.
    pub(super) async fn run<T, F, Fut>(&self, mut here: F) -> Result<Answer<T>, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Result<T, ClientError>, ApiError>>,
    {
        let secs = self.timeout_secs();
        loop {
            let leader = match here().await? {
                Ok(v) => return Ok(Answer::Here(v)),
                // Never forwarded to itself (a leader that does not serve this request yet,
                // e.g. while it hands over its leadership): wait as when no leader is known.
                Err(ClientError::NotLeader(Some(leader))) if leader.id != self.state.node_id => {
                    leader
                }
                Err(ClientError::NotLeader(_)) => {
                    self.pause(|| no_leader(secs)).await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            match self.forward(&leader).await? {
                Ok(res) => return Ok(Answer::Forwarded(res)),
                Err(e) if e.maybe_delivered && !self.idempotent => {
                    // Retrying could apply the write twice: say what is known.
                    return Err(ApiError::Unavailable(format!(
                        "no leader: the leader {} at {} did not answer ({}); the write may \
                         or may not have been applied",
                        leader.id, leader.url, e.message
                    )));
                }
                Err(e) => {
                    tracing::debug!(leader = %leader.url, error = %e.message, "forwarding failed");
                    self.pause(|| {
                        ApiError::Unavailable(format!(
                            "no leader: the leader {} at {} could not be reached ({})",
                            leader.id, leader.url, e.message
                        ))
                    })
                    .await?;
                }
            }
        }
    }

    /// Whether this request was forwarded here by another node (it is never forwarded again).
    pub(super) fn was_forwarded(&self) -> bool {
        self.req.headers().contains_key(X_KVSTORE_FORWARDED)
    }

    /// Forward to `leader`, unless this request was already forwarded once.
    pub(super) async fn forward(
        &self,
        leader: &LeaderInfo,
    ) -> Result<Result<HttpResponse, ForwardError>, ApiError> {
        if self.was_forwarded() {
            return Err(ApiError::Unavailable(format!(
                "no leader: this node ({}) is not the leader and the request was already \
                 forwarded once (the leader may have just changed); retry",
                self.state.node_id
            )));
        }
        let request_id = self
            .req
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone());
        let request = ForwardRequest {
            method: self.method.clone(),
            path: self.path,
            query: self.query,
            body: self.body.clone(),
            request_id: request_id.as_deref(),
            authorization: self
                .req
                .headers()
                .get(actix_web::http::header::AUTHORIZATION),
            this_node: &self.state.node_id,
            timeout: self.deadline.saturating_duration_since(Instant::now()),
        };
        Ok(self.fwd.forward(leader, &request).await)
    }
}

fn no_leader(secs: f64) -> ApiError {
    ApiError::Unavailable(format!(
        "no leader: none was elected within {secs} s (is a majority of nodes up?)"
    ))
}

fn write_timeout(secs: f64) -> ApiError {
    ApiError::Unavailable(format!(
        "no quorum: the write was not confirmed committed within {secs} s; \
         it may or may not have been applied"
    ))
}

/// Replicate `cmd` through the leader (here or by forwarding `at`'s request).
async fn replicate(at: &Routed<'_>, cmd: Command) -> Result<Answer<CommandOutcome>, ApiError> {
    let secs = at.timeout_secs();
    at.run(|| async {
        let sent = timeout_at(at.deadline, at.state.raft.send(ClientWrite(cmd.clone()))).await;
        match sent {
            Err(_) => Err(write_timeout(secs)),
            Ok(Err(e)) => Err(actor_gone("raft", e)),
            Ok(Ok(outcome)) => Ok(outcome),
        }
    })
    .await
}

/// `PUT /set` with `{"key":..,"value":..}`.
pub async fn set(
    state: web::Data<AppState>,
    fwd: web::Data<Forwarder>,
    req: HttpRequest,
    body: web::Json<SetRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    check_key(&state.limits, &body.key)?;
    check_value(&state.limits, &body.value)?;
    let at = Routed::new(&state, &fwd, &req, Method::PUT, "/set")
        .body(serde_json::json!({"key": body.key, "value": body.value}));
    let cmd = Command::Set {
        key: body.key.clone(),
        value: body.value,
    };
    match replicate(&at, cmd).await? {
        Answer::Here(_) => Ok(HttpResponse::Ok().json(WriteReply {
            ok: true,
            message: "stored",
            key: &body.key,
        })),
        Answer::Forwarded(res) => Ok(res),
    }
}

/// `DELETE /delete?key=..`.
pub async fn delete(
    state: web::Data<AppState>,
    fwd: web::Data<Forwarder>,
    req: HttpRequest,
    query: web::Query<KeyQuery>,
) -> Result<HttpResponse, ApiError> {
    let key = required_key(&query)?;
    check_key(&state.limits, key)?;
    let q = [("key", key)];
    let at = Routed::new(&state, &fwd, &req, Method::DELETE, "/delete").query(&q);
    let cmd = Command::Delete {
        key: key.to_owned(),
    };
    match replicate(&at, cmd).await? {
        Answer::Here(CommandOutcome::NotFound) => Err(ApiError::KeyNotFound),
        Answer::Here(_) => Ok(HttpResponse::Ok().json(WriteReply {
            ok: true,
            message: "deleted",
            key,
        })),
        Answer::Forwarded(res) => Ok(res),
    }
}

/// `GET /get?key=..[&consistency=stale]`.
pub async fn get(
    state: web::Data<AppState>,
    fwd: web::Data<Forwarder>,
    req: HttpRequest,
    query: web::Query<KeyQuery>,
) -> Result<HttpResponse, ApiError> {
    let key = required_key(&query)?;
    check_key(&state.limits, key)?;
    let stale = match query.consistency.as_deref() {
        None | Some("linearizable") => false,
        Some("stale") => true,
        Some(other) => {
            return Err(ApiError::InvalidQuery(format!(
                "consistency must be `linearizable` or `stale`, not {other:?}"
            )))
        }
    };
    let value = if stale {
        // A removed node's map no longer follows the cluster: it serves no reads.
        let removed = state.raft.send(IsRemoved).await;
        if removed.map_err(|e| actor_gone("raft", e))? {
            return Err(ClientError::Removed.into());
        }
        state
            .store
            .send(Get {
                key: key.to_owned(),
            })
            .await
            .map_err(|e| actor_gone("store", e))?
    } else {
        let q = [("key", key)];
        // A read changes nothing: sending it twice is harmless.
        let at = Routed::new(&state, &fwd, &req, Method::GET, "/get")
            .query(&q)
            .idempotent();
        match linearizable_read(&at, key).await? {
            Answer::Here(v) => v,
            Answer::Forwarded(res) => return Ok(res),
        }
    };
    match value {
        Some(value) => Ok(HttpResponse::Ok().json(GetReply {
            ok: true,
            key,
            value: &value,
        })),
        None => Err(ApiError::KeyNotFound),
    }
}

/// ReadIndex on the leader, then read the store once it has applied that index; or forward.
async fn linearizable_read(at: &Routed<'_>, key: &str) -> Result<Answer<Option<String>>, ApiError> {
    let secs = at.timeout_secs();
    let read_timeout = || {
        ApiError::Unavailable(format!(
            "no quorum: leadership could not be confirmed within {secs} s"
        ))
    };
    at.run(|| async {
        let index = match timeout_at(at.deadline, at.state.raft.send(ClientReadIndex)).await {
            Err(_) => return Err(read_timeout()),
            Ok(Err(e)) => return Err(actor_gone("raft", e)),
            Ok(Ok(Err(e))) => return Ok(Err(e)),
            Ok(Ok(Ok(index))) => index,
        };
        let read = read_at(&at.state.store, key.to_owned(), index);
        match timeout_at(at.deadline, read).await {
            Err(_) => Err(read_timeout()),
            Ok(Err(e)) => Err(actor_gone("store", e)),
            Ok(Ok(Err(_))) => Err(ApiError::Internal("store stopped".into())),
            Ok(Ok(Ok(v))) => Ok(Ok(v)),
        }
    })
    .await
}
