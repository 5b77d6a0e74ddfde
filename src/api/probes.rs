//! `GET /livez` and `GET /readyz`: probes for load balancers and orchestrators. Neither needs
//! a token, and neither is forwarded: each node answers for itself.
//!
//! - `/livez`: `200 {"ok":true,"status":"live"}` while the process serves HTTP.
//! - `/readyz`: `200 {"ok":true,"status":"ready","leaderId","appliedIndex"}` when this node can
//!   serve a linearizable read now: it is a member, its log is writable, a leader is known and
//!   it has applied everything it knew committed; otherwise `503 {"ok":false,"message":"not
//!   ready: <reason>"}` ([`readiness`] says which reason).
//!
//! Read-only: they must never change state.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::errors::ApiError;
use super::AppState;
use crate::raft::actor::{GetStatus, NodeStatus};
use crate::raft::{LogIndex, NodeId};

/// The body of `/livez`.
#[derive(Debug, Serialize)]
struct Live {
    ok: bool,
    status: &'static str,
}

/// The body of a ready `/readyz`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ready {
    pub ok: bool,
    pub status: &'static str,
    pub leader_id: NodeId,
    pub applied_index: LogIndex,
}

/// `GET /livez`.
pub async fn livez() -> HttpResponse {
    HttpResponse::Ok().json(Live {
        ok: true,
        status: "live",
    })
}

/// `GET /readyz`.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let status = state.raft.send(GetStatus).await.map_err(|e| {
        tracing::error!(error = %e, "the raft actor did not answer");
        ApiError::Unavailable("not ready: the raft actor did not answer".into())
    })?;
    let ready =
        readiness(&status).map_err(|why| ApiError::Unavailable(format!("not ready: {why}")))?;
    Ok(HttpResponse::Ok().json(ready))
}

/// Whether a node with `s` is ready, or why not: `this node was removed from the cluster`,
/// `storage error: ...`, `no leader known`, `applying: applied N of M committed`.
pub fn readiness(s: &NodeStatus) -> Result<Ready, String> {
    if s.removed() {
        return Err("this node was removed from the cluster".into());
    }
    if let Some(e) = &s.storage_error {
        return Err(format!("storage error: {e}"));
    }
    let Some(leader_id) = s.leader_id.clone() else {
        return Err("no leader known".into());
    };
    if s.applied_index < s.commit_index {
        return Err(format!(
            "applying: applied {} of {} committed",
            s.applied_index, s.commit_index
        ));
    }
    Ok(Ready {
        ok: true,
        status: "ready",
        leader_id,
        applied_index: s.applied_index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> NodeStatus {
        NodeStatus {
            id: "n1".into(),
            state: "follower",
            term: 3,
            leader_id: Some("n2".into()),
            leader: Some("http://b:2".into()),
            last_heartbeat_ago_ms: Some(10),
            voted_for: None,
            url: "http://a:1".into(),
            peers: vec!["http://b:2".into()],
            last_log_index: 9,
            last_log_term: 3,
            commit_index: 8,
            applied_index: 8,
            snapshot_index: 0,
            log_start_index: 0,
            storage_error: None,
            membership: "voter",
            configuration: crate::raft::Configuration::new(vec![
                crate::raft::Member::new("n1", "http://a:1"),
                crate::raft::Member::new("n2", "http://b:2"),
            ])
            .unwrap(),
            config_index: 0,
            progress: Vec::new(),
            last_contact_ms: Vec::new(),
            transfer: None,
            lease: false,
        }
    }

    #[test]
    fn a_member_with_a_leader_that_applied_what_it_knew_committed_is_ready() {
        let ready = readiness(&status()).unwrap();
        assert_eq!(
            serde_json::to_string(&ready).unwrap(),
            r#"{"ok":true,"status":"ready","leaderId":"n2","appliedIndex":8}"#
        );
    }

    #[test]
    fn each_reason_to_be_unready_is_named() {
        let mut s = status();
        s.leader_id = None;
        assert_eq!(readiness(&s).unwrap_err(), "no leader known");
        let mut s = status();
        s.applied_index = 5;
        assert_eq!(
            readiness(&s).unwrap_err(),
            "applying: applied 5 of 8 committed"
        );
        let mut s = status();
        s.storage_error = Some("disk full".into());
        assert_eq!(readiness(&s).unwrap_err(), "storage error: disk full");
        let mut s = status();
        s.membership = "removed";
        assert_eq!(
            readiness(&s).unwrap_err(),
            "this node was removed from the cluster"
        );
    }
}
