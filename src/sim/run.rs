//! The randomized run of one seed: a cluster under faults (crashes, stops on a failed write,
//! full and slow disks, partitions, one-way cuts, loss, duplication) while proposals flow;
//! then everything heals and the cluster must converge with every acknowledged proposal
//! applied everywhere. [`run_seeds`] runs many and turns a failure into a one-line replay
//! command. Pure: no I/O, no clock (only the panic of a failing seed is caught).

use std::panic::{catch_unwind, AssertUnwindSafe};

use rand::Rng;

use super::world::{Stats, World};
use crate::raft::core::Role;
use crate::store::Command;

/// Ticks with faults, then ticks healed with proposals, then ticks to settle.
pub const CHAOS_TICKS: u64 = 1200;
pub const HEALED_TICKS: u64 = 100;
pub const SETTLE_TICKS: u64 = 300;

/// What one seed did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    pub acked: usize,
    pub commit: u64,
    pub elections: usize,
    pub stats: Stats,
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
    }
}

fn propose_somewhere(w: &mut World) {
    let i = w.rng.gen_range(0..w.len());
    let key = format!("k{}", w.rng.gen_range(0..5));
    let value = value_of(w.next_id + 1);
    w.propose(i, Command::Set { key, value });
}

fn tick(w: &mut World, faults: bool, proposals: bool) {
    if faults {
        chaos(w);
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
    let mut w = World::randomized(n, seed);
    setup(&mut w);
    for _ in 0..CHAOS_TICKS {
        tick(&mut w, true, true);
    }
    // Heal, bring everyone back, keep proposing a little, then let it settle.
    w.net.heal();
    for i in 0..n {
        *w.disk_faults(i) = Default::default();
        w.restart(i);
    }
    for _ in 0..HEALED_TICKS {
        tick(&mut w, false, true);
    }
    for _ in 0..SETTLE_TICKS {
        tick(&mut w, false, false);
    }
    w.scan_logs();
    let outcome = converged(&w);
    (w, outcome)
}

/// Run `seed` on `n` nodes.
pub fn run_seed(n: usize, seed: u64) -> Outcome {
    run_seed_with(n, seed, |_| {}).1
}

/// The end state: one leader, every node committed and applied the same, every acknowledged
/// proposal applied everywhere.
fn converged(w: &World) -> Outcome {
    let seed = w.seed;
    let leaders: Vec<usize> = (0..w.len())
        .filter(|i| w.core(*i).role() == Role::Leader)
        .collect();
    assert_eq!(leaders.len(), 1, "seed {seed}: one leader after healing");
    let commit = w.core(leaders[0]).commit_index();
    for i in 0..w.len() {
        assert_eq!(
            w.core(i).commit_index(),
            commit,
            "seed {seed}: node {i} did not converge"
        );
        assert_eq!(w.applied_index(i), commit, "seed {seed}: node {i} applied");
    }
    assert_eq!(w.check.chosen_len(), commit, "seed {seed}: agreed sequence");
    w.check.check_acked(value_of);
    Outcome {
        acked: w.check.acked.len(),
        commit,
        elections: w.check.elections,
        stats: w.stats,
    }
}

/// The command that replays one seed.
pub fn replay_command(seed: u64, nodes: usize) -> String {
    format!(
        "SIM_SEED={seed} SIM_NODES={nodes} cargo nextest run --release raft_sim::replay_one_seed --no-capture"
    )
}

/// Run every seed of `seeds` (each on `nodes(seed)` nodes) and sum the outcomes. A failing
/// seed panics with what failed and the one-line replay command.
pub fn run_seeds(
    seeds: impl IntoIterator<Item = u64>,
    nodes: impl Fn(u64) -> usize,
    setup: impl Fn(&mut World),
) -> Vec<Outcome> {
    let mut out = Vec::new();
    for seed in seeds {
        let n = nodes(seed);
        match catch_unwind(AssertUnwindSafe(|| run_seed_with(n, seed, &setup).1)) {
            Ok(o) => out.push(o),
            Err(e) => {
                let why = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!(
                    "simulation failed ({n} nodes): {why}; replay: {}",
                    replay_command(seed, n)
                );
            }
        }
    }
    out
}
