//! The actor's side of linearizable reads: the monotonic clock the core's leases count in (read
//! here with `Instant`, handed to the core as microseconds since the actor's start before every
//! step); [`ClientLeaseRead`], answered on the leader at once from a valid lease or else by
//! ReadIndex, and on a follower with `--follower-reads on` by a read index asked of the leader;
//! and that question's other end, a peer's `ReadIndexRequest`, answered by the leader the same
//! way as its own reads.
//!
//! It never answers a read itself: it grants a read index and, with a lease, the instant the
//! lease ends; the caller must check that instant again after it took the value from the store
//! (a process paused in between must not answer stale). The lease's argument is in
//! `raft::core::lease`.
//!
//! **Follower reads** (thesis §6.4, etcd's follower ReadIndex): the leader answers a
//! follower's request with its commit index at a moment it knew itself the only leader (lease
//! valid, or a majority answered a heartbeat round started after the request arrived), after
//! the request arrived. Every write acknowledged before the client's read began was committed
//! by then, so it is at or below that index; the follower serves the read from its own state
//! machine once it has applied at least that index (the applied prefix of any node is a prefix
//! of the one committed log). No clock is involved on the follower, and a late answer is only
//! slower, never stale: the index stays a lower bound. If the leader cannot answer (unknown,
//! unreachable, no longer leading, a version without the route), the read is forwarded to the
//! leader as before.

use std::time::Duration;

use actix::{ActorFutureExt, AsyncContext, Context, Handler, ResponseFuture, WrapFuture};
use tokio::sync::oneshot;

use super::messages::{ClientLeaseRead, ClientReadIndex, ReadGrant, ReadPath};
use super::{ClientError, RaftActor};
use crate::raft::core::{LeaseTiming, Role};
use crate::raft::rpc::{ReadIndexRequest, ReadIndexResponse};
use crate::raft::Message;
use crate::transport::DeliveryError;

/// A follower's reads waiting for a read index from the leader (see
/// [`RaftActor::follower_read`]).
#[derive(Debug, Default)]
pub(super) struct FollowerBatch {
    /// A request to the leader is in flight (its reads wait in its own future).
    in_flight: bool,
    /// Reads that arrived since: they wait for the next request.
    next: Vec<oneshot::Sender<Result<ReadGrant, ClientError>>>,
}

impl FollowerBatch {
    fn waiting(&self) -> usize {
        self.next.len()
    }
}

impl RaftActor {
    /// Serve linearizable reads on the leader from a lease (no network round) while leading
    /// (`on`), or never (`off`: ReadIndex only). Either way this node holds (refuses votes) as
    /// leases require, so leaders with leases on stay safe whatever this node's setting.
    pub fn with_lease_reads(mut self, on: bool) -> Self {
        let hold = self.tick.saturating_mul(self.core.config().election_ticks);
        let hold_us = u64::try_from(hold.as_micros()).unwrap_or(u64::MAX);
        let now = self.now_us();
        self.core.set_now(now);
        self.core
            .set_lease_timing(Some(LeaseTiming { hold_us, serve: on }));
        self
    }

    /// As a follower, serve linearizable reads from this node's state machine at a read index
    /// asked of the leader (`on`), or forward them to the leader (`off`).
    pub fn with_follower_reads(mut self, on: bool) -> Self {
        self.follower_reads = on;
        self
    }

    /// The actor's monotonic clock, in microseconds since it was made.
    pub(super) fn now_us(&self) -> u64 {
        u64::try_from(self.clock_origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// A read index proved by this node as leader: from its lease at once, else by a
    /// ReadIndex round (the core answers `NotLeader` when it does not lead).
    fn leader_read(
        &mut self,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<ReadGrant, ClientError>> {
        if !self.removed() {
            if let Some(read) = self.core.lease_read(self.now_us()) {
                let until = self.clock_origin + Duration::from_micros(read.until_us);
                let grant = ReadGrant {
                    index: read.index,
                    lease_until: Some(until),
                    path: ReadPath::Lease,
                };
                return Box::pin(async move { Ok(grant) });
            }
        }
        let index = <Self as Handler<ClientReadIndex>>::handle(self, ClientReadIndex, ctx);
        Box::pin(async move {
            index.await.map(|index| ReadGrant {
                index,
                lease_until: None,
                path: ReadPath::ReadIndex,
            })
        })
    }

    /// A follower's read index, asked of the leader; `None` when this node should not ask
    /// (follower reads off, not a follower, no leader known, removed).
    ///
    /// Batched: one request to the leader at a time. A read that arrives while one is in
    /// flight waits for the next, which is sent when the current one is answered and serves
    /// every read that waited for it (an answer proves an index for the reads that arrived
    /// before its request left, never for later ones).
    fn follower_read(
        &mut self,
        ctx: &mut Context<Self>,
    ) -> Option<ResponseFuture<Result<ReadGrant, ClientError>>> {
        if !self.follower_reads || self.core.role() != Role::Follower || self.removed() {
            return None;
        }
        let leader = self.core.leader()?.clone();
        self.core.member(&leader.id)?;
        if self.follower_batch.waiting() >= self.apply.max_pending() {
            return Some(Box::pin(async { Err(ClientError::Overloaded) }));
        }
        let (tx, rx) = oneshot::channel();
        self.follower_batch.next.push(tx);
        if !self.follower_batch.in_flight {
            self.ask_leader_for_read_index(ctx);
        }
        Some(Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(ClientError::Unknown(
                    "the node stopped before the read was served".into(),
                ))
            })
        }))
    }

    /// Send one read-index request to the leader for every read waiting for the next one.
    fn ask_leader_for_read_index(&mut self, ctx: &mut Context<Self>) {
        let waiting = std::mem::take(&mut self.follower_batch.next);
        if waiting.is_empty() {
            return;
        }
        // The leader may have changed since these reads arrived: ask the one known now (none,
        // or this node itself: the caller's routing loop takes it from there).
        let leader = self.core.leader().cloned();
        if self.core.role() != Role::Follower {
            for tx in waiting {
                let _ = tx.send(Err(ClientError::NotLeader(leader.clone())));
            }
            return;
        }
        let member = leader
            .as_ref()
            .and_then(|l| self.core.member(&l.id))
            .cloned();
        let (Some(leader), Some(member)) = (leader, member) else {
            for tx in waiting {
                let _ = tx.send(Err(ClientError::NotLeader(None)));
            }
            return;
        };
        self.follower_batch.in_flight = true;
        let request = Message::ReadIndexRequest(ReadIndexRequest {
            term: self.core.term(),
        });
        let started = std::time::Instant::now();
        let fut = self.transport.call(&member, request);
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            if let Some(m) = &act.metrics {
                m.rpc(&leader.id, "read_index", res.is_ok(), started.elapsed());
            }
            let answer = match res {
                Ok(Message::ReadIndexResponse(ReadIndexResponse { index, .. })) => Ok(ReadGrant {
                    index,
                    lease_until: None,
                    path: ReadPath::Follower,
                }),
                // The leader could not answer: forward the reads to it as without follower
                // reads (it may answer there, or say where the leader went).
                Ok(_) | Err(_) => Err(ClientError::NotLeader(Some(leader))),
            };
            for tx in waiting {
                let _ = tx.send(answer.clone());
            }
            act.follower_batch.in_flight = false;
            act.ask_leader_for_read_index(ctx);
        }));
    }

    /// A follower asks this node, as leader, for a read index (`POST /raft/read-index`).
    pub(super) fn serve_peer_read_index(
        &mut self,
        _: ReadIndexRequest,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<Message, DeliveryError>> {
        if self.core.role() != Role::Leader {
            return Box::pin(async { Err(DeliveryError::Refused("not the leader".into())) });
        }
        let term = self.core.term();
        let grant = self.leader_read(ctx);
        Box::pin(async move {
            match grant.await {
                Ok(g) => Ok(Message::ReadIndexResponse(ReadIndexResponse {
                    term,
                    index: g.index,
                })),
                Err(e) => Err(DeliveryError::Refused(e.to_string())),
            }
        })
    }
}

impl Handler<ClientLeaseRead> for RaftActor {
    type Result = ResponseFuture<Result<ReadGrant, ClientError>>;

    fn handle(&mut self, _: ClientLeaseRead, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(read) = self.follower_read(ctx) {
            return read;
        }
        self.leader_read(ctx)
    }
}
