//! How a simulated node carries out its core's outputs: the `RaftActor`'s contract, without
//! actors. Persist outputs are gathered into the next write; a message produced while a write
//! is pending is held until that write is durable ([`Barrier`]); a write the disk refuses is
//! retried and, meanwhile, the node takes no client writes (the actor's `storage_error`); a write
//! that fails for good stops the node (the actor's `fail_hard`: a crash here, and a restart
//! later). Committed entries are applied (checked by the [`Checker`]); the node snapshots its
//! state machine (with the configuration in force there) every few entries and compacts its
//! log. After every step the membership invariants are checked (configuration in force, who
//! may campaign, who a leader counts). Pure: no I/O, no clock.

use std::collections::HashMap;

use rand::Rng;

use super::adapt::{self, Addr, Node, SnapshotOffer};
use super::barrier::Barrier;
use super::disk::{Record, SnapshotMeta};
use super::invariants::{Ack, Checker, Produced};
use super::network::Wire;
use super::world::World;
use crate::raft::core::{Input, Output, RaftCore, Role};
use crate::raft::log::Entry;
use crate::raft::rpc::Message;
use crate::raft::{LogIndex, Term};

/// Ticks before a refused write is tried again (the actor's `STORAGE_RETRY`, 250 ms).
pub const STORAGE_RETRY: u64 = 25;

/// A message that must not leave before a write is durable.
#[derive(Debug)]
pub(super) enum Held {
    Send(Addr, Message),
    /// An answer to `Some(requester)`; `None`: an answer nobody waits for.
    Reply(Option<Requester>, Message),
    Snapshot(Addr, SnapshotOffer),
}

/// Who waits for an answer: the node that asked, and the `seq` of its request. When the
/// answer never comes, the requester's transport reports that request failed (as the actor's
/// client does), whatever `seq` the answer itself would have carried (a refusal carries 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Requester {
    pub addr: Addr,
    pub seq: Option<u64>,
}

/// Where the answer to the request being stepped goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReplyTo {
    /// Not a request.
    Nobody,
    Peer(Requester),
    /// Handed back to the caller of [`World::step_node`] (which decides).
    Caller,
}

/// A node that is up.
#[derive(Debug)]
pub(super) struct Running {
    pub core: RaftCore,
    pub barrier: Barrier<Held>,
    /// Entries it appended as leader that may still vanish without a trace: not sent to
    /// anyone, and the hard state of their term not yet on its disk (`World::settle`).
    pub tentative: Vec<Produced>,
    /// The state machine: the agreed sequence up to here.
    pub applied: LogIndex,
    pub applied_term: Term,
    /// The newest snapshot it holds (sent to followers behind its log's start).
    pub snapshot: Option<SnapshotMeta>,
    /// Client writes waiting here, by index: (term, proposal id).
    pub proposals: HashMap<LogIndex, (Term, u64)>,
    /// The disk refuses writes: client writes are refused.
    pub storage_error: bool,
    /// A received snapshot, until the core says to restore it.
    pub pending_restore: Option<SnapshotMeta>,
    /// Role, commit index and log bounds (base, last) after the last step carried out.
    pub role: Role,
    pub commit: LogIndex,
    pub bounds: (LogIndex, LogIndex),
}

impl Running {
    pub fn new(core: RaftCore, snapshot: Option<SnapshotMeta>) -> Self {
        Running {
            role: core.role(),
            commit: core.commit_index(),
            bounds: (core.log().base_index(), core.log().last_index()),
            core,
            barrier: Barrier::default(),
            applied: snapshot.as_ref().map_or(0, |s| s.index),
            applied_term: snapshot.as_ref().map_or(0, |s| s.term),
            snapshot,
            proposals: HashMap::new(),
            tentative: Vec::new(),
            storage_error: false,
            pending_restore: None,
        }
    }
}

/// How the disk answers a write.
enum WriteResult {
    Durable,
    /// Refused (e.g. the disk is full): nothing that depends on it has left; try again later.
    Refused,
    /// Failed for good (e.g. fsync): the node stops.
    Fatal,
}

impl World {
    pub(super) fn running(&mut self, i: Node) -> &mut Running {
        self.nodes[i].as_mut().expect("node is up")
    }

    /// Step node `i` (if up) and carry out the outputs, in order. Outputs the simulator does
    /// not carry out (and replies, for [`ReplyTo::Caller`]) go to `self.script_out`.
    pub(super) fn step_node(&mut self, i: Node, input: Input, reply_to: ReplyTo) {
        let now_us = self.clock_us(i);
        let Some(node) = self.nodes[i].as_mut() else {
            return;
        };
        // The node's clock before every step, as the actor does (`clock.rs`).
        node.core.set_now(now_us);
        let outputs = node.core.step(input);
        self.carry_out(i, outputs, reply_to);
    }

    /// Carry out `outputs` of node `i` (just stepped) the way the `RaftActor` does: writes
    /// through the barrier, sends and replies once what they depend on is durable, applies,
    /// and the rest to the script's output.
    pub(super) fn carry_out(&mut self, i: Node, outputs: Vec<Output>, reply_to: ReplyTo) {
        let Some(was_leader) = self.check_step(i, &outputs) else {
            return;
        };
        let mut dropped = Vec::new();
        for output in outputs {
            let Some(node) = self.nodes[i].as_mut() else {
                return;
            };
            match output {
                Output::PersistEntries(entries) if node.core.role() == Role::Leader => {
                    // A leader's own entries join the log-matching check once they cannot
                    // vanish (`settle`).
                    let produced = Checker::produced(&entries, node.core.log());
                    node.tentative.extend(produced);
                    node.barrier.persist(entries);
                    self.settle(i, false);
                }
                Output::PersistEntries(entries) => {
                    self.check.persisted(i, &entries, node.core.log());
                    node.barrier.persist(entries);
                }
                Output::SaveHardState(hs) => {
                    node.barrier.record(Record::HardState(hs.clone()));
                    self.script_out.push(Output::SaveHardState(hs));
                }
                Output::ResetLog { index, term } => {
                    node.barrier.record(Record::Reset { index, term });
                    self.script_out.push(output);
                }
                Output::Send { to, msg } => {
                    let Some(to) = self.dir.lookup(&to) else {
                        panic!("seed {}: {to} is not a node of this world", self.seed)
                    };
                    if let Err(seq) = self.carry(i, Held::Send(to, msg)) {
                        dropped.push((to, seq));
                    }
                }
                Output::Reply(msg) => match reply_to {
                    ReplyTo::Peer(p) => {
                        let _ = self.carry(i, Held::Reply(Some(p), msg));
                    }
                    ReplyTo::Caller => self.script_out.push(Output::Reply(msg)),
                    ReplyTo::Nobody => panic!("seed {}: a reply to no request", self.seed),
                },
                Output::SendSnapshot { to, header } => {
                    let Some(node_to) = self.dir.lookup(&to) else {
                        panic!("seed {}: {to} is not a node of this world", self.seed)
                    };
                    self.script_out.push(Output::SendSnapshot {
                        to,
                        header: header.clone(),
                    });
                    let to = node_to;
                    if let Err(seq) = self.carry(i, Held::Snapshot(to, header)) {
                        dropped.push((to, seq));
                    }
                }
                Output::Apply(entries) => self.apply(i, entries),
                Output::RestoreSnapshot { index } => {
                    self.restore(i, index);
                    self.script_out.push(output);
                }
                Output::Proposed { index, term } => {
                    if let Some(id) = self.proposing {
                        node.proposals.insert(index, (term, id));
                    }
                    self.script_out.push(output);
                }
                other => self.script_out.push(other),
            }
        }
        let Some(node) = self.nodes[i].as_mut() else {
            return;
        };
        if was_leader && node.core.role() != Role::Leader {
            // Leadership lost: every client write still waiting has an unknown outcome.
            node.proposals.clear();
        }
        for (to, seq) in dropped {
            self.step_node(i, adapt::send_failed(&self.dir, to, seq), ReplyTo::Nobody);
        }
        self.write_next(i);
        self.maybe_snapshot(i);
    }

    /// The invariants after node `i`'s step that produced `outputs` (none if it is down):
    /// leadership, who became a candidate, what it committed, its configuration in force.
    /// Returns whether it led before the step.
    fn check_step(&mut self, i: Node, outputs: &[Output]) -> Option<bool> {
        let node = self.nodes[i].as_mut()?;
        let core = &node.core;
        let (before, commit_before) = (node.role, node.commit);
        let bounds = (core.log().base_index(), core.log().last_index());
        let log_changed = bounds != node.bounds
            || outputs
                .iter()
                .any(|o| matches!(o, Output::PersistEntries(_) | Output::ResetLog { .. }));
        node.role = core.role();
        node.commit = core.commit_index();
        node.bounds = bounds;
        let node = self.nodes[i].as_ref()?;
        let core = &node.core;
        if core.role() == Role::Leader {
            let new = before != Role::Leader;
            self.check
                .leader(i, &core.config().id, core.term(), new, core.log());
        }
        self.check.role_change(i, core, before);
        if core.commit_index() > commit_before {
            if core.role() == Role::Leader {
                let holds = |id: &str, index, term| self.durably_holds(id, index, term);
                self.check
                    .leader_commit(i, core, core.commit_index(), holds);
            }
            let (log, now) = (core.log(), core.commit_index());
            self.check
                .committed(i, core.term(), log, commit_before, now);
        }
        let node = self.nodes[i].as_ref()?;
        if log_changed {
            self.check.configuration_in_force(i, &node.core);
        }
        Some(before == Role::Leader)
    }

    /// Whether the node running as `id` holds (`index`, `term`) on its disk.
    fn durably_holds(&self, id: &str, index: LogIndex, term: Term) -> bool {
        match self.dir.lookup(id) {
            Some(a) if a == self.dir.current(a.node) => self.disks[a.node].holds(index, term),
            Some(_) => self
                .retired_disks
                .get(id)
                .is_some_and(|d| d.holds(index, term)),
            None => false,
        }
    }

    /// Send `h` now, or hold it behind the pending write. Err(seq) if it was dropped as lost.
    fn carry(&mut self, i: Node, h: Held) -> Result<(), Option<u64>> {
        let broken = self.break_persist_before_send;
        let node = self.running(i);
        let bounded = !matches!(h, Held::Reply(..));
        let admitted = match h {
            _ if broken => Ok(Some(h)),
            // A leader's AppendEntries does not wait for the leader's own entries.
            Held::Send(to, msg @ Message::AppendRequest(_)) => {
                node.barrier.admit_leader_append(Held::Send(to, msg))
            }
            // A follower's success acknowledging only durable entries need not wait either.
            Held::Reply(to, Message::AppendResponse(r)) if r.success => {
                let index = r.match_index;
                node.barrier
                    .admit_ack(Held::Reply(to, Message::AppendResponse(r)), index)
            }
            h => node.barrier.admit(h, bounded),
        };
        match admitted {
            Ok(Some(h)) => {
                self.release(i, h);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(h) => Err(match h {
                Held::Send(_, m) => adapt::seq_of(&m),
                Held::Snapshot(_, offer) => Some(adapt::offer_seq(&offer)),
                Held::Reply(..) => None,
            }),
        }
    }

    /// A held message leaves node `i`.
    fn release(&mut self, i: Node, h: Held) {
        if matches!(h, Held::Send(_, Message::AppendRequest(_))) {
            self.settle(i, true);
        }
        match h {
            Held::Send(to, msg) => self.send(i, to, Wire::Request(msg)),
            Held::Reply(Some(to), msg) => self.send(i, to.addr, Wire::Response(msg, to.seq)),
            Held::Reply(None, _) => {}
            Held::Snapshot(to, offer) => match &self.running(i).snapshot {
                Some(s) => {
                    let msg = adapt::snapshot_request(offer, s.index, s.term, &s.configuration);
                    self.send(i, to, Wire::Request(msg));
                }
                None => {
                    let seq = Some(adapt::offer_seq(&offer));
                    self.step_node(i, adapt::send_failed(&self.dir, to, seq), ReplyTo::Nobody);
                }
            },
        }
    }

    /// Put `wire` on its way from node `i` to incarnation `to`; a request to a node that left
    /// its slot fails after the timeout, an answer to one is lost.
    fn send(&mut self, i: Node, to: Addr, wire: Wire) {
        let now = self.now;
        if to == self.dir.current(to.node) {
            self.net.send(now, i, to.node, wire);
        } else if let Wire::Request(msg) = &wire {
            let seq = adapt::seq_of(msg);
            let me = self.dir.current(i);
            self.net.fail_later(now, me, to, seq);
        }
    }

    /// Hand the gathered records to the disk unless `MAX_IN_FLIGHT` writes are in flight.
    fn write_next(&mut self, i: Node) {
        let mut latency = self.disk_latency(i);
        loop {
            let at = self.now + latency;
            let Some(node) = self.nodes[i].as_mut() else {
                return;
            };
            if !node.barrier.write_next(at) {
                return;
            }
            if self.instant_disk {
                self.complete_write(i);
            }
            latency = self.disk_latency(i);
        }
    }

    fn disk_latency(&mut self, i: Node) -> u64 {
        if self.instant_disk {
            return 0;
        }
        if self.disk_faults[i].slow {
            self.rng.gen_range(4..30)
        } else {
            self.rng.gen_range(0..3)
        }
    }

    /// The disk finished (or failed) node `i`'s write in flight.
    pub(super) fn complete_write(&mut self, i: Node) {
        let result = {
            let f = &mut self.disk_faults[i];
            if f.fatal {
                f.fatal = false;
                WriteResult::Fatal
            } else if f.refuse_until > self.now {
                WriteResult::Refused
            } else {
                WriteResult::Durable
            }
        };
        match result {
            WriteResult::Fatal => {
                self.stats.fatal_stops += 1;
                self.crash(i);
            }
            WriteResult::Refused => {
                // Records before the one that failed may be on disk (the batch is written again).
                let now = self.now;
                let kept = {
                    let n = self
                        .running(i)
                        .barrier
                        .writing()
                        .map_or(0, |w| w.records.len());
                    self.rng.gen_range(0..=n)
                };
                let node = self.nodes[i].as_mut().expect("node is up");
                if let Some(w) = node.barrier.writing() {
                    self.disks[i].append(&w.records[..kept]);
                }
                self.settle(i, false);
                let node = self.nodes[i].as_mut().expect("node is up");
                node.storage_error = true;
                node.barrier.retry_at(now + STORAGE_RETRY);
                self.stats.refused_writes += 1;
            }
            WriteResult::Durable => {
                let node = self.running(i);
                node.storage_error = false;
                let Some(w) = node.barrier.finish() else {
                    return;
                };
                self.disks[i].append(&w.records);
                self.settle(i, false);
                let written = self.running(i).barrier.release(w.id);
                for h in written.released {
                    if self.nodes[i].is_none() {
                        break;
                    }
                    self.release(i, h);
                }
                if let Some(index) = written.persisted {
                    self.step_node(i, Input::Persisted { index }, ReplyTo::Nobody);
                }
                if self.nodes[i].is_some() {
                    self.write_next(i);
                }
            }
        }
    }

    /// Node `i`'s entries produced as leader (`Running::tentative`) join the log-matching
    /// check once they can no longer vanish: once the hard state of their term is on its disk
    /// (it can never lead that term again: a restart finds it voted in it), or when a request
    /// carrying entries leaves it (`sent`: they may be anywhere now). Until then they are the
    /// leader's alone: a crash that loses that hard state loses them too, and the node may
    /// lead the same term again with other entries, which no one can tell apart from a first
    /// time (the barrier holds its AppendEntries until that hard state is durable).
    pub(super) fn settle(&mut self, i: Node, sent: bool) {
        let term = self.disks[i].term();
        let Some(node) = self.nodes[i].as_mut() else {
            return;
        };
        if node.tentative.is_empty() {
            return;
        }
        let (settled, kept) = std::mem::take(&mut node.tentative)
            .into_iter()
            .partition::<Vec<_>, _>(|p| sent || p.term <= term);
        node.tentative = kept;
        self.check.settled(i, &settled);
    }

    /// Committed entries reach node `i`'s state machine.
    fn apply(&mut self, i: Node, entries: Vec<Entry>) {
        for e in entries {
            let node = self.nodes[i].as_mut().expect("node is up");
            self.check.apply(i, node.applied, &e);
            node.applied = e.index;
            node.applied_term = e.term;
            if let Some((term, id)) = node.proposals.remove(&e.index) {
                if term == e.term {
                    self.check.acked.push(Ack {
                        id,
                        index: e.index,
                        term,
                    });
                }
            }
            if self.record_applied {
                self.applied_entries[i].push(e);
            }
        }
    }

    /// The core took the snapshot just received: it replaces node `i`'s state machine.
    fn restore(&mut self, i: Node, index: LogIndex) {
        let node = self.nodes[i].as_mut().expect("node is up");
        let Some(meta) = node.pending_restore.take().filter(|m| m.index == index) else {
            panic!(
                "seed {}: node {i} asked to restore snapshot {index}, which was not received",
                self.seed
            );
        };
        self.check.restore(i, node.applied, meta.index, meta.term);
        node.applied = meta.index;
        node.applied_term = meta.term;
        node.proposals.retain(|ix, _| *ix > index);
        if node.snapshot.as_ref().is_none_or(|s| s.index < meta.index) {
            node.snapshot = Some(meta);
        }
        self.stats.installs += 1;
    }

    /// Take a snapshot of node `i`'s state machine if enough was applied since the last, and
    /// compact its log.
    fn maybe_snapshot(&mut self, i: Node) {
        let (every, trailing) = (self.snap_every, self.trailing);
        let Some(node) = self.nodes[i].as_mut() else {
            return;
        };
        let last = node.snapshot.as_ref().map_or(0, |s| s.index);
        if every == 0 || node.applied < last + every {
            return;
        }
        let meta = SnapshotMeta {
            index: node.applied,
            term: node.applied_term,
            configuration: node.core.configuration_at(node.applied),
        };
        node.snapshot = Some(meta.clone());
        self.disks[i].store_snapshot(meta.clone());
        let keep_from = meta.index.saturating_sub(trailing);
        self.step_node(i, Input::Compact { index: keep_from }, ReplyTo::Nobody);
    }

    /// A snapshot arrives at node `i` from `from`. As the actor does: the core checks the
    /// chunk; if node `i` follows that leader and the snapshot is ahead of its commit index,
    /// the snapshot is stored durably and handed to the core, whose answer goes back;
    /// otherwise the core's answer to the chunk does.
    pub(super) fn receive_snapshot(&mut self, i: Node, from: Addr, msg: Message) {
        let Some((term, leader, index, last_term)) =
            adapt::snapshot_parts(&msg).map(|(t, l, x, lt)| (t, l.to_owned(), x, lt))
        else {
            return;
        };
        let from = Requester {
            addr: from,
            seq: adapt::seq_of(&msg),
        };
        let before = self.script_out.len();
        self.step_node(i, Input::Request(msg.clone()), ReplyTo::Caller);
        let reply = self.script_out.drain(before..).find_map(|o| match o {
            Output::Reply(m) => Some(m),
            _ => None,
        });
        let Some(node) = self.nodes[i].as_mut() else {
            return;
        };
        let following = node.core.role() == Role::Follower
            && node.core.term() == term
            && node.core.leader().is_some_and(|l| l.id == leader);
        if !following || index <= node.core.commit_index() {
            if let Some(m) = reply {
                let _ = self.carry(i, Held::Reply(Some(from), m));
            }
            return;
        }
        let Some(configuration) = adapt::snapshot_configuration(&msg) else {
            panic!("seed {}: a snapshot without a configuration", self.seed);
        };
        let meta = SnapshotMeta {
            index,
            term: last_term,
            configuration,
        };
        // Received, checked and stored under its final name before the core hears of it.
        self.disks[i].store_snapshot(meta.clone());
        node.pending_restore = Some(meta);
        // The answer to the chunk is not sent; the install's answer waits behind its writes.
        let input = adapt::install_input(msg).expect("a snapshot request");
        self.step_node(i, input, ReplyTo::Peer(from));
        if let Some(node) = self.nodes[i].as_mut() {
            node.pending_restore = None;
        }
    }
}
