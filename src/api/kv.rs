//! The client API: `PUT /set`, `GET /get`, `DELETE /delete` (the original project's routes,
//! with revisions, compare-and-set and `Idempotency-Key` added) and `GET /keys`.
//!
//! Writes are proposed to the `RaftActor` and answered once their entry is committed and applied
//! (the apply outcome decides: a delete of a missing key is a 404, a failed precondition a 409,
//! wherever it was sent). A write with an `Idempotency-Key` is stamped here with this node's
//! clock and the window's end; a retry answers the recorded first outcome. Reads are
//! linearizable by default (ReadIndex, then a read of the `StoreActor` at that index) or, with
//! `consistency=stale`, a local read (after `minIndex`, if given, waiting a bounded time). On a
//! follower, requests are forwarded to the leader; a write that may have been delivered is
//! re-sent only under an idempotency key (the client's, or one this node adds). Every request is
//! bounded by the request timeout. Handlers own no state and never touch the map directly.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::Method;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use tokio::time::{timeout_at, Instant};

use super::errors::ApiError;
use super::forward::{
    ForwardError, ForwardRequest, Forwarder, IDEMPOTENCY_KEY, X_KVSTORE_FORWARDED,
    X_KVSTORE_IDEMPOTENT_REPLAY, X_KVSTORE_INDEX, X_KVSTORE_KEY_MADE,
};
use super::middleware::RequestId;
use super::{AppState, Limits};
use crate::raft::actor::{ClientError, ClientLeaseRead, ClientReadIndex, ClientWrite, IsRemoved};
use crate::raft::LeaderInfo;
use crate::store::actor::{read_at, KeyRead, StoreStopped, Summary};
use crate::store::command::MAX_IDEMPOTENCY_KEY_BYTES;
use crate::store::{Command, CommandOutcome, Effect, Stamp};

/// Longest a stale read waits for its `minIndex` (or the request timeout, if shorter).
const MIN_INDEX_WAIT: Duration = Duration::from_secs(1);

/// Pause between attempts while no leader is known.
const RETRY_PAUSE: Duration = Duration::from_millis(25);

/// Body of `PUT /set`: a JSON object with string fields `key` and `value` (other fields are
/// ignored). Unlike serde's derive, a JSON array is refused: only an object is a valid body.
#[derive(Debug, Clone, Serialize)]
pub struct SetRequest {
    pub key: String,
    /// Decoded straight into the shared allocation the command, the log entry and the map
    /// hold (one copy from the request body).
    pub value: Arc<str>,
    /// `ifModIndex`: the key's modIndex must be this (0: must not exist).
    pub if_mod_index: Option<u64>,
    /// `ifValue`: the key's value must be this.
    pub if_value: Option<String>,
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
                let (mut key, mut value, mut if_value) = (None, None::<Arc<str>>, None);
                let mut if_mod_index = None;
                while let Some(field) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let slot = match field.as_ref() {
                        "key" => &mut key,
                        "value" => {
                            if value.is_some() {
                                return Err(A::Error::custom("duplicate field `value`"));
                            }
                            value = Some(map.next_value::<SharedStr>()?.0);
                            continue;
                        }
                        "ifValue" => &mut if_value,
                        "ifModIndex" => {
                            if if_mod_index.is_some() {
                                return Err(A::Error::custom("duplicate field `ifModIndex`"));
                            }
                            if_mod_index = Some(map.next_value::<u64>()?);
                            continue;
                        }
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
                    if_mod_index,
                    if_value,
                })
            }
        }
        d.deserialize_map(Fields)
    }
}

/// A JSON string decoded into an `Arc<str>` with one copy (serde's own `Arc<str>` goes
/// through a `String` first: two).
struct SharedStr(Arc<str>);

impl<'de> Deserialize<'de> for SharedStr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = SharedStr;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<SharedStr, E> {
                Ok(SharedStr(Arc::from(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Query of `GET /get` and `DELETE /delete`. `key` is optional here so that its absence gets
/// our own message rather than serde's.
#[derive(Debug, Deserialize)]
pub struct KeyQuery {
    pub key: Option<String>,
    /// `linearizable` (default) or `stale` (GET only).
    pub consistency: Option<String>,
    /// `minIndex` (GET): answer once this node applied at least this index.
    #[serde(rename = "minIndex")]
    pub min_index: Option<String>,
    /// `ifModIndex` (DELETE): the key's modIndex must be this.
    #[serde(rename = "ifModIndex")]
    pub if_mod_index: Option<String>,
}

/// `{"ok":true,"message":"stored","key":"name","index":12}` and `{"ok":true,"message":
/// "deleted",...}`.
#[derive(Debug, Serialize)]
struct WriteReply<'a> {
    ok: bool,
    message: &'static str,
    key: &'a str,
    index: u64,
}

/// `{"ok":true,"key":"name","value":"luffy","modIndex":12,"createIndex":7}`.
#[derive(Debug, Serialize)]
struct GetReply<'a> {
    ok: bool,
    key: &'a str,
    value: &'a str,
    #[serde(rename = "modIndex")]
    mod_index: u64,
    #[serde(rename = "createIndex")]
    create_index: u64,
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
    /// Makes the JSON body it is forwarded with, when it is (instead of `body`).
    body_with: Option<&'a dyn Fn() -> serde_json::Value>,
    /// Whether sending it twice is harmless (a read): a forward that may have been delivered
    /// is then retried instead of reported.
    idempotent: bool,
    /// A write's `Idempotency-Key` (the client's, or one made here when it is first
    /// forwarded): sending it twice is then harmless too, and it travels with the forwarded
    /// request.
    write_key: WriteKey<'a>,
    /// The command proposed here carries no stamp (the key was made here for forwarding only):
    /// a write of unknown fate here is not proposed again, unless it was forwarded first.
    unkeyed_here: bool,
    /// It was forwarded (perhaps delivered) under `idempotency_key`: from then on, a proposal
    /// here must carry that key too (this node may have become the leader), or the write could
    /// be applied twice.
    forwarded: std::cell::Cell<bool>,
    /// An attempt of this write may have been applied (see [`Self::run`]).
    maybe_applied: std::cell::Cell<bool>,
}

/// The idempotency key a write is forwarded (and re-sent) under.
enum WriteKey<'a> {
    /// Not a write (or one sent without a key).
    None,
    /// The client's `Idempotency-Key`.
    Client(&'a str),
    /// One made here the first time it is needed (only if the write is forwarded).
    Made(std::cell::OnceCell<String>),
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
            body_with: None,
            idempotent: false,
            write_key: WriteKey::None,
            unkeyed_here: false,
            forwarded: std::cell::Cell::new(false),
            maybe_applied: std::cell::Cell::new(false),
        }
    }

    /// A write: forward it with the client's `Idempotency-Key`, or (`None`) with one made here
    /// when it is first forwarded, and re-send it (here or to the leader) when its fate is
    /// unknown. Without the client's key the command proposed here carries no stamp (see
    /// `unkeyed_here`).
    fn write_key(self, client: Option<&'a str>) -> Self {
        match client {
            Some(k) => Routed {
                write_key: WriteKey::Client(k),
                ..self
            },
            None => Routed {
                write_key: WriteKey::Made(std::cell::OnceCell::new()),
                unkeyed_here: true,
                ..self
            },
        }
    }

    /// Whether it is a write with an idempotency key (the client's or one made here).
    fn keyed(&self) -> bool {
        !matches!(self.write_key, WriteKey::None)
    }

    /// The write's idempotency key; one made here is made on the first call (a write this node
    /// leads never needs one, and never pays for it).
    fn key(&self) -> Option<&str> {
        match &self.write_key {
            WriteKey::None => None,
            WriteKey::Client(k) => Some(k),
            WriteKey::Made(cell) => {
                Some(cell.get_or_init(|| format!("fwd-{}", uuid::Uuid::new_v4())))
            }
        }
    }

    pub(super) fn query(self, query: &'a [(&'a str, &'a str)]) -> Self {
        Routed { query, ..self }
    }

    /// The JSON body it is forwarded with.
    pub(super) fn body(self, body: serde_json::Value) -> Self {
        Routed {
            body: Some(body),
            ..self
        }
    }

    /// The JSON body it is forwarded with, made by `make` only when it is forwarded.
    pub(super) fn body_with(self, make: &'a dyn Fn() -> serde_json::Value) -> Self {
        Routed {
            body_with: Some(make),
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
    ///
    /// Once an attempt of a write may have been applied (its fate unknown, then re-sent under
    /// its idempotency key), no later failure is reported as certain: a refusal of a later
    /// attempt says nothing about the earlier one.
    pub(super) async fn run<T, F, Fut>(&self, here: F) -> Result<Answer<T>, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Result<T, ClientError>, ApiError>>,
    {
        let unsure = |e: &dyn std::fmt::Display| {
            ApiError::Unavailable(format!(
                "{e}; an earlier attempt may or may not have been applied: retry with the same \
                 Idempotency-Key"
            ))
        };
        match self.run_attempts(here).await {
            Err(e) if self.maybe_applied.get() && !e.to_string().contains("may or may not") => {
                Err(unsure(&e))
            }
            Ok(Answer::Forwarded(res))
                if self.maybe_applied.get() && res.status().is_server_error() =>
            {
                Err(unsure(&format!("the leader answered {}", res.status())))
            }
            other => other,
        }
    }

    async fn run_attempts<T, F, Fut>(&self, mut here: F) -> Result<Answer<T>, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Result<T, ClientError>, ApiError>>,
    {
        let secs = self.timeout_secs();
        loop {
            let leader = match here().await? {
                Ok(v) => return Ok(Answer::Here(v)),
                // Under an idempotency key, a write whose fate is unknown (leadership lost
                // while it was being committed, or another leader's entry took its place) is
                // proposed again (here, or forwarded to the new leader): its first outcome
                // answers if it was applied.
                Err(e @ (ClientError::Unknown(_) | ClientError::NotApplied))
                    if self.keyed() && (!self.unkeyed_here || self.forwarded.get()) =>
                {
                    if matches!(e, ClientError::Unknown(_)) {
                        self.maybe_applied.set(true);
                    }
                    tracing::debug!(error = %e, "write re-sent under its idempotency key");
                    self.pause(|| ApiError::from(e.clone())).await?;
                    continue;
                }
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
                Err(e) if e.maybe_delivered && !self.idempotent && !self.keyed() => {
                    // Retrying could apply the write twice: say what is known.
                    return Err(ApiError::Unavailable(format!(
                        "no leader: the leader {} at {} did not answer ({}); the write may \
                         or may not have been applied",
                        leader.id, leader.url, e.message
                    )));
                }
                Err(e) => {
                    tracing::debug!(leader = %leader.url, error = %e.message, "forwarding failed");
                    let keyed = e.maybe_delivered && self.keyed();
                    if keyed {
                        self.maybe_applied.set(true);
                    }
                    self.pause(|| {
                        if keyed {
                            ApiError::Unavailable(format!(
                                "no leader: the leader {} at {} did not answer ({}) within the \
                                 request timeout; the write may or may not have been applied: \
                                 retry with the same Idempotency-Key",
                                leader.id, leader.url, e.message
                            ))
                        } else {
                            ApiError::Unavailable(format!(
                                "no leader: the leader {} at {} could not be reached ({})",
                                leader.id, leader.url, e.message
                            ))
                        }
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
            body: self
                .body
                .clone()
                .or_else(|| self.body_with.map(|make| make())),
            request_id: request_id.as_deref(),
            authorization: self
                .req
                .headers()
                .get(actix_web::http::header::AUTHORIZATION),
            this_node: &self.state.node_id,
            timeout: self.deadline.saturating_duration_since(Instant::now()),
            idempotency_key: self.key(),
            key_made_here: matches!(self.write_key, WriteKey::Made(_)),
        };
        self.forwarded.set(true);
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

/// Replicate `cmd` through the leader (here or by forwarding `at`'s request). Once the request
/// was forwarded under a key made here, `cmd` is proposed here only with that key.
async fn replicate(at: &Routed<'_>, cmd: Command) -> Result<Answer<CommandOutcome>, ApiError> {
    let secs = at.timeout_secs();
    // Once forwarded under a key made here, the command proposed here carries that key.
    let keyed = std::cell::OnceCell::new();
    let keyed = &keyed;
    let cmd = &cmd;
    at.run(|| async move {
        let cmd = if at.forwarded.get() && at.unkeyed_here {
            keyed.get_or_init(|| {
                let mut c = cmd.clone();
                let (Command::Set { stamp: s, .. } | Command::Delete { stamp: s, .. }) = &mut c;
                *s = stamp(at.state, at.key(), true);
                c
            })
        } else {
            cmd
        };
        let sent = timeout_at(at.deadline, at.state.raft.send(ClientWrite(cmd.clone()))).await;
        match sent {
            Err(_) => Err(write_timeout(secs)),
            Ok(Err(e)) => Err(actor_gone("raft", e)),
            Ok(Ok(outcome)) => Ok(outcome),
        }
    })
    .await
}

/// The `Idempotency-Key` of `req`, if any: 1 to 128 printable ASCII characters, else 400.
fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let mut all = req.headers().get_all(IDEMPOTENCY_KEY);
    let Some(v) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(ApiError::BadRequest(
            "Idempotency-Key must be given once, not in two headers".into(),
        ));
    }
    let b = v.as_bytes();
    if b.is_empty()
        || b.len() > MAX_IDEMPOTENCY_KEY_BYTES
        || !b.iter().all(|c| (0x21..=0x7e).contains(c))
    {
        return Err(ApiError::BadRequest(
            "Idempotency-Key must be 1 to 128 printable ASCII characters".into(),
        ));
    }
    Ok(Some(String::from_utf8_lossy(b).into_owned()))
}

/// How long a key made by a forwarding node (not by the client) is remembered: its re-sends
/// stop at that node's request deadline, so twice the request timeout, at least a minute,
/// covers them (and never more than the configured window). Such keys, one per write sent
/// through a follower without a key, would otherwise fill the table for the whole window and
/// crowd out the clients' own keys.
pub const MADE_KEY_WINDOW: Duration = Duration::from_secs(60);

/// The stamp of a write with idempotency key `id`, by this node's clock (used only if this
/// node leads: a forwarded write is stamped by the leader). `made`: the key was made by a
/// forwarding node, not sent by the client (a shorter window, [`MADE_KEY_WINDOW`]).
fn stamp(state: &AppState, id: Option<&str>, made: bool) -> Option<Stamp> {
    let id = id?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let window = if made {
        state
            .idempotency_window
            .min(MADE_KEY_WINDOW.max(2 * state.request_timeout))
    } else {
        state.idempotency_window
    };
    Some(Stamp {
        id: id.to_owned(),
        now_ms,
        expires_ms: now_ms.saturating_add(window.as_millis() as u64),
    })
}

/// Whether `req` is a write another node forwarded under an idempotency key it made itself.
fn key_made_by_peer(req: &HttpRequest) -> bool {
    let h = req.headers();
    h.contains_key(X_KVSTORE_FORWARDED) && h.contains_key(X_KVSTORE_KEY_MADE)
}

pub(super) fn index_header(res: &mut HttpResponse, index: u64) {
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&index.to_string()) {
        res.headers_mut().insert(X_KVSTORE_INDEX, v);
    }
}

/// The answer to a write that this node (the leader) applied, or whose first outcome it
/// replayed: the same status and body either way.
fn write_answer(key: &str, ok_message: &'static str, out: CommandOutcome) -> HttpResponse {
    let mut res = match out.effect {
        Effect::Stored | Effect::Deleted => HttpResponse::Ok().json(WriteReply {
            ok: true,
            message: ok_message,
            key,
            index: out.index,
        }),
        Effect::NotFound => actix_web::ResponseError::error_response(&ApiError::KeyNotFound),
        Effect::PreconditionFailed { mod_index } => {
            actix_web::ResponseError::error_response(&ApiError::PreconditionFailed {
                key: key.to_owned(),
                mod_index,
            })
        }
        Effect::KeyReused => {
            actix_web::ResponseError::error_response(&ApiError::IdempotencyKeyReused)
        }
    };
    index_header(&mut res, out.index);
    if out.replayed {
        res.headers_mut().insert(
            X_KVSTORE_IDEMPOTENT_REPLAY,
            actix_web::http::header::HeaderValue::from_static("true"),
        );
    }
    res
}

/// A forwarded answer as the client sees it: without the replay header when the key was made
/// here (the client sent none, so nothing was "replayed" for it).
fn relayed(mut res: HttpResponse, generated: bool) -> HttpResponse {
    if generated {
        res.headers_mut().remove(X_KVSTORE_IDEMPOTENT_REPLAY);
    }
    res
}

pub(super) fn parse_index(what: &str, v: Option<&str>) -> Result<Option<u64>, ApiError> {
    v.map(|s| {
        s.parse::<u64>().map_err(|_| {
            ApiError::InvalidQuery(format!("{what} must be an unsigned integer, not {s:?}"))
        })
    })
    .transpose()
}

/// `PUT /set` with `{"key":..,"value":..}` and optionally `ifModIndex`, `ifValue`.
pub async fn set(
    state: web::Data<AppState>,
    fwd: web::Data<Forwarder>,
    req: HttpRequest,
    body: web::Json<SetRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    check_key(&state.limits, &body.key)?;
    check_value(&state.limits, &body.value)?;
    if let Some(v) = &body.if_value {
        check_value(&state.limits, v)?;
    }
    let client_key = idempotency_key(&req)?;
    // The forwarded body is made only if the write is forwarded (a leader never copies the
    // value into JSON).
    let forward_body = || {
        let mut json = serde_json::json!({"key": body.key, "value": &*body.value});
        if let Some(m) = body.if_mod_index {
            json["ifModIndex"] = m.into();
        }
        if let Some(v) = &body.if_value {
            json["ifValue"] = v.as_str().into();
        }
        json
    };
    let at = Routed::new(&state, &fwd, &req, Method::PUT, "/set")
        .body_with(&forward_body)
        .write_key(client_key.as_deref());
    let cmd = Command::Set {
        key: body.key.clone(),
        value: body.value.clone(),
        if_mod_index: body.if_mod_index,
        if_value: body.if_value.clone(),
        stamp: stamp(&state, client_key.as_deref(), key_made_by_peer(&req)),
    };
    match replicate(&at, cmd).await? {
        Answer::Here(out) => Ok(write_answer(&body.key, "stored", out)),
        Answer::Forwarded(res) => Ok(relayed(res, client_key.is_none())),
    }
}

/// `DELETE /delete?key=..[&ifModIndex=N]`.
pub async fn delete(
    state: web::Data<AppState>,
    fwd: web::Data<Forwarder>,
    req: HttpRequest,
    query: web::Query<KeyQuery>,
) -> Result<HttpResponse, ApiError> {
    let key = required_key(&query)?;
    check_key(&state.limits, key)?;
    let if_mod_index = parse_index("ifModIndex", query.if_mod_index.as_deref())?;
    let client_key = idempotency_key(&req)?;
    let m = if_mod_index.map(|m| m.to_string());
    let mut q = vec![("key", key)];
    if let Some(m) = &m {
        q.push(("ifModIndex", m.as_str()));
    }
    let at = Routed::new(&state, &fwd, &req, Method::DELETE, "/delete")
        .query(&q)
        .write_key(client_key.as_deref());
    let cmd = Command::Delete {
        key: key.to_owned(),
        if_mod_index,
        stamp: stamp(&state, client_key.as_deref(), key_made_by_peer(&req)),
    };
    match replicate(&at, cmd).await? {
        Answer::Here(out) => Ok(write_answer(key, "deleted", out)),
        Answer::Forwarded(res) => Ok(relayed(res, client_key.is_none())),
    }
}

/// Whether `consistency` asks for a stale read.
pub(super) fn stale(consistency: Option<&str>) -> Result<bool, ApiError> {
    match consistency {
        // `lease` is a linearizable read that may use the leader's lease: so is the default
        // while `--lease-reads` is on (`raft::core::lease` has the argument).
        None | Some("linearizable") | Some("lease") => Ok(false),
        Some("stale") => Ok(true),
        Some(other) => Err(ApiError::InvalidQuery(format!(
            "consistency must be `linearizable` or `stale` (or `lease`), not {other:?}"
        ))),
    }
}

/// A stale read: refused on a removed node; after `min_index` is applied here, waiting at most
/// [`MIN_INDEX_WAIT`] (or the request timeout), else 503.
pub(super) async fn stale_read<T, Fut>(
    state: &AppState,
    min_index: u64,
    read: Fut,
) -> Result<T, ApiError>
where
    Fut: std::future::Future<Output = Result<Result<T, StoreStopped>, actix::MailboxError>>,
{
    // A removed node's map no longer follows the cluster: it serves no reads.
    let removed = state.raft.send(IsRemoved).await;
    if removed.map_err(|e| actor_gone("raft", e))? {
        return Err(ClientError::Removed.into());
    }
    let wait = MIN_INDEX_WAIT.min(state.request_timeout);
    match tokio::time::timeout(wait, read).await {
        Ok(Err(e)) => Err(actor_gone("store", e)),
        Ok(Ok(Err(StoreStopped))) => Err(ApiError::Internal("store stopped".into())),
        Ok(Ok(Ok(v))) => Ok(v),
        Err(_) => {
            let applied = state
                .store
                .send(Summary)
                .await
                .map_err(|e| actor_gone("store", e))?
                .applied_index;
            Err(ApiError::Unavailable(format!(
                "index {min_index} not applied here yet (applied {applied}); retry, or ask \
                 another node"
            )))
        }
    }
}

/// `GET /get?key=..[&consistency=stale][&minIndex=N]`.
pub async fn get(
    state: web::Data<AppState>,
    fwd: web::Data<Forwarder>,
    req: HttpRequest,
    query: web::Query<KeyQuery>,
) -> Result<HttpResponse, ApiError> {
    let key = required_key(&query)?;
    check_key(&state.limits, key)?;
    let stale = stale(query.consistency.as_deref())?;
    let min_index = parse_index("minIndex", query.min_index.as_deref())?;
    let read = if stale {
        let n = min_index.unwrap_or(0);
        stale_read(&state, n, read_at(&state.store, key.to_owned(), n)).await?
    } else {
        let mut q = vec![("key", key)];
        let m = min_index.map(|m| m.to_string());
        if let Some(m) = &m {
            q.push(("minIndex", m.as_str()));
        }
        // A read changes nothing: sending it twice is harmless.
        let at = Routed::new(&state, &fwd, &req, Method::GET, "/get")
            .query(&q)
            .idempotent();
        let store = &state.store;
        let k = key.to_owned();
        match linearizable(&at, min_index.unwrap_or(0), |index| {
            read_at(store, k.clone(), index)
        })
        .await?
        {
            Answer::Here(v) => v,
            Answer::Forwarded(res) => return Ok(res),
        }
    };
    let KeyRead { entry, applied } = read;
    let mut res = match entry {
        Some(v) => HttpResponse::Ok().json(GetReply {
            ok: true,
            key,
            value: &v.value,
            mod_index: v.mod_index,
            create_index: v.create_index,
        }),
        None => actix_web::ResponseError::error_response(&ApiError::KeyNotFound),
    };
    index_header(&mut res, applied);
    Ok(res)
}

/// A lease read on the leader (or ReadIndex when it holds no lease), then `read` from the store
/// once it has applied that index (or `min_index`, if later); or forward. A value read under a
/// lease is answered only if the lease is still valid by the clock read after the store
/// answered; otherwise the read is done again by ReadIndex (a paused leader never answers
/// stale).
pub(super) async fn linearizable<T, F, Fut>(
    at: &Routed<'_>,
    min_index: u64,
    read: F,
) -> Result<Answer<T>, ApiError>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<Result<T, StoreStopped>, actix::MailboxError>>,
{
    let secs = at.timeout_secs();
    let read_timeout = || {
        ApiError::Unavailable(format!(
            "no quorum: leadership could not be confirmed within {secs} s"
        ))
    };
    at.run(|| async {
        let grant = match timeout_at(at.deadline, at.state.raft.send(ClientLeaseRead)).await {
            Err(_) => return Err(read_timeout()),
            Ok(Err(e)) => return Err(actor_gone("raft", e)),
            Ok(Ok(Err(e))) => return Ok(Err(e)),
            Ok(Ok(Ok(grant))) => grant,
        };
        let value = read_at_index(at, grant.index, min_index, &read, &read_timeout).await?;
        match grant.lease_until {
            None => {
                at.state.metrics.read_served(grant.path.label());
                return Ok(Ok(value));
            }
            // The clock is read after the store answered: still within the lease.
            Some(until) if Instant::now() < until => {
                at.state.metrics.read_served("lease");
                return Ok(Ok(value));
            }
            Some(_) => {}
        }
        // The lease ran out while the value was taken (a pause, a slow store): never answer
        // it; prove leadership with a round instead.
        drop(value);
        let index = match timeout_at(at.deadline, at.state.raft.send(ClientReadIndex)).await {
            Err(_) => return Err(read_timeout()),
            Ok(Err(e)) => return Err(actor_gone("raft", e)),
            Ok(Ok(Err(e))) => return Ok(Err(e)),
            Ok(Ok(Ok(index))) => index,
        };
        let value = read_at_index(at, index, min_index, &read, &read_timeout).await?;
        at.state.metrics.read_served("read_index");
        Ok(Ok(value))
    })
    .await
}

/// `read` from the store once it has applied `index` (or `min_index`, if later), within the
/// request's deadline.
async fn read_at_index<T, F, Fut>(
    at: &Routed<'_>,
    index: u64,
    min_index: u64,
    read: &F,
    read_timeout: &dyn Fn() -> ApiError,
) -> Result<T, ApiError>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<Result<T, StoreStopped>, actix::MailboxError>>,
{
    // Waiting for a `minIndex` beyond the read index is bounded as for a stale read: a
    // follower that forwarded this read then relays the 503 before its own deadline
    // (waiting the whole request timeout, the forward timed out first and the client was
    // told the leader could not be reached).
    let wait_until = if min_index > index {
        at.deadline.min(Instant::now() + MIN_INDEX_WAIT)
    } else {
        at.deadline
    };
    match timeout_at(wait_until, read(index.max(min_index))).await {
        Err(_) if min_index > index => Err(ApiError::Unavailable(format!(
            "index {min_index} not applied here yet (read index {index}); retry, or ask \
             another node"
        ))),
        Err(_) => Err(read_timeout()),
        Ok(Err(e)) => Err(actor_gone("store", e)),
        Ok(Ok(Err(_))) => Err(ApiError::Internal("store stopped".into())),
        Ok(Ok(Ok(v))) => Ok(v),
    }
}
