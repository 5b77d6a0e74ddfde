//! `GET /health`: who this node is and what it believes about leadership.
//!
//! Read-only and cheap: it is the baseline route of the benchmarks. It must never change state.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::AppState;

/// The body of `GET /health`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health<'a> {
    pub ok: bool,
    pub id: &'a str,
    /// `leader`, `follower` or `candidate`.
    pub state: &'static str,
    pub term: u64,
    pub leader_id: Option<&'a str>,
    /// Base URL of the leader, as clients should reach it.
    pub leader: Option<&'a str>,
    /// Milliseconds since the last heartbeat from the leader (0 on the leader itself).
    pub last_heartbeat_ago_ms: u64,
    pub peers: &'a [String],
}

/// `GET /health`. A single node is a cluster of one: always its own leader, in term 1.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let node = &state.node;
    HttpResponse::Ok().json(Health {
        ok: true,
        id: &node.id,
        state: "leader",
        term: 1,
        leader_id: Some(&node.id),
        leader: Some(&node.url),
        last_heartbeat_ago_ms: 0,
        peers: &[],
    })
}
