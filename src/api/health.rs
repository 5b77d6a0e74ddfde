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
use crate::raft::{LogIndex, NodeId, Term};
use crate::store::actor::Summary;

/// The body of `GET /health`: `{"ok":true, "id", "state", "term", "leaderId", "leader",
/// "lastHeartbeatAgoMs", "votedFor", "url", "peerUrl" (with `--peer-port`), "peers",
/// "lastLogIndex", "lastLogTerm", ..., "membership", "configIndex",
/// "store": {"appliedIndex", "digest", "keys"}}`.
#[derive(Debug, Serialize)]
pub struct Health {
    pub ok: bool,
    #[serde(flatten)]
    pub status: StatusJson,
    /// The peer listener's URL (`--peer-port`), which the other nodes list in PEERS.
    #[serde(rename = "peerUrl", skip_serializing_if = "Option::is_none")]
    pub peer_url: Option<String>,
    pub store: StoreHealth,
}

/// The Raft actor's [`NodeStatus`] as JSON: the same fields, in camelCase, in this order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusJson {
    pub id: NodeId,
    /// `leader`, `follower` or `candidate`; `removed` when this node is not a member of its
    /// configuration in force.
    pub state: &'static str,
    pub term: Term,
    pub leader_id: Option<NodeId>,
    /// The leader's base URL.
    pub leader: Option<String>,
    /// Milliseconds since the last valid AppendEntries from the current leader (0 on the leader;
    /// null before any).
    pub last_heartbeat_ago_ms: Option<u64>,
    pub voted_for: Option<NodeId>,
    /// This node's base URL.
    pub url: String,
    /// The other members' base URLs (voters and learners) of the configuration in force.
    pub peers: Vec<String>,
    pub last_log_index: u64,
    pub last_log_term: Term,
    pub commit_index: LogIndex,
    /// Highest index applied to the key-value map.
    pub applied_index: LogIndex,
    /// Index of the newest snapshot (0 if none); the log holds entries from a little before it.
    pub snapshot_index: LogIndex,
    /// The log's base: entries up to here are only in a snapshot.
    pub log_start_index: LogIndex,
    /// Why the log cannot be written right now (e.g. a full disk), if it cannot.
    pub storage_error: Option<String>,
    /// `voter`, `learner` or `removed`.
    pub membership: &'static str,
    /// The index of the configuration entry in force (0: the bootstrap configuration).
    pub config_index: LogIndex,
    /// This node leads and holds a valid lease: linearizable reads here need no network round.
    pub lease: bool,
}

impl From<NodeStatus> for StatusJson {
    fn from(s: NodeStatus) -> Self {
        StatusJson {
            id: s.id,
            state: s.state,
            term: s.term,
            leader_id: s.leader_id,
            leader: s.leader,
            last_heartbeat_ago_ms: s.last_heartbeat_ago_ms,
            voted_for: s.voted_for,
            url: s.url,
            peers: s.peers,
            last_log_index: s.last_log_index,
            last_log_term: s.last_log_term,
            commit_index: s.commit_index,
            applied_index: s.applied_index,
            snapshot_index: s.snapshot_index,
            log_start_index: s.log_start_index,
            storage_error: s.storage_error,
            membership: s.membership,
            config_index: s.config_index,
            lease: s.lease,
        }
    }
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
            status: status.into(),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON of `/health` keeps its keys, their order and their types.
    #[test]
    fn the_status_json_has_the_same_shape() {
        let status = NodeStatus {
            id: "n1".into(),
            state: "leader",
            term: 3,
            leader_id: Some("n1".into()),
            leader: Some("http://a:1".into()),
            last_heartbeat_ago_ms: Some(0),
            voted_for: None,
            url: "http://a:1".into(),
            peers: vec!["http://b:2".into()],
            last_log_index: 9,
            last_log_term: 3,
            commit_index: 8,
            applied_index: 7,
            snapshot_index: 0,
            log_start_index: 0,
            storage_error: None,
            membership: "voter",
            configuration: crate::raft::Configuration::new(vec![
                crate::raft::Member::new("n1", "http://a:1"),
                crate::raft::Member::new("n2", "http://b:2"),
            ])
            .unwrap(),
            config_index: 4,
            progress: Vec::new(),
            last_contact_ms: Vec::new(),
            transfer: None,
            lease: false,
        };
        let health = Health {
            ok: true,
            status: status.into(),
            peer_url: None,
            store: StoreHealth {
                applied_index: 7,
                digest: "00".into(),
                keys: 1,
            },
        };
        assert_eq!(
            serde_json::to_string(&health).unwrap(),
            r#"{"ok":true,"id":"n1","state":"leader","term":3,"leaderId":"n1","leader":"http://a:1","lastHeartbeatAgoMs":0,"votedFor":null,"url":"http://a:1","peers":["http://b:2"],"lastLogIndex":9,"lastLogTerm":3,"commitIndex":8,"appliedIndex":7,"snapshotIndex":0,"logStartIndex":0,"storageError":null,"membership":"voter","configIndex":4,"lease":false,"store":{"appliedIndex":7,"digest":"00","keys":1}}"#
        );
    }
}
