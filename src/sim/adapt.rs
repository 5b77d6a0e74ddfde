//! The one place the simulator speaks the core's addressing and snapshot types: how a node's
//! settings and configuration are built, how a core's peer id maps to a simulated node and
//! back ([`Directory`]), and how a snapshot offer becomes a request on the wire and an install
//! input. Everything else in [`crate::sim`] names nodes by their slot `0..n` (a [`Node`]) and,
//! where a slot may hold successive nodes, by [`Addr`] (slot and incarnation).
//!
//! A slot can hold successive *incarnations*: a member that was removed and whose slot is used
//! again by a new node gets a new id and URL (`n3`, then `n3b`, `n3c`, …), so messages still in
//! flight to or from the old one never reach the new one.
//!
//! When the core's peer addressing or snapshot types change, this file is the only one to
//! adapt. Pure: no I/O, no clock.

use crate::raft::core::{
    Configuration, CoreConfig, Input, InstalledSnapshot, Member, SnapshotHeader,
};
use crate::raft::rpc::{Message, SnapshotRequest};
use crate::raft::{LogIndex, NodeId, Term};

/// A simulated node, by its slot in the world (`0..n`).
pub type Node = usize;

/// One incarnation of a slot: the slot and how many nodes held it before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Addr {
    pub node: Node,
    pub gen: u32,
}

/// The settings of the first node of slot `i`.
pub fn config(i: Node, pre_vote: bool, check_quorum: bool) -> CoreConfig {
    config_gen(i, 0, pre_vote, check_quorum)
}

/// The settings of incarnation `gen` of slot `i`.
pub fn config_gen(i: Node, gen: u32, pre_vote: bool, check_quorum: bool) -> CoreConfig {
    CoreConfig {
        id: id_gen(i, gen),
        url: url_of(&id_gen(i, gen)),
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

/// What a node joining a cluster whose leader is in `leaders_conf` starts with: those members
/// and itself as a learner (what `--join` asks the leader's `GET /cluster` for). `None` if it
/// cannot (its id or URL is taken, or the configuration is full).
pub fn joining_configuration(
    leaders_conf: &Configuration,
    me: &CoreConfig,
) -> Option<Configuration> {
    let mut learners = leaders_conf.learners().to_vec();
    learners.push(Member::new(me.id.clone(), me.url.clone()));
    if leaders_conf.members().count() >= crate::raft::core::MAX_MEMBERS {
        return None;
    }
    Configuration::with_learners(leaders_conf.voters().to_vec(), learners).ok()
}

/// The member incarnation `addr` is.
pub fn member(addr: Addr) -> Member {
    let id = id_gen(addr.node, addr.gen);
    Member::new(id.clone(), url_of(&id))
}

/// The `NodeId` the first node of slot `i` runs with.
pub fn node_id(i: Node) -> String {
    id_gen(i, 0)
}

/// The `NodeId` of incarnation `gen` of slot `i`: `n3`, `n3b`, `n3c`, …
pub fn id_gen(i: Node, gen: u32) -> String {
    match gen {
        0 => format!("n{i}"),
        g if g < 25 => format!("n{i}{}", char::from(b'a' + g as u8)),
        g => format!("n{i}g{g}"),
    }
}

fn url(i: Node) -> String {
    url_of(&node_id(i))
}

fn url_of(id: &str) -> String {
    format!("sim://{id}")
}

/// Who is who: every incarnation of every slot, by the id its core runs with.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    /// `ids[slot][gen]`.
    ids: Vec<Vec<NodeId>>,
}

impl Directory {
    /// Slot `k` holds the node that runs with `cfgs[k]` (its first incarnation).
    pub fn new(cfgs: &[CoreConfig]) -> Self {
        Directory {
            ids: cfgs.iter().map(|c| vec![c.id.clone()]).collect(),
        }
    }

    /// The incarnation a core names `id`, if any node of this world ever ran with it.
    pub fn lookup(&self, id: &str) -> Option<Addr> {
        self.ids.iter().enumerate().find_map(|(node, gens)| {
            gens.iter().position(|g| g == id).map(|gen| Addr {
                node,
                gen: gen as u32,
            })
        })
    }

    /// A spare slot: no node was ever started in it.
    pub fn add_slot(&mut self) {
        self.ids.push(Vec::new());
    }

    /// Whether a node was ever started in slot `node`.
    pub fn started(&self, node: Node) -> bool {
        !self.ids[node].is_empty()
    }

    /// The id incarnation `addr` runs with.
    pub fn id(&self, addr: Addr) -> &NodeId {
        &self.ids[addr.node][addr.gen as usize]
    }

    /// The newest incarnation of slot `node`.
    pub fn current(&self, node: Node) -> Addr {
        Addr {
            node,
            gen: self.ids[node].len() as u32 - 1,
        }
    }

    /// Slot `node` gets a new incarnation running with `id`.
    pub fn push(&mut self, node: Node, id: NodeId) -> Addr {
        self.ids[node].push(id);
        self.current(node)
    }
}

/// The input for a node when `from` answered one of its requests.
pub fn response(dir: &Directory, from: Addr, msg: Message) -> Input {
    Input::Response {
        from: dir.id(from).clone(),
        msg,
    }
}

/// The input for a node when a request it sent to `to` got no answer.
pub fn send_failed(dir: &Directory, to: Addr, seq: Option<u64>) -> Input {
    Input::SendFailed {
        to: dir.id(to).clone(),
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

/// The request that carries the whole snapshot at (`index`, `term`) in one chunk. The
/// simulated state machine is the agreed sequence up to `index`, which the receiver knows from
/// (`index`, `term`); the data is the configuration in force at `index`, which a snapshot file
/// records.
pub fn snapshot_request(
    offer: SnapshotOffer,
    index: LogIndex,
    term: Term,
    configuration: &Configuration,
) -> Message {
    Message::SnapshotRequest(SnapshotRequest {
        offset: 0,
        done: true,
        data: serde_json::to_vec(configuration).expect("a configuration serializes"),
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

/// The configuration a snapshot request carries (see [`snapshot_request`]).
pub fn snapshot_configuration(msg: &Message) -> Option<Configuration> {
    match msg {
        Message::SnapshotRequest(r) => serde_json::from_slice(&r.data).ok(),
        _ => None,
    }
}

/// The input that tells the core the snapshot in `msg` is received and durable.
pub fn install_input(msg: Message) -> Option<Input> {
    let configuration = snapshot_configuration(&msg);
    match msg {
        Message::SnapshotRequest(r) => Some(Input::InstallSnapshot(InstalledSnapshot {
            configuration,
            ..InstalledSnapshot::from(&r)
        })),
        _ => None,
    }
}
