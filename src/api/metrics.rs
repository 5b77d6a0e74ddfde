//! `GET /metrics` (this node's metrics in the Prometheus text format) and [`track`], the
//! middleware that counts every request by matched route pattern, method and status, with its
//! latency.
//!
//! Every node reports itself: `/metrics` is never forwarded to the leader. The state gauges are
//! filled here at scrape time from the `RaftActor` ([`GetSample`]) and the `StoreActor` (its key
//! count), so the hot path pays nothing for them. Handlers here never change state.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpResponse};

use super::errors::ApiError;
use super::AppState;
use crate::metrics::{method_label, CONTENT_TYPE};
use crate::raft::actor::GetSample;
use crate::store::actor::Summary;

/// `GET /metrics`: every `kvstore_*` metric of this node.
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (sample, summary) =
        futures_util::future::join(state.raft.send(GetSample), state.store.send(Summary)).await;
    match (sample, summary) {
        (Ok(mut sample), Ok(summary)) => {
            sample.keys = summary.keys;
            Ok(HttpResponse::Ok()
                .content_type(CONTENT_TYPE)
                .body(state.metrics.render(&sample)))
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "an actor did not answer");
            Err(ApiError::Internal("node unavailable".into()))
        }
    }
}

/// Counts the request in `kvstore_http_requests_total` and observes its latency in
/// `kvstore_http_request_duration_seconds`, by matched route pattern (`/cluster/members/{id}`,
/// never the raw path; `unmatched` for none), method and status. Never changes the response.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let route = req.match_pattern();
    let method = method_label(req.method().as_str());
    let res = next.call(req).await;
    if let Some(m) = metrics {
        let status = match &res {
            Ok(r) => r.status().as_u16(),
            Err(e) => e.as_response_error().status_code().as_u16(),
        };
        m.http().record(route, method, status, started.elapsed());
    }
    res
}
