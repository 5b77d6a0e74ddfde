//! [`RaftActor`]: the one owner of a node's [`RaftCore`] at run time.
//!
//! A thin shell: it ticks the core with `run_interval`, feeds it requests from the HTTP peer
//! routes and responses from peers, and carries out the core's outputs **in order** (save hard
//! state, then send, then reply). Peer RPCs run with `ctx.spawn`, so the mailbox never waits on
//! the network; their answers come back as ordinary inputs and the core drops stale ones.
//! It never decides anything about Raft itself, and never uses `ctx.wait`.

use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message as ActixMessage,
    WrapFuture,
};
use serde::Serialize;

use super::core::{CoreConfig, HardState, Input, Output, RaftCore, Role};
use super::log::RaftLog;
use super::rpc::Message;
use super::{NodeId, PeerId, Term};
use crate::transport::Transport;

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
}

/// An RPC from another node could not be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RaftError {
    /// The message was not a request.
    NotARequest,
}

impl std::fmt::Display for RaftError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RaftError::NotARequest => write!(f, "not a Raft request"),
        }
    }
}

impl std::error::Error for RaftError {}

/// A request from another node (RequestVote or AppendEntries); answered with its response.
#[derive(Debug, Clone, ActixMessage)]
#[rtype(result = "Result<Message, RaftError>")]
pub struct Inbound(pub Message);

/// Ask for the node's [`NodeStatus`].
#[derive(Debug, Clone, Copy, ActixMessage)]
#[rtype(result = "NodeStatus")]
pub struct GetStatus;

/// Stop the actor (a crash, in tests; shutdown otherwise). Nothing is flushed: whatever the
/// core's outputs required was already carried out when they were produced.
#[derive(Debug, Clone, Copy, ActixMessage)]
#[rtype(result = "()")]
pub struct Stop;

/// Owns the Raft core of this node. See the module docs.
pub struct RaftActor {
    core: RaftCore,
    transport: Box<dyn Transport>,
    tick: Duration,
    peer_urls: Vec<String>,
    /// When the current leader last reached us with a valid AppendEntries.
    last_leader_contact: Option<Instant>,
    /// What was last logged, to log only changes of role, term or leader.
    logged: (Role, Term, Option<NodeId>),
}

/// Everything needed to start a [`RaftActor`].
pub struct RaftSetup {
    pub id: NodeId,
    /// This node's base URL.
    pub url: String,
    /// The other voters' base URLs; position = [`PeerId`].
    pub peers: Vec<String>,
    pub timing: RaftTiming,
    /// Durable state to resume from.
    pub hard_state: HardState,
    /// Seed for the election-timeout randomness.
    pub seed: u64,
}

impl RaftActor {
    /// A node with `setup`, talking to its peers through `transport` (made on this thread).
    pub fn new(setup: RaftSetup, transport: Box<dyn Transport>) -> Self {
        let cfg = CoreConfig {
            id: setup.id,
            url: setup.url,
            peers: setup.peers.len(),
            heartbeat_ticks: setup.timing.heartbeat_ticks,
            election_ticks: setup.timing.election_ticks,
            pre_vote: true,
            check_quorum: true,
        };
        let core = RaftCore::new(cfg, setup.hard_state, RaftLog::new(), setup.seed);
        let logged = (core.role(), core.term(), None);
        RaftActor {
            core,
            transport,
            tick: setup.timing.tick,
            peer_urls: setup.peers,
            last_leader_contact: None,
            logged,
        }
    }

    /// Step the core and carry out its outputs in order; returns the reply, if any.
    fn step(&mut self, input: Input, ctx: &mut Context<Self>) -> Option<Message> {
        let outputs = self.core.step(input);
        let mut reply = None;
        for output in outputs {
            match output {
                Output::SaveHardState(hs) => {
                    // Kept by the core itself; the durable log writes it here (durability
                    // milestone) before anything that follows is sent.
                    tracing::trace!(term = hs.term, voted_for = ?hs.voted_for, "hard state");
                }
                Output::Send { to, msg } => self.send_rpc(to, msg, ctx),
                Output::Reply(msg) => reply = Some(msg),
            }
        }
        self.log_changes();
        reply
    }

    fn send_rpc(&mut self, to: PeerId, msg: Message, ctx: &mut Context<Self>) {
        let fut = self.transport.call(to, msg);
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
                let peer = act.peer_urls.get(to.0).map_or("?", String::as_str);
                tracing::debug!(peer, error = %e, "raft rpc failed");
            }
        }));
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
        }
    }
}

impl Actor for RaftActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
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
    type Result = Result<Message, RaftError>;

    fn handle(&mut self, Inbound(msg): Inbound, ctx: &mut Context<Self>) -> Self::Result {
        if !msg.is_request() {
            return Err(RaftError::NotARequest);
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
        reply.ok_or(RaftError::NotARequest)
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
