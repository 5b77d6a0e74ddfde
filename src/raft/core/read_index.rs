//! Linearizable reads without a log write: ReadIndex (thesis §6.4).
//!
//! A read arriving at the leader waits for proof that this node still leads: answers from a
//! majority of the voters to an AppendEntries sent after the read arrived (this node counts as
//! one). Reads that arrive while a round is in flight share the next round. A read is served
//! only once an entry of the leader's own term is committed (so its commit index is the
//! cluster's), at the commit index of that moment; leadership lost fails every waiting read.

use super::io::{LeaderInfo, Output, Role};
use super::progress::Progress;
use super::RaftCore;
use crate::raft::rpc::Message;

/// A read waiting for proof that this node is still the leader.
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingRead {
    pub(super) id: u64,
    /// A response to any AppendEntries with at least this `seq` was sent after the read arrived.
    pub(super) needed_seq: u64,
}

impl RaftCore {
    pub(super) fn read_index(&mut self, id: u64) {
        if self.role != Role::Leader {
            let leader = self.leader.clone();
            self.out.push(Output::ReadFailed { id, leader });
            return;
        }
        self.pending_reads.push_back(PendingRead {
            id,
            needed_seq: self.seq + 1,
        });
        if self.read_round.is_none() && !self.peers.is_empty() {
            self.start_read_round();
        }
        // A lone voter (perhaps with learners, who count for nothing) needs no answer.
        self.check_reads();
    }

    fn start_read_round(&mut self) {
        self.lease_round_started();
        self.read_round = Some(self.seq + 1);
        for k in 0..self.peers.len() {
            // A heartbeat to everyone, even followers with batches in flight.
            let to = self.peers[k].clone();
            let prev = self.progress.get(&to).map_or(0, |p| p.match_index);
            let req = self.heartbeat_request(prev);
            self.send(&to, Message::AppendRequest(req));
        }
    }

    /// The highest `seq` that a majority of the voters (this leader included: it has seen
    /// everything it sent) has answered.
    pub(super) fn quorum_acked_seq(&self) -> u64 {
        self.quorum_seq(|p| p.acked_seq)
    }

    /// The highest `seq` that a majority of the voters answered with `lease_hold` (the
    /// leader counts itself): what a lease may run from (`lease.rs`).
    pub(super) fn quorum_lease_seq(&self) -> u64 {
        self.quorum_seq(|p| p.lease_seq)
    }

    fn quorum_seq(&self, seq: impl Fn(&Progress) -> u64) -> u64 {
        let (me, progress) = (&self.cfg.id, &self.progress);
        self.membership.current().quorum_value(|id| {
            if id == me {
                u64::MAX
            } else {
                progress.get(id).map_or(0, &seq)
            }
        })
    }

    /// Serve every read whose leadership proof is complete, once an entry of this term is
    /// committed (so the commit index is the cluster's).
    pub(super) fn check_reads(&mut self) {
        self.lease_update();
        if self.role != Role::Leader || self.log.term_at(self.commit_index) != Some(self.term) {
            return;
        }
        let acked = self.quorum_acked_seq();
        while let Some(r) = self.pending_reads.front().copied() {
            if r.needed_seq > acked {
                break;
            }
            self.pending_reads.pop_front();
            let index = self.commit_index;
            self.out.push(Output::ReadReady { id: r.id, index });
        }
        if self.read_round.is_some_and(|s| s <= acked) {
            self.read_round = None;
        }
        if self.read_round.is_none() && !self.pending_reads.is_empty() && !self.peers.is_empty() {
            self.start_read_round();
        }
    }

    pub(super) fn fail_reads(&mut self, leader: Option<LeaderInfo>) {
        while let Some(r) = self.pending_reads.pop_front() {
            self.out.push(Output::ReadFailed {
                id: r.id,
                leader: leader.clone(),
            });
        }
        self.read_round = None;
    }
}
