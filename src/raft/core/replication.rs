//! Log replication (§5.3) and commitment (§5.4): proposals, AppendEntries sent by the leader
//! with flow control, received and checked by followers, their answers, and the commit index.
//!
//! The leader keeps a [`Progress`](super::progress::Progress) per peer, probes one request at
//! a time after a rejection, and once the follower's log matches pipelines up to
//! [`MAX_INFLIGHT`](super::MAX_INFLIGHT) batches of a backlog (at least
//! [`PIPELINE_MIN_ENTRIES`] entries or [`PIPELINE_MIN_BYTES`] waiting), one smaller batch at a
//! time. Proposals that arrive while a batch is in flight or the window is full wait in the
//! log and go out together in the next batch. Entries commit when stored on a majority of the
//! voters and of the current term (§5.4.2); a leader counts its own log only up to what is
//! durable, and a follower persists new entries before it acknowledges them. Committed entries
//! come out as [`Output::Apply`], in order, exactly once. A committed entry is never replaced.

use super::configuration::MemberRole;
use super::io::{
    learner_budget, LeaderInfo, Output, Role, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES,
    MAX_LEARNER_CREDIT, PIPELINE_MIN_BYTES, PIPELINE_MIN_ENTRIES,
};
use super::progress::ProgressState;
use super::RaftCore;
use crate::raft::log::{Entry, EntryPayload};
use crate::raft::rpc::{AppendRequest, AppendResponse, Message};
use crate::raft::{LogIndex, NodeId, Term};
use crate::store::Command;

impl RaftCore {
    // ---- the leader's side ------------------------------------------------------------------

    /// Send every peer what it needs: entries if the window allows, else a heartbeat (when
    /// `heartbeat`, a heartbeat also goes to peers that are up to date).
    pub(super) fn broadcast(&mut self, heartbeat: bool) {
        for k in 0..self.peers.len() {
            let to = self.peers[k].clone();
            self.send_append(&to, heartbeat);
        }
    }

    pub(super) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn append_request(
        &mut self,
        prev: LogIndex,
        entries: Vec<Entry>,
        commit: LogIndex,
    ) -> AppendRequest {
        AppendRequest {
            term: self.term,
            leader_id: self.cfg.id.clone(),
            leader_url: self.cfg.url.clone(),
            prev_log_index: prev,
            prev_log_term: self.log.term_at(prev).unwrap_or(0),
            entries,
            leader_commit: commit,
            seq: self.next_seq(),
        }
    }

    /// An empty AppendEntries (heartbeat, read round) to a follower whose log matches up to
    /// `prev`. Below the log's base the term at `prev` is unknown: index 0 (always matching)
    /// stands in, so the heartbeat still proves leadership without misleading the follower.
    pub(super) fn heartbeat_request(&mut self, prev: LogIndex) -> AppendRequest {
        let prev = if self.log.term_at(prev).is_some() {
            prev
        } else {
            0
        };
        let commit = self.commit_index.min(prev);
        self.append_request(prev, Vec::new(), commit)
    }

    /// Send `to` its next batch if flow control allows; otherwise, if `heartbeat`, an empty
    /// AppendEntries at a point its log is known to match (or the probe point). Learners get
    /// entries only from [`Self::pace_learners`], once a tick.
    pub(super) fn send_append(&mut self, to: &NodeId, heartbeat: bool) {
        let paced = self.membership.current().role_of(to) == Some(MemberRole::Learner);
        self.send_append_within(to, heartbeat, (!paced).then_some(MAX_BATCH_BYTES), true);
    }

    /// On every tick of a leader: each learner gets one batch of at most
    /// [`learner_budget`] bytes (see there for why), if its window is open.
    ///
    /// The budget of a tick on which a learner had entries to get but its window was full (its
    /// round trip is longer than [`MAX_INFLIGHT`](super::MAX_INFLIGHT) ticks: far away, or slow
    /// to store) is kept as credit for its later batches (each still at most
    /// [`MAX_BATCH_BYTES`]). Without it such a learner gets at most `MAX_INFLIGHT` budgets a
    /// round trip, less than the writes once the round trip exceeds twice that many ticks, and
    /// never catches up.
    pub(super) fn pace_learners(&mut self) {
        let appended = std::mem::take(&mut self.appended_bytes);
        self.append_rate = (self.append_rate.saturating_mul(7) + appended) / 8;
        let budget = learner_budget(self.append_rate);
        let last = self.log.last_index();
        for k in 0..self.peers.len() {
            let to = self.peers[k].clone();
            if self.membership.current().role_of(&to) != Some(MemberRole::Learner) {
                continue;
            }
            let Some(pr) = self.progress.get_mut(&to) else {
                continue;
            };
            let open = pr.window_open();
            if pr.state != ProgressState::Replicate || pr.next_index > last {
                pr.credit = 0;
            } else if !open {
                pr.credit = pr.credit.saturating_add(budget).min(MAX_LEARNER_CREDIT);
            }
            let credit = pr.credit;
            let sent = self.send_append_within(
                &to,
                false,
                Some(budget.saturating_add(credit).min(MAX_BATCH_BYTES)),
                false,
            );
            if let Some(pr) = self.progress.get_mut(&to) {
                pr.credit = credit.saturating_sub(sent.saturating_sub(budget));
            }
        }
    }

    /// [`Self::send_append`] with a byte bound on the entries sent (`None`: no entries now,
    /// only the snapshot or heartbeat a follower may need). With `hold_small`, entries go to a
    /// follower that already has a batch in flight only if they are worth pipelining
    /// ([`PIPELINE_MIN_ENTRIES`]); else they wait for its answer. Returns the bytes of entries
    /// sent.
    fn send_append_within(
        &mut self,
        to: &NodeId,
        heartbeat: bool,
        max_bytes: Option<usize>,
        hold_small: bool,
    ) -> usize {
        let last = self.log.last_index();
        let Some(pr) = self.progress.get(to) else {
            return 0;
        };
        // A small batch waits for the one in flight (see PIPELINE_MIN_ENTRIES).
        let wait_for_answer = hold_small
            && pr.state == ProgressState::Replicate
            && !pr.inflight.is_empty()
            && !self
                .log
                .holds_at_least(pr.next_index, PIPELINE_MIN_ENTRIES, PIPELINE_MIN_BYTES);
        let window_open = pr.window_open() && !wait_for_answer;
        if window_open && pr.next_index <= self.log.base_index() {
            // The entries it needs were compacted: only a snapshot can catch it up (§7).
            if pr.snapshot_backoff == 0 {
                self.send_snapshot(to);
            } else if heartbeat {
                let prev = pr.match_index;
                let req = self.heartbeat_request(prev);
                self.send(to, Message::AppendRequest(req));
            }
        } else if let (true, true, Some(max_bytes)) =
            (window_open, pr.next_index <= last, max_bytes)
        {
            let next = pr.next_index;
            let entries = self.log.entries_from(next, MAX_BATCH_ENTRIES, max_bytes);
            let bytes: usize = entries.iter().map(Entry::size_hint).sum();
            let sent_last = next + entries.len() as u64 - 1;
            let commit = self.commit_index;
            let req = self.append_request(next - 1, entries, commit);
            if let Some(pr) = self.progress.get_mut(to) {
                pr.inflight.push(req.seq);
                if pr.state == ProgressState::Replicate {
                    pr.next_index = sent_last + 1;
                }
            }
            self.send(to, Message::AppendRequest(req));
            return bytes;
        } else if heartbeat {
            // Only commit what the follower is known to hold.
            let prev = if pr.state == ProgressState::Probe && pr.inflight.is_empty() {
                pr.next_index - 1
            } else {
                pr.match_index
            };
            let req = self.heartbeat_request(prev);
            self.send(to, Message::AppendRequest(req));
        }
        0
    }

    pub(super) fn send(&mut self, to: &NodeId, msg: Message) {
        self.out.push(Output::Send {
            to: to.clone(),
            msg,
        });
    }

    /// Advance the commit index to the highest index stored on a majority of the voters, if it
    /// is of the current term (§5.4.2), and emit what became committed.
    pub(super) fn maybe_commit(&mut self) {
        let (me, durable, progress) = (&self.cfg.id, self.durable_index, &self.progress);
        let n = self.membership.current().quorum_value(|id| {
            if id == me {
                durable
            } else {
                progress.get(id).map_or(0, |p| p.match_index)
            }
        });
        if n > self.commit_index && self.log.term_at(n) == Some(self.term) {
            self.commit_to(n);
            self.check_reads();
        }
    }

    pub(super) fn commit_to(&mut self, index: LogIndex) {
        let index = index.min(self.log.last_index());
        if index <= self.commit_index {
            return;
        }
        let before = self.commit_index;
        self.commit_index = index;
        if self.membership.changes_in(before, index) {
            // The committed configuration changed: members removed are no longer replicated to.
            self.configuration_changed();
        }
        if self.commit_index > self.applied_emitted {
            let entries = self.log.slice(self.applied_emitted + 1, self.commit_index);
            self.applied_emitted = self.commit_index;
            self.out.push(Output::Apply(entries));
        }
    }

    /// Client commands, each its own entry with its own `Proposed` (or `ProposalRejected`)
    /// output, in order; entries proposed together are persisted and sent together (one
    /// `PersistEntries`, one AppendEntries per follower whose window is open).
    pub(super) fn propose(&mut self, commands: Vec<Command>) {
        if self.transfer.is_some() || self.role != Role::Leader {
            // Handing leadership over: no new entry may keep the target from catching up.
            let leader = match self.transfer {
                Some(_) => None,
                None => self.leader.clone(),
            };
            for _ in &commands {
                let leader = leader.clone();
                self.out.push(Output::ProposalRejected { leader });
            }
            return;
        }
        let first = self.log.last_index() + 1;
        let term = self.term;
        for command in commands {
            let index = self.log.append(term, EntryPayload::Command { command });
            if let Some(e) = self.log.entry(index) {
                self.appended_bytes = self.appended_bytes.saturating_add(e.size_hint());
            }
            self.out.push(Output::Proposed { index, term });
        }
        if self.log.last_index() < first {
            return;
        }
        self.persist_from(first);
        self.maybe_commit();
        self.broadcast(false);
    }

    /// Ask for the entries from `index` to the end of the log to be made durable.
    pub(super) fn persist_from(&mut self, index: LogIndex) {
        let entries = self.log.slice(index, self.log.last_index());
        if !entries.is_empty() {
            self.out.push(Output::PersistEntries(entries));
        }
    }

    /// Entries up to `index` are durable here; a leader may now count itself for them.
    pub(super) fn on_persisted(&mut self, index: LogIndex) {
        self.durable_index = self.durable_index.max(index.min(self.log.last_index()));
        if self.role == Role::Leader {
            self.maybe_commit();
        }
    }

    pub(super) fn on_send_failed(&mut self, to: &NodeId, seq: Option<u64>) {
        if self.role != Role::Leader {
            return;
        }
        let backoff = self.cfg.election_ticks;
        let (Some(seq), Some(pr)) = (seq, self.progress.get_mut(to)) else {
            return;
        };
        if pr.inflight.contains(&seq) {
            if pr.state == ProgressState::Snapshot {
                // Do not start streaming a large file again at once.
                pr.snapshot_backoff = backoff;
            }
            // Lost: resynchronise from what is known to match.
            pr.probe();
            pr.next_index = pr.match_index + 1;
        }
    }

    /// Common to every answer a leader gets: a higher term deposes it; an answer from a
    /// non-member or of an older term is stale. True when the answer is current (and the peer
    /// counts as active for check-quorum).
    pub(super) fn current_answer(&mut self, from: &NodeId, term: Term) -> bool {
        if *from == self.cfg.id || self.member(from).is_none() {
            return false;
        }
        if term > self.term {
            self.become_follower(term, None);
            return false;
        }
        if self.role != Role::Leader || term != self.term {
            return false; // stale
        }
        match self.progress.get_mut(from) {
            Some(pr) => {
                pr.recent_active = true;
                pr.last_heard = Some(0);
                true
            }
            None => false,
        }
    }

    pub(super) fn on_append_response(&mut self, from: NodeId, resp: AppendResponse) {
        let from = if resp.term == self.term {
            self.learn_id(from, resp.node_id.as_ref())
        } else {
            from
        };
        if !self.current_answer(&from, resp.term) {
            return;
        }
        let last = self.log.last_index();
        let seq_now = self.seq;
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.acked_seq = pr.acked_seq.max(resp.seq);
        if resp.lease_hold {
            pr.lease_seq = pr.lease_seq.max(resp.seq);
        }
        let was_inflight = pr.take_inflight(resp.seq);
        if pr.state == ProgressState::Snapshot {
            // A snapshot is on its way: heartbeats still count (leadership, reads), but only
            // the snapshot's own answer moves the follower on.
            if resp.success && resp.match_index > pr.match_index {
                pr.match_index = resp.match_index.min(last);
                pr.match_seq = seq_now;
                self.maybe_commit();
            }
            self.check_reads();
            return;
        }
        if resp.success {
            if resp.match_index > pr.match_index {
                pr.match_index = resp.match_index.min(last);
                pr.match_seq = seq_now;
            }
            pr.next_index = pr.next_index.max(pr.match_index + 1);
            if pr.state == ProgressState::Probe && was_inflight {
                pr.state = ProgressState::Replicate;
            }
            self.maybe_commit();
        } else {
            let lost_data = resp.reject_index == pr.match_index
                && pr.match_index > 0
                && resp.seq > pr.match_seq;
            let current = resp.reject_index > pr.match_index
                && match pr.state {
                    ProgressState::Probe => resp.reject_index + 1 == pr.next_index,
                    ProgressState::Replicate => was_inflight,
                    ProgressState::Snapshot => false,
                };
            if lost_data || current {
                // The follower's log differs at reject_index: skip back by whole terms (§5.3).
                let hint = match resp.conflict_term {
                    Some(t) => match self.log.last_index_of_term(t) {
                        Some(i) if i < resp.reject_index => i + 1,
                        _ => resp.conflict_index,
                    },
                    None => resp.conflict_index,
                };
                if let Some(pr) = self.progress.get_mut(&from) {
                    if lost_data {
                        // Only a node that lost its log (restarted without storage) can fail
                        // where it once matched: forget what it had.
                        pr.match_index = 0;
                    }
                    pr.probe();
                    let hi = resp.reject_index.max(pr.match_index + 1);
                    pr.next_index = hint.clamp(pr.match_index + 1, hi);
                }
            } else if was_inflight {
                // Rejected only because it overtook an earlier batch (pipelined requests travel
                // on separate connections): what it carried is not on the follower, so send it
                // again from what is known to match.
                pr.probe();
                pr.next_index = pr.match_index + 1;
            }
        }
        self.check_reads();
        self.send_append(&from, false);
    }

    // ---- the follower's side ----------------------------------------------------------------

    /// Append an entry from the leader; a configuration entry is in force at once.
    fn push_entry(&mut self, entry: Entry) {
        let config = match &entry.payload {
            EntryPayload::Config { configuration } => Some((entry.index, configuration.clone())),
            _ => None,
        };
        self.log.push(entry);
        if let Some((index, configuration)) = config {
            self.membership.push(index, configuration);
            self.configuration_changed();
        }
    }

    /// Every answer names this node, so a leader that knows it by URL only learns its id.
    /// An answer with a non-zero `seq` is one to a request accepted from the leader of this
    /// term: it says this node holds for that leader (`lease.rs`); any other has `seq` 0.
    fn reply_append(&mut self, mut resp: AppendResponse) {
        resp.node_id = Some(self.cfg.id.clone());
        resp.lease_hold = resp.seq != 0 && self.lease_hold();
        self.out.push(Output::Reply(Message::AppendResponse(resp)));
    }

    pub(super) fn on_append_request(&mut self, req: AppendRequest) {
        let (req_seq, req_prev) = (req.seq, req.prev_log_index);
        // A request not accepted (malformed, or not from the leader of this term) is refused
        // with `seq` 0: its answer proves nothing to the leader, neither for ReadIndex nor for
        // its lease.
        let refuse = move |term| AppendResponse {
            term,
            success: false,
            reject_index: req_prev,
            ..AppendResponse::default()
        };
        let reject = move |term| AppendResponse {
            term,
            success: false,
            match_index: 0,
            seq: req_seq,
            reject_index: req_prev,
            conflict_term: None,
            conflict_index: 0,
            node_id: None,
            lease_hold: false, // set by `reply_append`
        };
        let well_formed = req.entries.iter().enumerate().all(|(i, e)| {
            e.index == req.prev_log_index + 1 + i as u64
                && e.term <= req.term
                && e.term >= req.prev_log_term
                && (i == 0 || e.term >= req.entries[i - 1].term)
        });
        if !well_formed || req.leader_commit == u64::MAX {
            // Not something a correct leader sends: refuse without changing anything.
            let resp = refuse(self.term);
            self.reply_append(resp);
            return;
        }
        if req.term < self.term || req.leader_id == self.cfg.id {
            // A stale leader learns our term from the answer and steps down.
            let resp = refuse(self.term);
            self.reply_append(resp);
            return;
        }
        if self.role == Role::Leader && req.term == self.term {
            // Two leaders in one term would break election safety; refuse, change nothing.
            let resp = refuse(self.term);
            self.reply_append(resp);
            return;
        }
        let leader = LeaderInfo {
            id: req.leader_id.clone(),
            url: req.leader_url.clone(),
        };
        self.become_follower(req.term, Some(leader));
        let term = self.term;
        let mut req = req;
        let base = self.log.base_index();
        if req.prev_log_index < base {
            // Our snapshot holds everything up to `base`; it is committed, so it matches the
            // leader's log there. Skip the entries it covers and check from the base on.
            let skip = ((base - req.prev_log_index) as usize).min(req.entries.len());
            let covered: Vec<Entry> = req.entries.drain(..skip).collect();
            req.prev_log_index += skip as u64;
            if let Some(e) = covered.last() {
                req.prev_log_term = e.term;
            }
            if req.prev_log_index < base {
                // Nothing here is new to us: say how far we match.
                let resp = AppendResponse {
                    term,
                    success: true,
                    match_index: base,
                    seq: req.seq,
                    ..AppendResponse::default()
                };
                self.reply_append(resp);
                return;
            }
        }
        // Consistency check (§5.3), with the hints for fast back-off.
        match self.log.term_at(req.prev_log_index) {
            None => {
                let mut resp = reject(term);
                resp.conflict_index = self.log.last_index() + 1;
                self.reply_append(resp);
                return;
            }
            Some(t) if t != req.prev_log_term => {
                let mut resp = reject(term);
                resp.conflict_term = Some(t);
                resp.conflict_index = self.log.first_index_of_term_at(req.prev_log_index);
                self.reply_append(resp);
                return;
            }
            Some(_) => {}
        }
        let last_new = req.prev_log_index + req.entries.len() as u64;
        let mut first_new = None;
        for entry in req.entries {
            match self.log.term_at(entry.index) {
                Some(t) if t == entry.term => continue, // already have it
                Some(_) => {
                    if entry.index <= self.commit_index {
                        // Never happens in a correct cluster: a committed entry is never
                        // replaced. Refuse rather than corrupt the state machine.
                        if let Some(i) = first_new {
                            self.persist_from(i);
                        }
                        let resp = reject(term);
                        self.reply_append(resp);
                        return;
                    }
                    self.log.truncate_from(entry.index);
                    self.membership_truncated(entry.index);
                    self.durable_index = self.durable_index.min(entry.index - 1);
                    first_new.get_or_insert(entry.index);
                    self.push_entry(entry);
                }
                None => {
                    first_new.get_or_insert(entry.index);
                    self.push_entry(entry);
                }
            }
        }
        // Durable before the acknowledgement below leaves (persist before send).
        if let Some(i) = first_new {
            self.persist_from(i);
        }
        if req.leader_commit > self.commit_index {
            self.commit_to(req.leader_commit.min(last_new));
        }
        let resp = AppendResponse {
            term,
            success: true,
            match_index: last_new,
            seq: req.seq,
            reject_index: 0,
            conflict_term: None,
            conflict_index: 0,
            node_id: None,
            lease_hold: false, // set by `reply_append`
        };
        self.reply_append(resp);
    }
}
