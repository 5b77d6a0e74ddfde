//! Time and leadership: ticks, election timeouts, pre-vote (thesis §9.6), RequestVote sent and
//! answered (§5.2, §5.4.1), check-quorum (thesis §6.2) and the role changes.
//!
//! A vote is durable ([`Output::SaveHardState`]) before it is granted or asked for; a node that
//! heard from a live leader within an election timeout (check-quorum on) refuses to help
//! depose it, unless the election follows a leadership transfer (`transfer.rs`). Votes are counted by the [`Configuration`](super::Configuration)'s voters only.

use rand::Rng;

use super::configuration::VoteResult;
use super::io::{LeaderInfo, Output, Role};
use super::progress::Progress;
use super::RaftCore;
use crate::raft::log::EntryPayload;
use crate::raft::rpc::{Message, VoteRequest, VoteResponse};
use crate::raft::{NodeId, Term};

impl RaftCore {
    pub(super) fn reset_randomized_timeout(&mut self) {
        let t = self.cfg.election_ticks;
        self.randomized_timeout = self.rng.gen_range(t..2 * t);
    }

    /// Has this node heard from a live leader within the (base) election timeout?
    /// With leases on (`lease.rs`), also while the clock says it heard from a leader (or
    /// started) within the hold.
    fn in_lease(&self) -> bool {
        self.cfg.check_quorum
            && ((self.leader.is_some() && self.election_elapsed < self.cfg.election_ticks)
                || self.lease_hold())
    }

    // ---- time -------------------------------------------------------------------------------

    pub(super) fn tick(&mut self) {
        self.election_elapsed = self.election_elapsed.saturating_add(1);
        if self.role == Role::Leader {
            self.heartbeat_elapsed += 1;
            for pr in self.progress.values_mut() {
                pr.snapshot_backoff = pr.snapshot_backoff.saturating_sub(1);
                pr.last_heard = pr.last_heard.map(|t| t.saturating_add(1));
            }
            self.tick_transfer();
            if self.election_elapsed >= self.cfg.election_ticks {
                self.election_elapsed = 0;
                if self.cfg.check_quorum {
                    let (me, progress) = (&self.cfg.id, &self.progress);
                    let active =
                        |id: &str| id == me || progress.get(id).is_some_and(|p| p.recent_active);
                    if !self.membership.current().has_quorum(active) {
                        // Lost contact with a majority: stop claiming leadership (§6.2).
                        let term = self.term;
                        self.become_follower(term, None);
                        return;
                    }
                    for pr in self.progress.values_mut() {
                        pr.recent_active = false;
                    }
                }
            }
            if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
                self.heartbeat_elapsed = 0;
                self.lease_round_started();
                self.broadcast(true);
            }
            self.pace_learners();
        } else if self.election_elapsed >= self.randomized_timeout && !self.lease_hold() {
            // While it holds (`lease.rs`) its own vote is one it may not give: wait.
            self.campaign();
        }
    }

    // ---- role changes -----------------------------------------------------------------------

    pub(super) fn become_follower(&mut self, term: Term, leader: Option<LeaderInfo>) {
        if term > self.term {
            self.term = term;
            self.voted_for = None;
            self.save_hard_state();
        }
        if self.role == Role::Leader {
            self.fail_reads(leader.clone());
            self.progress.clear();
            self.lease_reset(false);
        }
        if leader.is_some() {
            self.lease_contact();
        }
        self.transfer = None;
        self.role = Role::Follower;
        self.leader = leader;
        self.election_elapsed = 0;
        self.reset_randomized_timeout();
    }

    /// Start a pre-vote (if enabled) or an election. A node that is not a voter of its
    /// configuration never does.
    pub(super) fn campaign(&mut self) {
        if !self.membership.current().is_voter(&self.cfg.id) && !self.needed_until_committed() {
            // Not a voter here, but maybe one in a newer configuration it has not received:
            // the leader it knew is silent for a whole timeout, so its lease is over (else it
            // would refuse every vote, and a cluster needing its vote never elects again).
            self.election_elapsed = 0;
            self.leader = None;
            return;
        }
        if self.cfg.pre_vote {
            self.become_pre_candidate();
        } else {
            self.become_candidate(false);
        }
    }

    /// Whether this node, a voter before the configuration in force removed it, may still
    /// have to lead: that configuration's entry is not known committed, and this node's log
    /// may be the only one that can win (thesis §4.2.2, Figure 4.6: "a server that is not part
    /// of its own latest configuration should still start new elections, as it might still be
    /// needed until the C_new entry is committed"). Its own vote does not count; as leader it
    /// commits the change, then steps down.
    fn needed_until_committed(&self) -> bool {
        let at = self.membership.current_index();
        at > self.commit_index && at > 0 && self.membership.at(at - 1).is_voter(&self.cfg.id)
    }

    /// A new (pre-)election round: no leader, a fresh timeout, and only this node's own vote.
    fn start_round(&mut self) {
        self.leader = None;
        self.election_elapsed = 0;
        self.reset_randomized_timeout();
        self.votes.clear();
        self.votes.insert(self.cfg.id.clone(), true);
    }

    fn become_pre_candidate(&mut self) {
        self.role = Role::PreCandidate;
        self.start_round();
        if self.membership.current().vote_result(&self.votes) == VoteResult::Won {
            self.become_candidate(false);
            return;
        }
        self.request_votes(true, false);
    }

    /// An election in the next term; `transfer`: it follows a TimeoutNow (thesis §3.10), so
    /// voters that still hear from the leader vote anyway.
    pub(super) fn become_candidate(&mut self, transfer: bool) {
        self.role = Role::Candidate;
        self.start_round();
        self.term = self.term.saturating_add(1);
        self.voted_for = Some(self.cfg.id.clone());
        self.save_hard_state();
        if self.membership.current().vote_result(&self.votes) == VoteResult::Won {
            self.become_leader();
            return;
        }
        self.request_votes(false, transfer);
    }

    fn request_votes(&mut self, pre_vote: bool, transfer: bool) {
        let req = VoteRequest {
            term: if pre_vote {
                self.term.saturating_add(1)
            } else {
                self.term
            },
            candidate_id: self.cfg.id.clone(),
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            pre_vote,
            transfer,
        };
        for to in self.membership.current().voters() {
            if to.id != self.cfg.id {
                self.out.push(Output::Send {
                    to: to.id.clone(),
                    msg: Message::VoteRequest(req.clone()),
                });
            }
        }
    }

    fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(LeaderInfo {
            id: self.cfg.id.clone(),
            url: self.cfg.url.clone(),
        });
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.pending_reads.clear();
        self.read_round = None;
        self.lease_reset(true);
        // The no-op of this term: committing it commits everything before it (§5.4.2) and
        // proves which entries are committed before serving reads (§8).
        let index = self.log.append(self.term, EntryPayload::Noop);
        self.persist_from(index);
        let last = self.log.last_index();
        self.progress = self
            .peers
            .iter()
            .map(|id| (id.clone(), Progress::new(last - 1)))
            .collect();
        self.maybe_commit();
        self.lease_round_started();
        self.broadcast(false);
    }

    // ---- votes ------------------------------------------------------------------------------

    fn reply_vote(&mut self, term: Term, granted: bool, pre_vote: bool) {
        self.out
            .push(Output::Reply(Message::VoteResponse(VoteResponse {
                term,
                granted,
                pre_vote,
            })));
    }

    pub(super) fn on_vote_request(&mut self, req: VoteRequest) {
        if req.candidate_id == self.cfg.id {
            // Another node uses our id: a configuration error. Never vote for it.
            let term = self.term;
            self.reply_vote(term, false, req.pre_vote);
            return;
        }
        if req.term > self.term && self.in_lease() && !Self::is_transfer(&req) {
            // A leader is alive as far as we know: do not let this candidate disrupt it.
            let term = self.term;
            self.reply_vote(term, false, req.pre_vote);
            return;
        }
        let log_ok = self
            .log
            .is_up_to_date(req.last_log_index, req.last_log_term);
        if req.pre_vote {
            // A pre-vote changes nothing here; grant if a real election could be won.
            let granted = req.term > self.term && log_ok;
            let term = if granted { req.term } else { self.term };
            self.reply_vote(term, granted, true);
            return;
        }
        if req.term > self.term {
            // The term is adopted, but the election timer runs on: only a granted vote (below)
            // or the leader's AppendEntries reset it (Figure 2). A candidate whose log cannot
            // win would otherwise keep resetting the one node whose log can, each time it
            // retries, and no leader is ever elected (found by the membership simulation).
            let (elapsed, timeout) = (self.election_elapsed, self.randomized_timeout);
            self.become_follower(req.term, None);
            self.election_elapsed = elapsed;
            self.randomized_timeout = timeout;
        }
        if req.term < self.term {
            let term = self.term;
            self.reply_vote(term, false, false);
            return;
        }
        let can_vote = self.voted_for.as_deref() == Some(req.candidate_id.as_str())
            || (self.voted_for.is_none() && self.leader.is_none());
        if can_vote && log_ok {
            if self.voted_for.is_none() {
                self.voted_for = Some(req.candidate_id);
                self.save_hard_state();
            }
            // Granting a vote resets the election timer (§5.2), so we do not compete with it.
            self.election_elapsed = 0;
            let term = self.term;
            self.reply_vote(term, true, false);
        } else {
            let term = self.term;
            self.reply_vote(term, false, false);
        }
    }

    pub(super) fn on_vote_response(&mut self, from: NodeId, resp: VoteResponse) {
        if from == self.cfg.id || self.membership.current().member(&from).is_none() {
            return;
        }
        if resp.term > self.term && !(resp.pre_vote && resp.granted) {
            self.become_follower(resp.term, None);
            return;
        }
        let current = match self.role {
            Role::PreCandidate => {
                resp.pre_vote && (!resp.granted || resp.term == self.term.saturating_add(1))
            }
            Role::Candidate => !resp.pre_vote && resp.term == self.term,
            Role::Follower | Role::Leader => false,
        };
        if !current {
            return; // stale: from an earlier round or term
        }
        self.votes.insert(from, resp.granted);
        match self.membership.current().vote_result(&self.votes) {
            VoteResult::Won if self.role == Role::PreCandidate => self.become_candidate(false),
            VoteResult::Won => self.become_leader(),
            VoteResult::Lost => {
                let term = self.term;
                self.become_follower(term, None);
            }
            VoteResult::Pending => {}
        }
    }
}
