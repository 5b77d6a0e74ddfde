//! The randomized run of one seed: a cluster under faults (crashes, stops on a failed write,
//! full and slow disks, partitions, one-way cuts, loss, duplication, paused processes) while
//! proposals flow;
//! then everything heals and the cluster must converge with every acknowledged proposal
//! applied everywhere. With membership changes ([`Plan::membership`]), the world has spare
//! slots and an operator adds, promotes and removes members and transfers leadership at
//! random during the faults; at the end, changes stop, and every member of the leader's
//! configuration must agree on it and apply a final proposal. [`run_seeds`] runs many and
//! turns a failure into a one-line replay command. Pure: no I/O, no clock (only the panic of
//! a failing seed is caught).

use std::panic::{catch_unwind, AssertUnwindSafe};

use rand::Rng;

use super::membership;
use super::world::{Stats, World};
use crate::raft::core::Role;
use crate::store::Command;

/// Ticks with faults, then ticks healed with proposals, then ticks to settle.
pub const CHAOS_TICKS: u64 = 1200;
pub const HEALED_TICKS: u64 = 100;
pub const SETTLE_TICKS: u64 = 300;
/// Ticks the final proposal of a membership run has to commit on every member.
pub const FINAL_TICKS: u64 = 100;
/// Spare slots of a membership run.
pub const SPARES: usize = 2;

/// What kind of run a seed gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The initial cluster.
    pub nodes: usize,
    /// Membership changes and transfers during the faults, with [`SPARES`] spare slots.
    pub membership: bool,
}

impl Plan {
    /// `nodes` fixed members.
    pub fn fixed(nodes: usize) -> Plan {
        Plan {
            nodes,
            membership: false,
        }
    }

    /// `nodes` initial members, and membership changes.
    pub fn membership(nodes: usize) -> Plan {
        Plan {
            nodes,
            membership: true,
        }
    }
}

/// What one seed did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    pub acked: usize,
    pub commit: u64,
    pub elections: usize,
    pub stats: Stats,
    /// Configuration entries agreed.
    pub configs: usize,
    /// Voters and learners at the end.
    pub voters: usize,
    pub learners: usize,
}

/// The cluster size the mixed runs give `seed`: one in four has five nodes.
pub fn nodes_for(seed: u64) -> usize {
    if seed % 4 == 1 {
        5
    } else {
        3
    }
}

/// The value proposal `id` sets.
fn value_of(id: u64) -> String {
    format!("p{id}")
}

/// Inject at most one fault this tick.
fn chaos(w: &mut World) {
    let n = w.len();
    let r = w.rng.gen_range(0..1000);
    if r < 4 {
        let i = w.rng.gen_range(0..n);
        w.crash(i);
    } else if r < 8 {
        let side: Vec<bool> = (0..n).map(|_| w.rng.gen_bool(0.5)).collect();
        w.net.partition(&side);
    } else if r < 10 {
        let a = w.rng.gen_range(0..n);
        let b = w.rng.gen_range(0..n);
        if a != b {
            w.net.cut(a, b);
        }
    } else if r < 18 {
        w.net.heal();
    } else if r < 22 {
        w.net.drop_pct = w.rng.gen_range(0..30);
    } else if r < 24 {
        w.net.dup_pct = w.rng.gen_range(0..20);
    } else if r < 28 {
        // A disk turns slow, or fast again.
        let i = w.rng.gen_range(0..n);
        let f = w.disk_faults(i);
        f.slow = !f.slow;
    } else if r < 29 {
        // A full disk for a while.
        let i = w.rng.gen_range(0..n);
        let until = w.now + w.rng.gen_range(10..80);
        w.disk_faults(i).refuse_until = until;
    } else if r < 30 {
        // The next write fails for good: the node stops (and is restarted later).
        let i = w.rng.gen_range(0..n);
        w.disk_faults(i).fatal = true;
    } else if r < 33 {
        // A process stops (SIGSTOP, a long stall): a leader half the time, for less or more
        // than an election timeout.
        let leaders: Vec<usize> = (0..n)
            .filter(|i| w.is_up(*i) && w.core(*i).role() == Role::Leader)
            .collect();
        let i = if !leaders.is_empty() && w.rng.gen_bool(0.5) {
            leaders[w.rng.gen_range(0..leaders.len())]
        } else {
            w.rng.gen_range(0..n)
        };
        let ticks = w.rng.gen_range(2..60);
        w.pause(i, ticks);
    }
}

fn propose_somewhere(w: &mut World) {
    let i = w.rng.gen_range(0..w.len());
    let key = format!("k{}", w.rng.gen_range(0..5));
    let value = value_of(w.next_id + 1);
    w.propose(i, Command::set(key, value));
}

fn tick(w: &mut World, faults: bool, proposals: bool, changes: bool) {
    if faults {
        chaos(w);
    }
    if changes {
        membership::operate(w);
    }
    if proposals && w.rng.gen_ratio(1, 2) {
        propose_somewhere(w);
    }
    w.advance();
    if w.now.is_multiple_of(64) {
        w.scan_logs();
    }
}

/// Run `seed` on `n` nodes; panics (with the seed) on any violation. `setup` may change the
/// world before it starts (e.g. to break it on purpose).
pub fn run_seed_with(n: usize, seed: u64, setup: impl FnOnce(&mut World)) -> (World, Outcome) {
    run_plan_with(Plan::fixed(n), seed, setup)
}

/// Run `seed` as `plan` says; panics (with the seed) on any violation.
pub fn run_plan_with(plan: Plan, seed: u64, setup: impl FnOnce(&mut World)) -> (World, Outcome) {
    let spares = if plan.membership { SPARES } else { 0 };
    let mut w = World::randomized_with_spares(plan.nodes, spares, seed);
    setup(&mut w);
    for _ in 0..CHAOS_TICKS {
        tick(&mut w, true, true, plan.membership);
    }
    // Heal, bring everyone back, keep proposing a little, then let it settle.
    w.net.heal();
    for i in 0..w.len() {
        *w.disk_faults(i) = Default::default();
        w.restart(i);
    }
    for _ in 0..HEALED_TICKS {
        tick(&mut w, false, true, false);
    }
    for _ in 0..SETTLE_TICKS {
        tick(&mut w, false, false, false);
    }
    w.scan_logs();
    let outcome = if plan.membership {
        final_proposal(&mut w);
        members_converged(&w)
    } else {
        converged(&w)
    };
    (w, outcome)
}

/// Run `seed` on `n` nodes.
pub fn run_seed(n: usize, seed: u64) -> Outcome {
    run_seed_with(n, seed, |_| {}).1
}

/// The one leader after healing (panics otherwise).
fn the_leader(w: &World) -> usize {
    let seed = w.seed;
    let leaders: Vec<usize> = (0..w.len())
        .filter(|i| w.is_up(*i) && w.core(*i).role() == Role::Leader)
        .collect();
    assert!(
        leaders.len() == 1,
        "seed {seed}: {} leaders after healing: {}",
        leaders.len(),
        w.describe()
    );
    leaders[0]
}

/// The end state: one leader, every node committed and applied the same, every acknowledged
/// proposal applied everywhere.
fn converged(w: &World) -> Outcome {
    let seed = w.seed;
    let leader = the_leader(w);
    let commit = w.core(leader).commit_index();
    for i in 0..w.len() {
        assert_eq!(
            w.core(i).commit_index(),
            commit,
            "seed {seed}: node {i} did not converge: {}",
            w.describe()
        );
        assert_eq!(w.applied_index(i), commit, "seed {seed}: node {i} applied");
    }
    outcome(w, commit)
}

fn outcome(w: &World, commit: u64) -> Outcome {
    let seed = w.seed;
    assert_eq!(w.check.chosen_len(), commit, "seed {seed}: agreed sequence");
    w.check.check_acked(value_of);
    let conf = w.check.agreed_configuration();
    Outcome {
        acked: w.check.acked.len(),
        commit,
        elections: w.check.elections,
        stats: w.stats,
        configs: w.check.configs_chosen(),
        voters: conf.map_or(0, |c| c.voters().len()),
        learners: conf.map_or(0, |c| c.learners().len()),
    }
}

/// Changes stopped and everything healed: the leader takes one more proposal, and it commits
/// on every member of its configuration within [`FINAL_TICKS`].
fn final_proposal(w: &mut World) {
    let seed = w.seed;
    let leader = the_leader(w);
    let value = value_of(w.next_id + 1);
    let Some(_) = w.propose(leader, Command::set("final", value)) else {
        panic!("seed {seed}: the leader after healing refuses a proposal");
    };
    let index = w.core(leader).log().last_index();
    for _ in 0..FINAL_TICKS {
        let conf = w.core(leader).configuration().clone();
        let done = conf.members().all(|m| {
            w.slot_of(&m.id)
                .is_some_and(|i| w.is_up(i) && w.applied_index(i) >= index)
        });
        if done {
            return;
        }
        tick(w, false, false, false);
    }
    panic!("seed {seed}: the final proposal at {index} did not commit on every member");
}

/// The end state of a membership run: one leader, a voter of its configuration; every member
/// of that configuration runs, uses the same configuration, and committed and applied the
/// same; every acknowledged proposal is applied everywhere.
fn members_converged(w: &World) -> Outcome {
    let seed = w.seed;
    let leader = the_leader(w);
    let core = w.core(leader);
    let conf = core.configuration().clone();
    assert!(
        conf.is_voter(&core.config().id),
        "seed {seed}: the leader {} is not a voter of its configuration {conf:?}",
        core.config().id
    );
    assert_eq!(
        w.check.agreed_configuration(),
        Some(&conf),
        "seed {seed}: the leader's configuration is the agreed one"
    );
    let commit = core.commit_index();
    for m in conf.members() {
        let Some(i) = w.slot_of(&m.id).filter(|i| w.is_up(*i)) else {
            panic!("seed {seed}: member {} has no running node", m.id);
        };
        let c = w.core(i);
        assert_eq!(
            c.configuration(),
            &conf,
            "seed {seed}: member {} uses another configuration",
            m.id
        );
        assert_eq!(
            c.commit_index(),
            commit,
            "seed {seed}: member {} did not converge",
            m.id
        );
        assert_eq!(
            w.applied_index(i),
            commit,
            "seed {seed}: member {} applied",
            m.id
        );
    }
    outcome(w, commit)
}

/// The command that replays one seed.
pub fn replay_command(seed: u64, plan: Plan) -> String {
    let membership = if plan.membership {
        " SIM_MEMBERSHIP=1"
    } else {
        ""
    };
    format!(
        "SIM_SEED={seed} SIM_NODES={}{membership} cargo nextest run --release \
         raft_sim::replay_one_seed --no-capture",
        plan.nodes
    )
}

/// Run every seed of `seeds` (each on `nodes(seed)` nodes) and sum the outcomes. A failing
/// seed panics with what failed and the one-line replay command.
pub fn run_seeds(
    seeds: impl IntoIterator<Item = u64>,
    nodes: impl Fn(u64) -> usize,
    setup: impl Fn(&mut World),
) -> Vec<Outcome> {
    run_plans(seeds, |seed| Plan::fixed(nodes(seed)), setup)
}

/// Run every seed of `seeds` as `plan(seed)` says and sum the outcomes. A failing seed panics
/// with what failed and the one-line replay command.
pub fn run_plans(
    seeds: impl IntoIterator<Item = u64>,
    plan: impl Fn(u64) -> Plan,
    setup: impl Fn(&mut World),
) -> Vec<Outcome> {
    let mut out = Vec::new();
    for seed in seeds {
        let p = plan(seed);
        match catch_unwind(AssertUnwindSafe(|| run_plan_with(p, seed, &setup).1)) {
            Ok(o) => out.push(o),
            Err(e) => {
                let why = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!(
                    "simulation failed ({} nodes{}): {why}; replay: {}",
                    p.nodes,
                    if p.membership { ", membership" } else { "" },
                    replay_command(seed, p)
                );
            }
        }
    }
    out
}
