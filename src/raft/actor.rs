//! [`RaftActor`]: the one owner of a node's [`RaftCore`] at run time.
//!
//! A thin shell: it ticks the core with `run_interval`, feeds it requests from peers (a
//! transport's [`Deliver`]), responses to its own RPCs, client writes ([`ClientWrite`]) and read-index requests
//! ([`ClientReadIndex`], [`ClientLeaseRead`]; a follower's `/raft/read-index` in `reads`), and carries out the core's outputs **in order** (save hard state, then
//! send, then apply, then answer). Peer RPCs run with `ctx.spawn`, so the mailbox never waits on
//! the network; their answers come back as ordinary inputs and the core drops stale ones.
//! Committed entries go to the `StoreActor` in log order; a client write is answered with the
//! outcome of applying its own entry. It never decides anything about Raft itself, and never
//! uses `ctx.wait`.
//!
//! Each concern it carries out has its own file: [`barrier`](super::barrier) (persist before
//! send, group commit; pure, in `raft/`, shared with the simulator), [`apply`] (the way to
//! the store), `snapshots` (taking, sending, receiving),
//! `policy` (when to snapshot), `messages` (what it is asked and answers), `membership`
//! (membership changes, leadership transfers, the status report), `metrics` (elections, leader
//! changes and peer RPCs counted, the state sample `/metrics` shows). The log is written
//! through a [`LogStore`] (disk, or memory: durable at once, the same code path). Whether a
//! client request can be served is the core's to say (its `Proposed`, `ProposalRejected`,
//! `ReadFailed` outputs); the actor only refuses what the core cannot know (a full pipeline, a
//! broken store, an unwritable log). HTTP shapes live in `api/`, fault injection in the
//! transport layer: this actor knows neither.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, WrapFuture};
use actix::{Addr, ResponseFuture};
use futures_util::FutureExt;
use tokio::sync::oneshot;

pub mod apply;
mod membership;
mod messages;
mod metrics;
mod policy;
mod reads;
mod snapshots;

use self::apply::{ApplyItem, ApplyPump};
use self::membership::{ChangeTx, TransferWaiter, Waiter};
use super::barrier::{Admit, Batch, WriteBarrier};
use super::core::{
    Configuration, ConfigurationError, CoreConfig, HardState, Input, Member, Output, RaftCore,
    Role, SnapshotHeader,
};
use super::log::{Entry, EntryPayload, RaftLog};
use super::rpc::Message;
use super::{LogIndex, NodeId, Term};
use crate::fatal::Fatal;
use crate::storage::{LogStore, Record, WriteFailed};
use crate::store::actor::{ApplyEntries, Committed, Restore, StoreActor, Summary};
use crate::store::{Command, CommandOutcome, KvState};
use crate::transport::{Deliver, DeliveryError, Transport};

pub use self::messages::{
    ChangeMembership, ClientError, ClientLeaseRead, ClientReadIndex, ClientWrite, ConfigurationAt,
    GetStatus, IsRemoved, NodeStatus, RaftTiming, ReadGrant, ReadPath, Stop, TransferLeadership,
};
pub use self::metrics::GetSample;
pub use self::policy::{
    SnapshotData, SnapshotInfo, SnapshotPolicy, DEFAULT_SNAPSHOT_FACTOR, MAX_SNAPSHOT_BYTES,
    SNAPSHOT_CHUNK_BYTES, SNAPSHOT_SEND_BYTES_PER_SEC,
};
pub use super::barrier::MAX_HELD;

/// Pause before writing a batch again after the disk refused it.
const STORAGE_RETRY: Duration = Duration::from_millis(250);

/// Default for [`RaftSetup::max_pending`].
pub const DEFAULT_MAX_PENDING: usize = 16 * 1024;

type WriteTx = oneshot::Sender<Result<CommandOutcome, ClientError>>;
type ReadTx = oneshot::Sender<Result<LogIndex, ClientError>>;

/// Owns the Raft core of this node. See the module docs.
pub struct RaftActor {
    core: RaftCore,
    transport: Box<dyn Transport>,
    store: Addr<StoreActor>,
    tick: Duration,
    /// When the current leader last reached us with a valid AppendEntries.
    last_leader_contact: Option<Instant>,
    /// What was last logged, to log only changes of role, term or leader.
    logged: (Role, Term, Option<NodeId>),
    /// Client writes that arrived since the last proposal, with who waits for each: proposed
    /// together once the mailbox is drained (`propose_gathered`), so the writes that arrive
    /// while the actor is busy share one entry batch, one write and one AppendEntries.
    gathered: Vec<(Command, WriteTx)>,
    /// The client writes being proposed in the current step, in order: the core's `Proposed`
    /// or `ProposalRejected` outputs (one per command, in order) decide what becomes of them.
    proposing: VecDeque<WriteTx>,
    /// The membership change being stepped: the core's `ChangeProposed`, `ChangeDone` or
    /// `ChangeRejected` output decides what becomes of it.
    proposing_change: Option<ChangeTx>,
    /// Leadership transfers asked for, answered once another node leads or at their deadline
    /// (checked on tick); at most `membership::MAX_TRANSFER_WAITERS`.
    transfers: Vec<TransferWaiter>,
    /// The leadership transfer being stepped: the core's `TransferStarted` or
    /// `TransferRejected` output decides what becomes of it.
    transferring: Option<oneshot::Sender<Result<NodeId, ClientError>>>,
    /// When each member last answered an RPC of this node (at most `MAX_MEMBERS` entries kept
    /// beyond the members in force).
    last_contact: HashMap<NodeId, Instant>,
    /// Reads waiting for a read index, by read id.
    pending_reads: HashMap<u64, ReadTx>,
    next_read_id: u64,
    /// The last index of the log replayed at start, until the store has applied it (then one
    /// line logs the key count the node recovered).
    replayed_through: Option<LogIndex>,
    /// Committed entries on their way to the store, and the writes (and membership changes)
    /// waiting for them.
    apply: ApplyPump<Waiter>,
    /// Where the log is made durable (disk, or memory: durable at once).
    log_store: Box<dyn LogStore>,
    /// Records to write and messages held until they are durable.
    barrier: WriteBarrier<Record, Held>,
    /// Set while the log cannot be written (e.g. the disk is full): writes are refused.
    storage_error: Option<String>,
    /// Batches the disk refused, to write again in order after `STORAGE_RETRY`.
    retrying: BTreeMap<u64, Batch<Record>>,
    policy: SnapshotPolicy,
    /// The newest snapshot (sent to followers behind the log's start).
    snapshot: Option<Rc<SnapshotInfo>>,
    /// Index of the snapshot before the newest: the durable log is kept from there on.
    prev_snapshot_index: LogIndex,
    /// A snapshot is being taken.
    snapshotting: bool,
    /// Bytes of entries applied since the last snapshot was started.
    bytes_since_snapshot: u64,
    /// Followers waiting for the snapshot being taken, to be sent a fresh one.
    fresh_snapshot_for: Vec<(NodeId, SnapshotHeader)>,
    /// A snapshot arriving from the leader, chunk by chunk.
    incoming: Option<Incoming>,
    /// A received snapshot is being checked and stored.
    installing: bool,
    /// A received snapshot's state, until the core says to restore it.
    pending_restore: Option<(KvState, Term)>,
    /// Where elections, leader changes, peer RPCs and snapshots are counted (none in tests).
    metrics: Option<crate::metrics::RaftMetrics>,
    /// The origin of the clock the core's leases count in (`reads.rs`): tokio's monotonic
    /// clock, which is `Instant`'s except in tests that pause time.
    clock_origin: tokio::time::Instant,
    /// `--follower-reads`: as a follower, serve linearizable reads with a read index asked of
    /// the leader (`reads.rs`) instead of forwarding them.
    follower_reads: bool,
    /// A follower's reads waiting for a read index from the leader (`reads.rs`).
    follower_batch: reads::FollowerBatch,
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

/// The sequence number a message carries for the core's in-flight tracking, if any.
fn seq_of(msg: &Message) -> Option<u64> {
    match msg {
        Message::AppendRequest(r) => Some(r.seq),
        _ => None,
    }
}

/// Everything needed to start a [`RaftActor`].
pub struct RaftSetup {
    pub id: NodeId,
    /// This node's base URL.
    pub url: String,
    /// The configuration in force at the log's base: the snapshot's, or the bootstrap one
    /// ([`RaftSetup::bootstrap`]); configuration entries in `log` override it.
    pub configuration: Configuration,
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
    /// Where the log is made durable: [`crate::storage::DiskLog`] or
    /// [`crate::storage::MemoryLog`].
    pub storage: Box<dyn LogStore + Send>,
    /// When to take snapshots and where to keep them.
    pub snapshots: SnapshotPolicy,
    /// The snapshot the node started from, if any (the log's base is its index).
    pub snapshot: Option<SnapshotInfo>,
}

impl RaftSetup {
    /// The bootstrap configuration of a new cluster: this node (`id` at `url`, the URL its
    /// peers reach it at) and its `peers`, all voters, peers by URL (their provisional ids).
    /// Fails when this node's id is also a peer's URL.
    pub fn bootstrap(
        id: &str,
        url: &str,
        peers: &[String],
    ) -> Result<Configuration, ConfigurationError> {
        let me = Member::new(id, url);
        let peers = peers.iter().cloned().map(Member::by_url);
        Configuration::new(std::iter::once(me).chain(peers).collect())
    }
}

impl RaftActor {
    /// A node with `setup`, talking to its peers through `transport` (made on this thread).
    ///
    pub fn new(setup: RaftSetup, transport: Box<dyn Transport>) -> Self {
        let configuration = setup.configuration;
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
            last_leader_contact: None,
            logged,
            gathered: Vec::new(),
            proposing: VecDeque::new(),
            proposing_change: None,
            transfers: Vec::new(),
            transferring: None,
            last_contact: HashMap::new(),
            pending_reads: HashMap::new(),
            next_read_id: 0,
            replayed_through,
            apply: ApplyPump::new(applied_index, setup.max_pending),
            log_store: setup.storage,
            barrier: WriteBarrier::new(),
            storage_error: None,
            retrying: BTreeMap::new(),
            policy: setup.snapshots,
            snapshot: setup.snapshot.map(Rc::new),
            prev_snapshot_index: 0,
            snapshotting: false,
            fresh_snapshot_for: Vec::new(),
            bytes_since_snapshot: 0,
            incoming: None,
            installing: false,
            pending_restore: None,
            metrics: None,
            clock_origin: tokio::time::Instant::now(),
            follower_reads: false,
            follower_batch: Default::default(),
        }
        .with_lease_reads(true)
    }

    /// Record elections, leader changes, peer RPCs and snapshots in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::RaftMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Step the core and carry out its outputs in order. Returns the answer to a request from
    /// a peer, if the input was one.
    fn step(&mut self, input: Input, ctx: &mut Context<Self>) -> Option<Replied> {
        let was_leader = self.core.role() == Role::Leader;
        self.core.set_now(self.now_us());
        let outputs = self.core.step(input);
        let mut reply = None;
        let mut dropped = Vec::new();
        for output in outputs {
            match output {
                Output::PersistEntries(entries) => self.barrier.persist_entries(entries),
                Output::SaveHardState(hs) => self.barrier.push(Record::HardState(hs)),
                Output::ResetLog { index, term } => {
                    self.barrier.truncated(index);
                    self.barrier.push(Record::Reset { index, term })
                }
                Output::Send { to, msg } => self.offer(Held::Send(to, msg), &mut dropped, ctx),
                // Sent as soon as the term it carries is durable.
                Output::SendSnapshot { to, header } => {
                    self.offer(Held::Snapshot(to, header), &mut dropped, ctx)
                }
                Output::Reply(msg) => {
                    let (tx, rx) = oneshot::channel();
                    // A success acknowledging only durable entries need not wait for the
                    // entries being written (the barrier's header says why).
                    let admitted = match &msg {
                        Message::AppendResponse(r) if r.success => {
                            let index = r.match_index;
                            self.barrier.admit_ack(Held::Reply(msg, tx), index)
                        }
                        _ => self.barrier.admit(Held::Reply(msg, tx), false),
                    };
                    reply = Some(match admitted {
                        Admit::Now(Held::Reply(msg, _)) => Replied::Now(msg),
                        _ => Replied::Later(rx),
                    });
                }
                Output::Apply(entries) => self.apply(entries, ctx),
                Output::Proposed { index, term } => {
                    if let Some(tx) = self.proposing.pop_front() {
                        self.apply.wait(index, term, Waiter::Write(tx));
                    }
                }
                Output::ProposalRejected { leader } => {
                    if let Some(tx) = self.proposing.pop_front() {
                        let _ = tx.send(Err(ClientError::NotLeader(leader)));
                    }
                }
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
                Output::RestoreSnapshot { index } => match self.pending_restore.take() {
                    Some((state, term)) if state.last_applied() == index => {
                        self.apply.push_restore(state, term);
                        self.pump_apply(ctx);
                    }
                    _ => self.fail_hard(
                        Fatal::SnapshotRestore,
                        format!("asked to restore snapshot {index}, which was not received"),
                    ),
                },
                Output::ChangeProposed { index, term } => {
                    if let Some(tx) = self.proposing_change.take() {
                        self.apply.wait(index, term, Waiter::Change(tx));
                    }
                }
                Output::ChangeDone => {
                    if let Some(tx) = self.proposing_change.take() {
                        let _ = tx.send(Ok(()));
                    }
                }
                Output::ChangeRejected { error } => {
                    if let Some(tx) = self.proposing_change.take() {
                        let _ = tx.send(Err(membership::refusal(error)));
                    }
                }
                Output::TransferStarted { to } => self.transfer_started(to),
                Output::TransferRejected { error } => self.transfer_rejected(error),
            }
        }
        if was_leader && self.core.role() != Role::Leader {
            self.fail_pending_writes();
        }
        self.check_transfers();
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
        self.write_next(ctx);
        reply
    }

    /// A message to a peer: sent now, held behind the write it depends on, or (too many held)
    /// noted in `dropped` as lost.
    fn offer(
        &mut self,
        msg: Held,
        dropped: &mut Vec<(NodeId, Option<u64>)>,
        ctx: &mut Context<Self>,
    ) {
        // A leader's AppendEntries does not wait for the leader's own entries (see the
        // barrier's header): its write and the followers' run in parallel.
        let admitted = match msg {
            Held::Send(to, msg @ Message::AppendRequest(_)) => {
                self.barrier.admit_leader_append(Held::Send(to, msg))
            }
            msg => self.barrier.admit(msg, true),
        };
        match admitted {
            Admit::Now(msg) => self.carry(msg, ctx),
            Admit::Held => {}
            Admit::Refused(Held::Send(to, msg)) => dropped.push((to, seq_of(&msg))),
            Admit::Refused(Held::Snapshot(to, header)) => dropped.push((to, Some(header.seq))),
            Admit::Refused(Held::Reply(..)) => {}
        }
    }

    /// Let a message go.
    fn carry(&mut self, msg: Held, ctx: &mut Context<Self>) {
        match msg {
            Held::Send(to, msg) => self.send_rpc(to, msg, ctx),
            Held::Reply(msg, tx) => {
                let _ = tx.send(msg);
            }
            Held::Snapshot(to, header) => self.start_snapshot_send(to, header, ctx),
        }
    }

    /// Start writing the gathered records, unless `MAX_IN_FLIGHT` writes are in flight (a
    /// completion starts the next one: everything gathered meanwhile shares one fsync). While
    /// one batch is fsynced, the next ones are written (pipelined group commit).
    fn write_next(&mut self, ctx: &mut Context<Self>) {
        while let Some(batch) = self.barrier.next_write() {
            self.write_batch(batch, ctx);
        }
    }

    /// Hand `batch` to the log store; a store that is durable at once answers in this step.
    fn write_batch(&mut self, batch: Batch<Record>, ctx: &mut Context<Self>) {
        let Batch { id, records, max } = batch;
        let mut write = self.log_store.write(id, records);
        match (&mut write).now_or_never() {
            Some(res) => self.written(id, max, res, ctx),
            None => {
                ctx.spawn(
                    write
                        .into_actor(self)
                        .map(move |res, act, ctx| act.written(id, max, res, ctx)),
                );
            }
        }
    }

    /// The log store finished batch `id` (`max`: its highest entry index).
    fn written(
        &mut self,
        id: u64,
        max: Option<LogIndex>,
        res: Result<(), WriteFailed>,
        ctx: &mut Context<Self>,
    ) {
        match res {
            Ok(()) => {}
            Err(failed) if failed.stopped => {
                // The process is stopping (its log threads ended first): never acknowledge
                // what waited for this batch, and stop too, without calling it a disk error.
                tracing::debug!(error = %failed.message, "log threads gone: stopping");
                for w in self.apply.break_down(failed.message) {
                    w.fail(ClientError::Unknown(
                        "the node is stopping; the write may or may not have been applied".into(),
                    ));
                }
                ctx.stop();
                return;
            }
            Err(failed) if failed.retryable => {
                // Nothing that depends on this batch has left the node (but a leader's
                // AppendEntries, see the barrier). Try again until the disk takes it; meanwhile
                // new writes are refused, and so is every later batch by the writer, until
                // this one is written: they are written again after it, in order.
                if self.storage_error.is_none() {
                    tracing::error!(error = %failed.message, "cannot write the log; refusing writes and retrying");
                }
                self.storage_error = Some(failed.message);
                self.barrier.refused(id);
                let batch = Batch {
                    id,
                    records: failed.records,
                    max,
                };
                if self.retrying.is_empty() {
                    ctx.run_later(STORAGE_RETRY, |act, ctx| {
                        for (_, batch) in std::mem::take(&mut act.retrying) {
                            act.write_batch(batch, ctx);
                        }
                    });
                }
                self.retrying.insert(id, batch);
                return;
            }
            Err(failed) => {
                return self.fail_hard(
                    Fatal::Storage,
                    format!("cannot write the log: {}", failed.message),
                )
            }
        }
        let written = self.barrier.written(id);
        let clear = !self.barrier.is_refused() && self.retrying.is_empty();
        if clear && self.storage_error.take().is_some() {
            tracing::info!("the log is writable again; accepting writes");
        }
        for msg in written.released {
            self.carry(msg, ctx);
        }
        if let Some(index) = written.persisted {
            self.step(Input::Persisted { index }, ctx);
        }
        self.write_next(ctx);
    }

    /// Propose the client writes gathered since the last time, together.
    fn propose_gathered(&mut self, ctx: &mut Context<Self>) {
        if self.gathered.is_empty() {
            return;
        }
        let (commands, waiting): (Vec<_>, VecDeque<_>) =
            std::mem::take(&mut self.gathered).into_iter().unzip();
        self.proposing = waiting;
        self.step(Input::ProposeBatch(commands), ctx);
        // The core answers every command; a write it did not would otherwise wait forever.
        for tx in self.proposing.drain(..) {
            let _ = tx.send(Err(ClientError::Internal(
                "the write was not proposed (a bug); it was not applied".into(),
            )));
        }
    }

    /// Leadership was lost: every write still waiting for an entry not known committed has an
    /// unknown outcome (those committed are answered when applied: a committed entry never
    /// changes).
    fn fail_pending_writes(&mut self) {
        for w in self.apply.take_waiting_above(self.core.commit_index()) {
            w.fail(ClientError::Unknown(
                "leadership lost before the write was confirmed committed: \
                 it may or may not have been applied"
                    .into(),
            ));
        }
    }

    fn send_rpc(&mut self, to: NodeId, msg: Message, ctx: &mut Context<Self>) {
        let seq = seq_of(&msg);
        // A member of the configuration in force, or one just removed that must still hear of
        // its removal.
        let Some(member) = self.core.member(&to) else {
            // Not (or no longer) a member: as if lost.
            self.step(Input::SendFailed { to, seq }, ctx);
            return;
        };
        let (kind, started) = (metrics::rpc_kind(&msg), Instant::now());
        let fut = self.transport.call(member, msg);
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            if let Some(m) = &act.metrics {
                m.rpc(&to, kind, res.is_ok(), started.elapsed());
            }
            act.rpc_done(to, seq, res, ctx)
        }));
    }

    /// The answer to an RPC of this node (or why there is none), stepped into the core.
    fn rpc_done(
        &mut self,
        to: NodeId,
        seq: Option<u64>,
        res: Result<Message, crate::transport::TransportError>,
        ctx: &mut Context<Self>,
    ) {
        match res {
            Ok(resp) => {
                self.heard_from(&to);
                self.step(
                    Input::Response {
                        from: to,
                        msg: resp,
                    },
                    ctx,
                );
            }
            Err(e) => {
                tracing::debug!(peer = %to, error = %e, "raft rpc failed");
                self.step(Input::SendFailed { to, seq }, ctx);
            }
        }
    }

    /// Queue committed entries for the store, as the store's own [`Committed`] values.
    fn apply(&mut self, entries: Vec<Entry>, ctx: &mut Context<Self>) {
        self.bytes_since_snapshot += entries.iter().map(|e| e.size_hint() as u64).sum::<u64>();
        let committed = entries.into_iter().map(|e| Committed {
            index: e.index,
            term: e.term,
            command: match e.payload {
                EntryPayload::Noop | EntryPayload::Config { .. } => None,
                EntryPayload::Command { command } => Some(command),
            },
        });
        self.apply.push_entries(committed.collect());
        self.pump_apply(ctx);
    }

    /// Hand the store its next batch, unless one is in flight; when all is applied, see
    /// whether a snapshot is due.
    fn pump_apply(&mut self, ctx: &mut Context<Self>) {
        let Some(item) = self.apply.next_item() else {
            if self.apply.idle() {
                self.maybe_snapshot(ctx);
            }
            return;
        };
        let batch = match item {
            ApplyItem::Entries(batch) => batch,
            ApplyItem::Restore(state, term) => {
                let fut = self.store.send(Restore { state, term });
                ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
                    match res {
                        Ok(index) => act.apply.restored(index),
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
            for (w, answer) in act.apply.applied(applied) {
                w.answer(answer);
            }
            if act
                .replayed_through
                .is_some_and(|i| act.apply.applied_index() >= i)
            {
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
        for w in self.apply.break_down(why.clone()) {
            w.fail(ClientError::Internal(format!(
                "node stopped: {why}; the write may or may not have been applied"
            )));
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
        self.count_changes(&now);
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
}

impl Actor for RaftActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        crate::fatal::mark_critical_thread();
        // Requests from every HTTP worker land here; let them queue rather than wait.
        ctx.set_mailbox_capacity(1024);
        ctx.run_interval(self.tick, |act, ctx| {
            act.step(Input::Tick, ctx);
            act.expire_transfers();
        });
        let me = self.core.config().id.as_str();
        if matches!(self.core.configuration().voters(), [only] if only.id == me) {
            // A cluster of one voter, this node, needs nobody's vote.
            self.step(Input::Campaign, ctx);
        }
    }
}

impl Handler<Deliver> for RaftActor {
    type Result = ResponseFuture<Result<Message, DeliveryError>>;

    fn handle(&mut self, Deliver(msg): Deliver, ctx: &mut Context<Self>) -> Self::Result {
        if !msg.is_request() {
            return Box::pin(async { Err(DeliveryError::NotARequest) });
        }
        if let Message::SnapshotRequest(req) = msg {
            return self.receive_snapshot_chunk(req, ctx);
        }
        if let Message::ReadIndexRequest(req) = msg {
            return self.serve_peer_read_index(req, ctx);
        }
        let heartbeat_from = match &msg {
            Message::AppendRequest(r) => Some((r.term, r.leader_id.clone())),
            _ => None,
        };
        let reply = self.step(Input::Request(msg), ctx);
        if let Some((term, leader)) = heartbeat_from {
            let accepted =
                term == self.core.term() && self.core.leader().is_some_and(|l| l.id == leader);
            if accepted {
                self.last_leader_contact = Some(Instant::now());
            }
        }
        Box::pin(snapshots::settled(reply))
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
        if self.removed() {
            return refuse(ClientError::Removed);
        }
        if let Some(why) = self.apply.broken() {
            return refuse(ClientError::Internal(format!(
                "node is not accepting writes: {why}"
            )));
        }
        if let Some(why) = &self.storage_error {
            return refuse(ClientError::Storage(why.clone()));
        }
        if self.apply.waiting() + self.gathered.len() >= self.apply.max_pending() {
            return refuse(ClientError::Overloaded);
        }
        // Whether this node leads is the core's to say: its `Proposed` or `ProposalRejected`
        // output (see `step`) answers through this channel. Proposed once the mailbox is
        // drained: a spawned future runs after every message already queued.
        let (tx, rx) = oneshot::channel();
        self.gathered.push((cmd, tx));
        if self.gathered.len() == 1 {
            ctx.spawn(
                async {}
                    .into_actor(self)
                    .map(|_, act, ctx| act.propose_gathered(ctx)),
            );
        }
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(ClientError::Unknown(
                    "the node stopped before the write was confirmed: it may or may not have \
                     been applied"
                        .into(),
                ))
            })
        })
    }
}

impl Handler<ClientReadIndex> for RaftActor {
    type Result = ResponseFuture<Result<LogIndex, ClientError>>;

    fn handle(&mut self, _: ClientReadIndex, ctx: &mut Context<Self>) -> Self::Result {
        // A node that does not lead hears so from the core (`ReadFailed`).
        if self.removed() {
            return Box::pin(async move { Err(ClientError::Removed) });
        }
        if self.pending_reads.len() >= self.apply.max_pending() {
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
