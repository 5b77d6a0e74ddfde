//! Each simulated node's monotonic clock, and the lease reads the simulator performs with it.
//!
//! **Clocks.** Simulated time (the world's tick counter, [`World::now`]) is the only true time.
//! A node's clock is a view of it: [`TICK_US`] microseconds a tick, scaled by the node's
//! **rate**, plus an offset (clocks need not agree on their values: only durations on one node
//! are ever compared). Rates are drawn from the seed within the bound the leases assume
//! ([`MAX_CLOCK_DRIFT`]: 0.9 to 1.1); a test may set any rate ([`Clocks::set_rate`]) to go
//! outside it. A clock never goes back: it is a function of the world's time, and a rate
//! change (a new node joining in a slot) continues from the value reached. A restarted node
//! keeps its slot's clock, so it counts on from the world's time, as a machine's monotonic
//! clock does across a process restart. The world hands a node its clock before every step
//! ([`RaftCore::set_now`], as the `RaftActor` does), and in randomized worlds turns leases on
//! ([`RaftCore::set_lease_timing`]: `hold_us` is the election timeout in µs of the node's
//! clock, serving on) when a node starts, joins or restarts: a restarted node holds from its
//! start. Ticks still drive elections and heartbeats; the clock only drives the hold and the
//! lease. Within a tick every step of a node sees the same clock value.
//!
//! **Lease reads.** At random moments (after each tick, and after a fraction of the packets
//! delivered, drawn from an RNG of their own so that reads never change the rest of the run),
//! a node the core says may serve one ([`RaftCore::lease_read`]) performs a lease read; the
//! [`Checker`](super::invariants::Checker) checks it against every acknowledged write
//! ([`Checker::lease_read`](super::invariants::Checker::lease_read)). Pure: no I/O, never a
//! real clock.
//!
//! [`RaftCore::set_now`]: crate::raft::core::RaftCore::set_now
//! [`RaftCore::set_lease_timing`]: crate::raft::core::RaftCore::set_lease_timing
//! [`RaftCore::lease_read`]: crate::raft::core::RaftCore::lease_read

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::adapt::Node;
use super::world::World;
use crate::raft::core::{CoreConfig, LeaseTiming, Role, MAX_CLOCK_DRIFT};

/// Microseconds of simulated time a tick stands for: the `RaftActor`'s tick at its default
/// timing (10 ms; `STORAGE_RETRY` is 25 ticks for its 250 ms too).
pub const TICK_US: u64 = 10_000;

/// Rates are in parts per million of real (simulated) time.
const PPM: u64 = 1_000_000;

/// Percent of the packets delivered after which one random node tries a lease read; and of
/// the live nodes that try one after each tick.
const READ_AFTER_PACKET_PCT: u32 = 5;
const READ_AFTER_TICK_PCT: u32 = 25;

/// One slot's clock: `base_us` at tick `since`, then `rate_ppm` µs per million µs of
/// simulated time.
#[derive(Debug, Clone, Copy)]
struct SlotClock {
    base_us: u64,
    since: u64,
    rate_ppm: u64,
}

/// The clocks of every slot of a world, and the RNG of lease reads.
#[derive(Debug)]
pub struct Clocks {
    slots: Vec<SlotClock>,
    rng: SmallRng,
}

impl Clocks {
    /// `n` slots' clocks, rates and offsets drawn from `seed` within the drift bound.
    pub fn new(n: usize, seed: u64) -> Clocks {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed_c10c_u64);
        let slots = (0..n)
            .map(|_| SlotClock {
                base_us: rng.gen_range(0..1_000_000_000),
                since: 0,
                rate_ppm: drawn_rate(&mut rng),
            })
            .collect();
        Clocks { slots, rng }
    }

    /// Slot `i`'s clock at world tick `tick`, in microseconds.
    pub fn now_us(&self, i: Node, tick: u64) -> u64 {
        let c = &self.slots[i];
        let elapsed = u128::from(tick.saturating_sub(c.since)) * u128::from(TICK_US);
        let scaled = elapsed * u128::from(c.rate_ppm) / u128::from(PPM);
        c.base_us
            .saturating_add(u64::try_from(scaled).unwrap_or(u64::MAX))
    }

    /// From tick `tick` on, slot `i`'s clock runs at `rate` (any rate, also outside the drift
    /// bound: for tests that break the assumption on purpose). It continues from its value.
    pub fn set_rate(&mut self, i: Node, tick: u64, rate: f64) {
        let base_us = self.now_us(i, tick);
        let rate_ppm = (rate * PPM as f64).round().max(0.0) as u64;
        self.slots[i] = SlotClock {
            base_us,
            since: tick,
            rate_ppm,
        };
    }

    /// Slot `i`'s clock rate.
    pub fn rate(&self, i: Node) -> f64 {
        self.slots[i].rate_ppm as f64 / PPM as f64
    }

    /// A new node (a new machine) in slot `i` from tick `tick`: a new rate within the bound.
    fn redraw(&mut self, i: Node, tick: u64) {
        let rate = drawn_rate(&mut self.rng) as f64 / PPM as f64;
        self.set_rate(i, tick, rate);
    }
}

/// A rate within the drift bound, in ppm.
fn drawn_rate(rng: &mut SmallRng) -> u64 {
    let drift = (MAX_CLOCK_DRIFT * PPM as f64) as u64;
    rng.gen_range(PPM - drift..=PPM + drift)
}

/// The lease settings of a node with these settings: it holds for its election timeout, in
/// microseconds of its own clock, and serves lease reads.
pub fn lease_timing(cfg: &CoreConfig) -> LeaseTiming {
    LeaseTiming {
        hold_us: u64::from(cfg.election_ticks) * TICK_US,
        serve: true,
    }
}

impl World {
    /// Node `i`'s clock now.
    pub fn clock_us(&self, i: Node) -> u64 {
        self.clocks.now_us(i, self.now)
    }

    /// Node `i` just started (created, joined or restarted): with leases on, it gets its clock
    /// and its lease settings (so it holds from now).
    pub(super) fn start_clock(&mut self, i: Node, new_machine: bool) {
        if new_machine {
            self.clocks.redraw(i, self.now);
        }
        if !self.leases {
            return;
        }
        let now_us = self.clock_us(i);
        let timing = lease_timing(&self.cfgs[i]);
        if let Some(node) = self.nodes[i].as_mut() {
            node.core.set_now(now_us);
            node.core.set_lease_timing(Some(timing));
        }
    }

    /// Turn leases on or off for every running node and for the nodes that start later (a
    /// world without leases runs exactly as the simulator did before it had clocks).
    pub fn set_leases(&mut self, on: bool) {
        self.leases = on;
        for i in 0..self.len() {
            if on {
                self.start_clock(i, false);
            } else if let Some(node) = self.nodes[i].as_mut() {
                node.core.set_lease_timing(None);
            }
        }
    }

    /// After a packet was delivered: now and then one random node tries a lease read.
    pub(super) fn maybe_lease_read_after_packet(&mut self) {
        if self.leases && self.clocks.rng.gen_range(0..100) < READ_AFTER_PACKET_PCT {
            let i = self.clocks.rng.gen_range(0..self.len());
            self.lease_read(i);
        }
    }

    /// After the tick: some of the nodes try a lease read.
    pub(super) fn maybe_lease_reads_after_tick(&mut self) {
        if !self.leases {
            return;
        }
        for i in 0..self.len() {
            if self.clocks.rng.gen_range(0..100) < READ_AFTER_TICK_PCT {
                self.lease_read(i);
            }
        }
    }

    /// Node `i` just resumed from a pause (`World::pause`): half the time it tries a lease read
    /// before anything else happens to it.
    pub(super) fn maybe_lease_read_on_resume(&mut self, i: Node) {
        if !(self.leases && self.clocks.rng.gen_bool(0.5)) {
            return;
        }
        if let Some(term) = self.nodes[i]
            .as_ref()
            .filter(|n| n.core.role() == Role::Leader)
            .map(|n| n.core.status().term)
        {
            self.stats.resumed_leader_reads += 1;
            let deposed = (0..self.len()).any(|j| {
                self.nodes[j]
                    .as_ref()
                    .is_some_and(|n| n.core.role() == Role::Leader && n.core.status().term > term)
            });
            self.stats.resumed_deposed_reads += usize::from(deposed);
        }
        if self.break_lease_check_across_pause {
            let before = self.clocks.now_us(i, self.paused_since[i]);
            self.lease_read_at(i, before);
        } else {
            self.lease_read(i);
        }
    }

    /// Node `i`, if up, running (not paused) and the core allows it, performs a lease read now;
    /// the checker checks it. Returns whether it did.
    pub fn lease_read(&mut self, i: Node) -> bool {
        self.lease_read_at(i, self.clock_us(i))
    }

    /// [`World::lease_read`] with the core told the clock reads `now_us`.
    fn lease_read_at(&mut self, i: Node, now_us: u64) -> bool {
        if self.is_paused(i) {
            return false;
        }
        let Some(node) = self.nodes[i].as_ref() else {
            return false;
        };
        let Some(read) = node.core.lease_read(now_us) else {
            return false;
        };
        self.check.lease_read(i, &node.core, read, now_us, self.now);
        self.stats.lease_reads += 1;
        true
    }
}
