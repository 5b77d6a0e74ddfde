//! Scenarios named after the sections of the Raft paper (§5 consensus, §7 log compaction) and
//! of the thesis (§6.2 check-quorum, §6.4 read index, §9.6 pre-vote), one file per section,
//! plus `configuration.rs` (the configuration as a value) and `misc.rs`. Each test steps cores
//! by hand (or through [`Net`], a synchronous lossless network) and asserts the exact outputs.
//!
//! A single core under test has peers `p0`, `p1`, ...; cores on a [`Net`] are each other's
//! peers, in the order given.

use std::collections::VecDeque;

use super::progress::Progress;
use super::*;
use crate::raft::log::{Entry, EntryPayload, RaftLog};
use crate::raft::rpc::{
    AppendRequest, AppendResponse, Message, SnapshotRequest, SnapshotResponse, VoteRequest,
    VoteResponse,
};
use crate::raft::{LogIndex, NodeId, Term};
use crate::store::Command;

mod configuration;
mod misc;
mod s5_1_terms;
mod s5_2_election;
mod s5_3_replication;
mod s5_4_safety;
mod s6_2_check_quorum;
mod s6_4_read_index;
mod s7_snapshots;
mod s9_6_pre_vote;

const HB: u32 = 1;
const ET: u32 = 10;

/// A peer of a single core under test, by position: `p0`, `p1`, ...
fn peer(k: usize) -> NodeId {
    format!("p{k}")
}

/// Members with these ids, reached at `http://{id}`, all voters, in this order.
fn members(ids: &[&str]) -> Configuration {
    Configuration::new(
        ids.iter()
            .map(|id| Member::new(*id, format!("http://{id}")))
            .collect(),
    )
    .expect("distinct ids")
}

/// Settings for node `id` in a cluster of it and `peers` others (`p0`, `p1`, ...).
fn cfg(id: &str, peers: usize, pre_vote: bool, check_quorum: bool) -> (CoreConfig, Configuration) {
    let settings = CoreConfig {
        id: id.into(),
        url: format!("http://{id}"),
        heartbeat_ticks: HB,
        election_ticks: ET,
        pre_vote,
        check_quorum,
    };
    let others: Vec<NodeId> = (0..peers).map(peer).collect();
    let ids: Vec<&str> = std::iter::once(id)
        .chain(others.iter().map(String::as_str))
        .collect();
    (settings, members(&ids))
}

/// A core from [`cfg`]'s settings and configuration.
fn new_core(
    (settings, configuration): (CoreConfig, Configuration),
    hard: HardState,
    log: RaftLog,
    seed: u64,
) -> RaftCore {
    RaftCore::new(settings, configuration, hard, log, seed)
}

/// Make every core's configuration the set of all of them (in this order).
fn join(cores: &mut [RaftCore]) {
    let ids: Vec<String> = cores.iter().map(|c| c.cfg.id.clone()).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    for c in cores {
        assert!(c.set_configuration(members(&refs)).is_empty());
    }
}

fn core(id: &str, peers: usize) -> RaftCore {
    new_core(
        cfg(id, peers, false, false),
        HardState::default(),
        RaftLog::new(),
        1,
    )
}

fn core_with(id: &str, peers: usize, pre_vote: bool, check_quorum: bool) -> RaftCore {
    new_core(
        cfg(id, peers, pre_vote, check_quorum),
        HardState::default(),
        RaftLog::new(),
        7,
    )
}

fn vote_req(term: Term, from: &str, last_index: LogIndex, last_term: Term) -> Message {
    Message::VoteRequest(VoteRequest {
        term,
        candidate_id: from.into(),
        last_log_index: last_index,
        last_log_term: last_term,
        pre_vote: false,
    })
}

fn pre_vote_req(term: Term, from: &str) -> Message {
    Message::VoteRequest(VoteRequest {
        term,
        candidate_id: from.into(),
        last_log_index: 0,
        last_log_term: 0,
        pre_vote: true,
    })
}

fn vote_resp(term: Term, granted: bool) -> Message {
    Message::VoteResponse(VoteResponse {
        term,
        granted,
        pre_vote: false,
    })
}

fn pre_vote_resp(term: Term, granted: bool) -> Message {
    Message::VoteResponse(VoteResponse {
        term,
        granted,
        pre_vote: true,
    })
}

fn heartbeat(term: Term, from: &str) -> Message {
    Message::AppendRequest(AppendRequest {
        term,
        leader_id: from.into(),
        leader_url: format!("http://{from}"),
        ..Default::default()
    })
}

fn append_ok(term: Term) -> Message {
    Message::AppendResponse(AppendResponse {
        term,
        success: true,
        ..Default::default()
    })
}

fn reply(out: &[Output]) -> &Message {
    match out.last() {
        Some(Output::Reply(m)) => m,
        other => panic!("expected a reply last, got {other:?}"),
    }
}

/// Tick until the core starts campaigning; returns the outputs of that tick.
fn tick_until_campaign(c: &mut RaftCore) -> Vec<Output> {
    for _ in 0..2 * ET {
        let out = c.step(Input::Tick);
        if !out.is_empty() {
            return out;
        }
    }
    panic!("no campaign within 2 election timeouts");
}

/// Make a fresh core the leader of term 1 with all peers' votes.
fn elect(c: &mut RaftCore) {
    tick_until_campaign(c);
    for p in c.peers.clone() {
        c.step(Input::Response {
            from: p,
            msg: vote_resp(c.term(), true),
        });
    }
    assert_eq!(c.role(), Role::Leader);
}

fn set_cmd(k: &str, v: &str) -> Command {
    Command::Set {
        key: k.into(),
        value: v.into(),
    }
}

fn log_with_terms(terms: &[Term]) -> RaftLog {
    let mut log = RaftLog::new();
    for (i, t) in terms.iter().enumerate() {
        log.append(
            *t,
            EntryPayload::Command {
                command: set_cmd("k", &format!("{i}")),
            },
        );
    }
    log
}

fn terms_of(log: &RaftLog) -> Vec<Term> {
    (1..=log.last_index())
        .map(|i| log.term_at(i).unwrap())
        .collect()
}

/// A synchronous network of cores: every message is delivered, in FIFO order. Counts the
/// AppendEntries each node receives.
struct Net {
    cores: Vec<RaftCore>,
    queue: VecDeque<(usize, usize, Message, bool)>, // (from, to, msg, is_request)
    appends_received: Vec<usize>,
    applied: Vec<Vec<Entry>>,
}

impl Net {
    /// The network of `cores`, each configured with all of them as voters.
    fn new(mut cores: Vec<RaftCore>) -> Net {
        join(&mut cores);
        let n = cores.len();
        Net {
            cores,
            queue: VecDeque::new(),
            appends_received: vec![0; n],
            applied: vec![Vec::new(); n],
        }
    }

    /// The node with this id.
    fn peer_to_node(&self, id: &str) -> usize {
        self.cores
            .iter()
            .position(|c| c.cfg.id == id)
            .expect("a member of the network")
    }

    /// The id of node `node`.
    fn node_to_peer(&self, node: usize) -> NodeId {
        self.cores[node].cfg.id.clone()
    }

    fn absorb(&mut self, node: usize, out: Vec<Output>, reply_to: Option<usize>) -> Vec<Output> {
        let mut rest = Vec::new();
        let mut persisted = None;
        for o in out {
            match o {
                Output::Send { to, msg } => {
                    let dst = self.peer_to_node(&to);
                    self.queue.push_back((node, dst, msg, true));
                }
                Output::Reply(msg) => {
                    let dst = reply_to.expect("a reply answers a request");
                    self.queue.push_back((node, dst, msg, false));
                }
                Output::Apply(es) => self.applied[node].extend(es),
                // Instant storage: durable as soon as written.
                Output::PersistEntries(es) => {
                    persisted = es.last().map(|e| e.index).max(persisted);
                }
                other => rest.push(other),
            }
        }
        if let Some(index) = persisted {
            let out = self.cores[node].step(Input::Persisted { index });
            rest.extend(self.absorb(node, out, None));
        }
        rest
    }

    fn step(&mut self, node: usize, input: Input) -> Vec<Output> {
        let out = self.cores[node].step(input);
        self.absorb(node, out, None)
    }

    /// Deliver until nothing is left (bounded).
    fn run(&mut self) {
        for _ in 0..100_000 {
            let Some((from, to, msg, is_request)) = self.queue.pop_front() else {
                return;
            };
            if is_request {
                if matches!(msg, Message::AppendRequest(_)) {
                    self.appends_received[to] += 1;
                }
                let out = self.cores[to].step(Input::Request(msg));
                self.absorb(to, out, Some(from));
            } else {
                let from = self.node_to_peer(from);
                let out = self.cores[to].step(Input::Response { from, msg });
                self.absorb(to, out, None);
            }
        }
        panic!("network did not quiesce");
    }

    /// Three fresh nodes, the first elected leader.
    fn three_with_leader() -> Net {
        let mut net = Net::new(vec![
            node("a", 2, 0, RaftLog::new()),
            node("b", 2, 0, RaftLog::new()),
            node("c", 2, 0, RaftLog::new()),
        ]);
        net.elect(0);
        net
    }

    /// Make `node` leader: it campaigns and every message is delivered.
    fn elect(&mut self, node: usize) {
        self.step(node, Input::Campaign);
        self.run();
        assert_eq!(
            self.cores[node].role(),
            Role::Leader,
            "node {node} must win"
        );
    }
}

fn node(id: &str, peers: usize, term: Term, log: RaftLog) -> RaftCore {
    new_core(
        cfg(id, peers, false, false),
        HardState {
            term,
            voted_for: None,
        },
        log,
        3,
    )
}
