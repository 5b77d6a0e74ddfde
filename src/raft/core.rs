//! [`RaftCore`]: the Raft state machine for one node: roles, terms, votes, timers in ticks,
//! pre-vote and check-quorum.
//!
//! Pure: it never reads a clock, does no I/O and spawns nothing. Each call to [`RaftCore::step`]
//! takes one [`Input`] and returns the [`Output`]s to carry out, **in order**: a
//! [`Output::SaveHardState`] always comes before any message that depends on it (persist before
//! send, before granting a vote). Time is counted in ticks; the randomness of election timeouts
//! comes from a seeded RNG, so every scenario replays exactly.
//!
//! Peers are numbered [`PeerId`]s (their position in the configured peer list). Requests arrive
//! without a `PeerId` (they name their sender by [`NodeId`]); responses come back from the peer
//! the request was sent to.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::log::RaftLog;
use super::rpc::{AppendRequest, AppendResponse, Message, VoteRequest, VoteResponse};
use super::{LogIndex, NodeId, PeerId, Term};

/// The role a node plays in its current term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Follower,
    /// Running a pre-vote: asking whether it could win before bumping its term.
    PreCandidate,
    Candidate,
    Leader,
}

impl Role {
    /// `leader`, `follower` or `candidate` (a pre-candidate reports `candidate`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Follower => "follower",
            Role::PreCandidate | Role::Candidate => "candidate",
            Role::Leader => "leader",
        }
    }
}

/// Fixed settings of a core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreConfig {
    /// This node's id, unique in the cluster.
    pub id: NodeId,
    /// This node's base URL, sent to followers so they can name the leader.
    pub url: String,
    /// Number of other voters; [`PeerId`]s are `0..peers`.
    pub peers: usize,
    /// Ticks between heartbeats from a leader.
    pub heartbeat_ticks: u32,
    /// Base election timeout in ticks; each election waits a random time in `[T, 2T)`.
    pub election_ticks: u32,
    /// Run a pre-vote before each election (thesis §9.6).
    pub pre_vote: bool,
    /// A leader that has not heard from a majority for an election timeout steps down, and
    /// nodes that heard from a leader within one ignore vote requests.
    pub check_quorum: bool,
}

/// The state that must survive a restart (Figure 2: currentTerm, votedFor).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HardState {
    pub term: Term,
    pub voted_for: Option<NodeId>,
}

/// The known leader of the current term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderInfo {
    pub id: NodeId,
    pub url: String,
}

/// What happens to the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// One unit of time passed.
    Tick,
    /// A request from another node (its answer is an [`Output::Reply`]).
    Request(Message),
    /// The answer from `from` to a request this node sent.
    Response { from: PeerId, msg: Message },
    /// Start an election now (a single-node cluster does this at start-up).
    Campaign,
}

/// What the caller must do, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Durably store term and vote before carrying out any later output.
    SaveHardState(HardState),
    /// Send a request to a peer; feed its answer back as [`Input::Response`].
    Send { to: PeerId, msg: Message },
    /// Answer the request being stepped.
    Reply(Message),
}

/// A snapshot of the core's state for status reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub id: NodeId,
    pub role: Role,
    pub term: Term,
    pub voted_for: Option<NodeId>,
    pub leader: Option<LeaderInfo>,
    pub last_log_index: LogIndex,
    pub last_log_term: Term,
}

/// The Raft state machine of one node. See the module docs for the contract.
#[derive(Debug)]
pub struct RaftCore {
    cfg: CoreConfig,
    rng: SmallRng,
    term: Term,
    voted_for: Option<NodeId>,
    role: Role,
    leader: Option<LeaderInfo>,
    log: RaftLog,
    /// Ticks since the last reset: leader contact or granted vote (followers), election start
    /// (candidates), last quorum check (leaders).
    election_elapsed: u32,
    /// Ticks since the last heartbeat broadcast (leaders only).
    heartbeat_elapsed: u32,
    /// This round's election timeout, in `[election_ticks, 2 * election_ticks)`.
    randomized_timeout: u32,
    /// Answers in the current (pre-)election, by peer: `Some(true)` granted.
    votes: Vec<Option<bool>>,
    /// Peers heard from since the last quorum check (leaders only).
    recent_active: Vec<bool>,
    out: Vec<Output>,
}

impl RaftCore {
    /// A follower with the given durable state and log, its election timer seeded by `seed`.
    pub fn new(cfg: CoreConfig, hard: HardState, log: RaftLog, seed: u64) -> Self {
        assert!(
            cfg.heartbeat_ticks >= 1,
            "heartbeat must be at least one tick"
        );
        assert!(
            cfg.election_ticks > cfg.heartbeat_ticks,
            "election timeout must exceed the heartbeat interval"
        );
        let peers = cfg.peers;
        let mut core = RaftCore {
            cfg,
            rng: SmallRng::seed_from_u64(seed),
            term: hard.term,
            voted_for: hard.voted_for,
            role: Role::Follower,
            leader: None,
            log,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_timeout: 0,
            votes: vec![None; peers],
            recent_active: vec![false; peers],
            out: Vec::new(),
        };
        core.reset_randomized_timeout();
        core
    }

    /// Feed one input; returns what to do, in order.
    pub fn step(&mut self, input: Input) -> Vec<Output> {
        match input {
            Input::Tick => self.tick(),
            Input::Campaign => {
                if self.role != Role::Leader {
                    self.campaign();
                }
            }
            Input::Request(Message::VoteRequest(req)) => self.on_vote_request(req),
            Input::Request(Message::AppendRequest(req)) => self.on_append_request(req),
            Input::Response {
                from,
                msg: Message::VoteResponse(resp),
            } => self.on_vote_response(from, resp),
            Input::Response {
                from,
                msg: Message::AppendResponse(resp),
            } => self.on_append_response(from, resp),
            // A response stepped as a request or the reverse: a caller bug; ignore it.
            Input::Request(_) | Input::Response { .. } => {}
        }
        std::mem::take(&mut self.out)
    }

    /// Current role, term, vote, leader and log position.
    pub fn status(&self) -> Status {
        Status {
            id: self.cfg.id.clone(),
            role: self.role,
            term: self.term,
            voted_for: self.voted_for.clone(),
            leader: self.leader.clone(),
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn term(&self) -> Term {
        self.term
    }

    pub fn leader(&self) -> Option<&LeaderInfo> {
        self.leader.as_ref()
    }

    /// The configuration this core runs with.
    pub fn config(&self) -> &CoreConfig {
        &self.cfg
    }

    /// The current randomized election timeout, in ticks (for tests and diagnostics).
    pub fn randomized_timeout(&self) -> u32 {
        self.randomized_timeout
    }

    /// Votes needed to win: a majority of all voters, this node included.
    fn quorum(&self) -> usize {
        let voters = self.cfg.peers + 1;
        voters / 2 + 1
    }

    fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            voted_for: self.voted_for.clone(),
        }
    }

    fn save_hard_state(&mut self) {
        let hs = self.hard_state();
        self.out.push(Output::SaveHardState(hs));
    }

    fn reset_randomized_timeout(&mut self) {
        let t = self.cfg.election_ticks;
        self.randomized_timeout = self.rng.gen_range(t..2 * t);
    }

    /// Has this node heard from a live leader within the (base) election timeout?
    fn in_lease(&self) -> bool {
        self.cfg.check_quorum
            && self.leader.is_some()
            && self.election_elapsed < self.cfg.election_ticks
    }

    // ---- time -------------------------------------------------------------------------------

    fn tick(&mut self) {
        self.election_elapsed = self.election_elapsed.saturating_add(1);
        if self.role == Role::Leader {
            self.heartbeat_elapsed += 1;
            if self.election_elapsed >= self.cfg.election_ticks {
                self.election_elapsed = 0;
                if self.cfg.check_quorum {
                    let active = self.recent_active.iter().filter(|a| **a).count();
                    if active + 1 < self.quorum() {
                        // Lost contact with a majority: stop claiming leadership (§6.2).
                        let term = self.term;
                        self.become_follower(term, None);
                        return;
                    }
                    self.recent_active.iter_mut().for_each(|a| *a = false);
                }
            }
            if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
                self.heartbeat_elapsed = 0;
                self.broadcast_heartbeat();
            }
        } else if self.election_elapsed >= self.randomized_timeout {
            self.campaign();
        }
    }

    // ---- role changes -----------------------------------------------------------------------

    fn become_follower(&mut self, term: Term, leader: Option<LeaderInfo>) {
        if term > self.term {
            self.term = term;
            self.voted_for = None;
            self.save_hard_state();
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.election_elapsed = 0;
        self.reset_randomized_timeout();
    }

    /// Start a pre-vote (if enabled) or an election.
    fn campaign(&mut self) {
        if self.cfg.pre_vote {
            self.become_pre_candidate();
        } else {
            self.become_candidate();
        }
    }

    fn start_round(&mut self) {
        self.leader = None;
        self.election_elapsed = 0;
        self.reset_randomized_timeout();
        self.votes.iter_mut().for_each(|v| *v = None);
    }

    fn become_pre_candidate(&mut self) {
        self.role = Role::PreCandidate;
        self.start_round();
        if self.quorum() == 1 {
            self.become_candidate();
            return;
        }
        self.request_votes(true);
    }

    fn become_candidate(&mut self) {
        self.role = Role::Candidate;
        self.start_round();
        self.term += 1;
        self.voted_for = Some(self.cfg.id.clone());
        self.save_hard_state();
        if self.quorum() == 1 {
            self.become_leader();
            return;
        }
        self.request_votes(false);
    }

    fn request_votes(&mut self, pre_vote: bool) {
        let req = VoteRequest {
            term: if pre_vote { self.term + 1 } else { self.term },
            candidate_id: self.cfg.id.clone(),
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            pre_vote,
        };
        for p in 0..self.cfg.peers {
            self.out.push(Output::Send {
                to: PeerId(p),
                msg: Message::VoteRequest(req.clone()),
            });
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
        self.recent_active.iter_mut().for_each(|a| *a = false);
        self.broadcast_heartbeat();
    }

    fn broadcast_heartbeat(&mut self) {
        let req = AppendRequest {
            term: self.term,
            leader_id: self.cfg.id.clone(),
            leader_url: self.cfg.url.clone(),
            prev_log_index: self.log.last_index(),
            prev_log_term: self.log.last_term(),
            entries: Vec::new(),
            leader_commit: 0,
        };
        for p in 0..self.cfg.peers {
            self.out.push(Output::Send {
                to: PeerId(p),
                msg: Message::AppendRequest(req.clone()),
            });
        }
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

    fn on_vote_request(&mut self, req: VoteRequest) {
        if req.candidate_id == self.cfg.id {
            // Another node uses our id: a configuration error. Never vote for it.
            let term = self.term;
            self.reply_vote(term, false, req.pre_vote);
            return;
        }
        if req.term > self.term && self.in_lease() {
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
            self.become_follower(req.term, None);
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

    fn on_vote_response(&mut self, from: PeerId, resp: VoteResponse) {
        if from.0 >= self.cfg.peers {
            return;
        }
        if resp.term > self.term && !(resp.pre_vote && resp.granted) {
            self.become_follower(resp.term, None);
            return;
        }
        let current = match self.role {
            Role::PreCandidate => resp.pre_vote && (!resp.granted || resp.term == self.term + 1),
            Role::Candidate => !resp.pre_vote && resp.term == self.term,
            Role::Follower | Role::Leader => false,
        };
        if !current {
            return; // stale: from an earlier round or term
        }
        self.votes[from.0] = Some(resp.granted);
        let granted = 1 + self.votes.iter().filter(|v| **v == Some(true)).count();
        let rejected = self.votes.iter().filter(|v| **v == Some(false)).count();
        if granted >= self.quorum() {
            if self.role == Role::PreCandidate {
                self.become_candidate();
            } else {
                self.become_leader();
            }
        } else if rejected >= self.quorum() {
            let term = self.term;
            self.become_follower(term, None);
        }
    }

    // ---- append entries ---------------------------------------------------------------------

    fn on_append_request(&mut self, req: AppendRequest) {
        if req.term < self.term || req.leader_id == self.cfg.id {
            // A stale leader learns our term from the answer and steps down.
            let term = self.term;
            self.out
                .push(Output::Reply(Message::AppendResponse(AppendResponse {
                    term,
                    success: false,
                    match_index: 0,
                })));
            return;
        }
        if self.role == Role::Leader && req.term == self.term {
            // Two leaders in one term would break election safety; refuse, change nothing.
            let term = self.term;
            self.out
                .push(Output::Reply(Message::AppendResponse(AppendResponse {
                    term,
                    success: false,
                    match_index: 0,
                })));
            return;
        }
        let leader = LeaderInfo {
            id: req.leader_id,
            url: req.leader_url,
        };
        self.become_follower(req.term, Some(leader));
        let term = self.term;
        self.out
            .push(Output::Reply(Message::AppendResponse(AppendResponse {
                term,
                success: true,
                match_index: self.log.last_index(),
            })));
    }

    fn on_append_response(&mut self, from: PeerId, resp: AppendResponse) {
        if from.0 >= self.cfg.peers {
            return;
        }
        if resp.term > self.term {
            self.become_follower(resp.term, None);
            return;
        }
        if self.role == Role::Leader && resp.term == self.term {
            self.recent_active[from.0] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    //! Scenarios named after the Raft paper (§5.2 leader election) and the thesis (§9.6
    //! pre-vote, §6.2 check-quorum). Each steps cores by hand and asserts the exact outputs.

    use super::*;
    use crate::raft::log::EntryPayload;

    const HB: u32 = 1;
    const ET: u32 = 10;

    fn cfg(id: &str, peers: usize, pre_vote: bool, check_quorum: bool) -> CoreConfig {
        CoreConfig {
            id: id.into(),
            url: format!("http://{id}"),
            peers,
            heartbeat_ticks: HB,
            election_ticks: ET,
            pre_vote,
            check_quorum,
        }
    }

    fn core(id: &str, peers: usize) -> RaftCore {
        RaftCore::new(
            cfg(id, peers, false, false),
            HardState::default(),
            RaftLog::new(),
            1,
        )
    }

    fn core_with(id: &str, peers: usize, pre_vote: bool, check_quorum: bool) -> RaftCore {
        RaftCore::new(
            cfg(id, peers, pre_vote, check_quorum),
            HardState::default(),
            RaftLog::new(),
            7,
        )
    }

    fn vote_req(term: Term, from: &str, last_index: LogIndex, last_term: Term) -> Message {
        Message::VoteRequest(VoteRequest {
            term,
            candidate_id: from.into(),
            last_log_index: last_index,
            last_log_term: last_term,
            pre_vote: false,
        })
    }

    fn pre_vote_req(term: Term, from: &str) -> Message {
        Message::VoteRequest(VoteRequest {
            term,
            candidate_id: from.into(),
            last_log_index: 0,
            last_log_term: 0,
            pre_vote: true,
        })
    }

    fn vote_resp(term: Term, granted: bool) -> Message {
        Message::VoteResponse(VoteResponse {
            term,
            granted,
            pre_vote: false,
        })
    }

    fn pre_vote_resp(term: Term, granted: bool) -> Message {
        Message::VoteResponse(VoteResponse {
            term,
            granted,
            pre_vote: true,
        })
    }

    fn heartbeat(term: Term, from: &str) -> Message {
        Message::AppendRequest(AppendRequest {
            term,
            leader_id: from.into(),
            leader_url: format!("http://{from}"),
            prev_log_index: 0,
            prev_log_term: 0,
            entries: vec![],
            leader_commit: 0,
        })
    }

    fn append_ok(term: Term) -> Message {
        Message::AppendResponse(AppendResponse {
            term,
            success: true,
            match_index: 0,
        })
    }

    fn reply(out: &[Output]) -> &Message {
        match out.last() {
            Some(Output::Reply(m)) => m,
            other => panic!("expected a reply last, got {other:?}"),
        }
    }

    /// Tick until the core starts campaigning; returns the outputs of that tick.
    fn tick_until_campaign(c: &mut RaftCore) -> Vec<Output> {
        for _ in 0..2 * ET {
            let out = c.step(Input::Tick);
            if !out.is_empty() {
                return out;
            }
        }
        panic!("no campaign within 2 election timeouts");
    }

    /// Make a fresh core the leader of term 1 with all peers' votes.
    fn elect(c: &mut RaftCore) {
        tick_until_campaign(c);
        for p in 0..c.config().peers {
            c.step(Input::Response {
                from: PeerId(p),
                msg: vote_resp(c.term(), true),
            });
        }
        assert_eq!(c.role(), Role::Leader);
    }

    #[test]
    fn s5_2_follower_times_out_within_t_to_2t_and_campaigns() {
        let mut c = core("a", 2);
        let timeout = c.randomized_timeout();
        assert!((ET..2 * ET).contains(&timeout));
        for _ in 0..timeout - 1 {
            assert!(c.step(Input::Tick).is_empty());
        }
        let out = c.step(Input::Tick);
        assert_eq!(c.role(), Role::Candidate);
        assert_eq!(c.term(), 1);
        assert_eq!(
            out,
            vec![
                Output::SaveHardState(HardState {
                    term: 1,
                    voted_for: Some("a".into())
                }),
                Output::Send {
                    to: PeerId(0),
                    msg: vote_req(1, "a", 0, 0)
                },
                Output::Send {
                    to: PeerId(1),
                    msg: vote_req(1, "a", 0, 0)
                },
            ],
            "the vote for itself is persisted before any request leaves"
        );
    }

    #[test]
    fn s5_2_candidate_with_a_majority_becomes_leader_and_sends_heartbeats() {
        let mut c = core("a", 2);
        tick_until_campaign(&mut c);
        let out = c.step(Input::Response {
            from: PeerId(1),
            msg: vote_resp(1, true),
        });
        assert_eq!(c.role(), Role::Leader);
        assert_eq!(
            c.leader(),
            Some(&LeaderInfo {
                id: "a".into(),
                url: "http://a".into()
            })
        );
        assert_eq!(
            out,
            vec![
                Output::Send {
                    to: PeerId(0),
                    msg: heartbeat(1, "a")
                },
                Output::Send {
                    to: PeerId(1),
                    msg: heartbeat(1, "a")
                },
            ]
        );
        // Heartbeats repeat every heartbeat interval.
        let out = c.step(Input::Tick);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn s5_2_candidate_rejected_by_a_majority_returns_to_follower() {
        let mut c = core("a", 2);
        tick_until_campaign(&mut c);
        c.step(Input::Response {
            from: PeerId(0),
            msg: vote_resp(1, false),
        });
        assert_eq!(
            c.role(),
            Role::Candidate,
            "one rejection is not a majority of 3"
        );
        c.step(Input::Response {
            from: PeerId(1),
            msg: vote_resp(1, false),
        });
        assert_eq!(c.role(), Role::Follower);
        assert_eq!(c.term(), 1);
    }

    #[test]
    fn s5_2_a_voter_grants_at_most_one_vote_per_term() {
        let mut c = core("v", 2);
        let out = c.step(Input::Request(vote_req(1, "a", 0, 0)));
        assert_eq!(
            out,
            vec![
                Output::SaveHardState(HardState {
                    term: 1,
                    voted_for: None
                }),
                Output::SaveHardState(HardState {
                    term: 1,
                    voted_for: Some("a".into())
                }),
                Output::Reply(vote_resp(1, true)),
            ],
            "the vote is durable before it is granted"
        );
        let out = c.step(Input::Request(vote_req(1, "b", 5, 5)));
        assert_eq!(out, vec![Output::Reply(vote_resp(1, false))]);
        // Asking again for the same candidate is idempotent.
        let out = c.step(Input::Request(vote_req(1, "a", 0, 0)));
        assert_eq!(out, vec![Output::Reply(vote_resp(1, true))]);
        // A new term frees the vote.
        let out = c.step(Input::Request(vote_req(2, "b", 0, 0)));
        assert_eq!(*reply(&out), vote_resp(2, true));
        assert_eq!(c.status().voted_for.as_deref(), Some("b"));
    }

    #[test]
    fn s5_4_1_vote_denied_to_a_candidate_with_a_less_up_to_date_log() {
        let mut log = RaftLog::new();
        log.append(1, EntryPayload::Noop);
        log.append(2, EntryPayload::Noop);
        let mut c = RaftCore::new(
            cfg("v", 2, false, false),
            HardState {
                term: 2,
                voted_for: None,
            },
            log,
            1,
        );
        // Lower last term, though longer.
        let out = c.step(Input::Request(vote_req(3, "a", 9, 1)));
        assert_eq!(*reply(&out), vote_resp(3, false));
        assert_eq!(
            c.term(),
            3,
            "the higher term is adopted even when the vote is denied"
        );
        // Same last term, shorter.
        let out = c.step(Input::Request(vote_req(4, "b", 1, 2)));
        assert_eq!(*reply(&out), vote_resp(4, false));
        // Same last term, as long: granted.
        let out = c.step(Input::Request(vote_req(5, "c", 2, 2)));
        assert_eq!(*reply(&out), vote_resp(5, true));
    }

    #[test]
    fn s5_1_stale_term_requests_are_rejected_with_the_current_term() {
        let mut c = core("v", 2);
        c.step(Input::Request(heartbeat(5, "L")));
        let out = c.step(Input::Request(vote_req(4, "a", 10, 10)));
        assert_eq!(out, vec![Output::Reply(vote_resp(5, false))]);
        let out = c.step(Input::Request(heartbeat(3, "old")));
        assert_eq!(
            out,
            vec![Output::Reply(Message::AppendResponse(AppendResponse {
                term: 5,
                success: false,
                match_index: 0
            }))]
        );
        assert_eq!(c.leader().map(|l| l.id.as_str()), Some("L"));
    }

    #[test]
    fn s5_1_a_higher_term_forces_a_leader_to_step_down() {
        let mut c = core("a", 2);
        elect(&mut c);
        let out = c.step(Input::Response {
            from: PeerId(0),
            msg: Message::AppendResponse(AppendResponse {
                term: 7,
                success: false,
                match_index: 0,
            }),
        });
        assert_eq!(c.role(), Role::Follower);
        assert_eq!(c.term(), 7);
        assert_eq!(c.leader(), None);
        assert_eq!(
            out,
            vec![Output::SaveHardState(HardState {
                term: 7,
                voted_for: None
            })]
        );
        // And a heartbeat of a higher term makes a candidate a follower of its sender.
        let mut c = core("b", 2);
        tick_until_campaign(&mut c);
        c.step(Input::Request(heartbeat(1, "x")));
        assert_eq!(c.role(), Role::Follower);
        assert_eq!(c.leader().unwrap().id, "x");
    }

    #[test]
    fn s5_2_heartbeats_keep_a_follower_from_campaigning() {
        let mut c = core("f", 2);
        for _ in 0..10 * ET {
            let out = c.step(Input::Tick);
            assert!(out.is_empty(), "campaigned despite heartbeats: {out:?}");
            if c.election_elapsed >= ET / 2 {
                c.step(Input::Request(heartbeat(1, "L")));
            }
        }
        assert_eq!(c.role(), Role::Follower);
    }

    #[test]
    fn s5_2_election_safety_at_most_one_leader_per_term_on_a_lossless_network() {
        // Five cores, every message delivered at once; many seeds. Split votes must resolve and
        // no term may ever have two leaders.
        for seed in 0..200u64 {
            let n = 5;
            let mut cores: Vec<RaftCore> = (0..n)
                .map(|i| {
                    RaftCore::new(
                        cfg(&format!("n{i}"), n - 1, seed % 2 == 0, seed % 3 == 0),
                        HardState::default(),
                        RaftLog::new(),
                        seed * 31 + i as u64,
                    )
                })
                .collect();
            let mut leaders_by_term: std::collections::HashMap<Term, String> = Default::default();
            let mut elected = false;
            for _ in 0..20 * ET {
                for i in 0..n {
                    let out = cores[i].step(Input::Tick);
                    deliver(&mut cores, i, out);
                }
                for c in &cores {
                    if c.role() == Role::Leader {
                        let prev = leaders_by_term.insert(c.term(), c.cfg.id.clone());
                        assert!(
                            prev.is_none() || prev.as_deref() == Some(c.cfg.id.as_str()),
                            "seed {seed}: two leaders in term {}",
                            c.term()
                        );
                        elected = true;
                    }
                }
            }
            assert!(elected, "seed {seed}: no leader elected");
            let leaders: Vec<_> = cores.iter().filter(|c| c.role() == Role::Leader).collect();
            assert_eq!(
                leaders.len(),
                1,
                "seed {seed}: one stable leader at the end"
            );
        }
    }

    /// Deliver `out` of node `from` to the other cores synchronously, recursively.
    fn deliver(cores: &mut [RaftCore], from: usize, out: Vec<Output>) {
        for o in out {
            if let Output::Send { to, msg } = o {
                // PeerId k of node i is the k-th other node.
                let target = if to.0 >= from { to.0 + 1 } else { to.0 };
                let replies = cores[target].step(Input::Request(msg));
                let mut follow_up = Vec::new();
                for r in replies {
                    if let Output::Reply(resp) = r {
                        let peer_of_target = if target < from { target } else { target - 1 };
                        follow_up.extend(cores[from].step(Input::Response {
                            from: PeerId(peer_of_target),
                            msg: resp,
                        }));
                    }
                }
                deliver(cores, from, follow_up);
            }
        }
    }

    #[test]
    fn s9_6_pre_vote_does_not_bump_terms() {
        let mut c = core_with("a", 2, true, false);
        let out = tick_until_campaign(&mut c);
        assert_eq!(c.role(), Role::PreCandidate);
        assert_eq!(c.term(), 0, "a pre-candidate keeps its term");
        assert_eq!(
            out,
            vec![
                Output::Send {
                    to: PeerId(0),
                    msg: pre_vote_req(1, "a")
                },
                Output::Send {
                    to: PeerId(1),
                    msg: pre_vote_req(1, "a")
                },
            ],
            "nothing is persisted for a pre-vote"
        );
        // A voter answers a pre-vote without changing its own term or vote.
        let mut v = core_with("v", 2, true, false);
        let out = v.step(Input::Request(pre_vote_req(1, "a")));
        assert_eq!(out, vec![Output::Reply(pre_vote_resp(1, true))]);
        assert_eq!(v.term(), 0);
        assert_eq!(v.status().voted_for, None);
        // With a majority of pre-votes the real election starts, in term 1.
        let out = c.step(Input::Response {
            from: PeerId(0),
            msg: pre_vote_resp(1, true),
        });
        assert_eq!(c.role(), Role::Candidate);
        assert_eq!(c.term(), 1);
        assert!(matches!(out[0], Output::SaveHardState(_)));
        assert_eq!(
            out[1],
            Output::Send {
                to: PeerId(0),
                msg: vote_req(1, "a", 0, 0)
            }
        );
    }

    #[test]
    fn s9_6_a_partitioned_node_keeps_its_term_and_cannot_disrupt_the_leader() {
        // Node "p" is cut off: its pre-votes go unanswered, so its term stays put however long.
        let mut p = core_with("p", 2, true, true);
        for _ in 0..50 * ET {
            p.step(Input::Tick);
        }
        assert_eq!(p.term(), 0);
        assert_eq!(p.role(), Role::PreCandidate);
        // A follower of a healthy leader refuses its pre-vote (lease) and keeps its term.
        let mut f = core_with("f", 2, true, true);
        f.step(Input::Request(heartbeat(3, "L")));
        let out = f.step(Input::Request(pre_vote_req(4, "p")));
        assert_eq!(out, vec![Output::Reply(pre_vote_resp(3, false))]);
        assert_eq!(f.term(), 3);
        assert_eq!(f.leader().unwrap().id, "L");
        // When "p" hears the leader again it follows it.
        p.step(Input::Request(heartbeat(3, "L")));
        assert_eq!(p.role(), Role::Follower);
        assert_eq!(p.term(), 3);
    }

    #[test]
    fn s9_6_pre_vote_rejected_by_a_majority_returns_to_follower() {
        let mut c = core_with("a", 2, true, false);
        tick_until_campaign(&mut c);
        c.step(Input::Response {
            from: PeerId(0),
            msg: pre_vote_resp(0, false),
        });
        c.step(Input::Response {
            from: PeerId(1),
            msg: pre_vote_resp(0, false),
        });
        assert_eq!(c.role(), Role::Follower);
        assert_eq!(c.term(), 0);
    }

    #[test]
    fn s6_2_check_quorum_leader_steps_down_without_a_majority() {
        let mut c = core_with("a", 2, true, true);
        tick_until_campaign(&mut c);
        c.step(Input::Response {
            from: PeerId(0),
            msg: pre_vote_resp(1, true),
        });
        c.step(Input::Response {
            from: PeerId(0),
            msg: vote_resp(1, true),
        });
        assert_eq!(c.role(), Role::Leader);
        // One peer answers heartbeats: with the leader that is a majority of 3; it stays.
        for _ in 0..3 * ET {
            c.step(Input::Tick);
            c.step(Input::Response {
                from: PeerId(1),
                msg: append_ok(1),
            });
        }
        assert_eq!(c.role(), Role::Leader);
        // Nobody answers: within two election timeouts it steps down, term unchanged.
        let mut stepped_down_after = None;
        for t in 1..=2 * ET {
            c.step(Input::Tick);
            if c.role() != Role::Leader {
                stepped_down_after = Some(t);
                break;
            }
        }
        let t = stepped_down_after.expect("the leader must step down");
        assert!(t <= 2 * ET, "stepped down after {t} ticks");
        assert_eq!(c.role(), Role::Follower);
        assert_eq!(c.term(), 1);
        assert_eq!(c.leader(), None);
    }

    #[test]
    fn s6_2_check_quorum_votes_are_ignored_while_a_leader_is_heard() {
        let mut f = core_with("f", 2, false, true);
        f.step(Input::Request(heartbeat(2, "L")));
        let out = f.step(Input::Request(vote_req(3, "x", 0, 0)));
        assert_eq!(out, vec![Output::Reply(vote_resp(2, false))]);
        assert_eq!(f.term(), 2, "no term bump while in the leader's lease");
        // After an election timeout without the leader, the vote is granted.
        for _ in 0..ET {
            f.step(Input::Tick);
            if f.role() != Role::Follower {
                break;
            }
        }
        let mut f = core_with("g", 2, false, true);
        f.step(Input::Request(heartbeat(2, "L")));
        for _ in 0..ET {
            f.election_elapsed += 1;
        }
        let out = f.step(Input::Request(vote_req(3, "x", 0, 0)));
        assert_eq!(*reply(&out), vote_resp(3, true));
    }

    #[test]
    fn single_node_cluster_becomes_leader_at_once() {
        let mut c = core("solo", 0);
        let out = c.step(Input::Campaign);
        assert_eq!(c.role(), Role::Leader);
        assert_eq!(c.term(), 1);
        assert_eq!(
            out,
            vec![Output::SaveHardState(HardState {
                term: 1,
                voted_for: Some("solo".into())
            })]
        );
        // With pre-vote on, too.
        let mut c = core_with("solo", 0, true, true);
        c.step(Input::Campaign);
        assert_eq!(c.role(), Role::Leader);
        // And a lone leader never steps down for lack of a quorum.
        for _ in 0..10 * ET {
            c.step(Input::Tick);
        }
        assert_eq!(c.role(), Role::Leader);
    }

    #[test]
    fn a_node_never_votes_for_or_follows_its_own_id() {
        let mut c = core("dup", 2);
        let out = c.step(Input::Request(vote_req(1, "dup", 0, 0)));
        assert_eq!(out, vec![Output::Reply(vote_resp(0, false))]);
        let out = c.step(Input::Request(heartbeat(1, "dup")));
        assert!(matches!(
            reply(&out),
            Message::AppendResponse(AppendResponse { success: false, .. })
        ));
        assert_eq!(c.term(), 0);
    }

    #[test]
    fn stale_vote_responses_are_ignored() {
        let mut c = core("a", 4);
        tick_until_campaign(&mut c); // term 1
                                     // Time out again: term 2. A late grant from term 1 must not count.
        tick_until_campaign(&mut c);
        assert_eq!(c.term(), 2);
        for p in 0..3 {
            c.step(Input::Response {
                from: PeerId(p),
                msg: vote_resp(1, true),
            });
        }
        assert_eq!(c.role(), Role::Candidate);
        c.step(Input::Response {
            from: PeerId(0),
            msg: vote_resp(2, true),
        });
        c.step(Input::Response {
            from: PeerId(0),
            msg: vote_resp(2, true),
        });
        assert_eq!(
            c.role(),
            Role::Candidate,
            "one peer's duplicate grant counts once"
        );
        c.step(Input::Response {
            from: PeerId(3),
            msg: vote_resp(2, true),
        });
        assert_eq!(c.role(), Role::Leader);
    }
}
