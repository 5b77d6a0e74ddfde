//! Scenarios named after the sections of the Raft paper (§5 consensus, §7 log compaction) and
//! of the thesis (§3.10 leadership transfer, §4 membership change, §6.2 check-quorum, §6.4
//! read index, §9.6 pre-vote), one file per section,
//! plus `configuration.rs` (the configuration as a value) and `misc.rs`. Each test steps cores
//! by hand (or on the simulator's scripted [`World`]: a lossless FIFO network, a disk durable
//! at once) and asserts the exact outputs.
//!
//! A single core under test has peers `p0`, `p1`, ...; cores in a [`World`] are each other's
//! peers, in the order given.

use super::progress::Progress;
use super::*;
use crate::raft::log::{Entry, EntryPayload, RaftLog};
use crate::raft::rpc::{
    AppendRequest, AppendResponse, Message, SnapshotRequest, SnapshotResponse, TimeoutNowRequest,
    TimeoutNowResponse, VoteRequest, VoteResponse,
};
use crate::raft::{LogIndex, NodeId, Term};
use crate::sim::World;
use crate::store::Command;

mod configuration;
mod misc;
mod s3_10_transfer;
mod s4_membership;
mod s5_1_terms;
mod s5_2_election;
mod s5_3_replication;
mod s5_4_safety;
mod s6_2_check_quorum;
mod s6_4_1_lease;
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

/// A core from [`cfg`]'s settings and configuration, taken as already recorded (so a leader
/// does not write it down in an entry of its own: tests not about membership keep their log
/// indexes; `s4_membership.rs` tests the bootstrap configuration).
fn new_core(
    (settings, configuration): (CoreConfig, Configuration),
    hard: HardState,
    log: RaftLog,
    seed: u64,
) -> RaftCore {
    let mut core = RaftCore::new(settings, configuration.clone(), hard, log, seed);
    assert!(core.set_configuration(configuration).is_empty());
    core
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
        transfer: false,
    })
}

fn pre_vote_req(term: Term, from: &str) -> Message {
    Message::VoteRequest(VoteRequest {
        term,
        candidate_id: from.into(),
        last_log_index: 0,
        last_log_term: 0,
        pre_vote: true,
        transfer: false,
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
    Command::set(k, v)
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

/// `cores` as voters of one configuration, on the simulator's scripted world: a lossless FIFO
/// network and a disk durable at once, carrying out outputs the way the `RaftActor` does (and
/// checking Raft's safety properties at every step). Node `k` is `cores[k]`.
fn world(mut cores: Vec<RaftCore>) -> World {
    join(&mut cores);
    World::from_cores(cores)
}

/// Three fresh nodes `a`, `b`, `c`, the first elected leader.
fn three_with_leader() -> World {
    let mut net = world(vec![
        node("a", 2, 0, RaftLog::new()),
        node("b", 2, 0, RaftLog::new()),
        node("c", 2, 0, RaftLog::new()),
    ]);
    net.elect(0);
    net
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

/// A configuration of these voters and learners, each reached at `http://{id}`.
fn conf(voters: &[&str], learners: &[&str]) -> Configuration {
    let m = |ids: &[&str]| -> Vec<Member> {
        ids.iter()
            .map(|id| Member::new(*id, format!("http://{id}")))
            .collect()
    };
    Configuration::with_learners(m(voters), m(learners)).expect("distinct ids")
}

/// Settings of node `id` (reached at `http://{id}`).
fn settings(id: &str, pre_vote: bool, check_quorum: bool) -> CoreConfig {
    CoreConfig {
        id: id.into(),
        url: format!("http://{id}"),
        heartbeat_ticks: HB,
        election_ticks: ET,
        pre_vote,
        check_quorum,
    }
}

/// A fresh node `id` in `configuration`, taken as recorded (see [`new_core`]).
fn member_core(id: &str, configuration: Configuration, pv: bool, cq: bool) -> RaftCore {
    let mut c = RaftCore::new(
        settings(id, pv, cq),
        configuration.clone(),
        HardState::default(),
        RaftLog::new(),
        11,
    );
    assert!(c.set_configuration(configuration).is_empty());
    c
}

/// A scripted world: the nodes `voters` and `learners` share one configuration of them;
/// each of `joining` (after them) knows that configuration plus itself as a learner, as a node
/// that joins does. Node `k` is the `k`-th of voters, learners, joining.
fn cluster(voters: &[&str], learners: &[&str], joining: &[&str], pv: bool, cq: bool) -> World {
    let base = conf(voters, learners);
    let mut cores: Vec<RaftCore> = voters
        .iter()
        .chain(learners)
        .map(|id| member_core(id, base.clone(), pv, cq))
        .collect();
    for id in joining {
        let with_me: Vec<&str> = learners.iter().copied().chain([*id]).collect();
        cores.push(member_core(id, conf(voters, &with_me), pv, cq));
    }
    World::from_cores(cores)
}

/// `ticks` ticks of every node that is up, delivering everything after each.
fn run(net: &mut World, ticks: u32) {
    for _ in 0..ticks {
        for i in 0..net.len() {
            if net.is_up(i) {
                net.tick(i);
            }
        }
        net.deliver_all();
    }
}

/// The node that leads in the highest term, if any.
fn leader_of(net: &World) -> Option<usize> {
    (0..net.len())
        .filter(|i| net.is_up(*i) && net.core(*i).role() == Role::Leader)
        .max_by_key(|i| net.core(*i).term())
}
