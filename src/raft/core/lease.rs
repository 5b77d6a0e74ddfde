//! Leader leases (thesis §6.4.1): a leader that holds a lease serves linearizable reads from
//! its own state machine, with no network round; and the other half of the lease, the time
//! every node refuses votes after hearing from a leader (or after starting).
//!
//! Owns the lease arithmetic and its bookkeeping ([`Lease`]). Pure: time is a number (a
//! monotonic clock in microseconds, [`RaftCore::set_now`]) that the caller reads and passes in;
//! this module never reads a clock, and never uses wall-clock time. It must never grant a lease
//! read that the argument below does not cover.
//!
//! # Clock assumption
//!
//! Each node's monotonic clock runs at a rate within ±[`MAX_CLOCK_DRIFT`] (10%) of real time:
//! `d` of clock time is at least `d / (1 + ρ)` and at most `d / (1 - ρ)` of real time. Clocks
//! need not agree on their values (only durations on one node are compared), and a process may
//! be paused at any moment for any time (SIGSTOP, a stall): a pause only makes real time pass
//! while the process does nothing.
//!
//! # The two halves
//!
//! **Followers hold** (the vote side). With check-quorum on, a node refuses every vote and
//! pre-vote request of a higher term (other than one following a leadership transfer) while
//! `now < contact + hold`, where `contact` is the time it *processed* the last AppendEntries or
//! snapshot chunk it accepted from a leader, and `hold` is the base election timeout
//! ([`LeaseTiming::hold_us`]). A node that just started holds from its start: before a crash it
//! may have answered a leader's round, and that promise must outlive the restart. It also does
//! not start an election of its own (its own vote would be a vote granted) while it holds; only
//! a TimeoutNow makes it campaign at once. This is time, not ticks: ticks that queued up while
//! the process was busy or paused fire back to back and would end a tick-counted hold early.
//!
//! **The leader's lease** (the read side). The leader records the time `t` (its clock) at which
//! it started each round of AppendEntries (every heartbeat broadcast and ReadIndex round,
//! [`Lease`] keeps a bounded list of them). When a majority of the voters of its configuration
//! (itself included) answered a message of that round or a later one, in its term, saying they
//! hold (`AppendResponse::lease_hold`: a node older than leases never says so, and its answers
//! never count, so a rolling upgrade cannot build a lease on nodes that do not hold), the lease
//! runs from `t` for [`LeaseTiming::lease_us`] = `hold · (1 - ρ) / (1 + ρ) - margin` of its clock.
//! It serves a lease read at its commit index, which it knows to be the cluster's: only once an
//! entry of its own term is committed (the no-op of its term), as for ReadIndex.
//!
//! **Why no other leader can exist within the lease.** Let `T` be the real time at which the
//! leader started the round. Each member of the majority that answered processed a message of
//! the round after `T`, so it refuses votes until at least real time `T + hold / (1 + ρ)`. The
//! leader stops serving at its clock `t + lease`, i.e. at real time at most
//! `T + lease / (1 - ρ) < T + hold / (1 + ρ)`. A new leader needs votes from a majority, which
//! meets the answering majority in at least one node, and that node refuses: (a) real votes of a
//! higher term (and it never campaigns itself while it holds); (b) pre-votes too, so no
//! pre-candidate gets to run a real election; (c) a restarted node still holds (see above), so
//! a crash does not free its vote early. Terms only grow, so a vote in the leader's own term for
//! someone else is impossible too (a node votes once per term, and the leader's majority
//! follows it). Hence every write acknowledged before the read was committed by this leader
//! (no other leader can have committed anything since the lease started), and the read at the
//! commit index sees it.
//!
//! **Leadership transfer** bypasses the hold (a vote with `transfer` set is granted even while
//! holding): a leader that starts a transfer stops serving lease reads at once and for the rest
//! of its term, even if the transfer is abandoned (a delayed TimeoutNow or transfer vote may
//! still elect the target).
//!
//! **Membership changes**: the lease is dropped whenever the configuration in force (or the
//! committed one) changes, and only rounds started after the change count. A removed and
//! re-added member holds like any node; single-server changes make every majority of the old
//! configuration meet every majority of the new one, and the lease is re-proved in the new one.
//!
//! **Paused processes**: the lease is checked against a clock read *after* the value was taken
//! from the store (the caller does it with [`LeaseRead::until_us`]); a read whose lease ran out
//! meanwhile is not answered from that value: it falls back to ReadIndex. A leader paused
//! between the check and the answer therefore never answers stale.
//!
//! All nodes must be configured with the same election timeout (the leader assumes its own
//! `hold` is the followers'); with `--lease-reads off` a node still holds as a follower (so
//! leaders with leases on stay safe in a mixed cluster) but never serves lease reads.

use std::collections::VecDeque;

use super::io::Role;
use super::RaftCore;
use crate::raft::LogIndex;

/// The bound assumed on the drift of every node's monotonic clock: ±10% of real time.
pub const MAX_CLOCK_DRIFT: f64 = 0.10;

/// [`MAX_CLOCK_DRIFT`] in thousandths, for integer arithmetic.
const DRIFT_PERMILLE: u64 = 100;

/// Most rounds remembered; older ones are dropped (which only makes the lease shorter).
const MAX_ROUNDS: usize = 64;

/// The lease's settings for one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a node refuses votes after hearing from a leader (or after its start), in
    /// microseconds of its own clock: the base election timeout.
    pub hold_us: u64,
    /// Whether this node, as leader, serves reads under its lease (`--lease-reads`).
    pub serve: bool,
}

impl LeaseTiming {
    /// How long a leader's lease lasts from the start of a round a majority answered, in
    /// microseconds of its clock: `hold · (1 - ρ) / (1 + ρ)`, minus a margin of a twentieth of
    /// `hold` (for the time between reading the clock and stepping the core).
    pub fn lease_us(&self) -> u64 {
        let scaled = u128::from(self.hold_us) * u128::from(1000 - DRIFT_PERMILLE)
            / u128::from(1000 + DRIFT_PERMILLE);
        let scaled = u64::try_from(scaled).unwrap_or(u64::MAX);
        scaled.saturating_sub(self.hold_us / 20)
    }
}

/// A read the leader may serve locally: the state machine must have applied `index`, and the
/// value taken must be answered only if the caller's clock, read after taking it, is still
/// before `until_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRead {
    pub index: LogIndex,
    pub until_us: u64,
}

/// The lease bookkeeping of one node (see the module docs).
#[derive(Debug, Default)]
pub(super) struct Lease {
    /// `None`: no clock is given, no lease and no time-based hold (the tick-only behaviour).
    timing: Option<LeaseTiming>,
    /// The latest time given.
    now: u64,
    /// When this node last accepted a leader's message (or started).
    contact: Option<u64>,
    /// Leader: rounds started and not yet answered by a majority, `(first seq, start time)`.
    rounds: VecDeque<(u64, u64)>,
    /// Leader: the start of the latest round a majority answered, in this term.
    start: Option<u64>,
    /// Leader: a transfer started in this term; no lease reads until the next term.
    barred: bool,
}

impl Lease {
    fn clear_leader(&mut self) {
        self.rounds.clear();
        self.start = None;
    }
}

impl RaftCore {
    /// Turn leases on with `timing` (or off with `None`). A node holds (refuses votes) for
    /// `hold_us` from now, as if it had just heard from a leader: see the module docs.
    /// Leases need check-quorum; without it this does nothing.
    pub fn set_lease_timing(&mut self, timing: Option<LeaseTiming>) {
        if !self.cfg.check_quorum {
            return;
        }
        self.lease.timing = timing;
        self.lease.contact = timing.map(|_| self.lease.now);
        self.lease.clear_leader();
    }

    /// The caller's monotonic clock, in microseconds: call before every [`RaftCore::step`]
    /// (time never goes back: an earlier value is ignored).
    pub fn set_now(&mut self, now_us: u64) {
        self.lease.now = self.lease.now.max(now_us);
    }

    /// A lease read at `now_us`, if this leader holds a valid lease and has committed an entry
    /// of its term; `None`: use ReadIndex.
    pub fn lease_read(&self, now_us: u64) -> Option<LeaseRead> {
        let timing = self.lease.timing?;
        if !timing.serve
            || self.lease.barred
            || self.role != Role::Leader
            || self.log.term_at(self.commit_index) != Some(self.term)
        {
            return None;
        }
        let now = self.lease.now.max(now_us);
        let until = if self.quorum_acked_seq() == u64::MAX {
            // A lone voter: no other node can be elected while it leads.
            now.saturating_add(timing.lease_us())
        } else {
            self.lease.start?.saturating_add(timing.lease_us())
        };
        (now < until).then_some(LeaseRead {
            index: self.commit_index,
            until_us: until,
        })
    }

    /// Whether this node holds a valid leader lease at `now_us` (for status reports).
    pub fn holds_lease(&self, now_us: u64) -> bool {
        self.lease_read(now_us).is_some()
    }

    /// Whether this node refuses votes because it heard from a leader (or started) within the
    /// hold, by the clock.
    pub(super) fn lease_hold(&self) -> bool {
        match (self.lease.timing, self.lease.contact) {
            (Some(t), Some(c)) => self.lease.now < c.saturating_add(t.hold_us),
            _ => false,
        }
    }

    /// This node accepted a message from the leader of its term: the hold restarts now.
    pub(super) fn lease_contact(&mut self) {
        if self.lease.timing.is_some() {
            self.lease.contact = Some(self.lease.now);
        }
    }

    /// A leader is about to start a round of AppendEntries to every peer: remember when.
    pub(super) fn lease_round_started(&mut self) {
        if self.lease.timing.is_none() || self.role != Role::Leader {
            return;
        }
        let first = self.seq + 1;
        if self.lease.rounds.back().is_some_and(|(s, _)| *s == first) {
            return;
        }
        if self.lease.rounds.len() >= MAX_ROUNDS {
            self.lease.rounds.pop_front();
        }
        self.lease.rounds.push_back((first, self.lease.now));
    }

    /// Answers came in: the lease now runs from the latest round a majority answered.
    pub(super) fn lease_update(&mut self) {
        if self.lease.timing.is_none() || self.role != Role::Leader {
            return;
        }
        let acked = self.quorum_lease_seq();
        while let Some(&(seq, at)) = self.lease.rounds.front() {
            if seq > acked {
                break;
            }
            self.lease.rounds.pop_front();
            self.lease.start = Some(self.lease.start.map_or(at, |s| s.max(at)));
        }
    }

    /// Leadership begins or ends, or the configuration changed: the lease must be proved anew.
    pub(super) fn lease_reset(&mut self, new_term: bool) {
        self.lease.clear_leader();
        if new_term {
            self.lease.barred = false;
        }
    }

    /// A leadership transfer started: no lease reads for the rest of this term.
    pub(super) fn lease_bar(&mut self) {
        self.lease.barred = true;
        self.lease.clear_leader();
    }
}
