//! Leadership transfer (thesis §3.10): the leader stops taking writes, brings the target voter
//! up to date, and sends it a TimeoutNow; the target campaigns at once, without a pre-vote,
//! with [`VoteRequest::transfer`] set, which voters grant even while they still hear from the
//! leader (the log check still applies). The transfer ends when the leader loses its
//! leadership, and is abandoned after an election timeout (the leader then takes writes again).
//!
//! While a transfer is under way proposals are refused (`ProposalRejected { leader: None }`:
//! the caller retries until a leader is known) and membership changes get
//! [`MembershipError::TransferInProgress`]: no new entry may keep the target from catching up.
//!
//! Pure: no I/O, no clock.

use super::configuration::MembershipError;
use super::io::{Output, Role};
use super::RaftCore;
use crate::raft::rpc::{Message, TimeoutNowRequest, TimeoutNowResponse, VoteRequest};
use crate::raft::NodeId;

/// A leadership transfer under way (leaders only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Transfer {
    /// The voter that is to lead.
    pub(super) to: NodeId,
    /// Ticks since it started: abandoned after an election timeout.
    pub(super) elapsed: u32,
    /// The TimeoutNow went out (once).
    pub(super) sent: bool,
}

impl RaftCore {
    pub(super) fn transfer_leadership(&mut self, to: Option<NodeId>) {
        match self.check_transfer(to) {
            Err(error) => self.out.push(Output::TransferRejected { error }),
            Ok(to) => {
                self.out.push(Output::TransferStarted { to: to.clone() });
                if to == self.cfg.id || self.transfer.is_some() {
                    return;
                }
                // The target's election passes every node's hold: no lease reads from now
                // on in this term (`lease.rs`).
                self.lease_bar();
                self.transfer = Some(Transfer {
                    to: to.clone(),
                    elapsed: 0,
                    sent: false,
                });
                // Bring it up to date (or learn how far it is), then hand over.
                self.send_append(&to, true);
                self.continue_transfer();
            }
        }
    }

    /// Whom leadership may go to now.
    fn check_transfer(&self, to: Option<NodeId>) -> Result<NodeId, MembershipError> {
        if self.role != Role::Leader {
            return Err(MembershipError::NotLeader(self.leader.clone()));
        }
        let conf = self.membership.current();
        let to = match to {
            Some(id) if id == self.cfg.id => return Ok(id),
            Some(id) => match conf.role_of(&id) {
                None => return Err(MembershipError::Unknown(id)),
                Some(_) if !conf.is_voter(&id) => return Err(MembershipError::NotAVoter(id)),
                Some(_) => id,
            },
            None => self
                .most_caught_up_voter()
                .ok_or(MembershipError::NoCandidate)?,
        };
        match &self.transfer {
            Some(t) if t.to != to => Err(MembershipError::TransferInProgress),
            _ => Ok(to),
        }
    }

    /// Send the TimeoutNow once the target holds the whole log.
    pub(super) fn continue_transfer(&mut self) {
        let last = self.log.last_index();
        let Some(t) = &self.transfer else {
            return;
        };
        if t.sent
            || self
                .progress
                .get(&t.to)
                .is_none_or(|p| p.match_index < last)
        {
            return;
        }
        let to = t.to.clone();
        if let Some(t) = &mut self.transfer {
            t.sent = true;
        }
        let msg = Message::TimeoutNowRequest(TimeoutNowRequest {
            term: self.term,
            leader_id: self.cfg.id.clone(),
        });
        self.send(&to, msg);
    }

    /// One leader tick: a transfer that did not end within an election timeout is abandoned.
    pub(super) fn tick_transfer(&mut self) {
        let limit = self.cfg.election_ticks;
        if let Some(t) = &mut self.transfer {
            t.elapsed += 1;
            if t.elapsed >= limit {
                self.transfer = None;
            }
        }
    }

    /// The voter leadership is being handed to.
    pub(super) fn transfer_target(&self) -> Option<NodeId> {
        self.transfer.as_ref().map(|t| t.to.clone())
    }

    /// A leader asks this node to campaign now: a voter of its configuration, in the leader's
    /// term, following that leader (the one it heard from in this term: a transfer first
    /// brings the target up to date, so it has), starts an election at once, without a
    /// pre-vote. A TimeoutNow from any other node (stale, or of a higher term, so from no
    /// leader this node follows) is refused: its election would pass the lease of the real
    /// leader (a transfer vote is granted even while voters hear from it).
    pub(super) fn on_timeout_now(&mut self, req: TimeoutNowRequest) {
        if req.term > self.term {
            self.become_follower(req.term, None);
        }
        let from_my_leader = self.leader.as_ref().is_some_and(|l| l.id == req.leader_id);
        let accepted = req.term == self.term
            && req.leader_id != self.cfg.id
            && from_my_leader
            && self.role != Role::Leader
            && self.membership.current().is_voter(&self.cfg.id);
        if accepted {
            self.become_candidate(true);
        }
        let term = self.term;
        self.out.push(Output::Reply(Message::TimeoutNowResponse(
            TimeoutNowResponse { term, accepted },
        )));
    }

    /// The answer to a TimeoutNow: only its term matters.
    pub(super) fn on_timeout_now_response(&mut self, from: &NodeId, resp: TimeoutNowResponse) {
        if *from != self.cfg.id && resp.term > self.term {
            self.become_follower(resp.term, None);
        }
    }

    /// A vote request for an election that follows a leadership transfer.
    pub(super) fn is_transfer(req: &VoteRequest) -> bool {
        req.transfer && !req.pre_vote
    }
}
