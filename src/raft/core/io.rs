//! What goes into and comes out of the core: [`Input`], [`Output`], and the small values they
//! carry ([`HardState`], [`LeaderInfo`], [`SnapshotHeader`], [`InstalledSnapshot`]); the fixed
//! settings ([`CoreConfig`]); the [`Role`] and the [`Status`] report; the batching and
//! flow-control bounds.
//!
//! Plain data: no logic beyond trivial accessors, no I/O, no clock.

use super::configuration::{ConfigChange, Configuration, MembershipError};
use crate::raft::log::Entry;
use crate::raft::rpc::{Message, SnapshotRequest};
use crate::raft::{LogIndex, NodeId, Term};
use crate::store::Command;

/// Most AppendEntries with entries in flight to one follower.
pub const MAX_INFLIGHT: usize = 4;
/// A follower with a batch in flight gets another one at once (pipelined) only if what waits
/// for it holds at least this many entries or [`PIPELINE_MIN_BYTES`]: a backlog (catching up,
/// a burst of large values) streams, while a trickle of small writes waits for the answer and
/// leaves together with everything proposed meanwhile. Every AppendEntries costs an HTTP
/// request and an fsync on the follower, whatever it carries: on 3 nodes sharing 2 CPUs, one
/// small batch at a time cut the followers' CPU per write by a quarter (BENCHMARKS.md).
pub const PIPELINE_MIN_ENTRIES: usize = MAX_BATCH_ENTRIES / 4;
/// See [`PIPELINE_MIN_ENTRIES`].
pub const PIPELINE_MIN_BYTES: usize = MAX_BATCH_BYTES / 4;
/// Most entries in one AppendEntries.
pub const MAX_BATCH_ENTRIES: usize = 1024;
/// About the most bytes of entries in one AppendEntries (at least one entry is always sent).
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// Least bytes of entries a learner may receive per tick (see [`learner_budget`]).
pub const LEARNER_MIN_BYTES_PER_TICK: usize = 32 * 1024;
/// Most budget a learner whose window was full may carry over to later batches (see
/// `RaftCore::pace_learners`): a full window's worth of batches.
pub const MAX_LEARNER_CREDIT: usize = MAX_INFLIGHT * MAX_BATCH_BYTES;

/// Bytes of entries a learner may receive in one tick, given the bytes the leader appended per
/// tick lately (`append_rate`): twice that, so a learner's backlog drains at about the rate
/// the writes come in, at least [`LEARNER_MIN_BYTES_PER_TICK`] and at most one full batch.
/// Learners count for no quorum, so replicating to them once a tick costs no write any
/// latency, and a joining node's catch-up (the log after its snapshot) is spread over time
/// instead of taking the CPU from the writes in a burst.
pub fn learner_budget(append_rate: usize) -> usize {
    append_rate
        .saturating_mul(2)
        .clamp(LEARNER_MIN_BYTES_PER_TICK, MAX_BATCH_BYTES)
}

/// How many entries a learner may lag behind the leader's last index and still be promoted
/// ([`MembershipError::Lagging`] otherwise).
pub const MAX_PROMOTE_LAG: LogIndex = 1000;

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

/// Fixed settings of a core. Who the voters are is not a setting: it is the core's
/// [`Configuration`](super::Configuration), given to [`RaftCore::new`](super::RaftCore::new)
/// and replaceable at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreConfig {
    /// This node's id, unique in the cluster.
    pub id: NodeId,
    /// This node's base URL, sent to followers so they can name the leader.
    pub url: String,
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

/// What the core decides about a snapshot transfer it starts ([`Output::SendSnapshot`]): the
/// caller streams its newest snapshot in chunks that carry these fields, the snapshot's own
/// position (index, last term) and the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// The leader's term.
    pub term: Term,
    pub leader_id: NodeId,
    pub leader_url: String,
    /// The sequence number of this transfer: its answer, or its failure
    /// ([`Input::SendFailed`]), must carry it.
    pub seq: u64,
}

impl SnapshotHeader {
    /// The request every chunk of the transfer starts from, for a snapshot ending at
    /// (`index`, `last_term`): the caller sets `offset`, `done` and `data` per chunk.
    pub fn request(&self, index: LogIndex, last_term: Term) -> SnapshotRequest {
        SnapshotRequest {
            term: self.term,
            leader_id: self.leader_id.clone(),
            leader_url: self.leader_url.clone(),
            index,
            last_term,
            seq: self.seq,
            ..SnapshotRequest::default()
        }
    }
}

/// A snapshot from the leader that the caller received whole, checked and made durable
/// ([`Input::InstallSnapshot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledSnapshot {
    /// The term of the leader that sent it.
    pub term: Term,
    /// The last index it includes.
    pub index: LogIndex,
    /// The term of that entry.
    pub last_term: Term,
    /// The transfer's sequence number (echoed in the answer).
    pub seq: u64,
    /// The configuration in force at `index`, which the snapshot file records (`None` for a
    /// file written before snapshots recorded one: the node keeps its configuration).
    pub configuration: Option<Configuration>,
}

impl From<&SnapshotRequest> for InstalledSnapshot {
    /// The snapshot a transfer described (any of its chunks carries the same header).
    fn from(req: &SnapshotRequest) -> Self {
        InstalledSnapshot {
            term: req.term,
            index: req.index,
            last_term: req.last_term,
            seq: req.seq,
            configuration: None,
        }
    }
}

/// What happens to the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// One unit of time passed.
    Tick,
    /// A request from another node (its answer is an [`Output::Reply`]).
    Request(Message),
    /// The answer from `from` to a request this node sent it.
    Response { from: NodeId, msg: Message },
    /// Start an election now (a single-node cluster does this at start-up).
    Campaign,
    /// A client command to replicate (answered by [`Output::Proposed`] or
    /// [`Output::ProposalRejected`]).
    Propose(Command),
    /// Client commands gathered while the caller was busy: as many `Propose`s in this order,
    /// but their entries are persisted and sent together.
    ProposeBatch(Vec<Command>),
    /// A linearizable read wants a read index (answered by [`Output::ReadReady`] or
    /// [`Output::ReadFailed`], now or later). `id` is the caller's.
    ReadIndex { id: u64 },
    /// A request sent to `to` got no response (timeout, connection error); `seq` is the
    /// AppendEntries (or snapshot transfer) sequence number, if it was one.
    SendFailed { to: NodeId, seq: Option<u64> },
    /// Every entry up to `index` written by [`Output::PersistEntries`] so far is durable.
    Persisted { index: LogIndex },
    /// A snapshot of the state machine up to at least `index` is durable: drop the log up to
    /// `index` (which must be applied).
    Compact { index: LogIndex },
    /// A snapshot sent by the leader was received, checked and made durable. The core decides
    /// whether it replaces the log (answered by [`Output::RestoreSnapshot`], possibly
    /// [`Output::ResetLog`], then a reply).
    InstallSnapshot(InstalledSnapshot),
    /// Change the membership (leaders only): answered by [`Output::ChangeProposed`] (the
    /// configuration entry's position: the change is made once it is committed),
    /// [`Output::ChangeDone`] (already so) or [`Output::ChangeRejected`].
    ChangeMembership(ConfigChange),
    /// Hand leadership to voter `to`, or to the most caught-up voter when `None` (thesis
    /// §3.10): answered by [`Output::TransferStarted`] or [`Output::TransferRejected`]. The
    /// transfer ends when another node leads, or is abandoned after an election timeout.
    TransferLeadership { to: Option<NodeId> },
}

/// What the caller must do, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Durably store term and vote before carrying out any later output.
    SaveHardState(HardState),
    /// Durably store these entries (writing entry `i` discards any stored entry at `i` or
    /// later) before carrying out any later output; then report [`Input::Persisted`].
    PersistEntries(Vec<Entry>),
    /// Send a request to a peer (its URL is in the core's configuration); feed its answer back
    /// as [`Input::Response`].
    Send { to: NodeId, msg: Message },
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
    /// that carry `header`. Feed the final answer back as [`Input::Response`], or a failure as
    /// [`Input::SendFailed`] with `header.seq`.
    SendSnapshot { to: NodeId, header: SnapshotHeader },
    /// Replace the state machine with the snapshot just installed (up to `index`), in order
    /// with [`Output::Apply`].
    RestoreSnapshot { index: LogIndex },
    /// Durably record that the log was replaced by a snapshot ending at (`index`, `term`): no
    /// entry stored before survives.
    ResetLog { index: LogIndex, term: Term },
    /// The membership change was appended at `index` in `term`; it is made once the entry
    /// applied at `index` has this term.
    ChangeProposed { index: LogIndex, term: Term },
    /// The membership change asked for is already the committed configuration.
    ChangeDone,
    /// The membership change cannot be made.
    ChangeRejected { error: MembershipError },
    /// Leadership is being handed to `to`.
    TransferStarted { to: NodeId },
    /// Leadership cannot be handed over.
    TransferRejected { error: MembershipError },
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
    /// The log's base: entries up to here were compacted into a snapshot (0 when none were).
    pub log_base: LogIndex,
    /// The configuration in force (the latest in the log, committed or not).
    pub configuration: Configuration,
    /// The index of the entry that holds it (0: the bootstrap configuration, from `PEERS`, in
    /// no entry yet; for one a snapshot brought, the snapshot's index).
    pub config_index: LogIndex,
    /// The voter leadership is being handed to (leaders only).
    pub transfer: Option<NodeId>,
}

/// What a leader knows of one member's log (for `GET /cluster`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerProgress {
    pub id: NodeId,
    /// Highest index known to be in its log.
    pub match_index: LogIndex,
    /// Next index to send it.
    pub next_index: LogIndex,
    /// A snapshot is on its way to it.
    pub snapshotting: bool,
    /// It answered within the current check-quorum period.
    pub recent_active: bool,
    /// Ticks since it last answered this leader (`None`: not yet in this term).
    pub last_heard_ticks: Option<u32>,
}
