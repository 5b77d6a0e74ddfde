//! [`ApiError`]: every error the HTTP API can answer, mapped to a status and the original
//! project's JSON shape `{"ok":false,"message":"..."}` in exactly one place
//! ([`ResponseError`]).
//!
//! Also the error handlers that turn actix-web's own extractor failures (bad JSON, bad query,
//! oversized body) into `ApiError`s, so no plain-text error ever leaves the server.
//! This module must never decide *whether* something is an error: callers do that.

use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use std::fmt;

use crate::raft::actor::ClientError;
use crate::raft::MembershipError;

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// The body is not valid JSON or does not have the expected fields and types.
    InvalidJson(String),
    /// The query string is malformed or lacks a required parameter.
    InvalidQuery(String),
    /// The key is the empty string.
    EmptyKey,
    /// The key is longer than the configured limit (bytes of UTF-8).
    KeyTooLarge { len: usize, limit: usize },
    /// The value is longer than the configured limit (bytes of UTF-8).
    ValueTooLarge { len: usize, limit: usize },
    /// The request body is longer than the configured limit.
    BodyTooLarge { limit: usize },
    /// The query string is longer than what a legitimate request carries.
    QueryTooLong { limit: usize },
    /// No value is stored under the key.
    KeyNotFound,
    /// No route has this path.
    RouteNotFound { path: String },
    /// The route exists but not for this method.
    MethodNotAllowed { allowed: &'static str },
    /// The route exists but is switched off on this node, or the client's token has too low a
    /// role; the message says which.
    Forbidden(String),
    /// Client tokens are configured and the request has none (`invalid: false`) or one that is
    /// not known (`invalid: true`). Answered with `WWW-Authenticate: Bearer`.
    ClientUnauthorized { invalid: bool },
    /// A peer RPC from another cluster (or without a cluster id); the message names both.
    WrongCluster(String),
    /// A peer RPC without valid proof of the cluster secret; the message says what is wrong
    /// with the proof, never anything about the secret.
    PeerUnauthorized(String),
    /// Something failed inside the server; the message says what, without internals.
    Internal(String),
    /// The cluster cannot serve the request now (no leader, no quorum, overloaded); the message
    /// says why and whether a write may have been applied.
    Unavailable(String),
    /// A request that is well-formed JSON but names something invalid (a member id or URL);
    /// the message says what.
    BadRequest(String),
    /// No member of the cluster has this id (`/cluster/members/{id}`).
    MemberNotFound(String),
    /// The membership change (or leadership transfer) conflicts with the cluster's state (one
    /// already in progress, an id or URL in use, a lagging learner, ...); the message says
    /// which.
    Conflict(String),
    /// `GET /watch?fromIndex=N` with `N` older than the oldest change this node still has
    /// (`oldest`): 410 with `oldestIndex`.
    Compacted { from: u64, oldest: u64 },
    /// A compare-and-set precondition did not hold when the write was applied: 409 with the
    /// key and its current modIndex (0: it does not exist).
    PreconditionFailed { key: String, mod_index: u64 },
    /// An `Idempotency-Key` already recorded with a different request: 422.
    IdempotencyKeyReused,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::InvalidJson(why) => write!(f, "invalid JSON body: {why}"),
            ApiError::InvalidQuery(why) => write!(f, "invalid query: {why}"),
            ApiError::EmptyKey => write!(f, "key must not be empty"),
            ApiError::KeyTooLarge { len, limit } => {
                write!(f, "key too large: {len} bytes (limit {limit} bytes)")
            }
            ApiError::ValueTooLarge { len, limit } => {
                write!(f, "value too large: {len} bytes (limit {limit} bytes)")
            }
            ApiError::BodyTooLarge { limit } => {
                write!(f, "request body too large (limit {limit} bytes)")
            }
            ApiError::QueryTooLong { limit } => {
                write!(f, "query string too long (limit {limit} bytes)")
            }
            ApiError::KeyNotFound => write!(f, "key not found"),
            ApiError::Compacted { from, oldest } => write!(
                f,
                "index {from} was compacted; the oldest index available is {oldest}"
            ),
            ApiError::ClientUnauthorized { invalid: false } => write!(
                f,
                "authentication required: send `Authorization: Bearer TOKEN`"
            ),
            ApiError::ClientUnauthorized { invalid: true } => {
                write!(f, "invalid token: not a known client token")
            }
            ApiError::RouteNotFound { path } => write!(f, "no such route: {path}"),
            ApiError::MethodNotAllowed { allowed } => {
                write!(f, "method not allowed (allowed: {allowed})")
            }
            ApiError::PreconditionFailed { .. } => write!(f, "precondition failed"),
            ApiError::IdempotencyKeyReused => {
                write!(f, "Idempotency-Key reused with a different request")
            }
            ApiError::Internal(what)
            | ApiError::Unavailable(what)
            | ApiError::BadRequest(what)
            | ApiError::MemberNotFound(what)
            | ApiError::Conflict(what)
            | ApiError::Forbidden(what)
            | ApiError::WrongCluster(what)
            | ApiError::PeerUnauthorized(what) => {
                write!(f, "{what}")
            }
        }
    }
}

impl std::error::Error for ApiError {}

/// The error body of every non-2xx answer.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub ok: bool,
    pub message: String,
}

impl ErrorBody {
    /// `{"ok":false,"message":message}`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            message: message.into(),
        }
    }
}

/// What the RaftActor's refusals mean to a client: all but an internal error and the
/// membership refusals are 503s a client may retry (with the reason in the message). A
/// membership refusal: an unknown member is a 404, a leader not ready yet a 503, the others
/// 409 conflicts; `NotLeader` is routed to the leader before it gets here (503 if it does).
impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Overloaded => ApiError::Unavailable(e.to_string()),
            ClientError::Unknown(why) => ApiError::Unavailable(format!("no leader: {why}")),
            ClientError::NotApplied => ApiError::Unavailable(e.to_string()),
            ClientError::Internal(why) => ApiError::Internal(why),
            ClientError::Storage(_) => ApiError::Unavailable(e.to_string()),
            ClientError::NotLeader(_) => ApiError::Unavailable(format!("no leader: {e}")),
            ClientError::Membership(m) => match m {
                MembershipError::NotLeader(_) => ApiError::Unavailable(format!("no leader: {m}")),
                MembershipError::NotReady => ApiError::Unavailable(m.to_string()),
                MembershipError::Unknown(_) => ApiError::MemberNotFound(m.to_string()),
                other => ApiError::Conflict(other.to_string()),
            },
            ClientError::Removed | ClientError::TransferFailed(_) => {
                ApiError::Unavailable(e.to_string())
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson(_)
            | ApiError::InvalidQuery(_)
            | ApiError::EmptyKey
            | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::KeyTooLarge { .. }
            | ApiError::ValueTooLarge { .. }
            | ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::QueryTooLong { .. } => StatusCode::URI_TOO_LONG,
            ApiError::KeyNotFound
            | ApiError::RouteNotFound { .. }
            | ApiError::MemberNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::ClientUnauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::WrongCluster(_)
            | ApiError::Conflict(_)
            | ApiError::PreconditionFailed { .. } => StatusCode::CONFLICT,
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PeerUnauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Compacted { .. } => StatusCode::GONE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        if let ApiError::MethodNotAllowed { allowed } = self {
            res.insert_header((header::ALLOW, *allowed));
        }
        if let ApiError::ClientUnauthorized { invalid } = self {
            // RFC 6750 §3: the scheme, and why a token that was sent is refused.
            let value = if *invalid {
                r#"Bearer realm="kvstore", error="invalid_token""#
            } else {
                r#"Bearer realm="kvstore""#
            };
            res.insert_header((header::WWW_AUTHENTICATE, value));
        }
        if let ApiError::Compacted { oldest, .. } = self {
            return res.json(serde_json::json!({
                "ok": false,
                "message": self.to_string(),
                "oldestIndex": oldest,
            }));
        }
        if let ApiError::PreconditionFailed { key, mod_index } = self {
            return res.json(serde_json::json!({
                "ok": false,
                "message": self.to_string(),
                "key": key,
                "modIndex": mod_index,
            }));
        }
        res.json(ErrorBody::new(self.to_string()))
    }
}

/// Maps actix-web's JSON extractor failures to [`ApiError`] (installed via `JsonConfig`).
pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api = match err {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => ApiError::BodyTooLarge { limit },
        JsonPayloadError::Deserialize(e) => ApiError::InvalidJson(e.to_string()),
        JsonPayloadError::ContentType => ApiError::InvalidJson("unsupported content type".into()),
        other => ApiError::InvalidJson(other.to_string()),
    };
    api.into()
}

/// Maps actix-web's query extractor failures to [`ApiError`] (installed via `QueryConfig`).
pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let why = match err {
        QueryPayloadError::Deserialize(e) => e.to_string(),
        other => other.to_string(),
    };
    ApiError::InvalidQuery(why).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    #[actix_rt::test]
    async fn every_error_has_the_json_shape_and_its_status() {
        let cases = [
            (ApiError::InvalidJson("x".into()), 400),
            (ApiError::InvalidQuery("x".into()), 400),
            (ApiError::EmptyKey, 400),
            (ApiError::KeyTooLarge { len: 2, limit: 1 }, 413),
            (ApiError::ValueTooLarge { len: 2, limit: 1 }, 413),
            (ApiError::BodyTooLarge { limit: 1 }, 413),
            (ApiError::QueryTooLong { limit: 1 }, 414),
            (ApiError::KeyNotFound, 404),
            (ApiError::RouteNotFound { path: "/x".into() }, 404),
            (ApiError::MethodNotAllowed { allowed: "PUT" }, 405),
            (ApiError::PeerUnauthorized("unauthorized: x".into()), 401),
            (ApiError::ClientUnauthorized { invalid: false }, 401),
            (ApiError::ClientUnauthorized { invalid: true }, 401),
            (ApiError::Forbidden("role".into()), 403),
            (ApiError::Internal("boom".into()), 500),
            (ApiError::Unavailable("no leader: x".into()), 503),
            (ApiError::BadRequest("bad id".into()), 400),
            (ApiError::MemberNotFound("no member".into()), 404),
            (ApiError::Conflict("in progress".into()), 409),
            (ApiError::IdempotencyKeyReused, 422),
        ];
        for (err, status) in cases {
            let res = err.error_response();
            assert_eq!(res.status().as_u16(), status, "{err:?}");
            let body = to_bytes(res.into_body()).await.unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["ok"], false);
            assert_eq!(v["message"], err.to_string());
            assert_eq!(v.as_object().unwrap().len(), 2);
        }
    }

    #[actix_rt::test]
    async fn a_compacted_index_is_a_410_with_the_oldest_index() {
        let res = ApiError::Compacted { from: 3, oldest: 9 }.error_response();
        assert_eq!(res.status().as_u16(), 410);
        let body = to_bytes(res.into_body()).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"ok":false,"message":"index 3 was compacted; the oldest index available is 9","oldestIndex":9})
        );
    }

    #[actix_rt::test]
    async fn a_failed_precondition_names_the_key_and_its_mod_index() {
        let res = ApiError::PreconditionFailed {
            key: "k".into(),
            mod_index: 12,
        }
        .error_response();
        assert_eq!(res.status().as_u16(), 409);
        let body = to_bytes(res.into_body()).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"ok":false,"message":"precondition failed","key":"k","modIndex":12})
        );
    }

    #[test]
    fn membership_refusals_map_to_their_status_and_message() {
        let status = |e: ClientError| ApiError::from(e).status_code().as_u16();
        let m = |e: MembershipError| ClientError::Membership(e);
        assert_eq!(status(m(MembershipError::Unknown("n9".into()))), 404);
        assert_eq!(status(m(MembershipError::NotReady)), 503);
        assert_eq!(status(m(MembershipError::NotLeader(None))), 503);
        assert_eq!(status(ClientError::Removed), 503);
        assert_eq!(status(ClientError::TransferFailed("x".into())), 503);
        for e in [
            MembershipError::InProgress,
            MembershipError::TransferInProgress,
            MembershipError::IdInUse("n2".into()),
            MembershipError::UrlInUse {
                url: "http://a:1".into(),
                id: "n1".into(),
            },
            MembershipError::AlreadyVoter("n2".into()),
            MembershipError::NotAVoter("n4".into()),
            MembershipError::LastVoter("n1".into()),
            MembershipError::NoQuorum {
                reachable: 1,
                quorum: 2,
            },
            MembershipError::Lagging {
                id: "n4".into(),
                matched: 1,
                last: 900,
            },
            MembershipError::NoCandidate,
        ] {
            let api = ApiError::from(m(e.clone()));
            assert_eq!(api.status_code().as_u16(), 409, "{e:?}");
            assert_eq!(api.to_string(), e.to_string(), "the core's text, unchanged");
        }
        assert_eq!(
            ApiError::from(m(MembershipError::InProgress)).to_string(),
            "a membership change is in progress"
        );
        assert_eq!(
            ApiError::from(ClientError::Removed).to_string(),
            "this node was removed from the cluster"
        );
    }
}
