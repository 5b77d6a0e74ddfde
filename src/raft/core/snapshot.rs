//! Log compaction and InstallSnapshot (§7): dropping the applied prefix of the log, streaming a
//! snapshot to a follower behind the log's start (the caller moves the bytes; the core decides
//! when, and what the answers mean), and installing a received one as the log's new base.
//!
//! A snapshot's prefix is committed: installing one never moves the commit index backwards and
//! never replaces a log that already holds it; one that conflicts with the log replaces it
//! durably ([`Output::ResetLog`]) before the answer leaves.

use super::io::{InstalledSnapshot, LeaderInfo, Output, Role, SnapshotHeader};
use super::progress::ProgressState;
use super::RaftCore;
use crate::raft::rpc::{Message, SnapshotRequest, SnapshotResponse};
use crate::raft::{LogIndex, NodeId};

impl RaftCore {
    /// A snapshot up to at least `index` is durable: drop the log up to there (never past what
    /// was applied).
    pub(super) fn compact(&mut self, index: LogIndex) {
        // While a snapshot is on its way to a follower, keep the log: the entries after the
        // snapshot being sent must still be here when it arrives (under load, a newer snapshot
        // would otherwise have dropped them, and the follower would need another snapshot, and
        // another).
        let sending = self
            .progress
            .values()
            .any(|p| p.state == ProgressState::Snapshot);
        if !sending && self.log.compact_to(index.min(self.applied_emitted)) {
            self.membership.compact_to(self.log.base_index());
        }
    }

    // ---- the leader's side ------------------------------------------------------------------

    /// Start a snapshot transfer to `to`, whose next entry was compacted away.
    pub(super) fn send_snapshot(&mut self, to: &NodeId) {
        let seq = self.next_seq();
        let Some(pr) = self.progress.get_mut(to) else {
            return;
        };
        pr.state = ProgressState::Snapshot;
        pr.inflight = vec![seq];
        let header = SnapshotHeader {
            term: self.term,
            leader_id: self.cfg.id.clone(),
            leader_url: self.cfg.url.clone(),
            seq,
        };
        self.out.push(Output::SendSnapshot {
            to: to.clone(),
            header,
        });
    }

    pub(super) fn on_snapshot_response(&mut self, from: NodeId, resp: SnapshotResponse) {
        if !self.current_answer(&from, resp.term) {
            return;
        }
        let last = self.log.last_index();
        let (seq_now, backoff) = (self.seq, self.cfg.election_ticks);
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.acked_seq = pr.acked_seq.max(resp.seq);
        if pr.state != ProgressState::Snapshot || !pr.inflight.contains(&resp.seq) {
            return; // an answer to an earlier transfer
        }
        match resp.match_index {
            Some(m) => {
                if m > pr.match_index {
                    pr.match_index = m.min(last);
                    pr.match_seq = seq_now;
                }
                pr.probe();
                pr.next_index = pr.match_index + 1;
                self.maybe_commit();
            }
            None => {
                // The follower did not take it: try again later.
                pr.snapshot_backoff = backoff;
                pr.probe();
            }
        }
        self.check_reads();
        self.send_append(&from, false);
    }

    // ---- the follower's side ----------------------------------------------------------------

    fn reply_snapshot(&mut self, resp: SnapshotResponse) {
        self.out
            .push(Output::Reply(Message::SnapshotResponse(resp)));
    }

    /// A chunk of a snapshot from a leader (its data is the caller's business). Answers
    /// "stale" (our term), "done" (`match_index` set: we have it all already) or "go on"
    /// (neither: the caller takes the chunk and fills in the offset it expects next).
    pub(super) fn on_snapshot_request(&mut self, req: SnapshotRequest) {
        if req.term < self.term
            || req.leader_id == self.cfg.id
            || (self.role == Role::Leader && req.term == self.term)
        {
            let resp = SnapshotResponse {
                term: self.term,
                seq: req.seq,
                ..SnapshotResponse::default()
            };
            self.reply_snapshot(resp);
            return;
        }
        let leader = LeaderInfo {
            id: req.leader_id.clone(),
            url: req.leader_url.clone(),
        };
        self.become_follower(req.term, Some(leader));
        let done = (req.index <= self.commit_index).then_some(req.index);
        let resp = SnapshotResponse {
            term: self.term,
            seq: req.seq,
            match_index: done,
            ..SnapshotResponse::default()
        };
        self.reply_snapshot(resp);
    }

    /// The whole snapshot `snap` is durable here: make it the base of the log, unless the log
    /// already went past it meanwhile.
    pub(super) fn install_snapshot(&mut self, snap: InstalledSnapshot) {
        if snap.term < self.term {
            let resp = SnapshotResponse {
                term: self.term,
                seq: snap.seq,
                ..SnapshotResponse::default()
            };
            self.reply_snapshot(resp);
            return;
        }
        if snap.index > self.commit_index {
            let reset = self.log.install_base(snap.index, snap.last_term);
            self.membership
                .install(snap.index, snap.configuration.clone(), reset);
            self.commit_index = snap.index;
            self.applied_emitted = snap.index;
            self.out.push(Output::RestoreSnapshot { index: snap.index });
            if reset {
                self.durable_index = snap.index;
                self.out.push(Output::ResetLog {
                    index: snap.index,
                    term: snap.last_term,
                });
            } else {
                self.durable_index = self.durable_index.max(snap.index);
            }
            self.configuration_changed();
        }
        let resp = SnapshotResponse {
            term: self.term,
            seq: snap.seq,
            match_index: Some(snap.index),
            ..SnapshotResponse::default()
        };
        self.reply_snapshot(resp);
    }
}
