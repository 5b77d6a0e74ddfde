//! How the `RaftActor` carries out membership changes and leadership transfers, and the status
//! report that shows the membership ([`RaftActor::status`]).
//!
//! - A [`ChangeMembership`] is stepped into the core like a client write: its
//!   `ChangeProposed` output makes it wait (a [`Waiter::Change`] in the apply pump) for the
//!   configuration entry to be applied at that index with that term, `ChangeDone` answers at
//!   once, `ChangeRejected` refuses it (`NotLeader` becomes [`ClientError::NotLeader`], so the
//!   API's routing loop forwards it to the leader).
//! - A [`TransferLeadership`] is stepped into the core; once it started, the asker waits in a
//!   bounded list ([`MAX_TRANSFER_WAITERS`]) until the core reports that another node leads
//!   (checked after every step) or its deadline (two election timeouts, checked on tick)
//!   passes. No timer per request.
//!
//! It decides nothing about Raft: whether a change or a transfer may be made is the core's.

use std::time::{Duration, Instant};

use actix::{Context, Handler, ResponseFuture};
use tokio::sync::oneshot;

use super::apply::WriteAnswer;
use super::messages::{ChangeMembership, ClientError, IsRemoved, NodeStatus, TransferLeadership};
use super::{RaftActor, WriteTx};
use crate::raft::core::{Input, MembershipError, Role, MAX_MEMBERS};
use crate::raft::NodeId;

/// Who waits for a membership change to be applied.
pub(super) type ChangeTx = oneshot::Sender<Result<(), ClientError>>;
/// Who waits for a leadership transfer to end.
type TransferTx = oneshot::Sender<Result<NodeId, ClientError>>;

/// Most leadership transfers waited for at once; more are refused as overloaded.
pub(super) const MAX_TRANSFER_WAITERS: usize = 64;

/// Who waits for an entry proposed here to be applied.
#[derive(Debug)]
pub(super) enum Waiter {
    /// A client write, answered with its command's outcome.
    Write(WriteTx),
    /// A membership change, answered once its configuration entry is applied.
    Change(ChangeTx),
}

impl Waiter {
    /// The entry's fate is known.
    pub(super) fn answer(self, answer: WriteAnswer) {
        match self {
            Waiter::Write(tx) => {
                let _ = tx.send(match answer {
                    Ok(Some(outcome)) => Ok(outcome),
                    // A command entry always has an outcome: no command, not this write's.
                    Ok(None) => Err(ClientError::NotApplied),
                    Err(e) => Err(e),
                });
            }
            Waiter::Change(tx) => {
                let _ = tx.send(answer.map(|_| ()));
            }
        }
    }

    /// The entry's fate will not be known here.
    pub(super) fn fail(self, error: ClientError) {
        match self {
            Waiter::Write(tx) => {
                let _ = tx.send(Err(error));
            }
            Waiter::Change(tx) => {
                let _ = tx.send(Err(error));
            }
        }
    }
}

/// A refusal of the core as the actor answers it: `NotLeader` is routed to the leader.
pub(super) fn refusal(error: MembershipError) -> ClientError {
    match error {
        MembershipError::NotLeader(leader) => ClientError::NotLeader(leader),
        other => ClientError::Membership(other),
    }
}

/// A leadership transfer waited for.
#[derive(Debug)]
pub(super) struct TransferWaiter {
    tx: TransferTx,
    /// The voter it was handed to.
    to: NodeId,
    deadline: Instant,
}

impl RaftActor {
    /// Whether this node is not a member of its configuration in force.
    pub(super) fn removed(&self) -> bool {
        let me = &self.core.config().id;
        self.core.configuration().member(me).is_none()
    }

    /// Two election timeouts: how long a transfer is waited for.
    fn transfer_wait(&self) -> Duration {
        self.tick * self.core.config().election_ticks.saturating_mul(2)
    }

    /// The core started handing leadership to `to`: the transfer being stepped, if any, waits.
    pub(super) fn transfer_started(&mut self, to: NodeId) {
        if let Some(tx) = self.transferring.take() {
            let deadline = Instant::now() + self.transfer_wait();
            self.transfers.push(TransferWaiter { tx, to, deadline });
        }
    }

    /// The core refused the transfer being stepped.
    pub(super) fn transfer_rejected(&mut self, error: MembershipError) {
        if let Some(tx) = self.transferring.take() {
            let _ = tx.send(Err(refusal(error)));
        }
    }

    /// After every step: once another node leads, every transfer waited for is over.
    pub(super) fn check_transfers(&mut self) {
        if self.transfers.is_empty() || self.core.role() == Role::Leader {
            return;
        }
        let me = self.core.config().id.as_str();
        let Some(leader) = self
            .core
            .leader()
            .filter(|l| l.id != me)
            .map(|l| l.id.clone())
        else {
            return;
        };
        for w in self.transfers.drain(..) {
            let _ = w.tx.send(Ok(leader.clone()));
        }
    }

    /// On tick: transfers past their deadline failed (this node leads on, or no leader is
    /// known yet).
    pub(super) fn expire_transfers(&mut self) {
        if self.transfers.is_empty() {
            return;
        }
        let now = Instant::now();
        let waited = self.transfer_wait().as_millis();
        let (over, waiting) = self.transfers.drain(..).partition(|w| w.deadline <= now);
        self.transfers = waiting;
        for w in over {
            let _ = w.tx.send(Err(ClientError::TransferFailed(format!(
                "the leadership transfer to {:?} did not complete within {waited} ms",
                w.to
            ))));
        }
    }

    /// `from` answered an RPC of this node.
    pub(super) fn heard_from(&mut self, from: &NodeId) {
        self.last_contact.insert(from.clone(), Instant::now());
        if self.last_contact.len() > 2 * MAX_MEMBERS {
            let configuration = self.core.configuration();
            self.last_contact
                .retain(|id, _| configuration.member(id).is_some());
        }
    }

    /// What `/health` and `/cluster` show of this node.
    pub(super) fn status(&self) -> NodeStatus {
        let s = self.core.status();
        let ago = match s.role {
            Role::Leader => Some(0),
            _ => self
                .last_leader_contact
                .map(|t| u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)),
        };
        let membership = s
            .configuration
            .role_of(&s.id)
            .map_or("removed", |r| r.as_str());
        let state = match membership {
            "removed" => "removed",
            _ => s.role.as_str(),
        };
        let leading = s.role == Role::Leader;
        let peers = s
            .configuration
            .others(&s.id)
            .map(|m| m.url.clone())
            .collect();
        let last_contact_ms = match leading {
            false => Vec::new(),
            true => s
                .configuration
                .others(&s.id)
                .filter_map(|m| {
                    let t = self.last_contact.get(&m.id)?;
                    let ms = u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX);
                    Some((m.id.clone(), ms))
                })
                .collect(),
        };
        NodeStatus {
            state,
            term: s.term,
            leader_id: s.leader.as_ref().map(|l| l.id.clone()),
            leader: s.leader.map(|l| l.url),
            last_heartbeat_ago_ms: ago,
            voted_for: s.voted_for,
            url: self.core.config().url.clone(),
            peers,
            last_log_index: s.last_log_index,
            last_log_term: s.last_log_term,
            commit_index: s.commit_index,
            applied_index: self.apply.applied_index(),
            snapshot_index: self.snapshot.as_ref().map_or(0, |s| s.meta.index),
            log_start_index: s.log_base,
            storage_error: self.storage_error.clone(),
            membership,
            config_index: s.config_index,
            progress: match leading {
                true => self.core.peer_progress(),
                false => Vec::new(),
            },
            last_contact_ms,
            transfer: s.transfer,
            lease: self.core.holds_lease(self.now_us()),
            configuration: s.configuration,
            id: s.id,
        }
    }
}

impl Handler<ChangeMembership> for RaftActor {
    type Result = ResponseFuture<Result<(), ClientError>>;

    fn handle(
        &mut self,
        ChangeMembership(change): ChangeMembership,
        ctx: &mut Context<Self>,
    ) -> Self::Result {
        let refuse = |e| -> Self::Result { Box::pin(async move { Err(e) }) };
        if let Some(why) = self.apply.broken() {
            return refuse(ClientError::Internal(format!(
                "node is not accepting changes: {why}"
            )));
        }
        if let Some(why) = &self.storage_error {
            return refuse(ClientError::Storage(why.clone()));
        }
        if self.apply.full() {
            return refuse(ClientError::Overloaded);
        }
        // The core's `ChangeProposed`, `ChangeDone` or `ChangeRejected` output answers.
        let (tx, rx) = oneshot::channel();
        self.proposing_change = Some(tx);
        self.step(Input::ChangeMembership(change), ctx);
        self.proposing_change = None;
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(ClientError::Unknown(
                    "the node stopped before the membership change was confirmed: it may or \
                     may not have been made"
                        .into(),
                ))
            })
        })
    }
}

impl Handler<TransferLeadership> for RaftActor {
    type Result = ResponseFuture<Result<NodeId, ClientError>>;

    fn handle(
        &mut self,
        TransferLeadership(to): TransferLeadership,
        ctx: &mut Context<Self>,
    ) -> Self::Result {
        let me = self.core.config().id.clone();
        if self.core.role() == Role::Leader && to.as_deref() == Some(me.as_str()) {
            return Box::pin(async move { Ok(me) });
        }
        if self.transfers.len() >= MAX_TRANSFER_WAITERS {
            return Box::pin(async move { Err(ClientError::Overloaded) });
        }
        // The core's `TransferStarted` or `TransferRejected` output answers.
        let (tx, rx) = oneshot::channel();
        self.transferring = Some(tx);
        self.step(Input::TransferLeadership { to }, ctx);
        self.transferring = None;
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(ClientError::TransferFailed(
                    "the node stopped before the leadership transfer ended".into(),
                ))
            })
        })
    }
}

impl Handler<IsRemoved> for RaftActor {
    type Result = bool;

    fn handle(&mut self, _: IsRemoved, _: &mut Context<Self>) -> bool {
        self.removed()
    }
}
