//! [`RaftCore`]: the Raft state machine for one node: roles, terms, votes, timers in ticks,
//! pre-vote and check-quorum.
//!
//! Pure: it never reads a clock, does no I/O and spawns nothing. Each call to [`RaftCore::step`]
//! takes one [`Input`] and returns the [`Output`]s to carry out, **in order**: a
//! [`Output::SaveHardState`] or [`Output::PersistEntries`] always comes before any message that
//! depends on it (persist before send, before granting a vote, before a follower acknowledges
//! entries). The caller reports durability back with [`Input::Persisted`]; a leader counts its
//! own log toward a majority only up to the durable index. Time is counted in ticks; the randomness of election timeouts
//! comes from a seeded RNG, so every scenario replays exactly.
//!
//! Peers are numbered [`PeerId`]s (their position in the configured peer list). Requests arrive
//! without a `PeerId` (they name their sender by [`NodeId`]); responses come back from the peer
//! the request was sent to.
//!
//! Replication (§5.3): the leader keeps a [`Progress`] per follower (match and next index), probes
//! one request at a time after a rejection, and pipelines up to [`MAX_INFLIGHT`] batches once the
//! follower's log matches. Proposals that arrive while the window is full wait in the log and go
//! out together in the next batch. Entries commit when stored on a majority and of the current
//! term (§5.4.2); a new leader appends a no-op to commit earlier entries. Committed entries come
//! out as [`Output::Apply`], in order, exactly once. Reads use ReadIndex (thesis §6.4).

use std::collections::VecDeque;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::log::{Entry, EntryPayload, RaftLog};
use super::rpc::{
    AppendRequest, AppendResponse, Message, SnapshotRequest, SnapshotResponse, VoteRequest,
    VoteResponse,
};
use super::{LogIndex, NodeId, PeerId, Term};
use crate::store::Command;

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
    /// A client command to replicate (answered by [`Output::Proposed`] or
    /// [`Output::ProposalRejected`]).
    Propose(Command),
    /// A linearizable read wants a read index (answered by [`Output::ReadReady`] or
    /// [`Output::ReadFailed`], now or later). `id` is the caller's.
    ReadIndex { id: u64 },
    /// A request sent to `to` got no response (timeout, connection error); `seq` is the
    /// AppendEntries sequence number, if it was one.
    SendFailed { to: PeerId, seq: Option<u64> },
    /// Every entry up to `index` written by [`Output::PersistEntries`] so far is durable.
    Persisted { index: LogIndex },
    /// A snapshot of the state machine up to at least `index` is durable: drop the log up to
    /// `index` (which must be applied).
    Compact { index: LogIndex },
    /// A snapshot sent by the leader (`req` is the header of its last chunk) was received,
    /// checked and made durable. The core decides whether it replaces the log (answered by
    /// [`Output::RestoreSnapshot`], possibly [`Output::ResetLog`], then a reply).
    InstallSnapshot(SnapshotRequest),
}

/// Most AppendEntries with entries in flight to one follower.
pub const MAX_INFLIGHT: usize = 4;
/// Most entries in one AppendEntries.
pub const MAX_BATCH_ENTRIES: usize = 1024;
/// About the most bytes of entries in one AppendEntries (at least one entry is always sent).
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// What the caller must do, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Durably store term and vote before carrying out any later output.
    SaveHardState(HardState),
    /// Durably store these entries (writing entry `i` discards any stored entry at `i` or
    /// later) before carrying out any later output; then report [`Input::Persisted`].
    PersistEntries(Vec<Entry>),
    /// Send a request to a peer; feed its answer back as [`Input::Response`].
    Send { to: PeerId, msg: Message },
    /// Answer the request being stepped.
    Reply(Message),
    /// Apply these committed entries to the state machine, in order (each exactly once).
    Apply(Vec<Entry>),
    /// The proposal was appended at `index` in `term`; it succeeded if the entry applied at
    /// `index` has this term.
    Proposed { index: LogIndex, term: Term },
    /// This node is not the leader; `leader` is the one it knows of, if any.
    ProposalRejected { leader: Option<LeaderInfo> },
    /// Read `id` may be served once the state machine has applied `index`.
    ReadReady { id: u64, index: LogIndex },
    /// Read `id` cannot be served here: this node is not (or no longer) the leader.
    ReadFailed { id: u64, leader: Option<LeaderInfo> },
    /// Follower `to` is behind the start of the log: stream it the newest snapshot, in chunks
    /// built from `req` (term, leader, seq; the caller fills in the snapshot's position and the
    /// data). Feed the final answer back as [`Input::Response`], or a failure as
    /// [`Input::SendFailed`] with `req.seq`.
    SendSnapshot { to: PeerId, req: SnapshotRequest },
    /// Replace the state machine with the snapshot just installed (up to `index`), in order
    /// with [`Output::Apply`].
    RestoreSnapshot { index: LogIndex },
    /// Durably record that the log was replaced by a snapshot ending at (`index`, `term`): no
    /// entry stored before survives.
    ResetLog { index: LogIndex, term: Term },
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
    pub commit_index: LogIndex,
    /// The log's base: entries up to here were compacted into a snapshot.
    pub snapshot_index: LogIndex,
}

/// Whether the leader knows where a follower's log matches its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProgressState {
    /// Unknown: send one AppendEntries at a time until one succeeds.
    Probe,
    /// Matching: stream batches, up to [`MAX_INFLIGHT`] at once.
    Replicate,
    /// Behind the start of the log: a snapshot is on its way (its `seq` is the one in flight).
    Snapshot,
}

/// The leader's view of one follower (Figure 2's nextIndex and matchIndex, plus flow control).
#[derive(Debug, Clone)]
struct Progress {
    match_index: LogIndex,
    next_index: LogIndex,
    state: ProgressState,
    /// `seq`s of AppendEntries with entries not yet answered.
    inflight: Vec<u64>,
    /// Highest `seq` answered (successfully or not) in this term.
    acked_seq: u64,
    /// The leader's `seq` counter when `match_index` last advanced: a rejection at
    /// `match_index` of a request sent after that means the follower lost entries.
    match_seq: u64,
    /// Ticks to wait before sending a snapshot again after one failed.
    snapshot_backoff: u32,
}

impl Progress {
    fn new(last_index: LogIndex) -> Self {
        Progress {
            match_index: 0,
            next_index: last_index + 1,
            state: ProgressState::Probe,
            inflight: Vec::new(),
            acked_seq: 0,
            match_seq: 0,
            snapshot_backoff: 0,
        }
    }

    fn probe(&mut self) {
        self.state = ProgressState::Probe;
        self.inflight.clear();
        self.next_index = self.next_index.max(self.match_index + 1);
    }
}

/// A read waiting for proof that this node is still the leader.
#[derive(Debug, Clone, Copy)]
struct PendingRead {
    id: u64,
    /// A response to any AppendEntries with at least this `seq` was sent after the read arrived.
    needed_seq: u64,
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
    /// Highest index known committed.
    commit_index: LogIndex,
    /// Highest index of this node's log known durable: a leader counts itself toward a
    /// majority only up to here.
    durable_index: LogIndex,
    /// Highest index already emitted in [`Output::Apply`].
    applied_emitted: LogIndex,
    /// Per follower (leaders only).
    progress: Vec<Progress>,
    /// Sequence number of the last AppendEntries sent (leaders only; grows within a term).
    seq: u64,
    /// Reads waiting for a quorum's acknowledgement (leaders only).
    pending_reads: VecDeque<PendingRead>,
    /// `seq` of the broadcast started for pending reads, until a quorum answered it.
    read_round: Option<u64>,
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
            commit_index: 0,
            durable_index: 0,
            applied_emitted: 0,
            progress: Vec::new(),
            seq: 0,
            pending_reads: VecDeque::new(),
            read_round: None,
            out: Vec::new(),
        };
        // What it was built from is what storage holds; a snapshot's prefix is committed and
        // already in the state machine.
        core.durable_index = core.log.last_index();
        core.commit_index = core.log.base_index();
        core.applied_emitted = core.log.base_index();
        core.reset_randomized_timeout();
        core
    }

    /// Feed one input; returns what to do, in order.
    pub fn step(&mut self, input: Input) -> Vec<Output> {
        if let Input::Request(msg) | Input::Response { msg, .. } = &input {
            if msg.check_bounds().is_err() {
                // Out-of-range numbers (a forged or corrupt message): ignored, so no
                // arithmetic on them can saturate or wrap. The edges refuse them first.
                return Vec::new();
            }
        }
        match input {
            Input::Tick => self.tick(),
            Input::Campaign => {
                if self.role != Role::Leader {
                    self.campaign();
                }
            }
            Input::Request(Message::VoteRequest(req)) => self.on_vote_request(req),
            Input::Request(Message::AppendRequest(req)) => self.on_append_request(req),
            Input::Request(Message::SnapshotRequest(req)) => self.on_snapshot_request(req),
            Input::Response {
                from,
                msg: Message::SnapshotResponse(resp),
            } => self.on_snapshot_response(from, resp),
            Input::Compact { index } => {
                // While a snapshot is on its way to a follower, keep the log: the entries after
                // the snapshot being sent must still be here when it arrives (under load, a
                // newer snapshot would otherwise have dropped them, and the follower would need
                // another snapshot, and another).
                let sending = self
                    .progress
                    .iter()
                    .any(|p| p.state == ProgressState::Snapshot);
                if !sending {
                    self.log.compact_to(index.min(self.applied_emitted));
                }
            }
            Input::InstallSnapshot(req) => self.install_snapshot(req),
            Input::Response {
                from,
                msg: Message::VoteResponse(resp),
            } => self.on_vote_response(from, resp),
            Input::Response {
                from,
                msg: Message::AppendResponse(resp),
            } => self.on_append_response(from, resp),
            Input::Propose(cmd) => self.propose(cmd),
            Input::ReadIndex { id } => self.read_index(id),
            Input::SendFailed { to, seq } => self.on_send_failed(to, seq),
            Input::Persisted { index } => {
                self.durable_index = self.durable_index.max(index.min(self.log.last_index()));
                if self.role == Role::Leader {
                    self.maybe_commit();
                }
            }
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
            commit_index: self.commit_index,
            snapshot_index: self.log.base_index(),
        }
    }

    /// The leader's view of each follower: (match, next, state, in-flight count). For tests.
    #[doc(hidden)]
    pub fn debug_progress(&self) -> Vec<(LogIndex, LogIndex, String, usize)> {
        self.progress
            .iter()
            .map(|p| {
                (
                    p.match_index,
                    p.next_index,
                    format!("{:?}", p.state),
                    p.inflight.len(),
                )
            })
            .collect()
    }

    /// Highest index known committed.
    pub fn commit_index(&self) -> LogIndex {
        self.commit_index
    }

    /// The log (read-only).
    pub fn log(&self) -> &RaftLog {
        &self.log
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
            for pr in &mut self.progress {
                pr.snapshot_backoff = pr.snapshot_backoff.saturating_sub(1);
            }
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
                self.broadcast(true);
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
        if self.role == Role::Leader {
            self.fail_reads(leader.clone());
            self.progress.clear();
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
        self.term = self.term.saturating_add(1);
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
            term: if pre_vote {
                self.term.saturating_add(1)
            } else {
                self.term
            },
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
        self.pending_reads.clear();
        self.read_round = None;
        // The no-op of this term: committing it commits everything before it (§5.4.2) and
        // proves which entries are committed before serving reads (§8).
        let index = self.log.append(self.term, EntryPayload::Noop);
        self.persist_from(index);
        let last = self.log.last_index();
        self.progress = (0..self.cfg.peers)
            .map(|_| Progress::new(last - 1))
            .collect();
        self.maybe_commit();
        self.broadcast(false);
    }

    // ---- replication (leader) ---------------------------------------------------------------

    /// Send every follower what it needs: entries if the window allows, else a heartbeat (when
    /// `heartbeat`, a heartbeat also goes to followers that are up to date).
    fn broadcast(&mut self, heartbeat: bool) {
        for p in 0..self.cfg.peers {
            self.send_append(PeerId(p), heartbeat);
        }
    }

    fn next_seq(&mut self) -> u64 {
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
    fn heartbeat_request(&mut self, prev: LogIndex) -> AppendRequest {
        let prev = if self.log.term_at(prev).is_some() {
            prev
        } else {
            0
        };
        let commit = self.commit_index.min(prev);
        self.append_request(prev, Vec::new(), commit)
    }

    /// Send `to` its next batch if flow control allows; otherwise, if `heartbeat`, an empty
    /// AppendEntries at a point its log is known to match (or the probe point).
    fn send_append(&mut self, to: PeerId, heartbeat: bool) {
        let last = self.log.last_index();
        let pr = &self.progress[to.0];
        let window_open = match pr.state {
            ProgressState::Probe => pr.inflight.is_empty(),
            ProgressState::Replicate => pr.inflight.len() < MAX_INFLIGHT,
            ProgressState::Snapshot => false,
        };
        if window_open && pr.next_index <= self.log.base_index() {
            // The entries it needs were compacted: only a snapshot can catch it up (§7).
            if pr.snapshot_backoff == 0 {
                let seq = self.next_seq();
                let pr = &mut self.progress[to.0];
                pr.state = ProgressState::Snapshot;
                pr.inflight = vec![seq];
                let req = SnapshotRequest {
                    term: self.term,
                    leader_id: self.cfg.id.clone(),
                    leader_url: self.cfg.url.clone(),
                    seq,
                    ..SnapshotRequest::default()
                };
                self.out.push(Output::SendSnapshot { to, req });
            } else if heartbeat {
                let prev = self.progress[to.0].match_index;
                let req = self.heartbeat_request(prev);
                self.out.push(Output::Send {
                    to,
                    msg: Message::AppendRequest(req),
                });
            }
        } else if window_open && pr.next_index <= last {
            let next = pr.next_index;
            let entries = self
                .log
                .entries_from(next, MAX_BATCH_ENTRIES, MAX_BATCH_BYTES);
            let sent_last = next + entries.len() as u64 - 1;
            let commit = self.commit_index;
            let req = self.append_request(next - 1, entries, commit);
            let pr = &mut self.progress[to.0];
            pr.inflight.push(req.seq);
            if pr.state == ProgressState::Replicate {
                pr.next_index = sent_last + 1;
            }
            self.out.push(Output::Send {
                to,
                msg: Message::AppendRequest(req),
            });
        } else if heartbeat {
            // Only commit what the follower is known to hold.
            let (prev, state) = (pr.match_index, pr.state);
            let prev = if state == ProgressState::Probe && pr.inflight.is_empty() {
                pr.next_index - 1
            } else {
                prev
            };
            let req = self.heartbeat_request(prev);
            self.out.push(Output::Send {
                to,
                msg: Message::AppendRequest(req),
            });
        }
    }

    /// Advance the commit index to the highest index stored on a majority, if it is of the
    /// current term (§5.4.2), and emit what became committed.
    fn maybe_commit(&mut self) {
        let mut matches: Vec<LogIndex> = self.progress.iter().map(|p| p.match_index).collect();
        matches.push(self.durable_index);
        matches.sort_unstable_by(|a, b| b.cmp(a));
        let n = matches[self.quorum() - 1];
        if n > self.commit_index && self.log.term_at(n) == Some(self.term) {
            self.commit_to(n);
            self.check_reads();
        }
    }

    fn commit_to(&mut self, index: LogIndex) {
        let index = index.min(self.log.last_index());
        if index <= self.commit_index {
            return;
        }
        self.commit_index = index;
        if self.commit_index > self.applied_emitted {
            let entries = self.log.slice(self.applied_emitted + 1, self.commit_index);
            self.applied_emitted = self.commit_index;
            self.out.push(Output::Apply(entries));
        }
    }

    fn propose(&mut self, command: Command) {
        if self.role != Role::Leader {
            let leader = self.leader.clone();
            self.out.push(Output::ProposalRejected { leader });
            return;
        }
        let index = self
            .log
            .append(self.term, EntryPayload::Command { command });
        let term = self.term;
        self.out.push(Output::Proposed { index, term });
        self.persist_from(index);
        self.maybe_commit();
        self.broadcast(false);
    }

    /// Ask for the entries from `index` to the end of the log to be made durable.
    fn persist_from(&mut self, index: LogIndex) {
        let entries = self.log.slice(index, self.log.last_index());
        if !entries.is_empty() {
            self.out.push(Output::PersistEntries(entries));
        }
    }

    fn on_send_failed(&mut self, to: PeerId, seq: Option<u64>) {
        if self.role != Role::Leader || to.0 >= self.cfg.peers {
            return;
        }
        if let Some(seq) = seq {
            let backoff = self.cfg.election_ticks;
            let pr = &mut self.progress[to.0];
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
    }

    // ---- reads (leader) ---------------------------------------------------------------------

    fn read_index(&mut self, id: u64) {
        if self.role != Role::Leader {
            let leader = self.leader.clone();
            self.out.push(Output::ReadFailed { id, leader });
            return;
        }
        self.pending_reads.push_back(PendingRead {
            id,
            needed_seq: self.seq + 1,
        });
        if self.cfg.peers == 0 {
            self.check_reads();
        } else if self.read_round.is_none() {
            self.start_read_round();
        }
    }

    fn start_read_round(&mut self) {
        self.read_round = Some(self.seq + 1);
        for p in 0..self.cfg.peers {
            // A heartbeat to everyone, even followers with batches in flight.
            let prev = self.progress[p].match_index;
            let req = self.heartbeat_request(prev);
            self.out.push(Output::Send {
                to: PeerId(p),
                msg: Message::AppendRequest(req),
            });
        }
    }

    /// The highest `seq` that a quorum (this leader included) has answered.
    fn quorum_acked_seq(&self) -> u64 {
        if self.cfg.peers == 0 {
            return u64::MAX;
        }
        let mut acked: Vec<u64> = self.progress.iter().map(|p| p.acked_seq).collect();
        acked.sort_unstable_by(|a, b| b.cmp(a));
        // The leader is one vote; the (quorum - 1)-th best follower completes the majority.
        acked[self.quorum() - 2]
    }

    /// Serve every read whose leadership proof is complete, once an entry of this term is
    /// committed (so the commit index is the cluster's).
    fn check_reads(&mut self) {
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
        if self.read_round.is_none() && !self.pending_reads.is_empty() && self.cfg.peers > 0 {
            self.start_read_round();
        }
    }

    fn fail_reads(&mut self, leader: Option<LeaderInfo>) {
        while let Some(r) = self.pending_reads.pop_front() {
            self.out.push(Output::ReadFailed {
                id: r.id,
                leader: leader.clone(),
            });
        }
        self.read_round = None;
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
            Role::PreCandidate => {
                resp.pre_vote && (!resp.granted || resp.term == self.term.saturating_add(1))
            }
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

    fn reply_append(&mut self, resp: AppendResponse) {
        self.out.push(Output::Reply(Message::AppendResponse(resp)));
    }

    fn on_append_request(&mut self, req: AppendRequest) {
        let (req_seq, req_prev) = (req.seq, req.prev_log_index);
        let reject = move |term| AppendResponse {
            term,
            success: false,
            match_index: 0,
            seq: req_seq,
            reject_index: req_prev,
            conflict_term: None,
            conflict_index: 0,
        };
        let well_formed = req.entries.iter().enumerate().all(|(i, e)| {
            e.index == req.prev_log_index + 1 + i as u64
                && e.term <= req.term
                && e.term >= req.prev_log_term
                && (i == 0 || e.term >= req.entries[i - 1].term)
        });
        if !well_formed || req.leader_commit == u64::MAX {
            // Not something a correct leader sends: refuse without changing anything.
            let resp = reject(self.term);
            self.reply_append(resp);
            return;
        }
        if req.term < self.term || req.leader_id == self.cfg.id {
            // A stale leader learns our term from the answer and steps down.
            let resp = reject(self.term);
            self.reply_append(resp);
            return;
        }
        if self.role == Role::Leader && req.term == self.term {
            // Two leaders in one term would break election safety; refuse, change nothing.
            let resp = reject(self.term);
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
                    self.durable_index = self.durable_index.min(entry.index - 1);
                    first_new.get_or_insert(entry.index);
                    self.log.push(entry);
                }
                None => {
                    first_new.get_or_insert(entry.index);
                    self.log.push(entry);
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
        };
        self.reply_append(resp);
    }

    /// Common to every answer a leader gets: a higher term deposes it; an answer from an
    /// unknown peer or an older term is stale. True when the answer is current (and the peer
    /// counts as active for check-quorum).
    fn current_answer(&mut self, from: PeerId, term: Term) -> bool {
        if from.0 >= self.cfg.peers {
            return false;
        }
        if term > self.term {
            self.become_follower(term, None);
            return false;
        }
        if self.role != Role::Leader || term != self.term {
            return false; // stale
        }
        self.recent_active[from.0] = true;
        true
    }

    fn on_append_response(&mut self, from: PeerId, resp: AppendResponse) {
        if !self.current_answer(from, resp.term) {
            return;
        }
        let last = self.log.last_index();
        let pr = &mut self.progress[from.0];
        pr.acked_seq = pr.acked_seq.max(resp.seq);
        let was_inflight = if let Some(pos) = pr.inflight.iter().position(|s| *s == resp.seq) {
            pr.inflight.remove(pos);
            true
        } else {
            false
        };
        if pr.state == ProgressState::Snapshot {
            // A snapshot is on its way: heartbeats still count (leadership, reads), but only
            // the snapshot's own answer moves the follower on.
            if resp.success && resp.match_index > pr.match_index {
                pr.match_index = resp.match_index.min(last);
                pr.match_seq = self.seq;
                self.maybe_commit();
            }
            self.check_reads();
            return;
        }
        if resp.success {
            if resp.match_index > pr.match_index {
                pr.match_index = resp.match_index.min(last);
                pr.match_seq = self.seq;
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
                let pr = &mut self.progress[from.0];
                if lost_data {
                    // Only a node that lost its log (restarted without storage) can fail where
                    // it once matched: forget what it had.
                    pr.match_index = 0;
                }
                pr.probe();
                let hi = resp.reject_index.max(pr.match_index + 1);
                pr.next_index = hint.clamp(pr.match_index + 1, hi);
            } else if was_inflight {
                // Rejected only because it overtook an earlier batch (pipelined requests travel
                // on separate connections): what it carried is not on the follower, so send it
                // again from what is known to match.
                let pr = &mut self.progress[from.0];
                pr.probe();
                pr.next_index = pr.match_index + 1;
            }
        }
        self.check_reads();
        self.send_append(from, false);
    }

    // ---- snapshots --------------------------------------------------------------------------

    fn reply_snapshot(&mut self, resp: SnapshotResponse) {
        self.out
            .push(Output::Reply(Message::SnapshotResponse(resp)));
    }

    /// A chunk of a snapshot from a leader (its data is the caller's business). Answers
    /// "stale" (our term), "done" (`match_index` set: we have it all already) or "go on"
    /// (neither: the caller takes the chunk and fills in the offset it expects next).
    fn on_snapshot_request(&mut self, req: SnapshotRequest) {
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

    /// The whole snapshot described by `req` is durable here: make it the base of the log,
    /// unless the log already went past it meanwhile.
    fn install_snapshot(&mut self, req: SnapshotRequest) {
        if req.term < self.term {
            let resp = SnapshotResponse {
                term: self.term,
                seq: req.seq,
                ..SnapshotResponse::default()
            };
            self.reply_snapshot(resp);
            return;
        }
        if req.index > self.commit_index {
            let reset = self.log.install_base(req.index, req.last_term);
            self.commit_index = req.index;
            self.applied_emitted = req.index;
            self.out.push(Output::RestoreSnapshot { index: req.index });
            if reset {
                self.durable_index = req.index;
                self.out.push(Output::ResetLog {
                    index: req.index,
                    term: req.last_term,
                });
            } else {
                self.durable_index = self.durable_index.max(req.index);
            }
        }
        let resp = SnapshotResponse {
            term: self.term,
            seq: req.seq,
            match_index: Some(req.index),
            ..SnapshotResponse::default()
        };
        self.reply_snapshot(resp);
    }

    fn on_snapshot_response(&mut self, from: PeerId, resp: SnapshotResponse) {
        if !self.current_answer(from, resp.term) {
            return;
        }
        let last = self.log.last_index();
        let pr = &mut self.progress[from.0];
        pr.acked_seq = pr.acked_seq.max(resp.seq);
        if pr.state != ProgressState::Snapshot || !pr.inflight.contains(&resp.seq) {
            return; // an answer to an earlier transfer
        }
        match resp.match_index {
            Some(m) => {
                if m > pr.match_index {
                    pr.match_index = m.min(last);
                    pr.match_seq = self.seq;
                }
                pr.probe();
                pr.next_index = pr.match_index + 1;
                self.maybe_commit();
            }
            None => {
                // The follower did not take it: try again later.
                pr.snapshot_backoff = self.cfg.election_ticks;
                pr.probe();
            }
        }
        self.check_reads();
        self.send_append(from, false);
    }
}

#[cfg(test)]
mod tests {
    //! Scenarios named after the Raft paper (§5.2 leader election) and the thesis (§9.6
    //! pre-vote, §6.2 check-quorum). Each steps cores by hand and asserts the exact outputs.

    use super::*;

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
            ..Default::default()
        })
    }

    fn append_ok(term: Term) -> Message {
        Message::AppendResponse(AppendResponse {
            term,
            success: true,
            ..Default::default()
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
        // §5.4.2/§8: the new leader appends a no-op of its term and sends it to everyone.
        let noop = Entry {
            index: 1,
            term: 1,
            payload: EntryPayload::Noop,
        };
        let append = |seq| {
            Message::AppendRequest(AppendRequest {
                term: 1,
                leader_id: "a".into(),
                leader_url: "http://a".into(),
                prev_log_index: 0,
                prev_log_term: 0,
                entries: vec![noop.clone()],
                leader_commit: 0,
                seq,
            })
        };
        assert_eq!(
            out,
            vec![
                Output::PersistEntries(vec![noop.clone()]),
                Output::Send {
                    to: PeerId(0),
                    msg: append(1)
                },
                Output::Send {
                    to: PeerId(1),
                    msg: append(2)
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
                ..Default::default()
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
                ..Default::default()
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
        let noop = Entry {
            index: 1,
            term: 1,
            payload: EntryPayload::Noop,
        };
        assert_eq!(
            out,
            vec![
                Output::SaveHardState(HardState {
                    term: 1,
                    voted_for: Some("solo".into())
                }),
                Output::PersistEntries(vec![noop.clone()]),
            ]
        );
        let out = c.step(Input::Persisted { index: 1 });
        assert_eq!(
            out,
            vec![Output::Apply(vec![noop])],
            "a lone leader commits its no-op as soon as it is durable"
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

    // ---- replication (§5.3, §5.4) -----------------------------------------------------------

    fn set_cmd(k: &str, v: &str) -> Command {
        Command::Set {
            key: k.into(),
            value: v.into(),
        }
    }

    fn log_with_terms(terms: &[Term]) -> RaftLog {
        let mut log = RaftLog::new();
        for (i, t) in terms.iter().enumerate() {
            log.append(
                *t,
                EntryPayload::Command {
                    command: set_cmd("k", &format!("{i}")),
                },
            );
        }
        log
    }

    fn terms_of(log: &RaftLog) -> Vec<Term> {
        (1..=log.last_index())
            .map(|i| log.term_at(i).unwrap())
            .collect()
    }

    /// A synchronous network of cores: every message is delivered, in FIFO order. Counts the
    /// AppendEntries each node receives.
    struct Net {
        cores: Vec<RaftCore>,
        queue: VecDeque<(usize, usize, Message, bool)>, // (from, to, msg, is_request)
        appends_received: Vec<usize>,
        applied: Vec<Vec<Entry>>,
    }

    impl Net {
        fn new(cores: Vec<RaftCore>) -> Net {
            let n = cores.len();
            Net {
                cores,
                queue: VecDeque::new(),
                appends_received: vec![0; n],
                applied: vec![Vec::new(); n],
            }
        }

        fn peer_to_node(from: usize, p: PeerId) -> usize {
            if p.0 >= from {
                p.0 + 1
            } else {
                p.0
            }
        }

        fn node_to_peer(of: usize, node: usize) -> PeerId {
            PeerId(if node > of { node - 1 } else { node })
        }

        fn absorb(
            &mut self,
            node: usize,
            out: Vec<Output>,
            reply_to: Option<usize>,
        ) -> Vec<Output> {
            let mut rest = Vec::new();
            let mut persisted = None;
            for o in out {
                match o {
                    Output::Send { to, msg } => {
                        let dst = Self::peer_to_node(node, to);
                        self.queue.push_back((node, dst, msg, true));
                    }
                    Output::Reply(msg) => {
                        let dst = reply_to.expect("a reply answers a request");
                        self.queue.push_back((node, dst, msg, false));
                    }
                    Output::Apply(es) => self.applied[node].extend(es),
                    // Instant storage: durable as soon as written.
                    Output::PersistEntries(es) => {
                        persisted = es.last().map(|e| e.index).max(persisted);
                    }
                    other => rest.push(other),
                }
            }
            if let Some(index) = persisted {
                let out = self.cores[node].step(Input::Persisted { index });
                rest.extend(self.absorb(node, out, None));
            }
            rest
        }

        fn step(&mut self, node: usize, input: Input) -> Vec<Output> {
            let out = self.cores[node].step(input);
            self.absorb(node, out, None)
        }

        /// Deliver until nothing is left (bounded).
        fn run(&mut self) {
            for _ in 0..100_000 {
                let Some((from, to, msg, is_request)) = self.queue.pop_front() else {
                    return;
                };
                if is_request {
                    if matches!(msg, Message::AppendRequest(_)) {
                        self.appends_received[to] += 1;
                    }
                    let out = self.cores[to].step(Input::Request(msg));
                    self.absorb(to, out, Some(from));
                } else {
                    let peer = Self::node_to_peer(from, to);
                    let _ = peer;
                    let out = self.cores[to].step(Input::Response {
                        from: Self::node_to_peer(to, from),
                        msg,
                    });
                    self.absorb(to, out, None);
                }
            }
            panic!("network did not quiesce");
        }

        /// Three fresh nodes, the first elected leader.
        fn three_with_leader() -> Net {
            let mut net = Net::new(vec![
                node("a", 2, 0, RaftLog::new()),
                node("b", 2, 0, RaftLog::new()),
                node("c", 2, 0, RaftLog::new()),
            ]);
            net.elect(0);
            net
        }

        /// Make `node` leader: it campaigns and every message is delivered.
        fn elect(&mut self, node: usize) {
            self.step(node, Input::Campaign);
            self.run();
            assert_eq!(
                self.cores[node].role(),
                Role::Leader,
                "node {node} must win"
            );
        }
    }

    fn node(id: &str, peers: usize, term: Term, log: RaftLog) -> RaftCore {
        RaftCore::new(
            cfg(id, peers, false, false),
            HardState {
                term,
                voted_for: None,
            },
            log,
            3,
        )
    }

    #[test]
    fn s5_3_leader_replicates_commits_on_majority_and_all_apply_in_order() {
        let mut net = Net::three_with_leader();
        for i in 0..5 {
            let out = net.step(0, Input::Propose(set_cmd("k", &i.to_string())));
            assert_eq!(
                out,
                vec![Output::Proposed {
                    index: i + 2,
                    term: 1
                }],
                "index 1 is the leader's no-op"
            );
        }
        net.run();
        // Heartbeats carry the final commit index to the followers.
        net.step(0, Input::Tick);
        net.run();
        for n in 0..3 {
            assert_eq!(net.cores[n].commit_index(), 6, "node {n}");
            let idx: Vec<_> = net.applied[n].iter().map(|e| e.index).collect();
            assert_eq!(
                idx,
                vec![1, 2, 3, 4, 5, 6],
                "node {n} applies each entry once, in order"
            );
            assert_eq!(net.applied[n], net.applied[0]);
        }
    }

    #[test]
    fn s5_3_a_proposal_on_a_follower_is_rejected_with_the_leader() {
        let mut net = Net::new(vec![
            node("a", 1, 0, RaftLog::new()),
            node("b", 1, 0, RaftLog::new()),
        ]);
        net.elect(0);
        let out = net.step(1, Input::Propose(set_cmd("k", "v")));
        assert_eq!(
            out,
            vec![Output::ProposalRejected {
                leader: Some(LeaderInfo {
                    id: "a".into(),
                    url: "http://a".into()
                })
            }]
        );
    }

    #[test]
    fn s5_3_figure_7_every_follower_log_is_made_to_match_the_leaders_with_few_round_trips() {
        let leader_terms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
        let followers: [(&str, &[Term], Term); 6] = [
            ("a", &[1, 1, 1, 4, 4, 5, 5, 6, 6], 6),
            ("b", &[1, 1, 1, 4], 4),
            ("c", &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], 6),
            ("d", &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], 7),
            ("e", &[1, 1, 1, 4, 4, 4, 4], 4),
            ("f", &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], 3),
        ];
        for (name, terms, term) in followers {
            // The leader wins with the vote of a helper that holds its log; the follower may
            // refuse (c and d have logs at least as up to date).
            let mut net = Net::new(vec![
                node("L", 2, 7, log_with_terms(&leader_terms)),
                node("H", 2, 7, log_with_terms(&leader_terms)),
                node(name, 2, term, log_with_terms(terms)),
            ]);
            net.elect(0);
            net.step(0, Input::Tick);
            net.run();
            let mut want = leader_terms.to_vec();
            want.push(8); // the new leader's no-op
            assert_eq!(terms_of(net.cores[2].log()), want, "follower ({name})");
            assert!(
                net.appends_received[2] <= 6,
                "follower ({name}) needed {} AppendEntries: fast back-off skips whole terms",
                net.appends_received[2]
            );
            assert_eq!(net.cores[2].commit_index(), 11, "follower ({name})");
        }
    }

    #[test]
    fn s5_3_inconsistent_append_is_rejected_with_conflict_hints() {
        let mut f = node("f", 1, 2, log_with_terms(&[1, 1, 2, 2]));
        let req = |prev_log_index, prev_log_term| {
            Message::AppendRequest(AppendRequest {
                term: 3,
                leader_id: "L".into(),
                leader_url: "http://L".into(),
                prev_log_index,
                prev_log_term,
                seq: 9,
                ..Default::default()
            })
        };
        // Different term at prev: the follower names its term there and where that term starts.
        let out = f.step(Input::Request(req(4, 3)));
        assert_eq!(
            *reply(&out),
            Message::AppendResponse(AppendResponse {
                term: 3,
                success: false,
                seq: 9,
                reject_index: 4,
                conflict_term: Some(2),
                conflict_index: 3,
                ..Default::default()
            })
        );
        // Log too short: the follower names one past its end.
        let out = f.step(Input::Request(req(9, 3)));
        assert_eq!(
            *reply(&out),
            Message::AppendResponse(AppendResponse {
                term: 3,
                success: false,
                seq: 9,
                reject_index: 9,
                conflict_term: None,
                conflict_index: 5,
                ..Default::default()
            })
        );
        assert_eq!(
            terms_of(f.log()),
            vec![1, 1, 2, 2],
            "a rejected append changes no entry"
        );
    }

    #[test]
    fn s5_3_conflicting_entries_are_truncated_and_replaced() {
        let mut f = node("f", 1, 2, log_with_terms(&[1, 1, 2, 2]));
        let out = f.step(Input::Request(Message::AppendRequest(AppendRequest {
            term: 3,
            leader_id: "L".into(),
            leader_url: "http://L".into(),
            prev_log_index: 2,
            prev_log_term: 1,
            entries: vec![Entry {
                index: 3,
                term: 3,
                payload: EntryPayload::Noop,
            }],
            leader_commit: 3,
            seq: 1,
        })));
        assert!(matches!(
            reply(&out),
            Message::AppendResponse(AppendResponse {
                success: true,
                match_index: 3,
                ..
            })
        ));
        assert_eq!(
            terms_of(f.log()),
            vec![1, 1, 3],
            "index 4 (term 2) is gone too"
        );
        assert_eq!(f.commit_index(), 3);
        assert!(matches!(&out[0], Output::SaveHardState(_)));
        let applied: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Output::Apply(es) => Some(es.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>()),
                _ => None,
            })
            .collect();
        assert_eq!(applied, vec![vec![(1, 1), (2, 1), (3, 3)]]);
    }

    #[test]
    fn s5_4_2_figure_8_entries_of_earlier_terms_are_not_committed_by_counting_replicas() {
        // S1 leads in term 4 with (1,1) (2,2) and its no-op (3,4); S2 and S3 reach index 2.
        let mut s1 = node("s1", 4, 3, log_with_terms(&[1, 2]));
        s1.step(Input::Campaign);
        for p in 0..2 {
            s1.step(Input::Response {
                from: PeerId(p),
                msg: vote_resp(4, true),
            });
        }
        assert_eq!(s1.role(), Role::Leader);
        assert_eq!(s1.term(), 4);
        assert_eq!(terms_of(s1.log()), vec![1, 2, 4]);
        s1.step(Input::Persisted { index: 3 }); // its own copy of the no-op is durable
        let ack = |match_index| {
            Message::AppendResponse(AppendResponse {
                term: 4,
                success: true,
                match_index,
                ..Default::default()
            })
        };
        for p in 0..2 {
            s1.step(Input::Response {
                from: PeerId(p),
                msg: ack(2),
            });
        }
        assert_eq!(
            s1.commit_index(),
            0,
            "(2,2) is on a majority but of an earlier term: not committed by counting"
        );
        // Once the term-4 entry is on a majority, everything up to it commits.
        let out = s1.step(Input::Response {
            from: PeerId(0),
            msg: ack(3),
        });
        assert_eq!(
            s1.commit_index(),
            0,
            "index 3 is on two of five, index 2 (term 2) still may not be counted"
        );
        assert!(out.iter().all(|o| !matches!(o, Output::Apply(_))));
        let out = s1.step(Input::Response {
            from: PeerId(1),
            msg: ack(3),
        });
        assert_eq!(s1.commit_index(), 3);
        assert!(out.contains(&Output::Apply(s1.log().slice(1, 3))));
    }

    #[test]
    fn s5_4_a_stale_leader_cannot_commit() {
        let mut net = Net::three_with_leader();
        // b and c move on to term 5 without a (as if a had been partitioned).
        net.cores[1].step(Input::Request(vote_req(5, "c", 1, 1)));
        net.cores[2].step(Input::Request(vote_req(5, "b", 1, 1)));
        net.queue.clear();
        let before = net.cores[0].commit_index();
        let out = net.step(0, Input::Propose(set_cmd("k", "lost")));
        assert!(matches!(out[0], Output::Proposed { index: 2, term: 1 }));
        net.run();
        assert_eq!(
            net.cores[0].role(),
            Role::Follower,
            "the answers' higher term deposes it"
        );
        assert_eq!(
            net.cores[0].commit_index(),
            before,
            "its entry never commits"
        );
        assert!(net.applied[0].iter().all(|e| e.index < 2));
    }

    #[test]
    fn s6_4_read_index_waits_for_a_quorum_ack_sent_after_the_read() {
        let mut net = Net::three_with_leader(); // the no-op is committed by now
        assert_eq!(net.cores[0].commit_index(), 1);
        let out = net.step(0, Input::ReadIndex { id: 7 });
        assert!(
            out.is_empty(),
            "no answer before a quorum confirms leadership"
        );
        assert_eq!(net.queue.len(), 2, "one heartbeat round for the read");
        net.run();
        // The answers came through absorb(); look at what the leader produced last.
        let out = net.step(0, Input::ReadIndex { id: 8 });
        assert!(out.is_empty());
        // Drive the delivery by hand to see the ReadReady.
        let mut ready = Vec::new();
        while let Some((from, to, msg, is_request)) = net.queue.pop_front() {
            let out = if is_request {
                let o = net.cores[to].step(Input::Request(msg));
                net.absorb(to, o, Some(from))
            } else {
                let o = net.cores[to].step(Input::Response {
                    from: Net::node_to_peer(to, from),
                    msg,
                });
                net.absorb(to, o, None)
            };
            ready.extend(out);
        }
        assert_eq!(ready, vec![Output::ReadReady { id: 8, index: 1 }]);
        // A follower cannot serve it.
        let out = net.step(1, Input::ReadIndex { id: 9 });
        assert!(matches!(
            out[0],
            Output::ReadFailed {
                id: 9,
                leader: Some(_)
            }
        ));
    }

    #[test]
    fn s6_4_pending_reads_fail_when_leadership_is_lost() {
        let mut net = Net::three_with_leader();
        net.step(0, Input::ReadIndex { id: 1 });
        net.queue.clear();
        let out = net.cores[0].step(Input::Request(heartbeat(9, "b")));
        assert!(out.contains(&Output::ReadFailed {
            id: 1,
            leader: Some(LeaderInfo {
                id: "b".into(),
                url: "http://b".into()
            })
        }));
    }

    #[test]
    fn single_node_reads_and_writes_commit_at_once() {
        let mut c = core("solo", 0);
        c.step(Input::Campaign);
        c.step(Input::Persisted { index: 1 });
        let out = c.step(Input::Propose(set_cmd("k", "v")));
        assert_eq!(out[0], Output::Proposed { index: 2, term: 1 });
        assert!(matches!(&out[1], Output::PersistEntries(es) if es.len() == 1 && es[0].index == 2));
        assert_eq!(out.len(), 2, "nothing commits before the entry is durable");
        let out = c.step(Input::Persisted { index: 2 });
        assert!(matches!(&out[0], Output::Apply(es) if es.len() == 1 && es[0].index == 2));
        let out = c.step(Input::ReadIndex { id: 3 });
        assert_eq!(out, vec![Output::ReadReady { id: 3, index: 2 }]);
    }

    #[test]
    fn malformed_append_entries_are_refused_without_panicking_or_changing_state() {
        let mut f = node("f", 1, 2, log_with_terms(&[1, 1, 2]));
        let e = |index, term| Entry {
            index,
            term,
            payload: EntryPayload::Noop,
        };
        let bad = [
            vec![e(5, 3)],          // a gap after prev
            vec![e(4, 3), e(6, 3)], // a gap inside
            vec![e(2, 3)],          // below prev
            vec![e(4, 9)],          // a term above the request's
            vec![e(4, 3), e(5, 2)], // terms going down
            vec![e(4, 1)],          // below prev's term
        ];
        for entries in bad {
            let out = f.step(Input::Request(Message::AppendRequest(AppendRequest {
                term: 3,
                leader_id: "L".into(),
                leader_url: "http://L".into(),
                prev_log_index: 3,
                prev_log_term: 2,
                entries: entries.clone(),
                leader_commit: 3,
                seq: 1,
            })));
            assert!(
                matches!(
                    reply(&out),
                    Message::AppendResponse(AppendResponse { success: false, .. })
                ),
                "{entries:?}"
            );
            assert_eq!(terms_of(f.log()), vec![1, 1, 2], "{entries:?}");
            assert_eq!(f.commit_index(), 0);
        }
        // A term near the top is ignored, so no arithmetic on it can saturate: the node keeps
        // its term and can still campaign.
        for term in [u64::MAX, crate::raft::rpc::MAX_WIRE_NUMBER + 1] {
            let mut c = core("top", 2);
            assert!(c.step(Input::Request(vote_req(term, "x", 0, 0))).is_empty());
            let forged = AppendRequest {
                term,
                leader_id: "x".into(),
                leader_url: "http://x".into(),
                ..Default::default()
            };
            assert!(c
                .step(Input::Request(Message::AppendRequest(forged)))
                .is_empty());
            assert_eq!((c.term(), c.leader()), (0, None));
            let out = tick_until_campaign(&mut c);
            assert!(
                out.iter().any(|o| matches!(
                    o,
                    Output::Send { msg: Message::VoteRequest(v), .. } if v.term == 1
                )),
                "{out:?}"
            );
        }
    }

    #[test]
    fn s5_leader_counts_itself_toward_a_majority_only_after_its_own_fsync() {
        let mut l = core("L", 2);
        tick_until_campaign(&mut l);
        l.step(Input::Response {
            from: PeerId(0),
            msg: vote_resp(1, true),
        });
        assert_eq!(l.role(), Role::Leader);
        let out = l.step(Input::Propose(set_cmd("k", "v")));
        assert!(out.contains(&Output::Proposed { index: 2, term: 1 }));
        // One follower holds both entries; the leader's own copies are not durable yet.
        l.step(Input::Response {
            from: PeerId(0),
            msg: Message::AppendResponse(AppendResponse {
                term: 1,
                success: true,
                match_index: 2,
                ..Default::default()
            }),
        });
        assert_eq!(
            l.commit_index(),
            0,
            "one follower alone is not a majority of 3"
        );
        let out = l.step(Input::Persisted { index: 2 });
        assert_eq!(l.commit_index(), 2);
        assert!(matches!(&out[0], Output::Apply(es) if es.len() == 2));
    }

    #[test]
    fn s5_3_a_follower_persists_new_entries_before_it_acknowledges_them() {
        let mut f = node("f", 1, 1, log_with_terms(&[1]));
        let e = Entry {
            index: 2,
            term: 1,
            payload: EntryPayload::Noop,
        };
        let out = f.step(Input::Request(Message::AppendRequest(AppendRequest {
            term: 1,
            leader_id: "L".into(),
            leader_url: "http://L".into(),
            prev_log_index: 1,
            prev_log_term: 1,
            entries: vec![e.clone()],
            leader_commit: 0,
            seq: 4,
        })));
        let persist = out
            .iter()
            .position(|o| *o == Output::PersistEntries(vec![e.clone()]))
            .expect("the new entry is persisted");
        let reply = out
            .iter()
            .position(|o| matches!(o, Output::Reply(_)))
            .expect("an acknowledgement");
        assert!(persist < reply, "persist before acknowledging: {out:?}");
        // An entry it already holds is not written again.
        let out = f.step(Input::Request(Message::AppendRequest(AppendRequest {
            term: 1,
            leader_id: "L".into(),
            leader_url: "http://L".into(),
            prev_log_index: 1,
            prev_log_term: 1,
            entries: vec![e],
            leader_commit: 0,
            seq: 5,
        })));
        assert!(
            !out.iter().any(|o| matches!(o, Output::PersistEntries(_))),
            "{out:?}"
        );
    }

    // ---- §7 log compaction and InstallSnapshot ----------------------------------------------

    fn snap_req(term: Term, index: LogIndex, last_term: Term, seq: u64) -> SnapshotRequest {
        SnapshotRequest {
            term,
            leader_id: "L".into(),
            leader_url: "http://L".into(),
            index,
            last_term,
            seq,
            ..SnapshotRequest::default()
        }
    }

    fn snap_reply(out: &[Output]) -> SnapshotResponse {
        match reply(out) {
            Message::SnapshotResponse(r) => r.clone(),
            other => panic!("not a snapshot response: {other:?}"),
        }
    }

    #[test]
    fn s7_a_follower_behind_the_log_start_gets_a_snapshot_then_the_entries_after_it() {
        let mut net = Net::three_with_leader();
        for i in 0..5 {
            net.step(0, Input::Propose(set_cmd("k", &i.to_string())));
            net.run();
        }
        let commit = net.cores[0].commit_index();
        assert_eq!(commit, 6);
        // The leader snapshots everything and drops its log; c's progress is reset as if it
        // had restarted with an empty log.
        net.step(0, Input::Compact { index: commit });
        assert_eq!(net.cores[0].log().base_index(), 6);
        net.cores[0].progress[1] = Progress::new(0);
        let out = net.cores[0].step(Input::Tick);
        let out = net.cores[0]
            .step(Input::Tick)
            .into_iter()
            .chain(out)
            .collect::<Vec<_>>();
        let req = out
            .iter()
            .find_map(|o| match o {
                Output::SendSnapshot { to: PeerId(1), req } => Some(req.clone()),
                _ => None,
            })
            .expect("c gets a snapshot, not entries it cannot have");
        // While it is on its way, no entries go to c, and the log is not compacted further
        // (the entries after the snapshot must still be there when it arrives).
        net.step(0, Input::Propose(set_cmd("k", "late")));
        net.step(0, Input::Compact { index: 7 });
        assert_eq!(net.cores[0].log().base_index(), 6);
        assert!(!net.queue.iter().any(|(_, to, m, _)| *to == 2
            && matches!(m, Message::AppendRequest(r) if !r.entries.is_empty())));
        net.run();
        // c installed it (the caller's part is done here by hand) and answers.
        let install = snap_req(req.term, 6, 1, req.seq);
        let out = net.cores[2].step(Input::Request(Message::SnapshotRequest(install.clone())));
        assert_eq!(snap_reply(&out).match_index, None, "go on: c needs it");
        let out = net.cores[2].step(Input::InstallSnapshot(install));
        assert!(out.contains(&Output::RestoreSnapshot { index: 6 }));
        let resp = snap_reply(&out);
        assert_eq!(resp.match_index, Some(6));
        let out = net.cores[0].step(Input::Response {
            from: PeerId(1),
            msg: Message::SnapshotResponse(resp),
        });
        net.absorb(0, out, None);
        net.run();
        assert_eq!(
            net.cores[2].log().last_index(),
            7,
            "the entry after the snapshot"
        );
        assert_eq!(net.cores[2].commit_index(), 7);
        assert_eq!(
            net.cores[0].debug_progress()[1].0,
            7,
            "c matches up to the end"
        );
    }

    #[test]
    fn s7_installing_a_snapshot_replaces_a_conflicting_log_durably() {
        let mut f = node("f", 1, 1, log_with_terms(&[1, 1, 1]));
        let out = f.step(Input::Request(Message::SnapshotRequest(snap_req(
            3, 5, 2, 9,
        ))));
        assert_eq!(
            out[0],
            Output::SaveHardState(HardState {
                term: 3,
                voted_for: None
            })
        );
        let r = snap_reply(&out);
        assert_eq!((r.term, r.match_index), (3, None));
        let out = f.step(Input::InstallSnapshot(snap_req(3, 5, 2, 9)));
        let restore = out
            .iter()
            .position(|o| *o == Output::RestoreSnapshot { index: 5 })
            .expect("restore");
        let reset = out
            .iter()
            .position(|o| *o == Output::ResetLog { index: 5, term: 2 })
            .expect("the old log is gone for good");
        let ack = out
            .iter()
            .position(|o| matches!(o, Output::Reply(_)))
            .unwrap();
        assert!(restore < ack && reset < ack, "{out:?}");
        assert_eq!(f.commit_index(), 5);
        assert_eq!((f.log().base_index(), f.log().last_index()), (5, 5));
        // Entries after it apply from 6 on.
        let out = f.step(Input::Request(Message::AppendRequest(AppendRequest {
            term: 3,
            leader_id: "L".into(),
            leader_url: "http://L".into(),
            prev_log_index: 5,
            prev_log_term: 2,
            entries: vec![Entry {
                index: 6,
                term: 3,
                payload: EntryPayload::Noop,
            }],
            leader_commit: 6,
            seq: 10,
        })));
        let applied: Vec<LogIndex> = out
            .iter()
            .filter_map(|o| match o {
                Output::Apply(es) => Some(es.iter().map(|e| e.index)),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(applied, [6]);
    }

    #[test]
    fn s7_a_snapshot_the_follower_already_covers_keeps_its_log_and_a_stale_one_is_refused() {
        let mut f = node("f", 1, 2, log_with_terms(&[1, 1, 2, 2]));
        // Everything up to 3 is committed here already: nothing to install.
        f.step(Input::Request(Message::AppendRequest(AppendRequest {
            term: 2,
            leader_id: "L".into(),
            leader_url: "http://L".into(),
            prev_log_index: 4,
            prev_log_term: 2,
            entries: vec![],
            leader_commit: 3,
            seq: 1,
        })));
        let out = f.step(Input::Request(Message::SnapshotRequest(snap_req(
            2, 3, 2, 2,
        ))));
        assert_eq!(snap_reply(&out).match_index, Some(3));
        // A matching entry beyond the commit index: the suffix after it is kept, nothing reset.
        let out = f.step(Input::InstallSnapshot(snap_req(2, 4, 2, 3)));
        assert!(!out.iter().any(|o| matches!(o, Output::ResetLog { .. })));
        assert_eq!(f.log().base_index(), 4);
        // A leader of an older term is told the newer one.
        let out = f.step(Input::Request(Message::SnapshotRequest(snap_req(
            1, 9, 1, 4,
        ))));
        let r = snap_reply(&out);
        assert_eq!((r.term, r.match_index), (2, None));
        let out = f.step(Input::InstallSnapshot(snap_req(1, 9, 1, 4)));
        assert!(!out
            .iter()
            .any(|o| matches!(o, Output::RestoreSnapshot { .. })));
        assert_eq!(f.commit_index(), 4);
    }

    #[test]
    fn s7_append_entries_below_the_followers_snapshot_are_skipped_not_rejected() {
        let mut f = node("f", 1, 2, RaftLog::with_base(10, 2, Vec::new()).unwrap());
        assert_eq!(f.commit_index(), 10, "a snapshot is committed");
        let entries: Vec<Entry> = (9..=12)
            .map(|index| Entry {
                index,
                term: 2,
                payload: EntryPayload::Noop,
            })
            .collect();
        let out = f.step(Input::Request(Message::AppendRequest(AppendRequest {
            term: 2,
            leader_id: "L".into(),
            leader_url: "http://L".into(),
            prev_log_index: 8,
            prev_log_term: 2,
            entries,
            leader_commit: 12,
            seq: 1,
        })));
        match reply(&out) {
            Message::AppendResponse(r) => assert!(r.success && r.match_index == 12, "{r:?}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(f.log().last_index(), 12);
        // A heartbeat from below the base only says how far it matches.
        let out = f.step(Input::Request(Message::AppendRequest(AppendRequest {
            term: 2,
            leader_id: "L".into(),
            leader_url: "http://L".into(),
            prev_log_index: 0,
            prev_log_term: 0,
            entries: vec![],
            leader_commit: 0,
            seq: 2,
        })));
        match reply(&out) {
            Message::AppendResponse(r) => assert!(r.success && r.match_index == 10, "{r:?}"),
            other => panic!("{other:?}"),
        }
    }
}
