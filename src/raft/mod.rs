//! Raft consensus: the pure core, its wire types and log, and the actor that drives it.
//!
//! - [`core`]: [`RaftCore`], the state machine (roles, terms, votes, timers in ticks). Pure.
//! - [`rpc`]: the messages nodes exchange (JSON over `POST /raft/*`).
//! - [`log`]: the in-memory log of entries.
//! - [`actor`]: [`actor::RaftActor`], which owns a core, ticks it with `run_interval`, carries out its
//!   outputs in order and sends RPCs through a [`crate::transport::Transport`] without ever
//!   blocking its mailbox.
//!
//! Nothing outside [`actor`] may hold or mutate a core at run time.

pub mod actor;
pub mod core;
pub mod log;
pub mod rpc;

pub use self::core::{CoreConfig, HardState, Input, LeaderInfo, Output, RaftCore, Role, Status};
pub use self::rpc::Message;

/// A Raft term.
pub type Term = u64;
/// A position in the log (1-based; 0 means "before the first entry").
pub type LogIndex = u64;
/// A node's id (`NODE_ID`), unique in the cluster.
pub type NodeId = String;

/// A peer, by its position in this node's configured peer list (`PEERS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub usize);
