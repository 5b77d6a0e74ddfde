//! Snapshots in the [`RaftActor`]: taking them (the store hands out an O(1) frozen view of the
//! map, a blocking thread encodes it and writes the file), compacting the log afterwards, streaming the newest one to a follower that
//! is behind the log's start, and receiving one from the leader chunk by chunk.
//!
//! Every snapshot records the configuration in force at its index
//! ([`RaftCore::configuration_at`](crate::raft::RaftCore::configuration_at)); one received from
//! the leader hands the configuration it records to the core
//! ([`InstalledSnapshot::configuration`]), which adopts it.
//!
//! A snapshot from the leader is written chunk by chunk to a temporary file as it arrives
//! (never buffered whole; at most [`MAX_SNAPSHOT_BYTES`]), checked from that file, then
//! renamed into place.
//!
//! File I/O and decoding run on blocking threads, never on the actor's thread; the core decides
//! what a snapshot changes in the log ([`Input::Compact`], [`Input::InstallSnapshot`]).

use std::fs::File;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{ActorFutureExt, AsyncContext, Context, ResponseFuture, WrapFuture};
use tokio::sync::oneshot;

use super::policy::{SNAPSHOTS_KEPT, SNAPSHOT_SEND_BYTES_PER_SEC};
use super::{
    RaftActor, Replied, SnapshotData, SnapshotInfo, MAX_SNAPSHOT_BYTES, SNAPSHOT_CHUNK_BYTES,
};
use crate::fatal::Fatal;
use crate::raft::core::{
    Configuration, HardState, Input, InstalledSnapshot, Member, Role, SnapshotHeader,
};
use crate::raft::rpc::{Message, SnapshotRequest, SnapshotResponse};
use crate::raft::{LogIndex, NodeId, Term};
use crate::storage::snapshot::{self, SnapshotMeta, SnapshotWriter};
use crate::store::actor::{SnapshotView, TakeSnapshot};
use crate::store::KvState;
use crate::transport::DeliveryError;

/// Where the chunks of a snapshot from the leader go: a temporary file next to the snapshots
/// (never the whole snapshot in memory), or, for a node without a data directory, memory.
/// Either way at most [`MAX_SNAPSHOT_BYTES`].
#[derive(Debug)]
pub(super) enum Sink {
    /// Nothing received yet.
    New,
    File(SnapshotWriter),
    Memory(Vec<u8>),
}

impl Sink {
    /// Store the next chunk of the snapshot at `index` (blocking I/O: on a blocking thread).
    fn append(&mut self, dir: Option<&Path>, index: LogIndex, chunk: &[u8]) -> Result<(), String> {
        if let Sink::New = self {
            *self = match dir {
                Some(dir) => Sink::File(
                    SnapshotWriter::create(dir, index, MAX_SNAPSHOT_BYTES)
                        .map_err(|e| format!("cannot create the file: {e}"))?,
                ),
                None => Sink::Memory(Vec::new()),
            };
        }
        match self {
            Sink::File(w) => w.append(chunk).map_err(|e| e.to_string()),
            Sink::Memory(buf) => {
                let len = buf.len() as u64 + chunk.len() as u64;
                if len > MAX_SNAPSHOT_BYTES {
                    return Err(format!(
                        "snapshot too big: {len} bytes, the cap is {MAX_SNAPSHOT_BYTES}"
                    ));
                }
                buf.extend_from_slice(chunk);
                Ok(())
            }
            Sink::New => Ok(()),
        }
    }
}

/// The answer to a snapshot chunk: where to go on from.
fn chunk_answer(term: Term, seq: u64, next_offset: u64) -> Message {
    Message::SnapshotResponse(SnapshotResponse {
        term,
        seq,
        next_offset,
        ..SnapshotResponse::default()
    })
}

/// The answer to a request once what it depends on is durable.
pub(super) async fn settled(reply: Option<Replied>) -> Result<Message, DeliveryError> {
    match reply {
        Some(Replied::Now(m)) => Ok(m),
        Some(Replied::Later(rx)) => rx.await.map_err(|_| DeliveryError::Stopped),
        None => Err(DeliveryError::NotARequest),
    }
}

/// Where a transfer reads its chunks from.
enum Source {
    Memory(Rc<SnapshotInfo>),
    File(Arc<File>),
}

/// One snapshot being streamed to one follower.
struct Transfer {
    to: Member,
    /// The header every chunk carries (term, leader, snapshot position, seq).
    req: SnapshotRequest,
    len: u64,
    source: Source,
}

/// A snapshot received from the leader, checked and stored, ready for the core.
struct Received {
    state: KvState,
    /// The configuration the file records (`None`: a leader that wrote v1 files).
    configuration: Option<Configuration>,
    data: SnapshotData,
    len: u64,
}

/// See [`RaftActor::start_snapshot_send`]: a snapshot is taken afresh for a follower when the
/// log applied since the newest one exceeds this fraction of its size.
const FRESH_SNAPSHOT_DIVISOR: u64 = 4;

impl RaftActor {
    /// Start taking a snapshot if the policy says one is due ([`SnapshotPolicy::due`](super::SnapshotPolicy::due)).
    pub(super) fn maybe_snapshot(&mut self, ctx: &mut Context<Self>) {
        if self.snapshotting || self.installing || self.apply.broken().is_some() {
            return;
        }
        let last = self.snapshot.as_ref().map_or(0, |s| s.meta.index);
        let since = self.apply.applied_index().saturating_sub(last);
        let last_len = self.snapshot.as_ref().map_or(0, |s| s.len);
        if self.policy.due(since, self.bytes_since_snapshot, last_len) {
            self.take_snapshot(ctx);
        }
    }

    /// Start taking a snapshot now (unless one is under way or cannot be taken); whether one
    /// is under way after this call.
    fn take_snapshot(&mut self, ctx: &mut Context<Self>) -> bool {
        if self.snapshotting {
            return true;
        }
        if self.installing || self.apply.broken().is_some() {
            return false;
        }
        self.snapshotting = true;
        self.bytes_since_snapshot = 0;
        let started = Instant::now();
        let fut = self.store.send(TakeSnapshot);
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok(view) => {
                // The store answered with a frozen view (an O(1) clone): that is all the time
                // it spent; it goes on applying while the view is encoded elsewhere.
                let store_time = started.elapsed();
                act.store_snapshot(view, (started, store_time), ctx)
            }
            Err(e) => {
                act.snapshotting = false;
                act.fail_hard(Fatal::StateMachine, format!("store actor is gone: {e}"));
            }
        }));
        true
    }

    /// Encode the view and make it durable (a file) or keep it in memory, on a blocking thread.
    fn store_snapshot(
        &mut self,
        view: SnapshotView,
        started: (Instant, Duration),
        ctx: &mut Context<Self>,
    ) {
        let meta = view.meta;
        let dir = self.policy.dir.clone();
        // The configuration in force at the snapshot's index (the log still holds it: only
        // what a snapshot covers is ever compacted, and this one is newer).
        let configuration = self.core.configuration_at(meta.index);
        let job = tokio::task::spawn_blocking(move || -> std::io::Result<(u64, SnapshotData)> {
            let bytes = snapshot::encode_state(view.meta, Some(&configuration), &view.state);
            drop(view);
            let len = bytes.len() as u64;
            let data = match dir {
                Some(dir) => SnapshotData::File(snapshot::write_bytes(
                    &dir,
                    meta.index,
                    &bytes,
                    SNAPSHOTS_KEPT,
                )?),
                None => SnapshotData::Memory(bytes),
            };
            Ok((len, data))
        });
        ctx.spawn(job.into_actor(self).map(move |res, act, ctx| {
            let why = match res {
                Ok(Ok((len, data))) => {
                    let info = SnapshotInfo { meta, len, data };
                    return act.snapshot_saved(info, started, ctx);
                }
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            act.snapshotting = false;
            tracing::error!(
                index = meta.index,
                error = %why,
                "cannot write a snapshot; the log keeps growing until one succeeds"
            );
            act.send_waiting_snapshots(ctx);
        }));
    }

    fn snapshot_saved(
        &mut self,
        info: SnapshotInfo,
        (started, encoded): (Instant, Duration),
        ctx: &mut Context<Self>,
    ) {
        self.snapshotting = false;
        let meta = info.meta;
        tracing::info!(
            index = meta.index,
            term = meta.term,
            bytes = info.len,
            ms = started.elapsed().as_millis() as u64,
            store_ms = encoded.as_millis() as u64,
            "snapshot taken"
        );
        if let Some(m) = &self.metrics {
            m.snapshot_taken(info.len, started.elapsed());
        }
        if self.adopt_snapshot(info) {
            let keep_from = meta.index.saturating_sub(self.policy.trailing);
            self.step(Input::Compact { index: keep_from }, ctx);
            self.compact_durable_log(ctx);
        }
        self.send_waiting_snapshots(ctx);
    }

    /// Followers that waited for a fresh snapshot get the newest one held now.
    fn send_waiting_snapshots(&mut self, ctx: &mut Context<Self>) {
        for (to, header) in std::mem::take(&mut self.fresh_snapshot_for) {
            self.send_snapshot_now(to, header, ctx);
        }
    }

    /// Make `info` the newest snapshot, unless a newer one is already held. Returns whether it
    /// was adopted.
    fn adopt_snapshot(&mut self, info: SnapshotInfo) -> bool {
        if let Some(old) = &self.snapshot {
            if old.meta.index >= info.meta.index {
                return false;
            }
            self.prev_snapshot_index = old.meta.index;
        }
        self.snapshot = Some(Rc::new(info));
        true
    }

    /// Remove the durable log's segments that even the previous snapshot covers (so falling
    /// back to it after damage to the newest never leaves a gap).
    fn compact_durable_log(&mut self, ctx: &mut Context<Self>) {
        let index = self.prev_snapshot_index;
        if index == 0 {
            return;
        }
        let s = self.core.status();
        let hard_state = HardState {
            term: s.term,
            voted_for: s.voted_for,
        };
        let fut = self.log_store.compact(index, hard_state);
        ctx.spawn(fut.into_actor(self).map(move |res, _, _| match res {
            Ok(0) => {}
            Ok(removed) => tracing::debug!(index, removed, "log segments removed"),
            Err(e) => tracing::warn!(error = %e, "cannot remove old log segments"),
        }));
    }

    // ---- sending (leader) -------------------------------------------------------------------

    /// Stream a snapshot to `to`. When the log applied since the newest snapshot is more than
    /// [`FRESH_SNAPSHOT_DIVISOR`]th of its size (or a snapshot is being taken), and the
    /// follower answers heartbeats, a fresh one is taken first: encoding the state once costs far less than the follower receiving,
    /// storing and applying that much log after an old snapshot (a joining node's catch-up).
    pub(super) fn start_snapshot_send(
        &mut self,
        to: NodeId,
        header: SnapshotHeader,
        ctx: &mut Context<Self>,
    ) {
        let stale = self.snapshot.as_ref().is_some_and(|s| {
            self.bytes_since_snapshot
                .saturating_mul(FRESH_SNAPSHOT_DIVISOR)
                > s.len
        });
        // Only for a follower that answers (a dead one would have snapshots taken for nothing
        // every time the transfer is retried).
        let window = self.core.config().election_ticks;
        let answers = self
            .core
            .peer_progress()
            .iter()
            .any(|p| p.id == to && p.last_heard_ticks.is_some_and(|t| t <= window));
        if answers && (stale || self.snapshotting) && self.take_snapshot(ctx) {
            self.fresh_snapshot_for.retain(|(id, _)| *id != to);
            self.fresh_snapshot_for.push((to, header));
            return;
        }
        self.send_snapshot_now(to, header, ctx);
    }

    /// Stream the newest snapshot to `to`, one chunk per request. A file is opened once for
    /// the whole transfer, so pruning old snapshots meanwhile does not cut it short.
    fn send_snapshot_now(&mut self, to: NodeId, header: SnapshotHeader, ctx: &mut Context<Self>) {
        let seq = Some(header.seq);
        let Some(to) = self.core.member(&to).cloned() else {
            self.step(Input::SendFailed { to, seq }, ctx);
            return;
        };
        let Some(info) = self.snapshot.clone() else {
            tracing::error!("a follower needs a snapshot, but this node holds none");
            self.step(Input::SendFailed { to: to.id, seq }, ctx);
            return;
        };
        let req = header.request(info.meta.index, info.meta.term);
        // Retried every election timeout while the follower is unreachable: debug level.
        tracing::debug!(
            peer = %to.url,
            index = info.meta.index,
            bytes = info.len,
            "sending a snapshot to a follower that is behind the log's start"
        );
        let len = info.len;
        match &info.data {
            SnapshotData::Memory(_) => {
                let t = Transfer {
                    to,
                    req,
                    len,
                    source: Source::Memory(info.clone()),
                };
                self.send_snapshot_chunk(Rc::new(t), 0, 0, ctx);
            }
            SnapshotData::File(path) => {
                let path = path.clone();
                let job = tokio::task::spawn_blocking(move || File::open(path));
                ctx.spawn(job.into_actor(self).map(move |res, act, ctx| {
                    let why = match res {
                        Ok(Ok(file)) => {
                            let source = Source::File(Arc::new(file));
                            let t = Transfer {
                                to,
                                req,
                                len,
                                source,
                            };
                            return act.send_snapshot_chunk(Rc::new(t), 0, 0, ctx);
                        }
                        Ok(Err(e)) => e.to_string(),
                        Err(e) => e.to_string(),
                    };
                    tracing::warn!(error = %why, "cannot open the snapshot to send");
                    let seq = Some(req.seq);
                    act.step(Input::SendFailed { to: to.id, seq }, ctx);
                }));
            }
        }
    }

    fn send_snapshot_chunk(
        &mut self,
        t: Rc<Transfer>,
        offset: u64,
        sent: u64,
        ctx: &mut Context<Self>,
    ) {
        if self.core.role() != Role::Leader || self.core.term() != t.req.term {
            return; // leadership moved on; the core forgot this transfer
        }
        let chunks = t.len / SNAPSHOT_CHUNK_BYTES as u64 + 1;
        if sent > 2 * chunks + 8 {
            // The follower keeps asking to start over: give up for now, try again later.
            let seq = Some(t.req.seq);
            self.step(
                Input::SendFailed {
                    to: t.to.id.clone(),
                    seq,
                },
                ctx,
            );
            return;
        }
        match &t.source {
            Source::Memory(info) => {
                let SnapshotData::Memory(bytes) = &info.data else {
                    return;
                };
                let end = (offset as usize)
                    .saturating_add(SNAPSHOT_CHUNK_BYTES)
                    .min(bytes.len());
                let start = (offset as usize).min(end);
                let data = bytes[start..end].to_vec();
                self.post_snapshot_chunk(t.clone(), offset, data, sent, ctx);
            }
            Source::File(file) => {
                let file = file.clone();
                let job = tokio::task::spawn_blocking(move || {
                    snapshot::read_chunk(&file, offset, SNAPSHOT_CHUNK_BYTES)
                });
                ctx.spawn(job.into_actor(self).map(move |res, act, ctx| {
                    let why = match res {
                        Ok(Ok(data)) => return act.post_snapshot_chunk(t, offset, data, sent, ctx),
                        Ok(Err(e)) => e.to_string(),
                        Err(e) => e.to_string(),
                    };
                    tracing::warn!(error = %why, "cannot read the snapshot to send");
                    let seq = Some(t.req.seq);
                    act.step(
                        Input::SendFailed {
                            to: t.to.id.clone(),
                            seq,
                        },
                        ctx,
                    );
                }));
            }
        }
    }

    fn post_snapshot_chunk(
        &mut self,
        t: Rc<Transfer>,
        offset: u64,
        data: Vec<u8>,
        sent: u64,
        ctx: &mut Context<Self>,
    ) {
        let done = offset + data.len() as u64 >= t.len;
        let chunk = SnapshotRequest {
            offset,
            done,
            data,
            ..t.req.clone()
        };
        // The pace: the next chunk leaves no sooner than this one's share of a second at
        // SNAPSHOT_SEND_BYTES_PER_SEC after this one left.
        let started = Instant::now();
        let share =
            Duration::from_secs_f64(chunk.data.len() as f64 / SNAPSHOT_SEND_BYTES_PER_SEC as f64);
        let fut = self.transport.call(&t.to, Message::SnapshotRequest(chunk));
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            let (to, seq) = (t.to.id.clone(), Some(t.req.seq));
            if let Some(m) = &act.metrics {
                let ok = matches!(res, Ok(Message::SnapshotResponse(_)));
                m.rpc(&to, "snapshot", ok, started.elapsed());
            }
            match res {
                Ok(Message::SnapshotResponse(resp)) => {
                    if resp.term != t.req.term || resp.match_index.is_some() {
                        if resp.match_index.is_some() {
                            tracing::info!(
                                peer = %t.to.url,
                                index = t.req.index,
                                "follower caught up through the snapshot"
                            );
                        }
                        let msg = Message::SnapshotResponse(resp);
                        act.step(Input::Response { from: to, msg }, ctx);
                    } else if resp.busy || resp.next_offset > t.len {
                        // Still installing an earlier copy (or nonsense): back off, try later.
                        act.step(Input::SendFailed { to, seq }, ctx);
                    } else {
                        let next = resp.next_offset;
                        let wait = share.saturating_sub(started.elapsed());
                        if wait.is_zero() {
                            act.send_snapshot_chunk(t, next, sent + 1, ctx);
                        } else {
                            ctx.run_later(wait, move |act, ctx| {
                                act.send_snapshot_chunk(t, next, sent + 1, ctx)
                            });
                        }
                    }
                }
                Ok(_) => {
                    act.step(Input::SendFailed { to, seq }, ctx);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "snapshot chunk not delivered");
                    act.step(Input::SendFailed { to, seq }, ctx);
                }
            }
        }));
    }

    // ---- receiving (follower) ---------------------------------------------------------------

    /// One chunk of a snapshot from the leader. The core checks the term and whether the
    /// snapshot is still needed; each chunk is appended to a temporary file (off this thread) before it is answered, and the last one starts the
    /// install, which the answer to it waits for.
    pub(super) fn receive_snapshot_chunk(
        &mut self,
        mut req: SnapshotRequest,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<Message, DeliveryError>> {
        let data = std::mem::take(&mut req.data);
        let reply = self.step(Input::Request(Message::SnapshotRequest(req.clone())), ctx);
        let following = self.core.role() == Role::Follower
            && self.core.term() == req.term
            && self.core.leader().is_some_and(|l| l.id == req.leader_id);
        if following {
            self.last_leader_contact = Some(Instant::now());
        }
        if !following || req.index <= self.core.commit_index() {
            // Stale leader, or nothing to install: the core's answer says which.
            return Box::pin(settled(reply));
        }
        let answer = |term, next_offset| {
            Message::SnapshotResponse(SnapshotResponse {
                term,
                seq: req.seq,
                next_offset,
                ..SnapshotResponse::default()
            })
        };
        let term = self.core.term();
        let same = self.incoming.as_ref().is_some_and(|i| {
            i.term == req.term && i.leader_id == req.leader_id && i.index == req.index
        });
        if !same {
            self.incoming = None;
        }
        if self.installing {
            // An earlier copy is still being checked and stored: the leader should wait.
            let msg = Message::SnapshotResponse(SnapshotResponse {
                term,
                seq: req.seq,
                busy: true,
                ..SnapshotResponse::default()
            });
            return Box::pin(async move { settled(reply).await.map(|_| msg) });
        }
        let have = self.incoming.as_ref().map_or(0, |i| i.len);
        if req.offset != have {
            // Out of step (a lost chunk, a new transfer): say where to go on from.
            let msg = answer(term, have);
            return Box::pin(async move { settled(reply).await.map(|_| msg) });
        }
        let incoming = self.incoming.get_or_insert_with(|| super::Incoming {
            term: req.term,
            leader_id: req.leader_id.clone(),
            index: req.index,
            len: 0,
            sink: Some(Sink::New),
        });
        let Some(mut sink) = incoming.sink.take() else {
            // The previous chunk is still being written: the leader should wait.
            let msg = Message::SnapshotResponse(SnapshotResponse {
                term,
                seq: req.seq,
                busy: true,
                ..SnapshotResponse::default()
            });
            return Box::pin(async move { settled(reply).await.map(|_| msg) });
        };
        // The chunk goes to disk (a temporary file) on a blocking thread; the answer waits.
        let (tx, rx) = oneshot::channel();
        let (dir, index, n) = (self.policy.dir.clone(), req.index, data.len() as u64);
        let job = tokio::task::spawn_blocking(move || {
            let res = sink.append(dir.as_deref(), index, &data);
            (sink, res)
        });
        ctx.spawn(job.into_actor(self).map(move |res, act, ctx| {
            let term = act.core.term();
            let reset = |act: &mut Self, tx: oneshot::Sender<Message>, why: String| {
                tracing::warn!(index, error = %why, "cannot store a snapshot chunk from the leader; starting over");
                act.incoming = None;
                let _ = tx.send(chunk_answer(term, req.seq, 0));
            };
            let (sink, appended) = match res {
                Ok(done) => done,
                Err(e) => return reset(act, tx, e.to_string()),
            };
            let current = act.incoming.as_mut().filter(|i| {
                (i.term, &i.leader_id, i.index) == (req.term, &req.leader_id, req.index)
                    && i.sink.is_none()
            });
            let Some(incoming) = current else {
                // A newer transfer replaced this one meanwhile.
                let next = act.incoming.as_ref().map_or(0, |i| i.len);
                let _ = tx.send(chunk_answer(term, req.seq, next));
                return;
            };
            if let Err(why) = appended {
                return reset(act, tx, why);
            }
            incoming.len += n;
            if !req.done {
                incoming.sink = Some(sink);
                let _ = tx.send(chunk_answer(term, req.seq, incoming.len));
                return;
            }
            act.incoming = None;
            act.install_received(req, sink, tx, ctx);
        }));
        Box::pin(async move {
            settled(reply).await?;
            rx.await.map_err(|_| DeliveryError::Stopped)
        })
    }

    /// Check a whole received snapshot (from its file), make it durable under its final name,
    /// and build the state, off the actor's thread; then hand it to the core. `tx` gets the
    /// answer to the leader.
    fn install_received(
        &mut self,
        req: SnapshotRequest,
        sink: Sink,
        tx: oneshot::Sender<Message>,
        ctx: &mut Context<Self>,
    ) {
        self.installing = true;
        let (index, term) = (req.index, req.last_term);
        let job = tokio::task::spawn_blocking(move || -> Result<Received, String> {
            let (mut snap, len) = match &sink {
                Sink::File(w) => (w.read()?, w.len()),
                Sink::Memory(buf) => (snapshot::decode(buf)?, buf.len() as u64),
                Sink::New => return Err("no bytes received".into()),
            };
            if (snap.meta.index, snap.meta.term) != (index, term) {
                return Err(format!(
                    "it holds index {} term {}, the leader announced index {index} term {term}",
                    snap.meta.index, snap.meta.term
                ));
            }
            let configuration = snap.configuration.take();
            let state = snap.into_state();
            let data = match sink {
                Sink::File(w) => SnapshotData::File(
                    w.finish(SNAPSHOTS_KEPT)
                        .map_err(|e| format!("cannot store it: {e}"))?,
                ),
                Sink::Memory(buf) => SnapshotData::Memory(buf),
                Sink::New => return Err("no bytes received".into()),
            };
            Ok(Received {
                state,
                configuration,
                data,
                len,
            })
        });
        ctx.spawn(job.into_actor(self).map(move |res, act, ctx| {
            act.installing = false;
            let why = match res {
                Ok(Ok(received)) => return act.finish_install(req, received, tx, ctx),
                Ok(Err(why)) => why,
                Err(e) => e.to_string(),
            };
            tracing::warn!(index, error = %why, "a snapshot from the leader is unusable; asking for it again");
            let _ = tx.send(Message::SnapshotResponse(SnapshotResponse {
                term: act.core.term(),
                seq: req.seq,
                ..SnapshotResponse::default()
            }));
        }));
    }

    fn finish_install(
        &mut self,
        req: SnapshotRequest,
        received: Received,
        tx: oneshot::Sender<Message>,
        ctx: &mut Context<Self>,
    ) {
        let meta = SnapshotMeta {
            index: req.index,
            term: req.last_term,
        };
        self.pending_restore = Some((received.state, req.last_term));
        let installed = InstalledSnapshot {
            configuration: received.configuration,
            ..(&req).into()
        };
        let reply = self.step(Input::InstallSnapshot(installed), ctx);
        // The core took it if it asked for the restore.
        let installed = self.pending_restore.take().is_none();
        if installed {
            tracing::info!(
                index = meta.index,
                term = meta.term,
                bytes = received.len,
                "installed a snapshot from the leader"
            );
            self.adopt_snapshot(SnapshotInfo {
                meta,
                len: received.len,
                data: received.data,
            });
            self.bytes_since_snapshot = 0;
            self.compact_durable_log(ctx);
        }
        actix::spawn(async move {
            if let Ok(m) = settled(reply).await {
                let _ = tx.send(m);
            }
        });
    }
}

impl actix::Handler<super::ConfigurationAt> for RaftActor {
    type Result = actix::MessageResult<super::ConfigurationAt>;

    /// The configuration in force at the index (a backup's snapshot records it, as
    /// [`RaftActor::store_snapshot`] does for the node's own snapshots).
    fn handle(&mut self, msg: super::ConfigurationAt, _: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(self.core.configuration_at(msg.0))
    }
}
