//! [`RaftActor`]: the one owner of a node's [`RaftCore`] at run time.
//!
//! A thin shell: it ticks the core with `run_interval`, feeds it requests from the HTTP peer
//! routes, responses from peers, client writes ([`ClientWrite`]) and read-index requests
//! ([`ClientReadIndex`]), and carries out the core's outputs **in order** (save hard state, then
//! send, then apply, then answer). Peer RPCs run with `ctx.spawn`, so the mailbox never waits on
//! the network; their answers come back as ordinary inputs and the core drops stale ones.
//! Committed entries go to the `StoreActor` in log order; a client write is answered with the
//! outcome of applying its own entry. It never decides anything about Raft itself, and never
//! uses `ctx.wait`.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message as ActixMessage,
    WrapFuture,
};
use actix::{Addr, ResponseFuture};
use serde::Serialize;
use tokio::sync::oneshot;

mod snapshots;

use super::core::{
    Configuration, ConfigurationError, CoreConfig, HardState, Input, LeaderInfo, Member, Output,
    RaftCore, Role, SnapshotHeader,
};
use super::log::{Entry, RaftLog};
use super::rpc::Message;
use super::{LogIndex, NodeId, Term};
use crate::fatal::Fatal;
use crate::storage::snapshot::SnapshotMeta;
use crate::storage::{LogWriter, Record, WriteBatch};
use crate::store::actor::Summary;
use crate::store::{ApplyEntries, Command, CommandOutcome, KvState, Restore, StoreActor};
use crate::transport::faults::{Dice, FaultRules};
use crate::transport::Transport;

/// Pause before writing a batch again after the disk refused it.
const STORAGE_RETRY: Duration = Duration::from_millis(250);

/// Most messages held behind a write that is not yet durable (see `held`). Beyond it, new
/// messages to peers are dropped as if lost (the core resynchronises that follower, as after
/// any lost message); replies to peers are bounded by the peers' own in-flight limits.
pub const MAX_HELD: usize = 4096;

/// Default for [`RaftSetup::max_pending`].
pub const DEFAULT_MAX_PENDING: usize = 16 * 1024;

/// Size of one chunk of a snapshot sent to a follower.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

/// Largest snapshot a follower accepts from a leader (4 GiB, ~35M keys of 100-byte values):
/// a bound on the disk (or, in memory, the RAM) an incoming transfer may take.
pub const MAX_SNAPSHOT_BYTES: u64 = 4 << 30;

/// Snapshot files kept on disk (the newest and the one before, so a damaged newest one can
/// fall back without a gap in the log).
const SNAPSHOTS_KEPT: usize = 2;

/// Default for [`SnapshotPolicy::factor`].
pub const DEFAULT_SNAPSHOT_FACTOR: u64 = 1;

/// When to take snapshots and where they go.
///
/// The rule (Raft thesis §5.1: snapshot when the log outgrows the state), see [`Self::due`]:
/// a snapshot is due once **at least `entries` entries** were applied since the last one
/// **and** the log applied since then (in bytes) is at least **`factor` times the last
/// snapshot's size**; or, whatever the state's size, once that log reaches **`log_bytes`** (a
/// limit on the log to replay at restart and to keep on disk). A small state is so snapshotted
/// about every `entries` entries; a million-key state only once its log outgrows it (or hits
/// the limit), so snapshot work stays proportional to the writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// The floor: at least this many entries applied since the last snapshot (0: the growth
    /// rule is off, only `log_bytes` triggers).
    pub entries: u64,
    /// The log since the last snapshot must be at least this many times its size (0: the
    /// floor alone decides).
    pub factor: u64,
    /// The limit: a snapshot is due once this many bytes of entries were applied since the last
    /// one, whatever `entries` and `factor` say (0: no limit).
    pub log_bytes: u64,
    /// Entries kept in the log before a snapshot's index, so a follower only slightly behind
    /// still gets entries rather than the whole snapshot.
    pub trailing: u64,
    /// Where snapshot files go; `None` keeps the newest snapshot in memory only.
    pub dir: Option<PathBuf>,
}

impl SnapshotPolicy {
    /// Snapshots after at least `entries` entries once the log outgrows the last snapshot
    /// ([`DEFAULT_SNAPSHOT_FACTOR`]), or after `log_bytes` bytes of log; keeps a tenth of
    /// `entries` in the log after each.
    pub fn every(entries: u64, log_bytes: u64, dir: Option<PathBuf>) -> Self {
        SnapshotPolicy {
            entries,
            factor: DEFAULT_SNAPSHOT_FACTOR,
            log_bytes,
            trailing: entries / 10,
            dir,
        }
    }

    /// The same with another growth factor.
    pub fn with_factor(self, factor: u64) -> Self {
        SnapshotPolicy { factor, ..self }
    }

    /// Never take a snapshot (followers can still install one from a leader).
    pub fn never() -> Self {
        SnapshotPolicy::every(0, 0, None)
    }

    /// Whether a snapshot is due, given the entries and bytes of log applied since the last
    /// snapshot and that snapshot's size in bytes (0 if none). Pure.
    pub fn due(&self, entries_since: u64, log_bytes_since: u64, last_snapshot_len: u64) -> bool {
        if entries_since == 0 {
            return false;
        }
        let grown = self.entries > 0
            && entries_since >= self.entries
            && log_bytes_since >= self.factor.saturating_mul(last_snapshot_len);
        let limit = self.log_bytes > 0 && log_bytes_since >= self.log_bytes;
        grown || limit
    }
}

/// The newest snapshot this node holds.
#[derive(Debug)]
pub struct SnapshotInfo {
    pub meta: SnapshotMeta,
    /// Length of the snapshot file in bytes.
    pub len: u64,
    pub data: SnapshotData,
}

/// Where a snapshot's bytes are.
#[derive(Debug)]
pub enum SnapshotData {
    File(PathBuf),
    Memory(Vec<u8>),
}

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

/// A node's view of the cluster, as `/health` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    pub id: NodeId,
    /// `leader`, `follower` or `candidate`.
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
    /// The other voters' base URLs.
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
}

/// Why a client request could not be served by this node.
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

/// An RPC from another node could not be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RaftError {
    /// The message was not a request.
    NotARequest,
    /// The node stopped before the answer could be made durable.
    Stopped,
    /// The fault layer dropped the answer (`KVSTORE_FAULTS=1`).
    Dropped,
}

impl std::fmt::Display for RaftError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RaftError::NotARequest => write!(f, "not a Raft request"),
            RaftError::Stopped => write!(f, "node stopped before answering"),
            RaftError::Dropped => write!(f, "answer dropped by fault injection"),
        }
    }
}

impl std::error::Error for RaftError {}

/// A request from another node (RequestVote, AppendEntries or a snapshot chunk); answered with
/// its response.
#[derive(Debug, Clone, ActixMessage)]
#[rtype(result = "Result<Message, RaftError>")]
pub struct Inbound(pub Message);

/// A request from the peer at base URL `from` (as it said); answered like [`Inbound`], except
/// that the fault rules for `from` apply to the answer.
#[derive(Debug, Clone, ActixMessage)]
#[rtype(result = "Result<Message, RaftError>")]
pub struct InboundFrom {
    pub msg: Message,
    pub from: Option<String>,
}

/// Replace the fault rules (`KVSTORE_FAULTS=1` only; the route checks that).
#[derive(Debug, Clone, ActixMessage)]
#[rtype(result = "()")]
pub struct SetFaults(pub FaultRules);

/// The current fault rules.
#[derive(Debug, Clone, Copy, ActixMessage)]
#[rtype(result = "FaultRules")]
pub struct GetFaults;

/// Ask for the node's [`NodeStatus`].
#[derive(Debug, Clone, Copy, ActixMessage)]
#[rtype(result = "NodeStatus")]
pub struct GetStatus;

/// Stop the actor (a crash, in tests; shutdown otherwise). Nothing is flushed: whatever the
/// core's outputs required was already carried out when they were produced.
#[derive(Debug, Clone, Copy, ActixMessage)]
#[rtype(result = "()")]
pub struct Stop;

type WriteTx = oneshot::Sender<Result<CommandOutcome, ClientError>>;
type ReadTx = oneshot::Sender<Result<LogIndex, ClientError>>;

/// Owns the Raft core of this node. See the module docs.
pub struct RaftActor {
    core: RaftCore,
    transport: Box<dyn Transport>,
    store: Addr<StoreActor>,
    tick: Duration,
    peer_urls: Vec<String>,
    /// When the current leader last reached us with a valid AppendEntries.
    last_leader_contact: Option<Instant>,
    /// What was last logged, to log only changes of role, term or leader.
    logged: (Role, Term, Option<NodeId>),
    /// Client writes proposed here, by log index: (term of their entry, who waits).
    pending_writes: HashMap<LogIndex, (Term, WriteTx)>,
    /// Reads waiting for a read index, by read id.
    pending_reads: HashMap<u64, ReadTx>,
    next_read_id: u64,
    /// Highest index the store has applied.
    applied_index: LogIndex,
    /// Set when the store refused an entry: nothing more is applied or acknowledged.
    broken: Option<String>,
    /// The last index of the log replayed at start, until the store has applied it (then one
    /// line logs the key count the node recovered).
    replayed_through: Option<LogIndex>,
    /// Committed entries (and restores) not yet handed to the store.
    apply_queue: VecDeque<ApplyItem>,
    /// An `ApplyEntries` is in flight.
    applying: bool,
    max_pending: usize,
    /// The durable log's writer thread; `None` keeps everything in memory.
    storage: Option<Addr<LogWriter>>,
    /// Records gathered for the next write (group commit).
    unwritten: Vec<Record>,
    /// Highest entry index among `unwritten`.
    unwritten_max: Option<LogIndex>,
    /// Id the gathered records get when written; ids grow by one per write.
    next_batch: u64,
    /// The write in flight: (id, highest entry index in it).
    writing: Option<(u64, Option<LogIndex>)>,
    /// Messages held until the write with the given id is durable (persist before send); at
    /// most [`MAX_HELD`] (sends beyond it are dropped as lost).
    held: VecDeque<(u64, Held)>,
    /// Set while the log cannot be written (e.g. the disk is full): writes are refused.
    storage_error: Option<String>,
    policy: SnapshotPolicy,
    /// The newest snapshot (sent to followers behind the log's start).
    snapshot: Option<Rc<SnapshotInfo>>,
    /// Index of the snapshot before the newest: the durable log is kept from there on.
    prev_snapshot_index: LogIndex,
    /// A snapshot is being taken.
    snapshotting: bool,
    /// Bytes of entries applied since the last snapshot was started.
    bytes_since_snapshot: u64,
    /// A snapshot arriving from the leader, chunk by chunk.
    incoming: Option<Incoming>,
    /// A received snapshot is being checked and stored.
    installing: bool,
    /// A received snapshot's state, until the core says to restore it.
    pending_restore: Option<(KvState, Term)>,
    /// Fault rules for answers to peers (`KVSTORE_FAULTS=1`); the transport has a copy for
    /// requests.
    faults: FaultRules,
    dice: Dice,
}

/// A snapshot being received: whose, and where its bytes go.
#[derive(Debug)]
struct Incoming {
    term: Term,
    leader_id: NodeId,
    index: LogIndex,
    /// Bytes received and stored so far.
    len: u64,
    /// Where chunks go; `None` while a chunk is being written on a blocking thread.
    sink: Option<snapshots::Sink>,
}

/// Work for the store, in log order.
#[derive(Debug)]
enum ApplyItem {
    Entries(Vec<Entry>),
    Restore(KvState, Term),
}

/// A message that must not leave before a write is durable.
#[derive(Debug)]
enum Held {
    Send(NodeId, Message),
    Reply(Message, oneshot::Sender<Message>),
    Snapshot(NodeId, SnapshotHeader),
}

/// The answer to a request from a peer: now, or once what it depends on is durable.
#[derive(Debug)]
enum Replied {
    Now(Message),
    Later(oneshot::Receiver<Message>),
}

/// What one step produced for the caller, besides the outputs carried out.
#[derive(Debug, Default)]
struct Stepped {
    reply: Option<Replied>,
    proposed: Option<(LogIndex, Term)>,
    rejected: Option<Option<LeaderInfo>>,
}

/// Everything needed to start a [`RaftActor`].
pub struct RaftSetup {
    pub id: NodeId,
    /// This node's base URL.
    pub url: String,
    /// The other voters' base URLs. Each is also the peer's provisional id in the core's
    /// [`Configuration`] until nodes learn each other's `NODE_ID`s (see [`Member::by_url`]).
    pub peers: Vec<String>,
    pub timing: RaftTiming,
    /// Durable state to resume from.
    pub hard_state: HardState,
    /// Seed for the election-timeout randomness.
    pub seed: u64,
    /// Where committed entries are applied.
    pub store: Addr<StoreActor>,
    /// Most client writes (and, separately, reads) waiting in the pipeline at once; more are
    /// refused with [`ClientError::Overloaded`] (admission control).
    pub max_pending: usize,
    /// The log recovered from storage (empty in memory).
    pub log: RaftLog,
    /// The durable log's writer; `None` keeps everything in memory.
    pub storage: Option<Addr<LogWriter>>,
    /// When to take snapshots and where to keep them.
    pub snapshots: SnapshotPolicy,
    /// The snapshot the node started from, if any (the log's base is its index).
    pub snapshot: Option<SnapshotInfo>,
}

impl RaftSetup {
    /// The core's configuration: this node and its peers, all voters, peers by URL (their
    /// provisional ids). Fails when this node's id is also a peer's URL.
    pub fn configuration(&self) -> Result<Configuration, ConfigurationError> {
        let me = Member::new(self.id.clone(), self.url.clone());
        let peers = self.peers.iter().cloned().map(Member::by_url);
        Configuration::new(std::iter::once(me).chain(peers).collect())
    }
}

impl RaftActor {
    /// A node with `setup`, talking to its peers through `transport` (made on this thread).
    ///
    /// Panics if [`RaftSetup::configuration`] fails (start-up checks it first).
    pub fn new(setup: RaftSetup, transport: Box<dyn Transport>) -> Self {
        let configuration = setup
            .configuration()
            .unwrap_or_else(|e| panic!("invalid cluster configuration: {e}"));
        let cfg = CoreConfig {
            id: setup.id,
            url: setup.url,
            heartbeat_ticks: setup.timing.heartbeat_ticks,
            election_ticks: setup.timing.election_ticks,
            pre_vote: true,
            check_quorum: true,
        };
        let core = RaftCore::new(cfg, configuration, setup.hard_state, setup.log, setup.seed);
        let logged = (core.role(), core.term(), None);
        let applied_index = core.commit_index();
        let replayed_through = Some(core.log().last_index()).filter(|i| *i > applied_index);
        RaftActor {
            core,
            transport,
            store: setup.store,
            tick: setup.timing.tick,
            peer_urls: setup.peers,
            last_leader_contact: None,
            logged,
            pending_writes: HashMap::new(),
            pending_reads: HashMap::new(),
            next_read_id: 0,
            applied_index,
            broken: None,
            replayed_through,
            apply_queue: VecDeque::new(),
            applying: false,
            max_pending: setup.max_pending.max(1),
            storage: setup.storage,
            unwritten: Vec::new(),
            unwritten_max: None,
            next_batch: 1,
            writing: None,
            held: VecDeque::new(),
            storage_error: None,
            policy: setup.snapshots,
            snapshot: setup.snapshot.map(Rc::new),
            prev_snapshot_index: 0,
            snapshotting: false,
            bytes_since_snapshot: 0,
            incoming: None,
            installing: false,
            pending_restore: None,
            faults: FaultRules::default(),
            dice: Dice::new(setup.seed ^ 0xfa17),
        }
    }

    /// Step the core and carry out its outputs in order.
    fn step(&mut self, input: Input, ctx: &mut Context<Self>) -> Stepped {
        let was_leader = self.core.role() == Role::Leader;
        let outputs = self.core.step(input);
        let mut done = Stepped::default();
        let mut persisted = None;
        let mut dropped = Vec::new();
        for output in outputs {
            match output {
                Output::PersistEntries(entries) => {
                    let last = entries.last().map(|e| e.index);
                    if self.storage.is_some() {
                        self.unwritten_max = last.max(self.unwritten_max);
                        self.unwritten
                            .extend(entries.into_iter().map(Record::Entry));
                    } else {
                        // In memory, an entry is "durable" once the core holds it.
                        persisted = last.max(persisted);
                    }
                }
                Output::SaveHardState(hs) => {
                    if self.storage.is_some() {
                        self.unwritten.push(Record::HardState(hs));
                    }
                }
                Output::Send { to, msg } => match self.barrier() {
                    Some(_) if self.held.len() >= MAX_HELD => {
                        let seq = match &msg {
                            Message::AppendRequest(r) => Some(r.seq),
                            _ => None,
                        };
                        dropped.push((to, seq));
                    }
                    Some(b) => self.held.push_back((b, Held::Send(to, msg))),
                    None => self.send_rpc(to, msg, ctx),
                },
                Output::Reply(msg) => {
                    done.reply = Some(match self.barrier() {
                        Some(b) => {
                            let (tx, rx) = oneshot::channel();
                            self.held.push_back((b, Held::Reply(msg, tx)));
                            Replied::Later(rx)
                        }
                        None => Replied::Now(msg),
                    });
                }
                Output::Apply(entries) => self.apply(entries, ctx),
                Output::Proposed { index, term } => done.proposed = Some((index, term)),
                Output::ProposalRejected { leader } => done.rejected = Some(leader),
                Output::ReadReady { id, index } => {
                    if let Some(tx) = self.pending_reads.remove(&id) {
                        let _ = tx.send(Ok(index));
                    }
                }
                Output::ReadFailed { id, leader } => {
                    if let Some(tx) = self.pending_reads.remove(&id) {
                        let _ = tx.send(Err(ClientError::NotLeader(leader)));
                    }
                }
                Output::SendSnapshot { to, header } => match self.barrier() {
                    Some(_) if self.held.len() >= MAX_HELD => dropped.push((to, Some(header.seq))),
                    // Sent as soon as the term it carries is durable.
                    Some(b) => self.held.push_back((b, Held::Snapshot(to, header))),
                    None => self.start_snapshot_send(to, header, ctx),
                },
                Output::RestoreSnapshot { index } => match self.pending_restore.take() {
                    Some((state, term)) if state.last_applied() == index => {
                        self.apply_queue.push_back(ApplyItem::Restore(state, term));
                        self.pump_apply(ctx);
                    }
                    _ => self.fail_hard(
                        Fatal::SnapshotRestore,
                        format!("asked to restore snapshot {index}, which was not received"),
                    ),
                },
                Output::ResetLog { index, term } => {
                    if self.storage.is_some() {
                        self.unwritten.push(Record::Reset { index, term });
                    }
                }
            }
        }
        if was_leader && self.core.role() != Role::Leader {
            self.fail_pending_writes();
        }
        self.log_changes();
        if !dropped.is_empty() {
            tracing::debug!(
                dropped = dropped.len(),
                "too many messages held behind a write; dropped as lost"
            );
        }
        for (to, seq) in dropped {
            // Produces no output: the core only forgets what was in flight to `to`.
            self.step(Input::SendFailed { to, seq }, ctx);
        }
        if let Some(index) = persisted {
            self.step(Input::Persisted { index }, ctx);
        }
        self.write_next(ctx);
        done
    }

    /// The write that a message produced now must wait for, if any is not yet durable.
    fn barrier(&self) -> Option<u64> {
        if !self.unwritten.is_empty() {
            Some(self.next_batch)
        } else {
            self.writing.map(|(id, _)| id)
        }
    }

    /// Start writing the gathered records, unless a write is in flight (its completion starts
    /// the next one: everything gathered meanwhile shares one fsync).
    fn write_next(&mut self, ctx: &mut Context<Self>) {
        let Some(storage) = self.storage.clone() else {
            return;
        };
        if self.writing.is_some() || self.unwritten.is_empty() {
            return;
        }
        let id = self.next_batch;
        self.next_batch += 1;
        let records = std::mem::take(&mut self.unwritten);
        let max = self.unwritten_max.take();
        self.writing = Some((id, max));
        self.send_batch(storage, id, records, max, ctx);
    }

    fn send_batch(
        &mut self,
        storage: Addr<LogWriter>,
        id: u64,
        records: Vec<Record>,
        max: Option<LogIndex>,
        ctx: &mut Context<Self>,
    ) {
        let fut = storage.clone().send(WriteBatch(records));
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            match res {
                Ok(Ok(())) => {}
                Ok(Err(failed)) if failed.retryable => {
                    // Nothing that depends on this batch has left the node. Try again until
                    // the disk takes it; meanwhile new writes are refused.
                    if act.storage_error.is_none() {
                        tracing::error!(error = %failed.message, "cannot write the log; refusing writes and retrying");
                    }
                    act.storage_error = Some(failed.message);
                    let records = failed.records;
                    ctx.run_later(STORAGE_RETRY, move |act, ctx| {
                        act.send_batch(storage, id, records, max, ctx)
                    });
                    return;
                }
                Ok(Err(failed)) => {
                    return act.fail_hard(
                        Fatal::Storage,
                        format!("cannot write the log: {}", failed.message),
                    )
                }
                Err(e) => return act.fail_hard(Fatal::Storage, format!("log writer is gone: {e}")),
            }
            if act.storage_error.take().is_some() {
                tracing::info!("the log is writable again; accepting writes");
            }
            act.writing = None;
            act.release(id, ctx);
            if let Some(index) = max {
                act.step(Input::Persisted { index }, ctx);
            }
            act.write_next(ctx);
        }));
    }

    /// Let go of everything that waited for writes up to `id`, in order.
    fn release(&mut self, id: u64, ctx: &mut Context<Self>) {
        while self.held.front().is_some_and(|(b, _)| *b <= id) {
            let Some((_, held)) = self.held.pop_front() else {
                break;
            };
            match held {
                Held::Send(to, msg) => self.send_rpc(to, msg, ctx),
                Held::Reply(msg, tx) => {
                    let _ = tx.send(msg);
                }
                Held::Snapshot(to, req) => self.start_snapshot_send(to, req, ctx),
            }
        }
    }

    /// Leadership was lost: every write still waiting has an unknown outcome.
    fn fail_pending_writes(&mut self) {
        for (_, (_, tx)) in self.pending_writes.drain() {
            let _ = tx.send(Err(ClientError::Unknown(
                "leadership lost before the write was confirmed committed: \
                 it may or may not have been applied"
                    .into(),
            )));
        }
    }

    /// The member `id` of the core's configuration (its URL is where RPCs go).
    fn member(&self, id: &str) -> Option<Member> {
        self.core.configuration().member(id).cloned()
    }

    fn send_rpc(&mut self, to: NodeId, msg: Message, ctx: &mut Context<Self>) {
        let seq = match &msg {
            Message::AppendRequest(r) => Some(r.seq),
            _ => None,
        };
        let Some(member) = self.member(&to) else {
            // Not (or no longer) a member: as if lost.
            self.step(Input::SendFailed { to, seq }, ctx);
            return;
        };
        let fut = self.transport.call(&member, msg);
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok(resp) => {
                act.step(
                    Input::Response {
                        from: to,
                        msg: resp,
                    },
                    ctx,
                );
            }
            Err(e) => {
                tracing::debug!(peer = %member.url, error = %e, "raft rpc failed");
                act.step(Input::SendFailed { to, seq }, ctx);
            }
        }));
    }

    /// Queue committed entries for the store. One `ApplyEntries` is in flight at a time, so
    /// batches reach the store in log order even when its mailbox is full (actix may deliver a
    /// parked send after a later one).
    fn apply(&mut self, entries: Vec<Entry>, ctx: &mut Context<Self>) {
        self.bytes_since_snapshot += entries.iter().map(|e| e.size_hint() as u64).sum::<u64>();
        match self.apply_queue.back_mut() {
            Some(ApplyItem::Entries(queued)) => queued.extend(entries),
            _ => self.apply_queue.push_back(ApplyItem::Entries(entries)),
        }
        self.pump_apply(ctx);
    }

    fn pump_apply(&mut self, ctx: &mut Context<Self>) {
        if self.applying || self.broken.is_some() {
            return;
        }
        let Some(item) = self.apply_queue.pop_front() else {
            self.maybe_snapshot(ctx);
            return;
        };
        self.applying = true;
        let batch = match item {
            ApplyItem::Entries(batch) => batch,
            ApplyItem::Restore(state, term) => {
                let fut = self.store.send(Restore { state, term });
                ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
                    act.applying = false;
                    match res {
                        Ok(index) => act.applied_index = act.applied_index.max(index),
                        Err(e) => {
                            return act.fail_hard(
                                Fatal::StateMachine,
                                format!("store actor is gone: {e}"),
                            )
                        }
                    }
                    act.pump_apply(ctx);
                }));
                return;
            }
        };
        let fut = self.store.send(ApplyEntries(batch));
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
            act.applying = false;
            let applied = match res {
                Ok(Ok(applied)) => match crate::storage::failpoint::hit("store.apply") {
                    Ok(()) => applied,
                    // A test's stand-in for a store that refuses a committed entry.
                    Err(e) => {
                        return act.fail_hard(
                            Fatal::StateMachine,
                            format!("state machine refused a committed entry: {e}"),
                        )
                    }
                },
                Ok(Err(e)) => {
                    return act.fail_hard(
                        Fatal::StateMachine,
                        format!("state machine refused a committed entry: {e}"),
                    )
                }
                Err(e) => {
                    return act.fail_hard(Fatal::StateMachine, format!("store actor is gone: {e}"))
                }
            };
            for a in applied {
                act.applied_index = act.applied_index.max(a.index);
                if let Some((term, tx)) = act.pending_writes.remove(&a.index) {
                    let answer = match a.outcome {
                        Some(outcome) if term == a.term => Ok(outcome),
                        _ => Err(ClientError::NotApplied),
                    };
                    let _ = tx.send(answer);
                }
            }
            if act.replayed_through.is_some_and(|i| act.applied_index >= i) {
                act.replayed_through = None;
                act.log_recovered_keys(ctx);
            }
            act.pump_apply(ctx);
        }));
    }

    /// Every entry replayed at start is applied: say how many keys the node recovered.
    fn log_recovered_keys(&mut self, ctx: &mut Context<Self>) {
        let fut = self.store.send(Summary);
        ctx.spawn(fut.into_actor(self).map(|res, _, _| {
            if let Ok(s) = res {
                tracing::info!(
                    applied_index = s.applied_index,
                    keys = s.keys,
                    "recovered: every entry replayed at start is applied"
                );
            }
        }));
    }

    /// The node cannot go on (its log cannot be made durable, the state machine and the log
    /// disagree): refuse everything still waiting and end the process with the cause's exit
    /// status (see [`crate::fatal`]) rather than acknowledge anything more or keep leading; the
    /// rest of the cluster carries on without it.
    fn fail_hard(&mut self, cause: Fatal, why: String) {
        self.broken = Some(why.clone());
        for (_, (_, tx)) in self.pending_writes.drain() {
            let _ = tx.send(Err(ClientError::Internal(format!(
                "node stopped: {why}; the write may or may not have been applied"
            ))));
        }
        crate::fatal::stop(cause, &why);
    }

    fn log_changes(&mut self) {
        let role = self.core.role();
        let term = self.core.term();
        let leader = self.core.leader().map(|l| l.id.clone());
        let now = (role, term, leader);
        if now == self.logged {
            return;
        }
        match (&now.0, &now.2) {
            (Role::Leader, _) => tracing::info!(term, "became leader"),
            (Role::Follower, Some(l))
                if self.logged.2.as_ref() != Some(l) || self.logged.0 != Role::Follower =>
            {
                tracing::info!(term, leader = %l, "following leader")
            }
            (Role::Follower, None) if self.logged.0 == Role::Leader => {
                tracing::warn!(term, "stepped down as leader")
            }
            (Role::Candidate, _) => tracing::info!(term, "started election"),
            (Role::PreCandidate, _) if self.logged.0 != Role::PreCandidate => {
                tracing::info!(term, "election timeout; running pre-vote")
            }
            _ => tracing::debug!(term, role = role.as_str(), "raft state changed"),
        }
        self.logged = now;
    }

    fn status(&self) -> NodeStatus {
        let s = self.core.status();
        let ago = match s.role {
            Role::Leader => Some(0),
            _ => self
                .last_leader_contact
                .map(|t| u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)),
        };
        NodeStatus {
            id: s.id,
            state: s.role.as_str(),
            term: s.term,
            leader_id: s.leader.as_ref().map(|l| l.id.clone()),
            leader: s.leader.map(|l| l.url),
            last_heartbeat_ago_ms: ago,
            voted_for: s.voted_for,
            url: self.core.config().url.clone(),
            peers: self.peer_urls.clone(),
            last_log_index: s.last_log_index,
            last_log_term: s.last_log_term,
            commit_index: s.commit_index,
            applied_index: self.applied_index,
            snapshot_index: self.snapshot.as_ref().map_or(0, |s| s.meta.index),
            log_start_index: s.log_base,
            storage_error: self.storage_error.clone(),
        }
    }
}

impl Actor for RaftActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        crate::fatal::mark_critical_thread();
        // Requests from every HTTP worker land here; let them queue rather than wait.
        ctx.set_mailbox_capacity(1024);
        ctx.run_interval(self.tick, |act, ctx| {
            act.step(Input::Tick, ctx);
        });
        if self.peer_urls.is_empty() {
            // A cluster of one needs nobody's vote.
            self.step(Input::Campaign, ctx);
        }
    }
}

impl Handler<Inbound> for RaftActor {
    type Result = ResponseFuture<Result<Message, RaftError>>;

    fn handle(&mut self, Inbound(msg): Inbound, ctx: &mut Context<Self>) -> Self::Result {
        if !msg.is_request() {
            return Box::pin(async { Err(RaftError::NotARequest) });
        }
        if let Message::SnapshotRequest(req) = msg {
            return self.receive_snapshot_chunk(req, ctx);
        }
        let heartbeat_from = match &msg {
            Message::AppendRequest(r) => Some((r.term, r.leader_id.clone())),
            _ => None,
        };
        let reply = self.step(Input::Request(msg), ctx).reply;
        if let Some((term, leader)) = heartbeat_from {
            let accepted =
                term == self.core.term() && self.core.leader().is_some_and(|l| l.id == leader);
            if accepted {
                self.last_leader_contact = Some(Instant::now());
            }
        }
        match reply {
            Some(Replied::Now(m)) => Box::pin(async move { Ok(m) }),
            Some(Replied::Later(rx)) => {
                Box::pin(async move { rx.await.map_err(|_| RaftError::Stopped) })
            }
            None => Box::pin(async { Err(RaftError::NotARequest) }),
        }
    }
}

impl Handler<InboundFrom> for RaftActor {
    type Result = ResponseFuture<Result<Message, RaftError>>;

    fn handle(&mut self, msg: InboundFrom, ctx: &mut Context<Self>) -> Self::Result {
        let rule = msg
            .from
            .as_deref()
            .and_then(|from| self.faults.for_peer(from))
            .cloned();
        let answer = self.handle(Inbound(msg.msg), ctx);
        let Some(rule) = rule else {
            return answer;
        };
        // The request was handled; what happens to the answer is the fault's.
        let dropped = rule.cut || self.dice.roll() < rule.drop;
        let delay = self.dice.delay(rule.delay_ms);
        Box::pin(async move {
            let res = answer.await;
            if let Some(d) = delay {
                actix_web::rt::time::sleep(d).await;
            }
            if dropped {
                return Err(RaftError::Dropped);
            }
            res
        })
    }
}

impl Handler<SetFaults> for RaftActor {
    type Result = ();

    fn handle(&mut self, SetFaults(rules): SetFaults, _: &mut Context<Self>) {
        tracing::warn!(rules = ?rules.rules, "fault injection rules changed");
        self.faults = rules.clone();
        self.transport.set_faults(rules);
    }
}

impl Handler<GetFaults> for RaftActor {
    type Result = actix::MessageResult<GetFaults>;

    fn handle(&mut self, _: GetFaults, _: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(self.faults.clone())
    }
}

impl Handler<GetStatus> for RaftActor {
    type Result = actix::MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(self.status())
    }
}

impl Handler<Stop> for RaftActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<ClientWrite> for RaftActor {
    type Result = ResponseFuture<Result<CommandOutcome, ClientError>>;

    fn handle(&mut self, ClientWrite(cmd): ClientWrite, ctx: &mut Context<Self>) -> Self::Result {
        let refuse = |e| -> Self::Result { Box::pin(async move { Err(e) }) };
        if let Some(why) = &self.broken {
            return refuse(ClientError::Internal(format!(
                "node is not accepting writes: {why}"
            )));
        }
        if let Some(why) = &self.storage_error {
            return refuse(ClientError::Storage(why.clone()));
        }
        if self.core.role() != Role::Leader {
            return refuse(ClientError::NotLeader(self.core.leader().cloned()));
        }
        if self.pending_writes.len() >= self.max_pending {
            return refuse(ClientError::Overloaded);
        }
        let stepped = self.step(Input::Propose(cmd), ctx);
        match (stepped.proposed, stepped.rejected) {
            (Some((index, term)), _) => {
                let (tx, rx) = oneshot::channel();
                self.pending_writes.insert(index, (term, tx));
                Box::pin(async move {
                    rx.await.unwrap_or_else(|_| {
                        Err(ClientError::Unknown("the node stopped before the write was confirmed: it may or may not have been applied".into()))
                    })
                })
            }
            (None, Some(leader)) => refuse(ClientError::NotLeader(leader)),
            (None, None) => refuse(ClientError::NotLeader(None)),
        }
    }
}

impl Handler<ClientReadIndex> for RaftActor {
    type Result = ResponseFuture<Result<LogIndex, ClientError>>;

    fn handle(&mut self, _: ClientReadIndex, ctx: &mut Context<Self>) -> Self::Result {
        if self.core.role() != Role::Leader {
            let e = ClientError::NotLeader(self.core.leader().cloned());
            return Box::pin(async move { Err(e) });
        }
        if self.pending_reads.len() >= self.max_pending {
            return Box::pin(async move { Err(ClientError::Overloaded) });
        }
        self.next_read_id += 1;
        let id = self.next_read_id;
        let (tx, rx) = oneshot::channel();
        self.pending_reads.insert(id, tx);
        self.step(Input::ReadIndex { id }, ctx);
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(ClientError::Unknown(
                    "the node stopped before the read was served".into(),
                ))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_due_after_the_floor_once_the_log_outgrows_the_last_snapshot() {
        let p = SnapshotPolicy::every(100, 0, None);
        assert!(!p.due(0, 0, 0), "nothing applied, nothing to snapshot");
        assert!(!p.due(99, 1 << 20, 0), "below the entry floor");
        assert!(p.due(100, 1, 0), "no snapshot yet: the floor alone decides");
        // A 1 MB state: 100 small entries are not enough, 1 MB of log is.
        assert!(!p.due(100, 50_000, 1_000_000));
        assert!(!p.due(10_000, 999_999, 1_000_000));
        assert!(p.due(10_000, 1_000_000, 1_000_000));
        let p2 = p.clone().with_factor(2);
        assert!(!p2.due(10_000, 1_000_000, 1_000_000));
        assert!(p2.due(10_000, 2_000_000, 1_000_000));
        let floor_only = p.with_factor(0);
        assert!(floor_only.due(100, 1, 1_000_000));
    }

    #[test]
    fn the_log_limit_forces_a_snapshot_whatever_the_state_size() {
        let p = SnapshotPolicy::every(100, 64 << 20, None);
        assert!(!p.due(50, (64 << 20) - 1, 0));
        assert!(p.due(50, 64 << 20, 0), "the limit ignores the entry floor");
        assert!(
            p.due(500_000, 64 << 20, 200 << 20),
            "and the state's size: the log to replay stays bounded"
        );
        let limit_only = SnapshotPolicy::every(0, 1_000, None);
        assert!(!limit_only.due(1_000_000, 999, 0));
        assert!(limit_only.due(1, 1_000, 0));
    }

    #[test]
    fn never_means_never() {
        let p = SnapshotPolicy::never();
        assert!(!p.due(u64::MAX, u64::MAX, 0));
    }
}
