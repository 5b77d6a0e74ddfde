//! [`Network`]: the simulated network between nodes. Requests and their answers travel as
//! [`Packet`]s with a delay; the network can lose (a request lost or refused comes back to
//! its sender as a failure after a timeout, like an RPC that timed out), duplicate, delay,
//! reorder (everything due at one tick arrives in random order) and partition (one-way or
//! two-sided cuts). Without jitter it is a lossless FIFO with no delay, for scripted tests.
//! Every packet records the incarnations ([`Addr`]) it travels between, so nothing addressed to
//! a node that left reaches the new node in its slot.
//! Pure: no I/O, no clock; its randomness is its own seeded RNG.

use std::collections::VecDeque;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::adapt::{Addr, Node};
use crate::raft::rpc::Message;

/// What travels.
#[derive(Debug, Clone)]
pub enum Wire {
    Request(Message),
    /// An answer, and the `seq` of the request it answers (reported failed if it is lost).
    Response(Message, Option<u64>),
    /// The transport's "no answer" for a request (timeout or connection error).
    Failed {
        seq: Option<u64>,
    },
}

#[derive(Debug, Clone)]
pub struct Packet {
    /// When it arrives.
    pub at: u64,
    pub from: Node,
    pub to: Node,
    /// The incarnations of `from` and `to` it travels between.
    pub from_gen: u32,
    pub to_gen: u32,
    pub wire: Wire,
}

impl Packet {
    /// The incarnation that sent it.
    pub fn sender(&self) -> Addr {
        Addr {
            node: self.from,
            gen: self.from_gen,
        }
    }
}

/// Ticks before a request that got no answer fails at its sender.
pub const RPC_TIMEOUT: u64 = 8;

#[derive(Debug)]
pub struct Network {
    rng: SmallRng,
    queue: VecDeque<Packet>,
    /// The current incarnation of each slot.
    pub gens: Vec<u32>,
    /// blocked[i][j]: nothing gets from i to j.
    blocked: Vec<Vec<bool>>,
    /// Percent of packets lost.
    pub drop_pct: u32,
    /// Percent of requests and answers delivered twice.
    pub dup_pct: u32,
    /// Random delays and reordering; without, a lossless FIFO.
    pub jitter: bool,
}

impl Network {
    pub fn new(n: usize, seed: u64, jitter: bool) -> Self {
        Network {
            rng: SmallRng::seed_from_u64(seed ^ 0x6e65_7477),
            queue: VecDeque::new(),
            gens: vec![0; n],
            blocked: vec![vec![false; n]; n],
            drop_pct: 0,
            dup_pct: 0,
            jitter,
        }
    }

    fn delay(&mut self) -> u64 {
        if !self.jitter {
            0
        } else if self.rng.gen_ratio(1, 20) {
            self.rng.gen_range(3..12)
        } else {
            self.rng.gen_range(0..3)
        }
    }

    /// Put `wire` on its way from `from` to `to` (their current incarnations).
    pub fn send(&mut self, now: u64, from: Node, to: Node, wire: Wire) {
        let (from_gen, to_gen) = (self.gens[from], self.gens[to]);
        let copies = if self.dup_pct > 0
            && !matches!(wire, Wire::Failed { .. })
            && self.rng.gen_range(0..100) < self.dup_pct
        {
            2
        } else {
            1
        };
        for _ in 1..copies {
            let at = now + self.delay();
            self.queue.push_back(Packet {
                at,
                from,
                to,
                from_gen,
                to_gen,
                wire: wire.clone(),
            });
        }
        let at = now + self.delay();
        self.queue.push_back(Packet {
            at,
            from,
            to,
            from_gen,
            to_gen,
            wire,
        });
    }

    /// A request from `from` to `to` failed: its sender hears so after the RPC timeout.
    pub fn fail_later(&mut self, now: u64, from: Addr, to: Addr, seq: Option<u64>) {
        let at = now + if self.jitter { RPC_TIMEOUT } else { 0 };
        self.queue.push_back(Packet {
            at,
            from: to.node,
            to: from.node,
            from_gen: to.gen,
            to_gen: from.gen,
            wire: Wire::Failed { seq },
        });
    }

    /// Whether `p` is addressed to the current incarnation of its destination.
    pub fn for_current(&self, p: &Packet) -> bool {
        self.gens[p.to] == p.to_gen
    }

    /// Everything due at `now`, in random order (FIFO without jitter).
    pub fn due(&mut self, now: u64) -> Vec<Packet> {
        let mut due = Vec::new();
        let mut rest = VecDeque::with_capacity(self.queue.len());
        for p in self.queue.drain(..) {
            if p.at <= now {
                due.push(p);
            } else {
                rest.push_back(p);
            }
        }
        self.queue = rest;
        if self.jitter {
            for k in (1..due.len()).rev() {
                let j = self.rng.gen_range(0..=k);
                due.swap(k, j);
            }
        }
        due
    }

    /// Put `p` back, to arrive at `at` (its destination is paused until then).
    pub fn hold(&mut self, mut p: Packet, at: u64) {
        p.at = at;
        self.queue.push_back(p);
    }

    /// The next packet, whatever its time (scripted delivery).
    pub fn pop_front(&mut self) -> Option<Packet> {
        self.queue.pop_front()
    }

    /// Whether this packet is lost on its way (a cut, or random loss).
    pub fn lost(&mut self, from: Node, to: Node) -> bool {
        self.blocked[from][to] || (self.drop_pct > 0 && self.rng.gen_range(0..100) < self.drop_pct)
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Lose everything in flight (scripted tests).
    pub fn clear(&mut self) {
        self.queue.clear();
    }

    /// The requests in flight, as (from, to, message), in delivery order.
    pub fn requests(&self) -> Vec<(Node, Node, &Message)> {
        self.queue
            .iter()
            .filter_map(|p| match &p.wire {
                Wire::Request(m) => Some((p.from, p.to, m)),
                _ => None,
            })
            .collect()
    }

    /// (arrival, from, to) of everything in flight, for debugging.
    pub fn in_flight(&self) -> Vec<(u64, Node, Node)> {
        self.queue.iter().map(|p| (p.at, p.from, p.to)).collect()
    }

    /// Split the nodes into two sides that cannot reach each other.
    pub fn partition(&mut self, side: &[bool]) {
        let n = self.blocked.len();
        for a in 0..n {
            for b in 0..n {
                self.blocked[a][b] = side[a] != side[b];
            }
        }
    }

    /// Nothing gets from `a` to `b` (the other way still works).
    pub fn cut(&mut self, a: Node, b: Node) {
        self.blocked[a][b] = true;
    }

    /// Cut `i` off from everyone, both ways.
    pub fn isolate(&mut self, i: Node) {
        for j in 0..self.blocked.len() {
            if j != i {
                self.blocked[i][j] = true;
                self.blocked[j][i] = true;
            }
        }
    }

    /// Every link works again and nothing is lost or duplicated.
    pub fn heal(&mut self) {
        for row in &mut self.blocked {
            row.iter_mut().for_each(|b| *b = false);
        }
        self.drop_pct = 0;
        self.dup_pct = 0;
    }
}
