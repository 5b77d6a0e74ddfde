//! `GET /watch?prefix=p&fromIndex=N`: the committed changes of the keys starting with `prefix`
//! as Server-Sent Events (`text/event-stream`), from this node (never forwarded).
//!
//! Without `fromIndex`, from the next change on; with a `Last-Event-ID: M` header and no
//! `fromIndex`, from `M + 1` (what a browser's `EventSource` sends when it reconnects). The
//! answer carries `x-kvstore-index` (the node's applied index when the stream started). A
//! `fromIndex` of 0 or not a number is a 400, one older than the node's history a 410 with
//! `oldestIndex`, one watcher too many a 503, all through [`ApiError`]. What is streamed, and
//! when a stream is cut, is the `WatchActor`'s business (`watch::actor`, `watch::hub`).
//!
//! The stream is not bound by the request timeout (it lasts as long as the client reads, or
//! until the node stops: `shutdown` ends every stream first). The request log line and the
//! request-duration metric see the time to the response's headers.

use actix_web::http::header::{HeaderName, CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::errors::ApiError;
use super::AppState;
use crate::store::actor::FlushFeed;
use crate::watch::actor::Subscribe;
use crate::watch::hub::Refusal;

/// The header a reconnecting `EventSource` sends with the last event id it saw.
const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// The query of `GET /watch`.
#[derive(Debug, Deserialize)]
pub struct WatchQuery {
    #[serde(default)]
    pub prefix: String,
    #[serde(rename = "fromIndex")]
    pub from_index: Option<String>,
}

/// `GET /watch`.
pub async fn watch(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<WatchQuery>,
) -> Result<HttpResponse, ApiError> {
    let WatchQuery { prefix, from_index } = query.into_inner();
    if prefix.len() > state.limits.max_key_bytes {
        return Err(ApiError::KeyTooLarge {
            len: prefix.len(),
            limit: state.limits.max_key_bytes,
        });
    }
    let from_index = match from_index {
        Some(n) => Some(parse_from_index(&n)?),
        None => match req.headers().get(LAST_EVENT_ID) {
            Some(v) => Some(parse_last_event_id(v.to_str().ok())?),
            None => None,
        },
    };
    // The store holds changes back while nobody watches: have it send them (and its applied
    // index) first, so the history this watch starts from is the node's own, up to now (the
    // store's message reaches the watch actor before ours).
    if let Err(e) = state.store.send(FlushFeed).await {
        tracing::error!(error = %e, "the store actor did not answer");
        return Err(ApiError::Internal("node unavailable".into()));
    }
    let answer = state.watch.send(Subscribe { prefix, from_index }).await;
    let sub = match answer {
        Ok(Ok(sub)) => sub,
        Ok(Err(Refusal::Compacted { from, oldest })) => {
            return Err(ApiError::Compacted { from, oldest })
        }
        Ok(Err(refusal)) => return Err(ApiError::Unavailable(refusal.to_string())),
        Err(e) => {
            tracing::error!(error = %e, "the watch actor did not answer");
            return Err(ApiError::Internal("node unavailable".into()));
        }
    };
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/event-stream"))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .insert_header(("x-kvstore-index", sub.index.to_string()))
        // Proxies such as nginx: send each event as it comes.
        .insert_header(("x-accel-buffering", "no"))
        .streaming(sub.events))
}

/// `fromIndex`: an integer ≥ 1.
fn parse_from_index(s: &str) -> Result<u64, ApiError> {
    match s.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(ApiError::InvalidQuery(format!(
            "fromIndex must be an integer of at least 1, not {s:?}"
        ))),
    }
}

/// `Last-Event-ID: M` → from `M + 1`.
fn parse_last_event_id(s: Option<&str>) -> Result<u64, ApiError> {
    match s.map(str::trim).map(str::parse::<u64>) {
        Some(Ok(m)) if m < u64::MAX => Ok(m + 1),
        _ => Err(ApiError::BadRequest(
            "Last-Event-ID must be an event id this stream sent (an integer)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_index_and_last_event_id_are_checked() {
        assert_eq!(parse_from_index("7"), Ok(7));
        assert!(parse_from_index("0").is_err());
        assert!(parse_from_index("-1").is_err());
        assert!(parse_from_index("x").is_err());
        assert_eq!(parse_last_event_id(Some("7")), Ok(8));
        assert_eq!(parse_last_event_id(Some("0")), Ok(1));
        assert!(parse_last_event_id(Some("x")).is_err());
        assert!(parse_last_event_id(None).is_err());
    }
}
