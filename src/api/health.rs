//! `GET /health`: who this node is and what it believes about leadership, from the
//! `RaftActor`, and a summary of the map (applied index, digest, key count) from the
//! `StoreActor`.
//!
//! Read-only: it is also the baseline route of the benchmarks. It must never change state.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::errors::ApiError;
use super::AppState;
use crate::raft::actor::GetStatus;
use crate::raft::actor::NodeStatus;
use crate::store::Summary;

/// The body of `GET /health`: `{"ok":true, "id", "state", "term", "leaderId", "leader",
/// "lastHeartbeatAgoMs", "votedFor", "url", "peerUrl" (with `--peer-port`), "peers",
/// "lastLogIndex", "lastLogTerm", ...,
/// "store": {"appliedIndex", "digest", "keys"}}`.
#[derive(Debug, Serialize)]
pub struct Health {
    pub ok: bool,
    #[serde(flatten)]
    pub status: NodeStatus,
    /// The peer listener's URL (`--peer-port`), which the other nodes list in PEERS.
    #[serde(rename = "peerUrl", skip_serializing_if = "Option::is_none")]
    pub peer_url: Option<String>,
    pub store: StoreHealth,
}

/// What the key-value map holds: replicas whose `appliedIndex` is equal must show the same
/// `digest` (an order-independent checksum of every pair, hex).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreHealth {
    pub applied_index: u64,
    pub digest: String,
    pub keys: usize,
}

/// `GET /health`.
pub async fn health(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (status, summary) =
        futures_util::future::join(state.raft.send(GetStatus), state.store.send(Summary)).await;
    match (status, summary) {
        (Ok(status), Ok(s)) => Ok(HttpResponse::Ok().json(Health {
            ok: true,
            status,
            peer_url: state.peer_url.clone(),
            store: StoreHealth {
                applied_index: s.applied_index,
                digest: format!("{:016x}", s.digest),
                keys: s.keys,
            },
        })),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "an actor did not answer");
            Err(ApiError::Internal("node unavailable".into()))
        }
    }
}
