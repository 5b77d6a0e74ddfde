//! What the `RaftActor` tells the metrics: elections started and leader changes (seen from the
//! core's role, term and leader after each step, never counted inside the core), the kind of
//! each peer RPC, and [`GetSample`], its state for the gauges `/metrics` sets at scrape time.
//!
//! Recording goes through [`crate::metrics::RaftMetrics`] (a few atomic operations); without
//! metrics (tests, the simulator) nothing is recorded. It never changes Raft state.

use actix::{Context, Handler, Message as ActixMessage};

use super::RaftActor;
use crate::metrics::StateSample;
use crate::raft::core::{MemberRole, Role};
use crate::raft::rpc::Message;
use crate::raft::{NodeId, Term};

/// Asks for this node's state as the metrics gauges show it (the key count is the store's:
/// left at 0).
#[derive(Debug, Clone, Copy, ActixMessage)]
#[rtype(result = "StateSample")]
pub struct GetSample;

/// The `rpc` label of a request sent to a peer.
pub(super) fn rpc_kind(msg: &Message) -> &'static str {
    match msg {
        Message::AppendRequest(_) | Message::AppendResponse(_) => "append",
        Message::VoteRequest(_) | Message::VoteResponse(_) => "vote",
        Message::SnapshotRequest(_) | Message::SnapshotResponse(_) => "snapshot",
        Message::TimeoutNowRequest(_) | Message::TimeoutNowResponse(_) => "timeout_now",
        Message::ReadIndexRequest(_) | Message::ReadIndexResponse(_) => "read_index",
    }
}

impl RaftActor {
    /// Count what changed between the last logged `(role, term, leader)` and `now`: a new
    /// election, a new leader (or the same one in a new term).
    ///
    /// A node only enters a new term as candidate or leader by starting an election in it
    /// (a candidate always moves to a new term; a leader is one that won its own election, in
    /// the same step when it needs no other vote), so either role in a term not seen before
    /// is one election.
    pub(super) fn count_changes(&self, now: &(Role, Term, Option<NodeId>)) {
        let Some(m) = &self.metrics else { return };
        let before = &self.logged;
        if matches!(now.0, Role::Candidate | Role::Leader) && now.1 != before.1 {
            m.election_started();
        }
        if now.2.is_some() && (now.2 != before.2 || now.1 != before.1) {
            m.leader_changed();
        }
    }

    /// The role label: removed or learner by membership, else the core's role.
    fn role_label(&self) -> &'static str {
        let id = self.core.config().id.as_str();
        match self.core.configuration().role_of(id) {
            None => "removed",
            Some(MemberRole::Learner) => "learner",
            Some(MemberRole::Voter) => match self.core.role() {
                Role::Leader => "leader",
                Role::Follower => "follower",
                Role::Candidate => "candidate",
                Role::PreCandidate => "precandidate",
            },
        }
    }
}

impl Handler<GetSample> for RaftActor {
    type Result = actix::MessageResult<GetSample>;

    fn handle(&mut self, _: GetSample, _: &mut Context<Self>) -> Self::Result {
        let last_log_index = self.core.log().last_index();
        let peer_lag = match self.core.role() {
            Role::Leader => self
                .core
                .peer_progress()
                .into_iter()
                .map(|p| (p.id, last_log_index.saturating_sub(p.match_index)))
                .collect(),
            _ => Vec::new(),
        };
        actix::MessageResult(StateSample {
            term: self.core.term(),
            role: self.role_label(),
            commit_index: self.core.commit_index(),
            applied_index: self.apply.applied_index(),
            last_log_index,
            proposals_pending: self.apply.waiting(),
            reads_pending: self.pending_reads.len(),
            keys: 0,
            peer_lag,
        })
    }
}
