//! Randomized simulation of whole clusters of pure `RaftCore`s, hundreds of seeds: random message
//! loss, delay and reordering, partitions and node crashes (a crash keeps exactly what the core
//! had at that moment, as durable storage would) while proposals flow. At the end every node's
//! applied sequence is a prefix of one common sequence, every acknowledged proposal is in it at
//! the index it was acknowledged at, no term ever had two leaders, and after healing all nodes
//! converge. Most seeds also take snapshots every few applied entries and compact the log, so
//! restarted or lagging nodes catch up through snapshot transfers; a restarted node's state
//! machine starts from its snapshot. A failing seed replays exactly: `SIM_DEBUG=<seed> cargo nextest run --release
//! debug_seed --no-capture` runs one 5-node seed and prints every node's state at the end.

use std::collections::HashMap;

use kvstore::raft::core::{
    Configuration, CoreConfig, HardState, Input, Member, Output, RaftCore, Role,
};
use kvstore::raft::log::{EntryPayload, RaftLog};
use kvstore::raft::rpc::SnapshotRequest;
use kvstore::raft::{LogIndex, Message, NodeId, Term};
use kvstore::store::Command;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

#[derive(Debug, Clone)]
enum Wire {
    Request(Message),
    Response(Message),
    /// The transport's "no answer" for a request (timeout or connection error).
    Failed {
        seq: Option<u64>,
    },
}

#[derive(Debug, Clone)]
struct InFlight {
    at: u64,
    from: usize,
    to: usize,
    wire: Wire,
}

struct Sim {
    seed: u64,
    rng: SmallRng,
    n: usize,
    now: u64,
    cfgs: Vec<CoreConfig>,
    cores: Vec<Option<RaftCore>>,
    /// What a crashed node restarts from.
    durable: Vec<(HardState, RaftLog)>,
    /// When a crashed node comes back.
    restart_at: Vec<Option<u64>>,
    queue: Vec<InFlight>,
    /// blocked[i][j]: nothing gets from i to j.
    blocked: Vec<Vec<bool>>,
    drop_pct: u32,
    applied: Vec<Applied>,
    /// Proposals waiting at a node: (node, index) -> (term, proposal id).
    proposed: HashMap<(usize, LogIndex), (Term, u64)>,
    /// Acknowledged proposals: (proposal id, index, term).
    acked: Vec<(u64, LogIndex, Term)>,
    next_id: u64,
    leaders_by_term: HashMap<Term, usize>,
    /// Take a snapshot every this many applied entries (0: never).
    snap_every: u64,
    /// Entries kept in the log before a snapshot's index.
    trailing: u64,
    /// Each node's newest snapshot: (index, term, the applied sequence up to index).
    snapshots: Vec<Option<Snapshot>>,
    /// What a crashed node's snapshot was.
    durable_snapshots: Vec<Option<Snapshot>>,
    /// Set while a node steps a snapshot chunk: the leader's term.
    receiving: Option<Term>,
    /// The core said "go on" to the chunk being stepped (the sim then installs it).
    go_on: bool,
    /// A received snapshot waiting for the core's RestoreSnapshot.
    pending_restore: Option<Snapshot>,
    /// Snapshots installed from a leader.
    installs: usize,
}

type Applied = Vec<(LogIndex, Term, EntryPayload)>;

#[derive(Debug, Clone)]
struct Snapshot {
    index: LogIndex,
    term: Term,
    applied: Applied,
}

/// Node `n{i}` is node `i` of the simulation.
fn peer_to_node(_from: usize, p: NodeId) -> usize {
    p.strip_prefix('n')
        .and_then(|i| i.parse().ok())
        .expect("a simulated node's id")
}

fn node_to_peer(_of: usize, node: usize) -> NodeId {
    format!("n{node}")
}

/// All `n` nodes, as voters.
fn configuration(n: usize) -> Configuration {
    Configuration::new(
        (0..n)
            .map(|i| Member::new(format!("n{i}"), format!("sim://n{i}")))
            .collect(),
    )
    .expect("distinct ids")
}

impl Sim {
    fn new(n: usize, seed: u64) -> Sim {
        let cfgs: Vec<CoreConfig> = (0..n)
            .map(|i| CoreConfig {
                id: format!("n{i}"),
                url: format!("sim://n{i}"),
                heartbeat_ticks: 2,
                election_ticks: 12,
                pre_vote: seed % 4 != 3,
                check_quorum: seed % 4 != 2,
            })
            .collect();
        let cores = (0..n)
            .map(|i| {
                Some(RaftCore::new(
                    cfgs[i].clone(),
                    configuration(n),
                    HardState::default(),
                    RaftLog::new(),
                    seed * 131 + i as u64,
                ))
            })
            .collect();
        Sim {
            seed,
            rng: SmallRng::seed_from_u64(seed),
            n,
            now: 0,
            cfgs,
            cores,
            durable: vec![(HardState::default(), RaftLog::new()); n],
            restart_at: vec![None; n],
            queue: Vec::new(),
            blocked: vec![vec![false; n]; n],
            drop_pct: 0,
            applied: vec![Vec::new(); n],
            proposed: HashMap::new(),
            acked: Vec::new(),
            next_id: 0,
            leaders_by_term: HashMap::new(),
            snap_every: if seed.is_multiple_of(3) {
                0
            } else {
                8 + seed % 20
            },
            trailing: seed % 4,
            snapshots: vec![None; n],
            durable_snapshots: vec![None; n],
            receiving: None,
            go_on: false,
            pending_restore: None,
            installs: 0,
        }
    }

    fn delay(&mut self) -> u64 {
        if self.rng.gen_ratio(1, 20) {
            self.rng.gen_range(3..12)
        } else {
            self.rng.gen_range(0..3)
        }
    }

    fn send(&mut self, from: usize, to: usize, wire: Wire) {
        let at = self.now + self.delay();
        self.queue.push(InFlight { at, from, to, wire });
    }

    /// Step node `i` and route what it produced. `reply_to` is the requester, for a request.
    fn step(&mut self, i: usize, input: Input, reply_to: Option<usize>) {
        let Some(core) = self.cores[i].as_mut() else {
            return;
        };
        let out = core.step(input);
        let mut persisted = None;
        if core.role() == Role::Leader {
            let term = core.term();
            let prev = self.leaders_by_term.insert(term, i);
            assert!(
                prev.is_none() || prev == Some(i),
                "seed {}: two leaders in term {term}",
                self.seed
            );
        }
        for o in out {
            match o {
                Output::Send { to, msg } => {
                    let dst = peer_to_node(i, to);
                    self.send(i, dst, Wire::Request(msg));
                }
                Output::Reply(Message::SnapshotResponse(r))
                    if r.match_index.is_none() && Some(r.term) == self.receiving =>
                {
                    // "Go on": the node takes the snapshot (the actor's part, done below).
                    self.go_on = true;
                }
                Output::Reply(msg) => {
                    let dst = reply_to.expect("a reply answers a request");
                    self.send(i, dst, Wire::Response(msg));
                }
                Output::SendSnapshot { to, header } => {
                    let snap = self.snapshots[i].clone().unwrap_or_else(|| {
                        panic!("seed {}: node {i} has no snapshot to send", self.seed)
                    });
                    let mut req = header.request(snap.index, snap.term);
                    req.done = true;
                    req.data = serde_json::to_vec(&snap.applied).expect("encodes");
                    let dst = peer_to_node(i, to);
                    self.send(i, dst, Wire::Request(Message::SnapshotRequest(req)));
                }
                Output::RestoreSnapshot { index } => {
                    let snap = self
                        .pending_restore
                        .take()
                        .expect("a restore follows a received snapshot");
                    assert_eq!(
                        snap.index, index,
                        "seed {}: restored the wrong snapshot",
                        self.seed
                    );
                    assert!(
                        self.applied[i].len() as u64 <= index,
                        "seed {}: node {i} restored a snapshot older than its state",
                        self.seed
                    );
                    self.applied[i] = snap.applied.clone();
                    self.snapshots[i] = Some(snap);
                    self.installs += 1;
                }
                Output::Apply(entries) => {
                    for e in entries {
                        let expected = self.applied[i].len() as u64 + 1;
                        assert_eq!(
                            e.index, expected,
                            "seed {}: node {i} applied out of order",
                            self.seed
                        );
                        if let Some((term, id)) = self.proposed.remove(&(i, e.index)) {
                            if term == e.term {
                                self.acked.push((id, e.index, e.term));
                            }
                        }
                        self.applied[i].push((e.index, e.term, e.payload));
                    }
                }
                Output::Proposed { index, term } => {
                    let id = self.next_id;
                    self.proposed.insert((i, index), (term, id));
                }
                Output::PersistEntries(entries) => {
                    // Storage is instant here: a crash keeps exactly what the core held.
                    persisted = entries.last().map(|e| e.index).max(persisted);
                }
                Output::SaveHardState(_)
                | Output::ResetLog { .. }
                | Output::ProposalRejected { .. }
                | Output::ReadReady { .. }
                | Output::ReadFailed { .. } => {}
            }
        }
        if let Some(index) = persisted {
            self.step(i, Input::Persisted { index }, None);
        }
        self.maybe_snapshot(i);
    }

    /// Take a snapshot of node `i`'s state machine if enough was applied, and compact.
    fn maybe_snapshot(&mut self, i: usize) {
        let last = self.snapshots[i].as_ref().map_or(0, |s| s.index);
        let applied = self.applied[i].len() as u64;
        if self.snap_every == 0 || applied < last + self.snap_every {
            return;
        }
        let (index, term, _) = self.applied[i].last().cloned().expect("applied entries");
        self.snapshots[i] = Some(Snapshot {
            index,
            term,
            applied: self.applied[i].clone(),
        });
        let keep_from = index.saturating_sub(self.trailing);
        self.step(i, Input::Compact { index: keep_from }, None);
    }

    /// A snapshot arrives at node `i` from `from`: the core checks it, and if it says go on,
    /// the node installs it at once (as if every chunk had arrived).
    fn receive_snapshot(&mut self, i: usize, from: usize, req: SnapshotRequest) {
        self.receiving = Some(req.term);
        self.go_on = false;
        let data = req.data.clone();
        self.step(
            i,
            Input::Request(Message::SnapshotRequest(req.clone())),
            Some(from),
        );
        self.receiving = None;
        if !std::mem::take(&mut self.go_on) {
            return;
        }
        let applied: Applied = serde_json::from_slice(&data).expect("decodes");
        self.pending_restore = Some(Snapshot {
            index: req.index,
            term: req.last_term,
            applied,
        });
        self.step(i, Input::InstallSnapshot((&req).into()), Some(from));
        self.pending_restore = None;
    }

    fn deliver_due(&mut self) {
        // Everything due now, in random order: messages get reordered.
        let mut due: Vec<InFlight> = Vec::new();
        let mut i = 0;
        while i < self.queue.len() {
            if self.queue[i].at <= self.now {
                due.push(self.queue.swap_remove(i));
            } else {
                i += 1;
            }
        }
        while !due.is_empty() {
            let k = self.rng.gen_range(0..due.len());
            let m = due.swap_remove(k);
            let lost = self.blocked[m.from][m.to]
                || self.cores[m.to].is_none()
                || (self.drop_pct > 0 && self.rng.gen_range(0..100) < self.drop_pct);
            match m.wire {
                Wire::Request(msg) => {
                    if lost {
                        let seq = match &msg {
                            Message::AppendRequest(r) => Some(r.seq),
                            Message::SnapshotRequest(r) => Some(r.seq),
                            _ => None,
                        };
                        // The sender's RPC times out a little later.
                        let at = self.now + 8;
                        self.queue.push(InFlight {
                            at,
                            from: m.to,
                            to: m.from,
                            wire: Wire::Failed { seq },
                        });
                    } else if let Message::SnapshotRequest(req) = msg {
                        self.receive_snapshot(m.to, m.from, req);
                    } else {
                        self.step(m.to, Input::Request(msg), Some(m.from));
                    }
                }
                Wire::Response(msg) => {
                    let input = if lost {
                        let seq = match &msg {
                            Message::AppendResponse(r) => Some(r.seq),
                            Message::SnapshotResponse(r) => Some(r.seq),
                            _ => None,
                        };
                        Input::SendFailed {
                            to: node_to_peer(m.to, m.from),
                            seq,
                        }
                    } else {
                        Input::Response {
                            from: node_to_peer(m.to, m.from),
                            msg,
                        }
                    };
                    self.step(m.to, input, None);
                }
                Wire::Failed { seq } => {
                    let to = node_to_peer(m.to, m.from);
                    self.step(m.to, Input::SendFailed { to, seq }, None);
                }
            }
        }
    }

    fn crash(&mut self, i: usize) {
        let Some(core) = self.cores[i].take() else {
            return;
        };
        let st = core.status();
        self.durable[i] = (
            HardState {
                term: st.term,
                voted_for: st.voted_for,
            },
            core.log().clone(),
        );
        // The state machine restarts from the snapshot and is rebuilt by replaying the log.
        self.durable_snapshots[i] = self.snapshots[i].clone();
        self.applied[i] = self.snapshots[i]
            .as_ref()
            .map_or(Vec::new(), |s| s.applied.clone());
        self.proposed.retain(|(node, _), _| *node != i);
        self.restart_at[i] = Some(self.now + self.rng.gen_range(5..60));
    }

    fn restart(&mut self, i: usize) {
        let (hs, log) = self.durable[i].clone();
        // Like start-up: the log continues after the snapshot it restarts from.
        let log = match &self.durable_snapshots[i] {
            Some(s) => {
                RaftLog::with_base(s.index, s.term, log.slice(s.index + 1, log.last_index()))
                    .unwrap_or_else(|e| panic!("seed {}: node {i} cannot restart: {e}", self.seed))
            }
            None => log,
        };
        self.snapshots[i] = self.durable_snapshots[i].clone();
        self.cores[i] = Some(RaftCore::new(
            self.cfgs[i].clone(),
            configuration(self.n),
            hs,
            log,
            self.seed * 7919 + self.now,
        ));
        self.restart_at[i] = None;
    }

    fn heal(&mut self) {
        for row in &mut self.blocked {
            row.iter_mut().for_each(|b| *b = false);
        }
        self.drop_pct = 0;
    }

    fn chaos(&mut self) {
        let r = self.rng.gen_range(0..1000);
        if r < 4 {
            // Crash someone (keep a majority up most of the time, not always).
            let i = self.rng.gen_range(0..self.n);
            self.crash(i);
        } else if r < 8 {
            // Random partition into two sides.
            let side: Vec<bool> = (0..self.n).map(|_| self.rng.gen_bool(0.5)).collect();
            for a in 0..self.n {
                for b in 0..self.n {
                    self.blocked[a][b] = side[a] != side[b];
                }
            }
        } else if r < 10 {
            // A one-way cut.
            let a = self.rng.gen_range(0..self.n);
            let b = self.rng.gen_range(0..self.n);
            if a != b {
                self.blocked[a][b] = true;
            }
        } else if r < 18 {
            self.heal();
        } else if r < 22 {
            self.drop_pct = self.rng.gen_range(0..30);
        }
    }

    fn propose_somewhere(&mut self) {
        let i = self.rng.gen_range(0..self.n);
        if self.cores[i].is_none() {
            return;
        }
        self.next_id += 1;
        let cmd = Command::Set {
            key: format!("k{}", self.rng.gen_range(0..5)),
            value: format!("p{}", self.next_id),
        };
        self.step(i, Input::Propose(cmd), None);
    }

    fn tick(&mut self, chaos: bool, proposals: bool) {
        self.now += 1;
        for i in 0..self.n {
            if self.restart_at[i].is_some_and(|t| t <= self.now) {
                self.restart(i);
            }
        }
        if chaos {
            self.chaos();
        }
        if proposals && self.rng.gen_ratio(1, 2) {
            self.propose_somewhere();
        }
        for i in 0..self.n {
            self.step(i, Input::Tick, None);
        }
        self.deliver_due();
    }

    fn check(&self) {
        let seed = self.seed;
        let longest = self.applied.iter().max_by_key(|a| a.len()).expect("nodes");
        for (i, a) in self.applied.iter().enumerate() {
            assert_eq!(
                a[..],
                longest[..a.len()],
                "seed {seed}: node {i}'s applied sequence is not a prefix of the longest"
            );
        }
        for (id, index, term) in &self.acked {
            let (_, t, payload) = longest
                .get(*index as usize - 1)
                .unwrap_or_else(|| panic!("seed {seed}: acknowledged proposal {id} missing"));
            assert_eq!(t, term, "seed {seed}: acknowledged proposal {id} replaced");
            match payload {
                EntryPayload::Command {
                    command: Command::Set { value, .. },
                } => assert_eq!(
                    value,
                    &format!("p{id}"),
                    "seed {seed}: wrong command at {index}"
                ),
                other => panic!("seed {seed}: acknowledged proposal {id} became {other:?}"),
            }
        }
    }
}

/// (acknowledged proposals, final commit index, snapshots installed from a leader).
fn run(n: usize, seed: u64) -> (usize, usize, usize) {
    let mut sim = Sim::new(n, seed);
    for _ in 0..1500 {
        sim.tick(true, true);
    }
    // Heal, bring everyone back, keep proposing a little, then let it settle.
    sim.heal();
    for i in 0..n {
        if sim.cores[i].is_none() {
            sim.restart(i);
        }
    }
    for _ in 0..100 {
        sim.tick(false, true);
    }
    for _ in 0..300 {
        sim.tick(false, false);
    }
    sim.check();
    // Converged: one leader, and every node applied the same, complete sequence.
    let leaders: Vec<_> = sim
        .cores
        .iter()
        .flatten()
        .filter(|c| c.role() == Role::Leader)
        .collect();
    assert_eq!(leaders.len(), 1, "seed {seed}: one leader after healing");
    let commit = leaders[0].commit_index();
    if std::env::var("SIM_DEBUG").is_ok() {
        for (i, c) in sim.cores.iter().enumerate() {
            let c = c.as_ref().unwrap();
            let st = c.status();
            println!(
                "node {i}: {:?} term {} commit {} last {} progress {:?}",
                st.role,
                st.term,
                st.commit_index,
                st.last_log_index,
                c.describe_progress()
            );
        }
        println!(
            "queue: {:?}",
            sim.queue
                .iter()
                .map(|m| (m.at, m.from, m.to))
                .collect::<Vec<_>>()
        );
    }
    for (i, c) in sim.cores.iter().enumerate() {
        let c = c.as_ref().unwrap();
        assert_eq!(
            c.commit_index(),
            commit,
            "seed {seed}: node {i} did not converge"
        );
        assert_eq!(
            sim.applied[i].len() as u64,
            commit,
            "seed {seed}: node {i} applied"
        );
    }
    (sim.acked.len(), commit as usize, sim.installs)
}

#[test]
fn three_node_clusters_under_faults_agree_and_lose_no_acknowledged_proposal() {
    let (mut acked, mut installs) = (0, 0);
    for seed in 0..300 {
        let (a, _, i) = run(3, seed);
        acked += a;
        installs += i;
    }
    assert!(
        acked > 10_000,
        "the workload must actually commit proposals ({acked})"
    );
    assert!(
        installs > 50,
        "lagging nodes must actually catch up through snapshots ({installs})"
    );
}

/// Replays one seed with `SIM_DEBUG=<seed>`; does nothing otherwise.
#[test]
fn debug_seed() {
    if let Ok(seed) = std::env::var("SIM_DEBUG") {
        run(5, seed.parse().unwrap());
    }
}

#[test]
fn five_node_clusters_under_faults_agree_and_lose_no_acknowledged_proposal() {
    let (mut acked, mut installs) = (0, 0);
    for seed in 1000..1100 {
        let (a, _, i) = run(5, seed);
        acked += a;
        installs += i;
    }
    assert!(installs > 10, "snapshots installed: {installs}");
    assert!(
        acked > 2_000,
        "the workload must actually commit proposals ({acked})"
    );
}
