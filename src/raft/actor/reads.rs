//! The actor's side of lease reads: the monotonic clock the core's leases count in (read here
//! with `Instant`, handed to the core as microseconds since the actor's start before every
//! step) and [`ClientLeaseRead`], answered at once from a valid lease or else by ReadIndex.
//!
//! It never answers a read itself: it grants a read index and, with a lease, the instant the
//! lease ends; the caller must check that instant again after it took the value from the store
//! (a process paused in between must not answer stale). The lease's argument is in
//! `raft::core::lease`.

use std::time::Duration;

use actix::{Context, Handler, ResponseFuture};

use super::messages::{ClientLeaseRead, ClientReadIndex, ReadGrant};
use super::{ClientError, RaftActor};
use crate::raft::core::LeaseTiming;

impl RaftActor {
    /// Serve linearizable reads from a lease while leading (`on`), or never (`off`: ReadIndex
    /// only). Either way this node holds (refuses votes) as leases require, so leaders with
    /// leases on stay safe whatever this node's setting.
    pub fn with_lease_reads(mut self, on: bool) -> Self {
        let hold = self.tick.saturating_mul(self.core.config().election_ticks);
        let hold_us = u64::try_from(hold.as_micros()).unwrap_or(u64::MAX);
        let now = self.now_us();
        self.core.set_now(now);
        self.core
            .set_lease_timing(Some(LeaseTiming { hold_us, serve: on }));
        self
    }

    /// The actor's monotonic clock, in microseconds since it was made.
    pub(super) fn now_us(&self) -> u64 {
        u64::try_from(self.clock_origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

impl Handler<ClientLeaseRead> for RaftActor {
    type Result = ResponseFuture<Result<ReadGrant, ClientError>>;

    fn handle(&mut self, _: ClientLeaseRead, ctx: &mut Context<Self>) -> Self::Result {
        if !self.removed() {
            if let Some(read) = self.core.lease_read(self.now_us()) {
                let until = self.clock_origin + Duration::from_micros(read.until_us);
                let grant = ReadGrant {
                    index: read.index,
                    lease_until: Some(until),
                };
                return Box::pin(async move { Ok(grant) });
            }
        }
        let index = <Self as Handler<ClientReadIndex>>::handle(self, ClientReadIndex, ctx);
        Box::pin(async move {
            index.await.map(|index| ReadGrant {
                index,
                lease_until: None,
            })
        })
    }
}
