//! What the `RaftActor` is asked and answers: the client messages ([`ClientWrite`],
//! [`ClientReadIndex`]), the membership ones ([`ChangeMembership`], [`TransferLeadership`]) and
//! their [`ClientError`], [`GetStatus`] and its plain [`NodeStatus`]
//! (its JSON shape is `api::health`'s, the HTTP mapping of errors `api::errors`'), [`Stop`],
//! and [`RaftTiming`]. Plain types: no HTTP, no serde.

use std::time::Duration;

use actix::Message as ActixMessage;

use crate::raft::core::{ConfigChange, Configuration, LeaderInfo, MembershipError, PeerProgress};
use crate::raft::{LogIndex, NodeId, Term};
use crate::store::{Command, CommandOutcome};

/// How time maps to the core's ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftTiming {
    /// Wall-clock length of one tick.
    pub tick: Duration,
    /// Heartbeat interval, in ticks.
    pub heartbeat_ticks: u32,
    /// Base election timeout, in ticks (randomized over [T, 2T) per election).
    pub election_ticks: u32,
}

impl RaftTiming {
    /// Ticks for a heartbeat and an election timeout given in milliseconds. The tick is a fifth of
    /// the heartbeat (at most 10 ms, at least 1 ms), so timeouts keep a fine resolution.
    pub fn from_millis(heartbeat_ms: u64, election_ms: u64) -> Self {
        let tick_ms = (heartbeat_ms / 5).clamp(1, 10);
        let ticks = |ms: u64| {
            u32::try_from(ms.div_ceil(tick_ms))
                .unwrap_or(u32::MAX)
                .max(1)
        };
        RaftTiming {
            tick: Duration::from_millis(tick_ms),
            heartbeat_ticks: ticks(heartbeat_ms),
            election_ticks: ticks(election_ms).max(ticks(heartbeat_ms) + 1),
        }
    }
}

/// A node's view of the cluster (`/health` shows it as JSON: `api::health`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub id: NodeId,
    /// `leader`, `follower` or `candidate`; `removed` when this node is not a member of its
    /// configuration in force.
    pub state: &'static str,
    pub term: Term,
    pub leader_id: Option<NodeId>,
    /// The leader's base URL.
    pub leader: Option<String>,
    /// Milliseconds since the last valid AppendEntries from the current leader (0 on the leader;
    /// null before any).
    pub last_heartbeat_ago_ms: Option<u64>,
    pub voted_for: Option<NodeId>,
    /// This node's base URL.
    pub url: String,
    /// The other members' base URLs (voters and learners) of the configuration in force.
    pub peers: Vec<String>,
    pub last_log_index: u64,
    pub last_log_term: Term,
    pub commit_index: LogIndex,
    /// Highest index applied to the key-value map.
    pub applied_index: LogIndex,
    /// Index of the newest snapshot (0 if none); the log holds entries from a little before it.
    pub snapshot_index: LogIndex,
    /// The log's base: entries up to here are only in a snapshot.
    pub log_start_index: LogIndex,
    /// Why the log cannot be written right now (e.g. a full disk), if it cannot.
    pub storage_error: Option<String>,
    /// What this node is in the configuration in force: `voter`, `learner` or `removed`.
    pub membership: &'static str,
    /// The configuration in force (the latest in the log, committed or not).
    pub configuration: Configuration,
    /// The index of the entry that holds it (0: the bootstrap configuration).
    pub config_index: LogIndex,
    /// The leader's view of each other member's log, in configuration order (empty unless
    /// this node leads).
    pub progress: Vec<PeerProgress>,
    /// Milliseconds since each other member last answered an RPC of this node, by id (only
    /// members that ever answered; only kept up to date while this node leads).
    pub last_contact_ms: Vec<(NodeId, u64)>,
    /// The voter leadership is being handed to (leaders only).
    pub transfer: Option<NodeId>,
    /// This node leads and holds a valid lease now: its linearizable reads need no network
    /// round (`raft::core::lease`).
    pub lease: bool,
}

impl NodeStatus {
    /// Whether the configuration in force has a configuration entry not yet committed (the
    /// next membership change would be refused as in progress).
    pub fn change_in_progress(&self) -> bool {
        self.config_index > self.commit_index
    }

    /// Whether this node was removed from the cluster.
    pub fn removed(&self) -> bool {
        self.membership == "removed"
    }
}

/// Why a client request could not be served by this node (`api::errors` maps it to HTTP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// This node is not the leader; `leader` is the one it knows of, if any.
    NotLeader(Option<LeaderInfo>),
    /// Too many requests are waiting for the Raft pipeline.
    Overloaded,
    /// The outcome is unknown: leadership was lost before the entry committed. The write may
    /// or may not be applied.
    Unknown(String),
    /// The entry was overwritten by another leader's: the write was not applied.
    NotApplied,
    /// The state machine refused an entry (a bug); the node stops answering writes.
    Internal(String),
    /// The log cannot be written (e.g. the disk is full): writes are refused until it can.
    Storage(String),
    /// A membership change or leadership transfer cannot be made.
    Membership(MembershipError),
    /// This node is not a member of its configuration in force: it serves no client.
    Removed,
    /// A leadership transfer started but no other node took over in time (the message says
    /// to whom and how long was waited); this node leads on.
    TransferFailed(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NotLeader(Some(l)) => {
                write!(f, "not the leader (leader is {} at {})", l.id, l.url)
            }
            ClientError::NotLeader(None) => write!(f, "no leader known"),
            ClientError::Overloaded => write!(
                f,
                "overloaded: too many requests waiting for the Raft pipeline"
            ),
            ClientError::Unknown(why) => write!(f, "{why}"),
            ClientError::NotApplied => write!(
                f,
                "the write was not applied: leadership changed before it committed"
            ),
            ClientError::Internal(why) => write!(f, "{why}"),
            ClientError::Storage(why) => write!(
                f,
                "storage: cannot write the log ({why}); writes are refused until it can"
            ),
            ClientError::Membership(e) => write!(f, "{e}"),
            ClientError::Removed => write!(f, "this node was removed from the cluster"),
            ClientError::TransferFailed(why) => write!(f, "{why}"),
        }
    }
}

/// Replicate a client command; answered with its outcome once applied.
#[derive(Debug, Clone, ActixMessage)]
#[rtype(result = "Result<CommandOutcome, ClientError>")]
pub struct ClientWrite(pub Command);

/// Ask for a linearizable read index (ReadIndex): answered with the log index that the state
/// machine must have applied before the read is served.
#[derive(Debug, Clone, Copy, ActixMessage)]
#[rtype(result = "Result<LogIndex, ClientError>")]
pub struct ClientReadIndex;

/// Ask for a linearizable read: on the leader, with a valid lease (`raft::core::lease`) at
/// once, else by ReadIndex as [`ClientReadIndex`]; on a follower with `--follower-reads on`,
/// a read index asked of the leader (`POST /raft/read-index`); otherwise `NotLeader` (the
/// caller forwards the read).
#[derive(Debug, Clone, Copy, ActixMessage)]
#[rtype(result = "Result<ReadGrant, ClientError>")]
pub struct ClientLeaseRead;

/// The answer to [`ClientLeaseRead`]: the state machine must have applied `index` before the
/// read is taken; with `lease_until`, the value taken may be answered only if the monotonic
/// clock, read *after* taking it, is still before `lease_until` (else: a ReadIndex read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadGrant {
    pub index: LogIndex,
    pub lease_until: Option<tokio::time::Instant>,
    /// How `index` was proved (for the metrics).
    pub path: ReadPath,
}

/// How a linearizable read's index was proved: the `path` label of
/// `kvstore_linearizable_reads_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPath {
    /// The leader's lease: no network round.
    Lease,
    /// The leader's heartbeat round to a majority (ReadIndex).
    ReadIndex,
    /// A follower asked the leader (`/raft/read-index`) and reads its own state machine.
    Follower,
}

impl ReadPath {
    pub fn label(self) -> &'static str {
        match self {
            ReadPath::Lease => "lease",
            ReadPath::ReadIndex => "read_index",
            ReadPath::Follower => "follower",
        }
    }
}

/// Change the membership (leaders only; others answer `NotLeader`, or `Membership` with
/// `MembershipError::NotLeader`): answered once the configuration entry is committed and
/// applied (or at once when the configuration already is so).
#[derive(Debug, Clone, ActixMessage)]
#[rtype(result = "Result<(), ClientError>")]
pub struct ChangeMembership(pub ConfigChange);

/// Hand leadership to this voter, or to the most caught-up one (`None`; what a leader does
/// when stopped): answered with the new leader's id once this node knows another node leads
/// (or at once when this node is asked to hand it to itself), or an error when the transfer is
/// refused or abandoned (after about two election timeouts).
#[derive(Debug, Clone, ActixMessage)]
#[rtype(result = "Result<NodeId, ClientError>")]
pub struct TransferLeadership(pub Option<NodeId>);

/// Ask for the configuration in force at a log index (the one a snapshot of the map at that
/// index records; `GET /admin/snapshot` encodes it into the backup).
#[derive(Debug, Clone, Copy, ActixMessage)]
#[rtype(result = "Configuration")]
pub struct ConfigurationAt(pub LogIndex);

/// Ask whether this node was removed from the cluster (a cheap check for routes that do not
/// go through the Raft pipeline, e.g. stale reads).
#[derive(Debug, Clone, Copy, ActixMessage)]
#[rtype(result = "bool")]
pub struct IsRemoved;

/// Ask for the node's [`NodeStatus`].
#[derive(Debug, Clone, Copy, ActixMessage)]
#[rtype(result = "NodeStatus")]
pub struct GetStatus;

/// Stop the actor (a crash, in tests; shutdown otherwise). Nothing is flushed: whatever the
/// core's outputs required was already carried out when they were produced.
#[derive(Debug, Clone, Copy, ActixMessage)]
#[rtype(result = "()")]
pub struct Stop;
