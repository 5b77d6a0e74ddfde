//! How Raft RPCs reach other nodes.
//!
//! [`Transport`] is what the `RaftActor` calls: send one request to a peer, get its response
//! (or a classified failure) back as a future. The future is `!Send` and runs on the actor's own
//! thread; implementations are made on that thread.
//!
//! - [`http`]: the real transport, one reused awc client (keep-alive) posting JSON to
//!   `/raft/*`.
//! - [`memory`]: an in-process network of actors for tests, with cut, isolate, drop and delay.
//! - [`faults`]: the in-app fault layer (`KVSTORE_FAULTS=1`): it wraps a real transport for
//!   this node's requests and decides the fate of its answers to peers (the peer routes ask
//!   it); its rules have one owner, switched by `/admin/faults`.
//!
//! Inbound, a transport hands each request from a peer to a `Recipient<`[`Deliver`]`>` (the
//! node's Raft actor) and carries its answer back: the transport defines that message, so it
//! never names the actor.
//!
//! A transport never interprets messages and never retries: Raft's own timers do that.

pub mod faults;
pub mod http;
pub mod memory;

use std::fmt;

use futures_util::future::LocalBoxFuture;

use crate::raft::{Member, Message};

/// A request from another node (RequestVote, AppendEntries or a snapshot chunk), delivered to
/// this node's Raft actor; answered with its response.
#[derive(Debug, Clone, actix::Message)]
#[rtype(result = "Result<Message, DeliveryError>")]
pub struct Deliver(pub Message);

/// A delivered request could not be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryError {
    /// The message was not a request.
    NotARequest,
    /// The node stopped before the answer could be made durable.
    Stopped,
    /// The node cannot answer this request now (a read index asked of a node that does not
    /// lead): the sender should go elsewhere. Answered 503 with the reason.
    Refused(String),
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliveryError::NotARequest => write!(f, "not a Raft request"),
            DeliveryError::Stopped => write!(f, "node stopped before answering"),
            DeliveryError::Refused(why) => write!(f, "refused: {why}"),
        }
    }
}

impl std::error::Error for DeliveryError {}

/// Why an RPC got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// No answer within the RPC timeout.
    Timeout,
    /// Could not connect or the connection broke.
    Unreachable(String),
    /// The peer answered with an error status.
    Remote { status: u16, message: String },
    /// The answer was not the expected message.
    Protocol(String),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Timeout => write!(f, "timed out"),
            TransportError::Unreachable(why) => write!(f, "unreachable: {why}"),
            TransportError::Remote { status, message } => {
                write!(f, "peer answered {status}: {message}")
            }
            TransportError::Protocol(why) => write!(f, "protocol error: {why}"),
        }
    }
}

impl std::error::Error for TransportError {}

/// Sends requests to peers.
pub trait Transport {
    /// Send request `msg` to peer `to` (its id and URL, from the Raft configuration);
    /// resolves to its response.
    fn call(
        &self,
        to: &Member,
        msg: Message,
    ) -> LocalBoxFuture<'static, Result<Message, TransportError>>;
}
