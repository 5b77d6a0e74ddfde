//! The one place the simulator speaks the core's addressing and snapshot types: how a node's
//! configuration is built, how an output's peer maps to a simulated node and back, and how a
//! snapshot offer becomes a request on the wire and an install input. Everything else in
//! [`crate::sim`] names nodes by their position `0..n` (a [`Node`]) only.
//!
//! When the core's peer addressing or snapshot types change, this file is the only one to
//! adapt. Pure: no I/O, no clock.

use crate::raft::core::{
    Configuration, CoreConfig, Input, InstalledSnapshot, Member, SnapshotHeader,
};
use crate::raft::rpc::{Message, SnapshotRequest};
use crate::raft::{LogIndex, Term};

/// A simulated node, by its position in the world (`0..n`).
pub type Node = usize;

/// The settings of node `i`.
pub fn config(i: Node, pre_vote: bool, check_quorum: bool) -> CoreConfig {
    CoreConfig {
        id: node_id(i),
        url: url(i),
        heartbeat_ticks: 2,
        election_ticks: 12,
        pre_vote,
        check_quorum,
    }
}

/// The configuration of a world of `n` fresh nodes: all voters.
pub fn configuration(n: usize) -> Configuration {
    Configuration::new((0..n).map(|i| Member::new(node_id(i), url(i))).collect())
        .expect("distinct ids, at least one voter")
}

/// The `NodeId` node `i` runs with.
pub fn node_id(i: Node) -> String {
    format!("n{i}")
}

fn url(i: Node) -> String {
    format!("sim://n{i}")
}

/// The node a core names `to` (`cfgs[k]` is node k's settings, its id among them).
pub fn peer_node(cfgs: &[CoreConfig], to: &str) -> Node {
    cfgs.iter()
        .position(|c| c.id == to)
        .unwrap_or_else(|| panic!("{to} is not a node of this world"))
}

/// The input for a node when `from` answered one of its requests.
pub fn response(cfgs: &[CoreConfig], from: Node, msg: Message) -> Input {
    Input::Response {
        from: cfgs[from].id.clone(),
        msg,
    }
}

/// The input for a node when a request it sent to `to` got no answer.
pub fn send_failed(cfgs: &[CoreConfig], to: Node, seq: Option<u64>) -> Input {
    Input::SendFailed {
        to: cfgs[to].id.clone(),
        seq,
    }
}

/// The `seq` a failed request or lost answer reports back ([`Input::SendFailed`]).
pub fn seq_of(msg: &Message) -> Option<u64> {
    match msg {
        Message::AppendRequest(r) => Some(r.seq),
        Message::SnapshotRequest(r) => Some(r.seq),
        Message::AppendResponse(r) => Some(r.seq),
        Message::SnapshotResponse(r) => Some(r.seq),
        _ => None,
    }
}

/// What the leader offered in `Output::SendSnapshot`, to be filled in when it is sent.
pub type SnapshotOffer = SnapshotHeader;

/// The `seq` of a snapshot offer (reported back if it cannot be sent).
pub fn offer_seq(offer: &SnapshotOffer) -> u64 {
    offer.seq
}

/// The request that carries the whole snapshot at (`index`, `term`) in one chunk. The data
/// stays empty: the simulated state machine is the agreed sequence up to `index`, which the
/// receiver knows from (`index`, `term`).
pub fn snapshot_request(offer: SnapshotOffer, index: LogIndex, term: Term) -> Message {
    Message::SnapshotRequest(SnapshotRequest {
        offset: 0,
        done: true,
        data: Vec::new(),
        ..offer.request(index, term)
    })
}

/// A snapshot chunk as the receiver sees it: (leader's term, leader id, index, last term).
pub fn snapshot_parts(msg: &Message) -> Option<(Term, &str, LogIndex, Term)> {
    match msg {
        Message::SnapshotRequest(r) => Some((r.term, r.leader_id.as_str(), r.index, r.last_term)),
        _ => None,
    }
}

/// The input that tells the core the snapshot in `msg` is received and durable.
pub fn install_input(msg: Message) -> Option<Input> {
    match msg {
        Message::SnapshotRequest(r) => Some(Input::InstallSnapshot(InstalledSnapshot::from(&r))),
        _ => None,
    }
}
