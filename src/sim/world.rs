//! [`World`]: whole simulated nodes (core, write barrier, disk, state machine) on a simulated
//! network, in simulated time. Two ways to drive it:
//! - randomized ([`crate::sim::run`]): `World::randomized(n, seed)`, then `advance` tick by
//!   tick with faults injected;
//! - scripted (unit tests of the core): `World::new(n)` or `World::from_cores(cores)` gives a
//!   lossless FIFO network and a disk that is durable at once; `step`, `tick`, `propose`,
//!   `deliver_all`, `isolate`, `heal`, `crash`, `restart` drive it by hand.
//!
//! A crash loses what the disk had not synced (the write in flight is cut short, possibly
//! tearing its last record), every message held behind it, and the state machine; a restart
//! recovers from the disk only.
//! A pause ([`World::pause`]) stops a node without losing anything: no ticks, nothing
//! received, no write seen finished until it resumes, then one tick; only its clock saw the
//! time pass.
//!
//! A world has slots for more nodes than its initial cluster: a spare slot stays empty until a
//! node joins there ([`World::join`]: it starts empty, with the configuration of the cluster
//! plus itself as a learner). A node removed from the cluster keeps running until it is
//! retired ([`World::retire`]); its slot is then free again, and the next node to join there is
//! a new node (a new id and URL, an empty disk). Pure: no I/O, no clock.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use std::collections::HashMap;

use super::adapt::{self, Addr, Directory, Node};
use super::clock::Clocks;
use super::disk::{Disk, Record};
use super::invariants::Checker;
use super::network::{Network, Packet, Wire};
use super::node::{Held, ReplyTo, Requester, Running};
use crate::raft::core::{Configuration, CoreConfig, HardState, Input, Member, Output, RaftCore};
use crate::raft::log::{Entry, RaftLog};
use crate::raft::rpc::Message;
use crate::store::Command;

/// Faults of one node's disk.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiskFaults {
    /// Writes take 4 to 30 ticks instead of 0 to 2.
    pub slow: bool,
    /// Writes are refused (a full disk) until this tick.
    pub refuse_until: u64,
    /// The next write fails for good (an fsync error): the node stops.
    pub fatal: bool,
}

/// What happened in a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub crashes: usize,
    pub fatal_stops: usize,
    pub refused_writes: usize,
    pub installs: usize,
    pub torn: usize,
    /// Membership changes asked of a node that thought it led, and their answers.
    pub changes_asked: usize,
    pub changes_proposed: usize,
    pub changes_rejected: usize,
    /// Nodes started empty to join the cluster; removed nodes retired.
    pub joins: usize,
    pub retired: usize,
    /// Leadership transfers asked, started by the leader, and removals of the last voter that
    /// the core refused.
    pub transfers_asked: usize,
    pub transfers_started: usize,
    pub last_voter_refused: usize,
    /// Lease reads performed (and checked).
    pub lease_reads: usize,
    /// Pauses (a stopped process: no ticks, nothing received or completed until it resumes).
    pub pauses: usize,
    /// Lease reads tried by a leader the moment it resumed from a pause, and how many of those
    /// it tried while another node already led a later term (deposed: serving would be stale
    /// once that leader acknowledged a write; the checker checks every read served).
    pub resumed_leader_reads: usize,
    pub resumed_deposed_reads: usize,
}

pub struct World {
    pub seed: u64,
    /// Ticks since the start.
    pub now: u64,
    pub(super) rng: SmallRng,
    pub(super) cfgs: Vec<CoreConfig>,
    /// Who is who: every incarnation of every slot.
    pub(super) dir: Directory,
    /// The configuration each node restarts with (without a snapshot).
    pub(super) confs: Vec<Configuration>,
    /// Slots that hold no node: never started (spares) or retired.
    pub(super) free: Vec<bool>,
    /// The disks of retired nodes, by id (for the checks of what a leader counted).
    pub(super) retired_disks: HashMap<String, Disk>,
    /// Pre-vote and check-quorum, for the nodes that join.
    pub(super) settings: (bool, bool),
    pub(super) nodes: Vec<Option<Running>>,
    pub(super) disks: Vec<Disk>,
    pub(super) disk_faults: Vec<DiskFaults>,
    pub net: Network,
    pub check: Checker,
    pub stats: Stats,
    /// Every slot's monotonic clock (`clock.rs`), and the RNG of lease reads.
    pub clocks: Clocks,
    /// Nodes get lease settings when they start, and perform lease reads (randomized worlds).
    pub leases: bool,
    /// When a stopped node comes back.
    pub(super) restart_at: Vec<Option<u64>>,
    /// When a paused node resumes (see [`World::pause`]), and when its pause began.
    pub(super) paused_until: Vec<Option<u64>>,
    pub(super) paused_since: Vec<u64>,
    /// Snapshot every this many applied entries (0: never); entries kept before it.
    pub(super) snap_every: u64,
    pub(super) trailing: u64,
    /// The proposal id of the `Input::Propose` being stepped.
    pub(super) proposing: Option<u64>,
    pub(super) next_id: u64,
    /// Writes are durable as soon as they are handed over (scripted tests).
    pub(super) instant_disk: bool,
    pub(super) record_applied: bool,
    pub(super) applied_entries: Vec<Vec<Entry>>,
    pub(super) script_out: Vec<Output>,
    appends_received: Vec<usize>,
    /// A test of the tests: send before the write a message depends on is durable.
    pub break_persist_before_send: bool,
    /// A test of the tests: a node that resumes from a pause checks its first lease read
    /// against its clock as it read before the pause (the bug of a leader that checks its
    /// lease, stalls, and answers without checking again).
    pub break_lease_check_across_pause: bool,
}

impl World {
    fn with_cores(seed: u64, cores: Vec<RaftCore>, jitter: bool, spares: usize) -> World {
        let n = cores.len() + spares;
        let mut disks = vec![Disk::default(); n];
        for (d, c) in disks.iter_mut().zip(&cores) {
            // What a core is built from is what its storage holds.
            let st = c.status();
            d.append(&[Record::HardState(HardState {
                term: st.term,
                voted_for: st.voted_for,
            })]);
            let log = c.log();
            let entries = log.slice(log.base_index() + 1, log.last_index());
            d.append(&entries.into_iter().map(Record::Entry).collect::<Vec<_>>());
        }
        let mut check = Checker::new(seed);
        for c in &cores {
            check.bootstrap(c.configuration());
        }
        let settings = cores.first().map_or((false, false), |c| {
            (c.config().pre_vote, c.config().check_quorum)
        });
        let mut cfgs: Vec<CoreConfig> = cores.iter().map(|c| c.config().clone()).collect();
        let mut confs: Vec<Configuration> =
            cores.iter().map(|c| c.configuration().clone()).collect();
        let mut dir = Directory::new(&cfgs);
        for k in cores.len()..n {
            let cfg = adapt::config(k, settings.0, settings.1);
            dir.add_slot();
            confs.push(confs[0].clone());
            cfgs.push(cfg);
        }
        let mut free = vec![false; cores.len()];
        free.resize(n, true);
        let mut nodes: Vec<Option<Running>> = cores
            .into_iter()
            .map(|c| Some(Running::new(c, None)))
            .collect();
        nodes.resize_with(n, || None);
        World {
            seed,
            now: 0,
            rng: SmallRng::seed_from_u64(seed),
            cfgs,
            dir,
            confs,
            free,
            retired_disks: HashMap::new(),
            settings,
            nodes,
            disks,
            disk_faults: vec![DiskFaults::default(); n],
            net: Network::new(n, seed, jitter),
            check,
            stats: Stats::default(),
            clocks: Clocks::new(n, seed),
            leases: jitter,
            restart_at: vec![None; n],
            paused_until: vec![None; n],
            paused_since: vec![0; n],
            snap_every: 0,
            trailing: 0,
            proposing: None,
            next_id: 0,
            instant_disk: !jitter,
            record_applied: !jitter,
            applied_entries: vec![Vec::new(); n],
            script_out: Vec::new(),
            appends_received: vec![0; n],
            break_persist_before_send: false,
            break_lease_check_across_pause: false,
        }
    }

    /// A scripted world of `n` fresh nodes (pre-vote and check-quorum off). In unit tests their
    /// configuration is taken as already recorded (a leader does not write it down in an entry
    /// of its own, so log indexes are those of the paper's figures).
    pub fn new(n: usize) -> World {
        let cores = (0..n)
            .map(|i| {
                let cfg = adapt::config(i, false, false);
                let core = RaftCore::new(
                    cfg,
                    adapt::configuration(n),
                    HardState::default(),
                    RaftLog::new(),
                    3 + i as u64,
                );
                #[cfg(test)]
                let core = {
                    let mut core = core;
                    let outputs = core.set_configuration(adapt::configuration(n));
                    debug_assert!(outputs.is_empty());
                    core
                };
                core
            })
            .collect();
        World::from_cores(cores)
    }

    /// A scripted world of these cores (node `i` is `cores[i]`; peer k of node i is the k-th
    /// other node): a lossless FIFO network, a disk durable at once.
    pub fn from_cores(cores: Vec<RaftCore>) -> World {
        World::with_cores(0, cores, false, 0)
    }

    /// A randomized world: `n` fresh nodes on a network with delays, writes that take time;
    /// the seed picks pre-vote, check-quorum and the snapshot policy.
    pub fn randomized(n: usize, seed: u64) -> World {
        World::randomized_with_spares(n, 0, seed)
    }

    /// A randomized world of `n` fresh nodes and `spares` empty slots where nodes may join.
    pub fn randomized_with_spares(n: usize, spares: usize, seed: u64) -> World {
        let cores = (0..n)
            .map(|i| {
                let cfg = adapt::config(i, seed % 4 != 3, seed % 4 != 2);
                RaftCore::new(
                    cfg,
                    adapt::configuration(n),
                    HardState::default(),
                    RaftLog::new(),
                    seed * 131 + i as u64,
                )
            })
            .collect();
        let mut w = World::with_cores(seed, cores, true, spares);
        for i in 0..n {
            w.start_clock(i, false);
        }
        w.snap_every = if seed.is_multiple_of(3) {
            0
        } else {
            8 + seed % 20
        };
        w.trailing = seed % 4;
        w
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s core. Panics if it is down.
    pub fn core(&self, i: Node) -> &RaftCore {
        &self.nodes[i].as_ref().expect("node is up").core
    }

    /// Whether node `i` is up.
    pub fn is_up(&self, i: Node) -> bool {
        self.nodes[i].is_some()
    }

    /// Highest index node `i`'s state machine applied (0 if down).
    pub fn applied_index(&self, i: Node) -> u64 {
        self.nodes[i].as_ref().map_or(0, |n| n.applied)
    }

    /// Entries node `i` applied (scripted worlds record them).
    pub fn applied(&self, i: Node) -> &[Entry] {
        &self.applied_entries[i]
    }

    /// AppendEntries requests node `i` received.
    pub fn appends_received(&self, i: Node) -> usize {
        self.appends_received[i]
    }

    /// Messages held behind node `i`'s pending write.
    pub fn held(&self, i: Node) -> usize {
        self.nodes[i].as_ref().map_or(0, |n| n.barrier.held_len())
    }

    /// Node `i`'s disk faults.
    pub fn disk_faults(&mut self, i: Node) -> &mut DiskFaults {
        &mut self.disk_faults[i]
    }

    /// Step node `i` with `input`; returns the outputs the world does not carry out itself
    /// (everything but sends, applies and writes; the answer to a request stepped here is
    /// returned, not sent).
    pub fn step(&mut self, i: Node, input: Input) -> Vec<Output> {
        self.script_out.clear();
        self.step_node(i, input, ReplyTo::Caller);
        std::mem::take(&mut self.script_out)
    }

    /// Node `i` received the snapshot ending at (`index`, `term`) whole and stored it durably,
    /// as the actor does before it tells the core: a scripted stand-in for the transfer, so that
    /// a following `Input::InstallSnapshot` may restore it.
    pub fn snapshot_received(&mut self, i: Node, index: u64, term: u64) {
        let configuration = self.core(i).configuration().clone();
        let meta = super::disk::SnapshotMeta {
            index,
            term,
            configuration,
        };
        self.disks[i].store_snapshot(meta.clone());
        self.running(i).pending_restore = Some(meta);
    }

    /// One tick of node `i`'s clock.
    pub fn tick(&mut self, i: Node) -> Vec<Output> {
        self.step(i, Input::Tick)
    }

    /// A client write at node `i`, as the actor takes it: refused without stepping the core
    /// while the disk refuses writes. Returns the proposal id if the core accepted it.
    pub fn propose(&mut self, i: Node, command: Command) -> Option<u64> {
        if self.nodes[i].as_ref().is_none_or(|n| n.storage_error) || self.is_paused(i) {
            return None;
        }
        self.next_id += 1;
        let id = self.next_id;
        self.proposing = Some(id);
        let out = self.step(i, Input::Propose(command));
        self.proposing = None;
        out.iter()
            .any(|o| matches!(o, Output::Proposed { .. }))
            .then_some(id)
    }

    /// Make `i` leader in a scripted world: it campaigns and everything is delivered.
    pub fn elect(&mut self, i: Node) {
        self.step(i, Input::Campaign);
        self.deliver_all();
        assert_eq!(
            self.core(i).role(),
            crate::raft::core::Role::Leader,
            "node {i} must win"
        );
    }

    /// Deliver everything in flight, and what that produces, until nothing is left (scripted
    /// worlds; writes in flight complete too). Returns the outputs the world does not carry
    /// out itself, in the order the nodes produced them.
    pub fn deliver_all(&mut self) -> Vec<Output> {
        self.script_out.clear();
        for _ in 0..100_000 {
            if let Some(p) = self.net.pop_front() {
                self.deliver(p);
            } else if let Some(i) = (0..self.len()).find(|i| self.write_in_flight(*i)) {
                self.complete_write(i);
            } else {
                return std::mem::take(&mut self.script_out);
            }
        }
        panic!("the network did not quiesce");
    }

    /// Node `i`'s core, to step by hand outside the world: the outputs are the caller's (to
    /// inspect, drop, or hand back with [`World::absorb`]).
    pub fn core_mut(&mut self, i: Node) -> &mut RaftCore {
        &mut self.running(i).core
    }

    /// Carry out outputs the caller got by stepping node `i` by hand, as [`World::step`]
    /// would have; returns those the world does not carry out itself.
    pub fn absorb(&mut self, i: Node, outputs: Vec<Output>) -> Vec<Output> {
        self.script_out.clear();
        self.carry_out(i, outputs, ReplyTo::Nobody);
        std::mem::take(&mut self.script_out)
    }

    /// How many messages are in flight.
    pub fn in_flight_len(&self) -> usize {
        self.net.len()
    }

    /// The requests in flight, as (from, to, message).
    pub fn requests_in_flight(&self) -> Vec<(Node, Node, &crate::raft::rpc::Message)> {
        self.net.requests()
    }

    /// Lose everything in flight.
    pub fn drop_in_flight(&mut self) {
        self.net.clear();
    }

    fn write_in_flight(&self, i: Node) -> bool {
        self.nodes[i]
            .as_ref()
            .is_some_and(|n| n.barrier.writing().is_some())
    }

    /// Finish node `i`'s write in flight now (for scripted worlds without an instant disk).
    pub fn sync(&mut self, i: Node) {
        if self.write_in_flight(i) {
            self.complete_write(i);
        }
    }

    /// Writes stay in flight until [`World::sync`] (or [`World::deliver_all`]).
    pub fn set_instant_disk(&mut self, instant: bool) {
        self.instant_disk = instant;
    }

    /// Cut node `i` off from everyone.
    pub fn isolate(&mut self, i: Node) {
        self.net.isolate(i);
    }

    /// Every link works again.
    pub fn heal(&mut self) {
        self.net.heal();
    }

    /// One packet arrives.
    pub(super) fn deliver(&mut self, p: Packet) {
        let now = self.now;
        let (from, to) = (
            p.sender(),
            Addr {
                node: p.to,
                gen: p.to_gen,
            },
        );
        let current = self.net.for_current(&p);
        match p.wire {
            Wire::Request(msg) => {
                let lost = self.nodes[p.to].is_none() || !current || self.net.lost(p.from, p.to);
                if lost {
                    self.net.fail_later(now, from, to, adapt::seq_of(&msg));
                } else if adapt::snapshot_parts(&msg).is_some() {
                    self.receive_snapshot(p.to, from, msg);
                } else {
                    if matches!(msg, Message::AppendRequest(_)) {
                        self.appends_received[p.to] += 1;
                    }
                    let seq = adapt::seq_of(&msg);
                    let to = Requester { addr: from, seq };
                    self.step_node(p.to, Input::Request(msg), ReplyTo::Peer(to));
                }
            }
            Wire::Response(msg, seq) => {
                if self.nodes[p.to].is_none() || !current {
                    return;
                }
                let input = if self.net.lost(p.from, p.to) {
                    adapt::send_failed(&self.dir, from, seq)
                } else {
                    adapt::response(&self.dir, from, msg)
                };
                self.step_node(p.to, input, ReplyTo::Nobody);
            }
            Wire::Failed { seq } => {
                if !current {
                    return;
                }
                let input = adapt::send_failed(&self.dir, from, seq);
                self.step_node(p.to, input, ReplyTo::Nobody);
            }
        }
    }

    /// Node `i` stops: what its disk had not synced is gone (the write in flight may have
    /// reached the disk in part, its last record torn), and so are the messages held behind
    /// it; requests waiting for its answers fail. It restarts after a while in randomized
    /// worlds.
    pub fn crash(&mut self, i: Node) {
        if self.stop(i) && self.net.jitter {
            self.restart_at[i] = Some(self.now + self.rng.gen_range(5..60));
        }
    }

    /// Node `i` stops as in a crash (no restart is planned). Whether it was up.
    fn stop(&mut self, i: Node) -> bool {
        let Some(node) = self.nodes[i].take() else {
            return false;
        };
        self.paused_until[i] = None;
        self.stats.crashes += 1;
        let (writing, held) = node.barrier.crash();
        if !writing.is_empty() {
            // The writes in flight reach the disk in order: scripted worlds lose them whole;
            // randomized ones may keep a prefix, cut anywhere (even inside the second).
            let records: Vec<Record> = writing.into_iter().flat_map(|w| w.records).collect();
            let (kept, torn) = if self.net.jitter {
                let kept = self.rng.gen_range(0..=records.len());
                (kept, kept < records.len() && self.rng.gen_bool(0.5))
            } else {
                (0, false)
            };
            self.stats.torn += usize::from(torn);
            self.disks[i].crash_during(&records, kept, torn);
        }
        // What it produced as leader counts only if its term's hard state reached the disk.
        let term = self.disks[i].term();
        let settled: Vec<_> = node
            .tentative
            .into_iter()
            .filter(|p| p.term <= term)
            .collect();
        self.check.settled(i, &settled);
        let me = self.dir.current(i);
        for h in held {
            if let Held::Reply(Some(to), _) = h {
                self.net.fail_later(self.now, to.addr, me, to.seq);
            }
        }
        true
    }

    /// Whether slot `i` holds no node (a spare never started, or a retired node's).
    pub fn is_free(&self, i: Node) -> bool {
        self.free[i]
    }

    /// The id of the node in slot `i` (its newest incarnation; a free slot's last one).
    pub fn id_of(&self, i: Node) -> &str {
        &self.cfgs[i].id
    }

    /// The slot whose current node runs as `id`, if any.
    pub fn slot_of(&self, id: &str) -> Option<Node> {
        self.dir
            .lookup(id)
            .filter(|a| !self.free[a.node] && *a == self.dir.current(a.node))
            .map(|a| a.node)
    }

    /// The member the node in slot `i` is (its id and URL).
    pub fn core_member(&self, i: Node) -> Member {
        Member::new(self.cfgs[i].id.clone(), self.cfgs[i].url.clone())
    }

    /// Node `i` leaves for good (a removed node's machine is turned off): it stops, its disk
    /// is set aside, and its slot is free for a new node.
    pub fn retire(&mut self, i: Node) {
        if self.free[i] {
            return;
        }
        self.stop(i);
        self.stats.crashes -= 1;
        self.stats.retired += 1;
        let disk = std::mem::take(&mut self.disks[i]);
        self.retired_disks.insert(self.cfgs[i].id.clone(), disk);
        self.restart_at[i] = None;
        self.disk_faults[i] = DiskFaults::default();
        self.free[i] = true;
    }

    /// A new node starts empty in free slot `i` to join the cluster whose leader uses
    /// `leaders_conf`: it knows those members and itself as a learner, so it never campaigns
    /// until promoted. Returns the member to add, or `None` if the slot is not free or the
    /// configuration has no room.
    pub fn join(&mut self, i: Node, leaders_conf: &Configuration) -> Option<Member> {
        if !self.free[i] {
            return None;
        }
        let addr = if self.dir.started(i) {
            let gen = self.dir.current(i).gen + 1;
            self.dir.push(i, adapt::id_gen(i, gen))
        } else {
            self.dir.push(i, adapt::node_id(i))
        };
        let cfg = adapt::config_gen(i, addr.gen, self.settings.0, self.settings.1);
        let conf = adapt::joining_configuration(leaders_conf, &cfg)?;
        self.check.bootstrap(&conf);
        self.net.gens[i] = addr.gen;
        self.disks[i] = Disk::default();
        self.free[i] = false;
        self.stats.joins += 1;
        let core = RaftCore::new(
            cfg.clone(),
            conf.clone(),
            HardState::default(),
            RaftLog::new(),
            self.seed * 6151 + self.now + i as u64,
        );
        self.cfgs[i] = cfg;
        self.confs[i] = conf;
        self.applied_entries[i].clear();
        self.nodes[i] = Some(Running::new(core, None));
        self.start_clock(i, true);
        Some(adapt::member(addr))
    }

    /// Node `i` starts again from what its disk holds.
    pub fn restart(&mut self, i: Node) {
        if self.nodes[i].is_some() || self.free[i] {
            return;
        }
        let rec = self.disks[i]
            .recover()
            .unwrap_or_else(|e| panic!("seed {}: node {i} cannot restart: {e}", self.seed));
        // The configuration at the log's base: the snapshot's, or the one it started with.
        let conf = rec
            .snapshot
            .as_ref()
            .map_or_else(|| self.confs[i].clone(), |s| s.configuration.clone());
        let core = RaftCore::new(
            self.cfgs[i].clone(),
            conf,
            rec.hard_state,
            rec.log,
            self.seed * 7919 + self.now + i as u64,
        );
        self.check.scan_log(i, core.log(), &[]);
        self.check.configuration_in_force(i, &core);
        self.nodes[i] = Some(Running::new(core, rec.snapshot));
        self.restart_at[i] = None;
        self.disk_faults[i] = DiskFaults::default();
        self.start_clock(i, false);
    }

    /// Node `i` runs with an election timeout (and so a hold) of `ticks` from now on: it is
    /// stopped and restarted from its disk with the new setting. Only for tests that break on
    /// purpose the leases' assumption that every node has the same election timeout.
    pub fn set_election_ticks(&mut self, i: Node, ticks: u32) {
        self.cfgs[i].election_ticks = ticks;
        if self.stop(i) {
            self.stats.crashes -= 1;
            self.restart(i);
        }
    }

    /// One tick of simulated time for everyone: restarts due, every node's tick, packets due,
    /// writes due; lease reads at random moments (`clock.rs`).
    pub fn advance(&mut self) {
        self.now += 1;
        for i in 0..self.len() {
            if self.restart_at[i].is_some_and(|t| t <= self.now) {
                self.restart(i);
            }
        }
        self.resume_due();
        for i in 0..self.len() {
            if !self.is_paused(i) {
                self.step_node(i, Input::Tick, ReplyTo::Nobody);
            }
        }
        self.settle_due();
        self.maybe_lease_reads_after_tick();
    }

    /// Packets and writes due now.
    pub(super) fn settle_due(&mut self) {
        for p in self.net.due(self.now) {
            let paused = self.paused_until[p.to].filter(|t| *t > self.now);
            if let Some(until) = paused.filter(|_| self.net.for_current(&p)) {
                self.hold_for_paused(p, until);
                continue;
            }
            self.deliver(p);
            self.maybe_lease_read_after_packet();
        }
        for i in 0..self.len() {
            if self.is_paused(i) {
                // Its disk finishes, but it learns so only once it runs again.
                continue;
            }
            // Writes finish in order; several may be due at once.
            let due = |w: &Self| {
                w.nodes[i]
                    .as_ref()
                    .and_then(|n| n.barrier.writing())
                    .map(|w| (w.id, w.done_at))
                    .filter(|(_, at)| *at <= w.now)
            };
            while let Some((id, _)) = due(self) {
                self.complete_write(i);
                if due(self).is_some_and(|(next, _)| next == id) {
                    break; // refused: it retries later
                }
            }
        }
        self.script_out.clear();
    }

    /// Node `i`, if up, stops running for `ticks` ticks, as a process under SIGSTOP or in a long
    /// stall: it gets no ticks, receives nothing, learns of no finished write and serves no
    /// read until it resumes, and then it gets **one** tick, as the `RaftActor`'s interval
    /// timer fires once after a stall rather than once per tick missed. So its tick counters
    /// (election timeout, check-quorum) see almost no time pass; only its clock
    /// (`clock.rs`: a function of the world's time) sees the pause. What arrived meanwhile is
    /// delivered when it resumes; a request to it fails at its sender after the RPC timeout
    /// if the pause is longer (and is still answered later, as a stale answer).
    pub fn pause(&mut self, i: Node, ticks: u64) {
        if self.nodes[i].is_some() {
            self.paused_until[i] = Some(self.now + ticks);
            self.paused_since[i] = self.now;
            self.stats.pauses += 1;
        }
    }

    /// Whether node `i` is paused now.
    pub fn is_paused(&self, i: Node) -> bool {
        self.paused_until[i].is_some_and(|t| self.now < t)
    }

    /// Nodes whose pause ends now resume. Now and then the first thing one does is a lease
    /// read (a client request that waited in its socket), before its tick and before any
    /// message tells it that the cluster moved on: only its clock can refuse that read.
    fn resume_due(&mut self) {
        for i in 0..self.len() {
            if self.paused_until[i].is_some_and(|t| t <= self.now) {
                self.paused_until[i] = None;
                self.maybe_lease_read_on_resume(i);
            }
        }
    }

    /// A packet reached paused node `i`: it waits until the node resumes; a request whose
    /// sender's RPC timeout ends first fails at the sender meanwhile.
    fn hold_for_paused(&mut self, p: Packet, until: u64) {
        if let Wire::Request(msg) = &p.wire {
            if until - self.now > super::network::RPC_TIMEOUT {
                let to = Addr {
                    node: p.to,
                    gen: p.to_gen,
                };
                self.net
                    .fail_later(self.now, p.sender(), to, adapt::seq_of(msg));
            }
        }
        self.net.hold(p, until);
    }

    /// Every slot's node, one line each, for failure messages (nothing may parse it).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for i in 0..self.len() {
            let line =
                match &self.nodes[i] {
                    None if self.free[i] => format!("\n  slot {i}: free"),
                    None => format!("\n  slot {i}: {} down", self.cfgs[i].id),
                    Some(n) => {
                        let st = n.core.status();
                        format!(
                        "\n  slot {i}: {} {:?} term {} leader {:?} commit {} last {} applied {} \
                         config@{} voters {:?} learners {:?} transfer {:?}",
                        st.id,
                        st.role,
                        st.term,
                        st.leader.map(|l| l.id),
                        st.commit_index,
                        st.last_log_index,
                        n.applied,
                        st.config_index,
                        st.configuration.voters().iter().map(|m| &m.id).collect::<Vec<_>>(),
                        st.configuration.learners().iter().map(|m| &m.id).collect::<Vec<_>>(),
                        st.transfer
                    )
                    }
                };
            out.push_str(&line);
        }
        out
    }

    /// Every live node's log against the log-matching record.
    pub fn scan_logs(&mut self) {
        for i in 0..self.len() {
            if let Some(n) = &self.nodes[i] {
                self.check.scan_log(i, n.core.log(), &n.tentative);
                let (term, commit) = (n.core.term(), n.core.commit_index());
                self.check.committed(i, term, n.core.log(), 0, commit);
                self.check.configuration_in_force(i, &n.core);
            }
        }
    }
}
