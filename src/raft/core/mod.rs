//! [`RaftCore`]: the Raft state machine of one node: roles, terms, votes, timers in ticks,
//! pre-vote, check-quorum, replication, read index and snapshots.
//!
//! Pure: it never reads a clock, does no I/O and spawns nothing. Each call to [`RaftCore::step`]
//! takes one [`Input`] and returns the [`Output`]s to carry out, **in order**: a
//! [`Output::SaveHardState`] or [`Output::PersistEntries`] always comes before any message that
//! depends on it (persist before send, before granting a vote, before a follower acknowledges
//! entries). The caller reports durability back with [`Input::Persisted`]; a leader counts its
//! own log toward a majority only up to the durable index. Time is counted in ticks; the
//! randomness of election timeouts comes from a seeded RNG, so every scenario replays exactly.
//!
//! Peers are [`Member`]s of the core's [`Configuration`], identified by [`NodeId`]. Requests
//! name their sender by id; a response comes back from the member the request was sent to.
//!
//! The files, one concern each (several `impl RaftCore` blocks):
//! - `io.rs`: [`Input`], [`Output`], [`Status`], [`CoreConfig`] and the values they carry;
//! - `configuration.rs`: [`Configuration`], voters and learners, and every quorum;
//! - `progress.rs`: the leader's view of a follower, and the quorum arithmetic;
//! - `election.rs`: ticks, timeouts, pre-vote, votes, check-quorum, role changes (§5.2, §9.6,
//!   §6.2);
//! - `replication.rs`: AppendEntries sent and received, commitment, proposals (§5.3, §5.4);
//! - `read_index.rs`: linearizable reads without a log write (thesis §6.4);
//! - `lease.rs`: leader leases (reads with no round, thesis §6.4.1) and the time-based vote
//!   hold they rest on, with the safety argument;
//! - `snapshot.rs`: compaction, snapshot transfer and installation (§7);
//! - `membership.rs`: the configurations the log holds, membership changes, provisional ids,
//!   and the safety argument of single-server changes (thesis §4);
//! - `transfer.rs`: leadership transfer (thesis §3.10).
//!
//! The core must never hand out a message that depends on state not yet reported durable, and
//! never count a member that is not a voter of its configuration toward a quorum.

mod configuration;
mod election;
mod io;
mod lease;
mod membership;
mod progress;
mod read_index;
mod replication;
mod snapshot;
mod transfer;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};

use rand::rngs::SmallRng;
use rand::SeedableRng;

pub use self::configuration::{
    ConfigChange, Configuration, ConfigurationError, Member, MemberRole, MembershipError,
    VoteResult, MAX_MEMBERS,
};
pub use self::io::{
    CoreConfig, HardState, Input, InstalledSnapshot, LeaderInfo, Output, PeerProgress, Role,
    SnapshotHeader, Status, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, MAX_INFLIGHT, MAX_PROMOTE_LAG,
    PIPELINE_MIN_BYTES, PIPELINE_MIN_ENTRIES,
};
pub use self::lease::{LeaseRead, LeaseTiming, MAX_CLOCK_DRIFT};

use self::lease::Lease;
use self::membership::Membership;
use self::progress::Progress;
use self::read_index::PendingRead;
use self::transfer::Transfer;
use super::log::RaftLog;
use super::rpc::Message;
use super::{LogIndex, NodeId, Term};

/// The Raft state machine of one node. See the module docs for the contract.
#[derive(Debug)]
pub struct RaftCore {
    cfg: CoreConfig,
    /// The configurations the log holds; the last is in force: its voters decide elections
    /// and commitment, its members receive the log.
    membership: Membership,
    /// Who a leader replicates to: the members of the configuration in force and of the
    /// committed one, other than this node, in configuration order (cached).
    peers: Vec<NodeId>,
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
    /// Bytes of entries this leader appended since the last tick, and their moving average
    /// per tick: the pace of learners' replication ([`io::learner_budget`]).
    appended_bytes: usize,
    append_rate: usize,
    /// This round's election timeout, in `[election_ticks, 2 * election_ticks)`.
    randomized_timeout: u32,
    /// Answers in the current (pre-)election, by member (this node's own included):
    /// `true` granted.
    votes: BTreeMap<NodeId, bool>,
    /// Highest index known committed.
    commit_index: LogIndex,
    /// Highest index of this node's log known durable: a leader counts itself toward a
    /// majority only up to here.
    durable_index: LogIndex,
    /// Highest index already emitted in [`Output::Apply`].
    applied_emitted: LogIndex,
    /// Per peer (leaders only; empty otherwise).
    progress: BTreeMap<NodeId, Progress>,
    /// Sequence number of the last AppendEntries or snapshot transfer sent (leaders only;
    /// grows within a term).
    seq: u64,
    /// Reads waiting for a quorum's acknowledgement (leaders only).
    pending_reads: VecDeque<PendingRead>,
    /// `seq` of the broadcast started for pending reads, until a quorum answered it.
    read_round: Option<u64>,
    /// A leadership transfer under way (leaders only).
    transfer: Option<Transfer>,
    /// Outputs of the step in progress.
    out: Vec<Output>,
    /// Leader leases and the time-based vote hold (`lease.rs`); inert until given a clock.
    lease: Lease,
}

impl RaftCore {
    /// A follower with the given durable state and log, its election timer seeded by `seed`.
    /// `configuration` is the one in force at the log's base (a snapshot's, or the bootstrap
    /// one when the log starts at 0); configuration entries in `log` override it.
    pub fn new(
        cfg: CoreConfig,
        configuration: Configuration,
        hard: HardState,
        log: RaftLog,
        seed: u64,
    ) -> Self {
        assert!(
            cfg.heartbeat_ticks >= 1,
            "heartbeat must be at least one tick"
        );
        assert!(
            cfg.election_ticks > cfg.heartbeat_ticks,
            "election timeout must exceed the heartbeat interval"
        );
        let base = log.base_index();
        let mut core = RaftCore {
            peers: Vec::new(),
            membership: Membership::new(configuration, base, &log),
            cfg,
            rng: SmallRng::seed_from_u64(seed),
            term: hard.term,
            voted_for: hard.voted_for,
            role: Role::Follower,
            leader: None,
            log,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            appended_bytes: 0,
            append_rate: 0,
            randomized_timeout: 0,
            votes: BTreeMap::new(),
            commit_index: 0,
            durable_index: 0,
            applied_emitted: 0,
            progress: BTreeMap::new(),
            seq: 0,
            pending_reads: VecDeque::new(),
            read_round: None,
            transfer: None,
            out: Vec::new(),
            lease: Lease::default(),
        };
        // What it was built from is what storage holds; a snapshot's prefix is committed and
        // already in the state machine.
        core.durable_index = core.log.last_index();
        core.commit_index = core.log.base_index();
        core.applied_emitted = core.log.base_index();
        core.configuration_changed();
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
                msg: Message::VoteResponse(resp),
            } => self.on_vote_response(from, resp),
            Input::Response {
                from,
                msg: Message::AppendResponse(resp),
            } => self.on_append_response(from, resp),
            Input::Response {
                from,
                msg: Message::SnapshotResponse(resp),
            } => self.on_snapshot_response(from, resp),
            Input::Propose(cmd) => self.propose(vec![cmd]),
            Input::ProposeBatch(cmds) => self.propose(cmds),
            Input::ReadIndex { id } => self.read_index(id),
            Input::SendFailed { to, seq } => self.on_send_failed(&to, seq),
            Input::Persisted { index } => self.on_persisted(index),
            Input::Compact { index } => self.compact(index),
            Input::InstallSnapshot(snap) => self.install_snapshot(snap),
            Input::ChangeMembership(change) => self.change_membership(change),
            Input::TransferLeadership { to } => self.transfer_leadership(to),
            Input::Request(Message::TimeoutNowRequest(req)) => self.on_timeout_now(req),
            Input::Response {
                from,
                msg: Message::TimeoutNowResponse(resp),
            } => self.on_timeout_now_response(&from, resp),
            // A response stepped as a request or the reverse: a caller bug; ignore it.
            Input::Request(_) | Input::Response { .. } => {}
        }
        self.reconcile();
        std::mem::take(&mut self.out)
    }

    /// Replace the configuration in force by hand, as if a configuration entry at the log's
    /// base said so (tests only: at run time configurations come from the log and snapshots).
    #[cfg(test)]
    pub(crate) fn set_configuration(&mut self, configuration: Configuration) -> Vec<Output> {
        let base = self.log.base_index();
        self.membership = Membership::new(configuration, base, &RaftLog::new()).recorded();
        self.configuration_changed();
        if self.role == Role::Leader {
            // The majority may have changed: what is stored where may now be committed, and
            // reads may now be proven.
            self.maybe_commit();
            self.check_reads();
        }
        std::mem::take(&mut self.out)
    }

    /// The configuration in force.
    pub fn configuration(&self) -> &Configuration {
        self.membership.current()
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
            log_base: self.log.base_index(),
            configuration: self.membership.current().clone(),
            config_index: self.membership.current_index(),
            transfer: self.transfer_target(),
        }
    }

    /// The configuration in force at `index` (at least the log's base, at most its last
    /// index): what a snapshot up to `index` records.
    pub fn configuration_at(&self, index: LogIndex) -> Configuration {
        self.membership.at(index).clone()
    }

    /// What this leader knows of each other member's log, in configuration order; empty
    /// unless this node leads.
    pub fn peer_progress(&self) -> Vec<PeerProgress> {
        self.peers
            .iter()
            .filter_map(|id| {
                self.progress.get(id).map(|p| PeerProgress {
                    id: id.clone(),
                    match_index: p.match_index,
                    next_index: p.next_index,
                    snapshotting: p.state == progress::ProgressState::Snapshot,
                    recent_active: p.recent_active,
                    last_heard_ticks: p.last_heard,
                })
            })
            .collect()
    }

    /// The leader's view of each peer, one line each, for debug output only (nothing may
    /// parse it); empty unless this node leads.
    pub fn describe_progress(&self) -> Vec<String> {
        self.progress
            .iter()
            .map(|(id, p)| {
                format!(
                    "{id}: match {} next {} {:?} inflight {}",
                    p.match_index,
                    p.next_index,
                    p.state,
                    p.inflight.len()
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

    /// The settings this core runs with.
    pub fn config(&self) -> &CoreConfig {
        &self.cfg
    }

    /// The current randomized election timeout, in ticks (for tests and diagnostics).
    pub fn randomized_timeout(&self) -> u32 {
        self.randomized_timeout
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
}
