//! A test facility: one deterministic, seeded simulator of whole Raft nodes — the pure
//! [`RaftCore`](crate::raft::core::RaftCore), a write barrier and disk that behave like the
//! `RaftActor`'s and the write-ahead log's, and a network — used by the core's unit tests
//! (scripted) and by the randomized simulation in `tests/integration/raft_sim.rs`.
//!
//! What it owns: simulated time (ticks) and each node's monotonic clock (a scaled view of it,
//! at a rate within the leases' drift bound, handed to the core before every step, so leases
//! and lease reads run under every fault), the simulated disk with its crash semantics (a
//! crash loses everything not yet synced; a restart recovers from what was synced, a torn last
//! record cut off), paused processes (a SIGSTOP: time passes on its clock, not in its
//! ticks), the network's faults, and the safety checks of [`invariants`]. It never
//! does I/O, never reads a real clock, never uses actix or tokio: every run replays exactly
//! from its seed. Only the simulator uses it; no production path may.
//!
//! - [`adapt`]: the only file that speaks the core's peer addressing and snapshot types;
//! - [`clock`]: every node's clock, its lease settings, and the lease reads performed at random
//!   moments;
//! - [`disk`]: what survives a crash, and recovery;
//! - `barrier`, `node`: carrying out a core's outputs as the `RaftActor` does;
//! - [`network`]: loss, duplication, delay, reordering, partitions;
//! - [`invariants`]: election safety, log matching, leader completeness, state-machine safety,
//!   no acknowledged write lost, no lease read misses an acknowledged write;
//! - `membership`: random membership changes and leadership transfers;
//! - [`world`]: the nodes together, scripted or randomized; [`run`]: one randomized seed.

pub mod adapt;
mod barrier;
pub mod clock;
pub mod disk;
pub mod invariants;
mod membership;
pub mod network;
mod node;
pub mod run;
pub mod world;

#[cfg(test)]
mod tests;

pub use self::run::{run_plan_with, run_plans, run_seed, run_seed_with, run_seeds, Outcome, Plan};
pub use self::world::{DiskFaults, Stats, World};
pub use crate::raft::barrier::MAX_HELD;
