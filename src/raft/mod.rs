//! Raft consensus: the pure core, its wire types and log, and the actor that drives it.
//!
//! - [`core`]: [`RaftCore`], the state machine (roles, terms, votes, timers in ticks, the
//!   [`Configuration`] of voters it counts quorums over). Pure.
//! - [`rpc`]: the messages nodes exchange (JSON over `POST /raft/*`).
//! - [`log`]: the in-memory log of entries.
//! - [`actor`]: [`actor::RaftActor`], which owns a core, ticks it with `run_interval`, carries out its
//!   outputs in order and sends RPCs through a [`crate::transport::Transport`] without ever
//!   blocking its mailbox.
//!
//! Nothing outside [`actor`] may hold or mutate a core at run time.

pub mod actor;
pub mod barrier;
pub mod core;
pub mod log;
pub mod rpc;

pub use self::core::{
    ConfigChange, Configuration, CoreConfig, HardState, Input, LeaderInfo, Member, MemberRole,
    MembershipError, Output, RaftCore, Role, Status,
};
pub use self::rpc::Message;

/// A Raft term.
pub type Term = u64;
/// A position in the log (1-based; 0 means "before the first entry").
pub type LogIndex = u64;
/// A node's id (`NODE_ID`), unique in the cluster. A peer known only by its URL (from
/// `PEERS`) has its URL as its provisional id (see [`Configuration`]).
pub type NodeId = String;
