//! Several `RaftActor`s wired through the in-memory `Network` (cut, isolate, drop, delay) on a
//! paused tokio clock: elections happen in virtual time, exactly the same way for a given seed.

use std::collections::HashMap;
use std::time::Duration;

use actix::{Actor, Addr};
use kvstore::raft::actor::{ChangeMembership, TransferLeadership};
use kvstore::raft::actor::{ClientError, ClientWrite, GetStatus, RaftSetup, SnapshotPolicy, Stop};
use kvstore::raft::actor::{NodeStatus, RaftActor, RaftTiming};
use kvstore::raft::{ConfigChange, Configuration, HardState, Member, MembershipError};
use kvstore::store::actor::{Get, StoreActor};
use kvstore::store::{Command, Effect};
use kvstore::transport::memory::{Fault, Join, Leave, MemoryTransport, Network};

/// Writes a simulated node lets wait for a commit.
const PENDING_LIMIT: usize = 32;

/// Let 10 ms of simulated time pass. The clock is paused, so this is how time moves in the
/// simulation, not a wait for something to happen: the runtime first runs every actor until
/// nothing is ready, then jumps the clock to the next timer, firing timers in order (tokio's
/// recommended way to advance a paused clock). Every loop that calls it has a bound.
async fn pass_time() {
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// 10 ms ticks, heartbeat 50 ms, election timeout 150 ms: the defaults.
fn timing() -> RaftTiming {
    RaftTiming::from_millis(50, 150)
}

struct Sim {
    n: usize,
    seed: u64,
    net: Addr<Network>,
    nodes: Vec<Option<Addr<RaftActor>>>,
    stores: Vec<Option<Addr<StoreActor>>>,
    /// Every (term, leader) ever observed: election safety is checked on each observation.
    leaders_by_term: HashMap<u64, String>,
    /// When nodes snapshot (in memory).
    snapshots: SnapshotPolicy,
}

impl Sim {
    async fn start(n: usize, seed: u64) -> Sim {
        Self::start_with(n, seed, SnapshotPolicy::never()).await
    }

    async fn start_with(n: usize, seed: u64, snapshots: SnapshotPolicy) -> Sim {
        let mut sim = Sim::empty(n, seed, snapshots);
        for i in 0..n {
            sim.start_node(i, HardState::default()).await;
        }
        sim
    }

    /// A network with room for `n` nodes, none started.
    fn empty(n: usize, seed: u64, snapshots: SnapshotPolicy) -> Sim {
        let net = Network::new(n, seed).start();
        Sim {
            n,
            seed,
            net,
            nodes: vec![None; n],
            stores: vec![None; n],
            leaders_by_term: HashMap::new(),
            snapshots,
        }
    }

    /// Nodes `0..voters` started as the voters of one configuration (ids known, no PEERS),
    /// with room for `spare` more nodes to join.
    async fn start_members(voters: usize, spare: usize, seed: u64) -> Sim {
        let mut sim = Sim::empty(voters + spare, seed, SnapshotPolicy::never());
        let configuration = Configuration::new((0..voters).map(member).collect()).unwrap();
        for i in 0..voters {
            sim.start_node_in(i, HardState::default(), configuration.clone())
                .await;
        }
        sim
    }

    /// Start node `i` the way a joining node starts: the cluster's configuration with itself
    /// as a learner.
    async fn start_joiner(&mut self, i: usize, cluster: &Configuration) {
        let configuration =
            Configuration::with_learners(cluster.voters().to_vec(), vec![member(i)]).unwrap();
        self.start_node_in(i, HardState::default(), configuration)
            .await;
    }

    /// Start node `i` with a configuration from PEERS (every other node, by URL).
    async fn start_node(&mut self, i: usize, hard_state: HardState) {
        let peers: Vec<String> = (0..self.n)
            .filter(|j| *j != i)
            .map(|j| format!("mem://n{j}"))
            .collect();
        let configuration =
            RaftSetup::bootstrap(&format!("n{i}"), &format!("mem://n{i}"), &peers).unwrap();
        self.start_node_in(i, hard_state, configuration).await;
    }

    async fn start_node_in(
        &mut self,
        i: usize,
        hard_state: HardState,
        configuration: Configuration,
    ) {
        let transport = MemoryTransport::new(self.net.clone(), i);
        let store = StoreActor::new().start();
        self.stores[i] = Some(store.clone());
        let setup = RaftSetup {
            id: format!("n{i}"),
            url: format!("mem://n{i}"),
            configuration,
            timing: timing(),
            hard_state,
            seed: self.seed * 1000 + i as u64 + 1,
            store,
            max_pending: PENDING_LIMIT,
            log: kvstore::raft::log::RaftLog::new(),
            storage: Box::new(kvstore::storage::MemoryLog),
            snapshots: self.snapshots.clone(),
            snapshot: None,
        };
        let addr = RaftActor::new(setup, Box::new(transport)).start();
        self.net
            .send(Join {
                index: i,
                url: format!("mem://n{i}"),
                node: addr.clone().recipient(),
            })
            .await
            .unwrap();
        self.nodes[i] = Some(addr);
    }

    /// Crash node `i`: it vanishes from the network and its actor stops. Returns the hard state
    /// it had persisted (term and vote are saved before any message depends on them).
    async fn crash(&mut self, i: usize) -> HardState {
        let addr = self.nodes[i].take().expect("node is up");
        let st = addr.send(GetStatus).await.unwrap();
        self.net.send(Leave(i)).await.unwrap();
        addr.send(Stop).await.unwrap();
        HardState {
            term: st.term,
            voted_for: st.voted_for,
        }
    }

    async fn fault(&self, f: Fault) {
        self.net.send(f).await.unwrap();
    }

    async fn statuses(&mut self) -> Vec<Option<NodeStatus>> {
        let mut out = Vec::with_capacity(self.n);
        for node in &self.nodes {
            out.push(match node {
                Some(a) => Some(a.send(GetStatus).await.unwrap()),
                None => None,
            });
        }
        for s in out.iter().flatten() {
            if s.state == "leader" {
                let prev = self.leaders_by_term.insert(s.term, s.id.clone());
                assert!(
                    prev.is_none() || prev.as_deref() == Some(s.id.as_str()),
                    "seed {}: two leaders in term {}: {prev:?} and {}",
                    self.seed,
                    s.term,
                    s.id
                );
            }
        }
        out
    }

    /// Advance virtual time in 10 ms steps until exactly one leader among `among` is seen and
    /// every node of `among` follows it in its term; returns (leader index, term).
    async fn wait_for_leader(&mut self, among: &[usize], within: Duration) -> (usize, u64) {
        let steps = within.as_millis() / 10;
        let mut last = Vec::new();
        for _ in 0..steps {
            pass_time().await;
            let st = self.statuses().await;
            let leaders: Vec<usize> = among
                .iter()
                .copied()
                .filter(|i| st[*i].as_ref().is_some_and(|s| s.state == "leader"))
                .collect();
            if let [l] = leaders[..] {
                let term = st[l].as_ref().unwrap().term;
                let lid = format!("n{l}");
                let agreed = among.iter().all(|i| {
                    st[*i]
                        .as_ref()
                        .is_some_and(|s| s.term == term && s.leader_id.as_deref() == Some(&lid))
                });
                if agreed {
                    return (l, term);
                }
            }
            last = st;
        }
        panic!(
            "seed {}: no agreed leader among {among:?} within {within:?}: {last:#?}",
            self.seed
        );
    }

    /// Run for `d` of virtual time, observing every 10 ms.
    async fn run_for(&mut self, d: Duration) {
        for _ in 0..d.as_millis() / 10 {
            pass_time().await;
            self.statuses().await;
        }
    }
}

fn all(n: usize) -> Vec<usize> {
    (0..n).collect()
}

/// Node `i` as a member: id `n{i}` at `mem://n{i}`.
fn member(i: usize) -> Member {
    Member::new(format!("n{i}"), format!("mem://n{i}"))
}

#[actix_rt::test]
async fn three_nodes_elect_exactly_one_leader_on_many_seeds() {
    tokio::time::pause();
    for seed in 0..20 {
        let mut sim = Sim::start(3, seed).await;
        let (leader, term) = sim.wait_for_leader(&all(3), Duration::from_secs(3)).await;
        // And it stays: no election in 5 s of quiet.
        sim.run_for(Duration::from_secs(5)).await;
        let st = sim.statuses().await;
        for s in st.iter().flatten() {
            assert_eq!(s.term, term, "seed {seed}: term changed while quiet");
            assert_eq!(s.leader_id.as_deref(), Some(format!("n{leader}").as_str()));
        }
        for i in 0..3 {
            sim.crash(i).await;
        }
    }
}

#[actix_rt::test]
async fn five_nodes_elect_exactly_one_leader_even_with_loss_and_delay() {
    tokio::time::pause();
    for seed in 0..10 {
        let mut sim = Sim::start(5, seed).await;
        sim.fault(Fault::Drop(100)).await;
        sim.fault(Fault::Delay(
            Duration::from_millis(1),
            Duration::from_millis(20),
        ))
        .await;
        sim.wait_for_leader(&all(5), Duration::from_secs(10)).await;
        sim.run_for(Duration::from_secs(3)).await;
        for i in 0..5 {
            sim.crash(i).await;
        }
    }
}

#[actix_rt::test]
async fn an_isolated_leader_is_replaced_and_steps_down() {
    tokio::time::pause();
    for seed in 0..10 {
        let mut sim = Sim::start(3, seed).await;
        let (old, term) = sim.wait_for_leader(&all(3), Duration::from_secs(3)).await;
        sim.fault(Fault::Isolate(old)).await;
        let rest: Vec<usize> = all(3).into_iter().filter(|i| *i != old).collect();
        let (new, new_term) = sim.wait_for_leader(&rest, Duration::from_secs(3)).await;
        assert_ne!(new, old);
        assert!(new_term > term);
        // Check-quorum: within two election timeouts the old leader no longer claims leadership.
        let mut stepped_down = false;
        for _ in 0..30 {
            pass_time().await;
            let st = sim.statuses().await;
            if st[old].as_ref().unwrap().state != "leader" {
                stepped_down = true;
                break;
            }
        }
        assert!(
            stepped_down,
            "seed {seed}: isolated leader kept claiming leadership"
        );
        // Heal: it rejoins as a follower of the new leader.
        sim.fault(Fault::Heal).await;
        let (l, t) = sim.wait_for_leader(&all(3), Duration::from_secs(3)).await;
        assert_eq!(
            (l, t),
            (new, new_term),
            "seed {seed}: healing disturbed the new leader"
        );
        for i in 0..3 {
            sim.crash(i).await;
        }
    }
}

#[actix_rt::test]
async fn a_rejoining_node_does_not_disrupt_the_leader() {
    tokio::time::pause();
    for seed in 0..10 {
        let mut sim = Sim::start(3, seed).await;
        let (leader, term) = sim.wait_for_leader(&all(3), Duration::from_secs(3)).await;
        let follower = (leader + 1) % 3;
        sim.fault(Fault::Isolate(follower)).await;
        sim.run_for(Duration::from_secs(5)).await;
        let st = sim.statuses().await;
        assert_eq!(
            st[follower].as_ref().unwrap().term,
            term,
            "seed {seed}: pre-vote must keep a partitioned node's term"
        );
        sim.fault(Fault::Heal).await;
        let (l, t) = sim.wait_for_leader(&all(3), Duration::from_secs(3)).await;
        assert_eq!(
            (l, t),
            (leader, term),
            "seed {seed}: the rejoin changed the leader"
        );
        for i in 0..3 {
            sim.crash(i).await;
        }
    }
}

#[actix_rt::test]
async fn repeated_leader_crashes_each_elect_a_new_leader_and_the_old_one_rejoins() {
    tokio::time::pause();
    for seed in 0..5 {
        let mut sim = Sim::start(3, seed).await;
        let (mut leader, mut term) = sim.wait_for_leader(&all(3), Duration::from_secs(3)).await;
        for round in 0..5 {
            let hard = sim.crash(leader).await;
            let rest: Vec<usize> = all(3).into_iter().filter(|i| *i != leader).collect();
            let (new, new_term) = sim.wait_for_leader(&rest, Duration::from_secs(3)).await;
            assert!(new_term > term, "seed {seed} round {round}");
            sim.start_node(leader, hard).await;
            let (l, t) = sim.wait_for_leader(&all(3), Duration::from_secs(3)).await;
            assert_eq!(
                (l, t),
                (new, new_term),
                "seed {seed} round {round}: restart disrupted"
            );
            leader = new;
            term = new_term;
        }
        for i in 0..3 {
            sim.crash(i).await;
        }
    }
}

#[actix_rt::test]
async fn a_one_way_cut_and_a_minority_partition_keep_one_leader_per_term() {
    tokio::time::pause();
    for seed in 0..10 {
        let mut sim = Sim::start(5, seed).await;
        let (leader, _) = sim.wait_for_leader(&all(5), Duration::from_secs(3)).await;
        // The leader can send but not hear answers: check-quorum must make it step down.
        for j in all(5).into_iter().filter(|j| *j != leader) {
            sim.fault(Fault::Cut {
                from: j,
                to: leader,
            })
            .await;
        }
        sim.run_for(Duration::from_secs(2)).await;
        sim.fault(Fault::Heal).await;
        let (l2, _) = sim.wait_for_leader(&all(5), Duration::from_secs(5)).await;
        // Minority {l2, x} vs majority of 3: the majority elects; the minority never does.
        let x = (l2 + 1) % 5;
        let minority = vec![l2, x];
        let majority: Vec<usize> = all(5)
            .into_iter()
            .filter(|i| !minority.contains(i))
            .collect();
        sim.fault(Fault::Partition(minority.clone(), majority.clone()))
            .await;
        let (l3, _) = sim.wait_for_leader(&majority, Duration::from_secs(3)).await;
        assert!(majority.contains(&l3));
        sim.run_for(Duration::from_secs(2)).await;
        let st = sim.statuses().await;
        assert!(
            minority
                .iter()
                .all(|i| st[*i].as_ref().unwrap().state != "leader"),
            "seed {seed}: a minority node still claims leadership"
        );
        sim.fault(Fault::Heal).await;
        sim.wait_for_leader(&all(5), Duration::from_secs(3)).await;
        for i in 0..5 {
            sim.crash(i).await;
        }
    }
}

/// Propose `cmd` through whichever node leads, retrying (in virtual time) while there is none.
async fn write_via_leader(sim: &mut Sim, cmd: Command) -> Result<Effect, ClientError> {
    for _ in 0..300 {
        let st = sim.statuses().await;
        let leader = st
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.state == "leader"));
        if let Some(l) = leader {
            let addr = sim.nodes[l].clone().unwrap();
            match addr.send(ClientWrite(cmd.clone())).await.unwrap() {
                Err(ClientError::NotLeader(_)) => {}
                other => return other.map(|o| o.effect),
            }
        }
        pass_time().await;
    }
    Err(ClientError::NotLeader(None))
}

#[actix_rt::test]
async fn replicated_writes_under_loss_and_delay_reach_every_store() {
    tokio::time::pause();
    for seed in 0..5 {
        let mut sim = Sim::start(3, seed).await;
        sim.wait_for_leader(&all(3), Duration::from_secs(3)).await;
        sim.fault(Fault::Drop(150)).await;
        sim.fault(Fault::Delay(
            Duration::from_millis(1),
            Duration::from_millis(15),
        ))
        .await;
        let mut acked = Vec::new();
        for k in 0..60 {
            let cmd = Command::set(format!("k{k}"), format!("v{k}"));
            if let Ok(outcome) = write_via_leader(&mut sim, cmd).await {
                assert_eq!(outcome, Effect::Stored);
                acked.push(k);
            }
        }
        assert!(
            acked.len() > 30,
            "seed {seed}: too few writes acknowledged: {}",
            acked.len()
        );
        sim.fault(Fault::Heal).await;
        // Converge: every node applies up to the leader's commit index.
        let mut converged = false;
        for _ in 0..300 {
            pass_time().await;
            let st = sim.statuses().await;
            let commits: Vec<u64> = st.iter().flatten().map(|s| s.commit_index).collect();
            let applied: Vec<u64> = st.iter().flatten().map(|s| s.applied_index).collect();
            if commits.iter().all(|c| *c == commits[0]) && applied.iter().all(|a| *a == commits[0])
            {
                converged = true;
                break;
            }
        }
        assert!(converged, "seed {seed}: nodes did not converge");
        for (i, store) in sim.stores.iter().enumerate() {
            let store = store.as_ref().unwrap();
            for k in &acked {
                let got = store
                    .send(Get {
                        key: format!("k{k}"),
                    })
                    .await
                    .unwrap();
                assert_eq!(
                    got.value(),
                    Some(format!("v{k}").as_str()),
                    "seed {seed}: node {i} lacks k{k}"
                );
            }
        }
        for i in 0..3 {
            sim.crash(i).await;
        }
    }
}

#[actix_rt::test]
async fn a_leader_without_quorum_refuses_writes_beyond_its_pending_limit_and_fails_the_rest() {
    tokio::time::pause();
    let mut sim = Sim::start(3, 42).await;
    let (leader, _) = sim.wait_for_leader(&all(3), Duration::from_secs(3)).await;
    sim.fault(Fault::Isolate(leader)).await;
    let addr = sim.nodes[leader].clone().unwrap();
    let cmd = |k: usize| ClientWrite(Command::set(format!("k{k}"), "v"));
    // PENDING_LIMIT writes wait for a commit that cannot come; the rest are refused at once.
    let waiting: Vec<_> = (0..PENDING_LIMIT).map(|k| addr.send(cmd(k))).collect();
    for k in 0..5 {
        let r = addr.send(cmd(PENDING_LIMIT + k)).await.unwrap();
        assert_eq!(r, Err(ClientError::Overloaded));
    }
    // Check-quorum deposes the isolated leader; the waiting writes learn their outcome is unknown.
    for w in waiting {
        match w.await.unwrap() {
            Err(ClientError::Unknown(msg)) => assert!(msg.contains("may or may not"), "{msg}"),
            other => panic!("expected an unknown outcome, got {other:?}"),
        }
    }
    for i in 0..3 {
        sim.crash(i).await;
    }
}

#[actix_rt::test]
async fn an_isolated_follower_catches_up_from_an_in_memory_snapshot() {
    tokio::time::pause();
    for seed in 0..3 {
        // Snapshots every 40 entries, kept in memory; 4 entries stay in the log after each.
        let mut sim = Sim::start_with(3, seed, SnapshotPolicy::every(40, 0, None)).await;
        let (leader, _) = sim.wait_for_leader(&all(3), Duration::from_secs(3)).await;
        let lagging = (leader + 1) % 3;
        sim.fault(Fault::Isolate(lagging)).await;
        for k in 0..150 {
            let cmd = Command::set(format!("k{}", k % 30), format!("v{k}"));
            assert_eq!(
                write_via_leader(&mut sim, cmd).await,
                Ok(Effect::Stored),
                "seed {seed}: write {k}"
            );
        }
        // The snapshot is encoded on a background thread (real time, not the paused clock):
        // poll, with a real-time deadline, until the leader has taken it and compacted its log.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut compacted = None;
        while std::time::Instant::now() < deadline {
            let st = sim.statuses().await;
            let ls = st[leader].clone().unwrap();
            if ls.log_start_index > 0 {
                compacted = Some(ls);
                break;
            }
            pass_time().await;
            std::thread::yield_now();
        }
        let ls = compacted.unwrap_or_else(|| panic!("seed {seed}: the leader never compacted"));
        let target = ls.commit_index;
        sim.fault(Fault::Heal).await;
        let mut caught_up = None;
        for _ in 0..300 {
            pass_time().await;
            let st = sim.statuses().await;
            let s = st[lagging].as_ref().unwrap();
            if s.applied_index >= target {
                caught_up = Some(s.clone());
                break;
            }
        }
        let s = caught_up.unwrap_or_else(|| panic!("seed {seed}: the follower did not catch up"));
        assert!(
            s.snapshot_index > 0,
            "seed {seed}: it caught up through a snapshot: {s:?}"
        );
        let store = sim.stores[lagging].as_ref().unwrap();
        for k in 120..150 {
            let got = store
                .send(Get {
                    key: format!("k{}", k % 30),
                })
                .await
                .unwrap();
            assert_eq!(
                got.value(),
                Some(format!("v{k}").as_str()),
                "seed {seed}: k{}",
                k % 30
            );
        }
        for i in 0..3 {
            sim.crash(i).await;
        }
    }
}

/// Ask node `at` for `change`, retrying (in virtual time) while its leader is not ready yet
/// (no entry of its term committed); any other answer is returned.
async fn change_at(sim: &Sim, at: usize, change: ConfigChange) -> Result<(), ClientError> {
    for _ in 0..300 {
        let addr = sim.nodes[at].clone().unwrap();
        match addr.send(ChangeMembership(change.clone())).await.unwrap() {
            Err(ClientError::Membership(MembershipError::NotReady)) => pass_time().await,
            other => return other,
        }
    }
    Err(ClientError::Membership(MembershipError::NotReady))
}

/// Promote `id` through node `at`, retrying while it lags or a change is being committed.
async fn promote_at(sim: &Sim, at: usize, id: &str) -> Result<(), ClientError> {
    for _ in 0..300 {
        match change_at(sim, at, ConfigChange::Promote(id.into())).await {
            Err(ClientError::Membership(
                MembershipError::Lagging { .. } | MembershipError::InProgress,
            )) => pass_time().await,
            other => return other,
        }
    }
    Err(ClientError::Membership(MembershipError::InProgress))
}

fn set(k: usize) -> Command {
    Command::set(format!("k{k}"), format!("v{k}"))
}

/// Advance virtual time until every node of `nodes` has applied what the first one committed
/// and shows the same configuration; returns that configuration.
async fn converge(sim: &mut Sim, nodes: &[usize]) -> Configuration {
    let mut last = Vec::new();
    for _ in 0..500 {
        pass_time().await;
        let st = sim.statuses().await;
        let of: Vec<&NodeStatus> = nodes.iter().map(|i| st[*i].as_ref().unwrap()).collect();
        let commit = of[0].commit_index;
        if of.iter().all(|s| {
            s.commit_index == commit
                && s.applied_index == commit
                && s.configuration == of[0].configuration
        }) {
            return of[0].configuration.clone();
        }
        last = st;
    }
    panic!("seed {}: {nodes:?} did not converge: {last:#?}", sim.seed);
}

async fn assert_has_keys(sim: &Sim, node: usize, keys: impl Iterator<Item = usize>) {
    let store = sim.stores[node].as_ref().unwrap();
    for k in keys {
        let got = store
            .send(Get {
                key: format!("k{k}"),
            })
            .await
            .unwrap();
        assert_eq!(
            got.value(),
            Some(format!("v{k}").as_str()),
            "seed {}: node {node} lacks k{k}",
            sim.seed
        );
    }
}

#[actix_rt::test]
async fn a_fourth_node_joins_as_a_learner_and_is_promoted_while_writes_go_on() {
    tokio::time::pause();
    for seed in 0..3 {
        let mut sim = Sim::start_members(3, 1, seed).await;
        let (leader, _) = sim.wait_for_leader(&all(3), Duration::from_secs(3)).await;
        for k in 0..20 {
            assert_eq!(write_via_leader(&mut sim, set(k)).await, Ok(Effect::Stored));
        }
        let cluster = sim.statuses().await[leader].clone().unwrap().configuration;
        sim.start_joiner(3, &cluster).await;
        let st = sim.statuses().await;
        assert_eq!(st[3].as_ref().unwrap().membership, "learner");
        assert_eq!(
            change_at(&sim, leader, ConfigChange::AddLearner(member(3))).await,
            Ok(())
        );
        for k in 20..40 {
            assert_eq!(write_via_leader(&mut sim, set(k)).await, Ok(Effect::Stored));
        }
        assert_eq!(promote_at(&sim, leader, "n3").await, Ok(()));
        for k in 40..60 {
            assert_eq!(write_via_leader(&mut sim, set(k)).await, Ok(Effect::Stored));
        }
        let configuration = converge(&mut sim, &all(4)).await;
        assert_eq!(
            configuration.voters().len(),
            4,
            "seed {seed}: {configuration:?}"
        );
        let st = sim.statuses().await;
        let joined = st[3].as_ref().unwrap();
        assert_eq!(joined.membership, "voter");
        assert_eq!(joined.peers.len(), 3);
        let l = st[leader].as_ref().unwrap();
        assert!(!l.change_in_progress());
        assert_eq!(l.progress.len(), 3, "the leader tracks every other member");
        assert_has_keys(&sim, 3, 0..60).await;
        for i in 0..4 {
            sim.crash(i).await;
        }
    }
}

#[actix_rt::test]
async fn a_second_concurrent_change_is_refused_as_in_progress() {
    tokio::time::pause();
    let mut sim = Sim::start_members(3, 2, 7).await;
    let (leader, _) = sim.wait_for_leader(&all(3), Duration::from_secs(3)).await;
    // Wait for the leader's first entry to commit, so the first change is accepted.
    write_via_leader(&mut sim, set(0)).await.unwrap();
    let addr = sim.nodes[leader].clone().unwrap();
    let first = addr.send(ChangeMembership(ConfigChange::AddLearner(member(3))));
    let second = addr.send(ChangeMembership(ConfigChange::AddLearner(member(4))));
    assert_eq!(
        second.await.unwrap(),
        Err(ClientError::Membership(MembershipError::InProgress))
    );
    assert_eq!(first.await.unwrap(), Ok(()));
    // Once the first is committed, the next one goes through.
    assert_eq!(
        change_at(&sim, leader, ConfigChange::AddLearner(member(4))).await,
        Ok(())
    );
    for i in 0..3 {
        sim.crash(i).await;
    }
}

#[actix_rt::test]
async fn a_removed_follower_keeps_running_and_does_not_disturb_the_cluster() {
    tokio::time::pause();
    for seed in 0..3 {
        let mut sim = Sim::start_members(3, 0, seed).await;
        let (leader, term) = sim.wait_for_leader(&all(3), Duration::from_secs(3)).await;
        let removed = (leader + 1) % 3;
        let stays = 3 - leader - removed;
        write_via_leader(&mut sim, set(0)).await.unwrap();
        let id = format!("n{removed}");
        assert_eq!(
            change_at(&sim, leader, ConfigChange::Remove(id.clone())).await,
            Ok(())
        );
        for k in 1..20 {
            assert_eq!(write_via_leader(&mut sim, set(k)).await, Ok(Effect::Stored));
        }
        let configuration = converge(&mut sim, &[leader, stays]).await;
        assert!(configuration.member(&id).is_none());
        // It keeps running, its election timer firing, for many election timeouts: the leader
        // and the term stay, and it still answers status requests.
        sim.run_for(Duration::from_secs(5)).await;
        let st = sim.statuses().await;
        for i in [leader, stays] {
            let s = st[i].as_ref().unwrap();
            assert_eq!(
                s.term, term,
                "seed {seed}: the removed node disturbed node {i}"
            );
            assert_eq!(s.leader_id.as_deref(), Some(format!("n{leader}").as_str()));
        }
        assert!(st[removed].as_ref().unwrap().state != "leader");
        // And the same after it was cut off for a while and comes back.
        sim.fault(Fault::Isolate(removed)).await;
        sim.run_for(Duration::from_secs(3)).await;
        sim.fault(Fault::Heal).await;
        sim.run_for(Duration::from_secs(3)).await;
        let st = sim.statuses().await;
        assert_eq!(st[leader].as_ref().unwrap().term, term, "seed {seed}");
        assert_eq!(st[leader].as_ref().unwrap().state, "leader", "seed {seed}");
        for i in 0..3 {
            sim.crash(i).await;
        }
    }
}

#[actix_rt::test]
async fn a_removed_leader_steps_down_and_the_rest_elect_a_new_one() {
    tokio::time::pause();
    for seed in 0..3 {
        let mut sim = Sim::start_members(3, 0, seed).await;
        let (leader, _) = sim.wait_for_leader(&all(3), Duration::from_secs(3)).await;
        write_via_leader(&mut sim, set(0)).await.unwrap();
        let id = format!("n{leader}");
        assert_eq!(
            change_at(&sim, leader, ConfigChange::Remove(id.clone())).await,
            Ok(())
        );
        let rest: Vec<usize> = all(3).into_iter().filter(|i| *i != leader).collect();
        let (new, _) = sim.wait_for_leader(&rest, Duration::from_secs(3)).await;
        assert_ne!(new, leader);
        for k in 1..20 {
            assert_eq!(write_via_leader(&mut sim, set(k)).await, Ok(Effect::Stored));
        }
        let st = sim.statuses().await;
        let old = st[leader].as_ref().unwrap();
        assert_eq!(
            (old.state, old.membership),
            ("removed", "removed"),
            "seed {seed}"
        );
        assert_eq!(
            sim.nodes[leader]
                .clone()
                .unwrap()
                .send(ClientWrite(set(99)))
                .await
                .unwrap(),
            Err(ClientError::Removed),
            "a removed node serves no client"
        );
        let configuration = converge(&mut sim, &rest).await;
        assert_eq!(configuration.voters().len(), 2);
        assert_has_keys(&sim, new, 0..20).await;
        for i in 0..3 {
            sim.crash(i).await;
        }
    }
}

#[actix_rt::test]
async fn leadership_is_transferred_to_the_chosen_voter_or_the_most_caught_up_one() {
    tokio::time::pause();
    for seed in 0..3 {
        let mut sim = Sim::start_members(3, 0, seed).await;
        let (leader, _) = sim.wait_for_leader(&all(3), Duration::from_secs(3)).await;
        write_via_leader(&mut sim, set(0)).await.unwrap();
        let target = (leader + 2) % 3;
        let addr = sim.nodes[leader].clone().unwrap();
        let to = format!("n{target}");
        assert_eq!(
            addr.send(TransferLeadership(Some(to.clone())))
                .await
                .unwrap(),
            Ok(to.clone()),
            "seed {seed}"
        );
        let (now, _) = sim.wait_for_leader(&all(3), Duration::from_secs(3)).await;
        assert_eq!(now, target, "seed {seed}");
        // To itself: done at once; to whoever is most caught up: another node leads.
        let addr = sim.nodes[target].clone().unwrap();
        assert_eq!(
            addr.send(TransferLeadership(Some(to.clone())))
                .await
                .unwrap(),
            Ok(to.clone())
        );
        write_via_leader(&mut sim, set(1)).await.unwrap();
        let next = addr.send(TransferLeadership(None)).await.unwrap().unwrap();
        assert_ne!(next, to, "seed {seed}");
        let (now, _) = sim.wait_for_leader(&all(3), Duration::from_secs(3)).await;
        assert_eq!(format!("n{now}"), next);
        // A follower forwards nothing itself: it names the leader.
        let follower = (now + 1) % 3;
        let r = sim.nodes[follower]
            .clone()
            .unwrap()
            .send(TransferLeadership(None))
            .await
            .unwrap();
        assert!(matches!(r, Err(ClientError::NotLeader(Some(_)))), "{r:?}");
        assert_eq!(write_via_leader(&mut sim, set(2)).await, Ok(Effect::Stored));
        for i in 0..3 {
            sim.crash(i).await;
        }
    }
}

/// A log whose threads are gone (the process is stopping) as soon as a batch holds a client
/// write: its writes answer `stopped`, after a turn of the runtime, as `DiskLog`'s do.
struct StoppingLog;

impl kvstore::storage::LogStore for StoppingLog {
    fn write(
        &mut self,
        _: u64,
        records: Vec<kvstore::storage::Record>,
    ) -> futures_util::future::LocalBoxFuture<'static, Result<(), kvstore::storage::WriteFailed>>
    {
        use futures_util::FutureExt;
        use kvstore::raft::log::EntryPayload;
        let client_write = records.iter().any(|r| {
            matches!(r, kvstore::storage::Record::Entry(e)
                if matches!(e.payload, EntryPayload::Command { .. }))
        });
        async move {
            tokio::task::yield_now().await;
            if !client_write {
                return Ok(());
            }
            Err(kvstore::storage::WriteFailed {
                message: "the log writer is gone".into(),
                retryable: false,
                records,
                stopped: true,
            })
        }
        .boxed_local()
    }

    fn compact(
        &mut self,
        _: u64,
        _: HardState,
    ) -> futures_util::future::LocalBoxFuture<'static, Result<usize, String>> {
        use futures_util::FutureExt;
        futures_util::future::ready(Ok(0)).boxed_local()
    }
}

/// When the log's threads end before the Raft actor (a SIGTERM while a batch is in flight),
/// the write waiting for that batch is answered "unknown outcome", never acknowledged, and the
/// actor stops quietly: not the fatal disk-error path, which would end the process with 70.
#[actix_rt::test]
async fn a_node_whose_log_threads_are_gone_stops_quietly_and_acknowledges_nothing() {
    tokio::time::pause();
    let store = StoreActor::new().start();
    let configuration = RaftSetup::bootstrap("n0", "mem://n0", &[]).unwrap();
    let setup = RaftSetup {
        id: "n0".into(),
        url: "mem://n0".into(),
        configuration,
        timing: timing(),
        hard_state: HardState::default(),
        seed: 1,
        store,
        max_pending: PENDING_LIMIT,
        log: kvstore::raft::log::RaftLog::new(),
        storage: Box::new(StoppingLog),
        snapshots: SnapshotPolicy::never(),
        snapshot: None,
    };
    let net = Network::new(1, 1).start();
    let addr = RaftActor::new(setup, Box::new(MemoryTransport::new(net, 0))).start();
    let mut leading = false;
    for _ in 0..100 {
        if addr.send(GetStatus).await.unwrap().state == "leader" {
            leading = true;
            break;
        }
        pass_time().await;
    }
    assert!(leading, "a single node leads");
    let r = addr.send(ClientWrite(set(1))).await.unwrap();
    match r {
        Err(ClientError::Unknown(why)) => assert!(why.contains("stopping"), "{why}"),
        other => panic!("expected an unknown outcome, got {other:?}"),
    }
    for _ in 0..100 {
        if !addr.connected() {
            break;
        }
        pass_time().await;
    }
    assert!(!addr.connected(), "the actor stopped");
}
