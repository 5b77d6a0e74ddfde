//! [`Checker`]: the safety properties of Raft (Figure 3), checked as the simulation runs, and
//! the record of acknowledged proposals checked at the end.
//!
//! - election safety: at most one leader per term;
//! - log matching: an (index, term) pair names one entry, and one term at the index before it
//!   (so two logs that share an entry share everything before it). A leader's own entries
//!   count from the moment they can no longer vanish without a trace (sent, or the hard state
//!   of their term durable on it): a leader that crashes before either may lead the same term
//!   again with other entries, and no node ever saw the first ones;
//! - leader completeness: a node that becomes leader holds every entry applied anywhere;
//! - state-machine safety: no two nodes apply different entries at one index, and each node
//!   applies every index once, in order;
//! - no acknowledged proposal is lost: at the end it is applied, at the index and term it was
//!   acknowledged at, by every node;
//! - committed entries never change: whatever a node's commit index covers in its log is the
//!   same on every node, forever;
//! - a lease read never misses an acknowledged write ([`Checker::lease_read`], thesis §6.4.1):
//!   a node that serves a read from its lease at index `i` has every write acknowledged before
//!   the read at an index `≤ i`, the acknowledged entry there in its log, and a lease that ends
//!   after its clock's now;
//!
//! and across membership changes (thesis §4):
//! - every node's configuration in force is the latest configuration entry in its log, or,
//!   without one, the configuration at its log's base (the agreed one there, or a bootstrap
//!   configuration before the first entry);
//! - configuration entries are entries: two nodes holding a committed one at one index hold the
//!   same (log matching and state-machine safety above cover it);
//! - a node that is not a voter of its configuration in force never becomes a (pre-)candidate
//!   or leader, unless that configuration removed it and is not known committed (thesis
//!   §4.2.2: it may be the one node that can still win);
//! - learners count for nothing: a leader advances its commit index only to an entry of its own
//!   term that a majority of the voters of its configuration in force hold durably.
//!
//! A violation panics with the seed. Pure: no I/O, no clock.

use std::collections::{HashMap, HashSet};

use super::adapt::Node;
use crate::raft::core::{Configuration, LeaseRead, RaftCore, Role};
use crate::raft::log::{Entry, EntryPayload, RaftLog};
use crate::raft::{LogIndex, NodeId, Term};

/// A proposal the client was told succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub id: u64,
    pub index: LogIndex,
    pub term: Term,
}

/// An entry a leader appended, kept aside until it counts for log matching (see
/// `World::settle`): where it is, its term, the term before it in that leader's log, and what
/// it holds.
#[derive(Debug, Clone)]
pub struct Produced {
    index: LogIndex,
    pub term: Term,
    prev: Option<Term>,
    payload: EntryPayload,
}

#[derive(Debug, Default)]
pub struct Checker {
    pub seed: u64,
    /// The leader of each term, by id.
    leaders: HashMap<Term, NodeId>,
    /// The agreed sequence: what was applied at each index (position `index - 1`).
    chosen: Vec<(Term, EntryPayload)>,
    /// Log matching: (index, term) → (term at index - 1 if known, payload).
    seen: HashMap<(LogIndex, Term), (Option<Term>, EntryPayload)>,
    pub acked: Vec<Ack>,
    /// Counts, for reports and for making sure the faults happened.
    pub elections: usize,
    /// The configuration entries of the agreed sequence, in order.
    chosen_configs: Vec<(LogIndex, Configuration)>,
    /// Every id that was a member of an agreed configuration (the initial one included).
    ever_members: HashSet<NodeId>,
    /// The configurations a node may start from before any configuration entry: the initial
    /// cluster's and each joining node's.
    bootstraps: Vec<Configuration>,
    /// The term of each index some node's commit index covered (0: none seen yet).
    committed: Vec<Term>,
    /// For each index, the lowest current term of a node whose commit index covered it: the
    /// term in which it became committed (the leader that committed it sees it first; 0: not
    /// seen committed yet).
    commit_terms: Vec<Term>,
}

impl Checker {
    pub fn new(seed: u64) -> Self {
        Checker {
            seed,
            ..Checker::default()
        }
    }

    fn fail(&self, what: String) -> ! {
        panic!("seed {}: {what}", self.seed)
    }

    /// Highest index applied anywhere.
    pub fn chosen_len(&self) -> LogIndex {
        self.chosen.len() as LogIndex
    }

    /// The agreed entry at `index` (1-based), if any node applied it.
    pub fn chosen(&self, index: LogIndex) -> Option<&(Term, EntryPayload)> {
        index
            .checked_sub(1)
            .and_then(|i| self.chosen.get(i as usize))
    }

    /// Node `i` (running as `id`) is leader of `term` (after a step). `new` when it just
    /// became leader.
    pub fn leader(&mut self, i: Node, id: &str, term: Term, new: bool, log: &RaftLog) {
        match self.leaders.insert(term, id.to_owned()) {
            Some(j) if j != id => self.fail(format!(
                "two leaders in term {term}: {j} and {id} (node {i})"
            )),
            _ => {}
        }
        if !new {
            return;
        }
        self.elections += 1;
        // Leader completeness (§5.4): every entry committed in an earlier term is in the new
        // leader's log. One committed only in a later term need not be: a candidate whose
        // votes were granted before that (their answers delayed, by a pause say) still wins
        // its older term, and can commit nothing in it, as every majority has moved past it.
        // An entry applied somewhere but never seen committed counts as committed earlier.
        let required = (1..=self.chosen_len())
            .rev()
            .find(|index| {
                self.commit_terms
                    .get(*index as usize - 1)
                    .is_none_or(|t| *t < term)
            })
            .unwrap_or(0);
        if log.last_index() < required {
            self.fail(format!(
                "leader completeness: node {i}, leader of term {term}, ends its log at {} but \
                 {required} entries were committed before term {term}",
                log.last_index()
            ));
        }
        let base = log.base_index();
        for index in base.max(1)..=required {
            let have = if index == base {
                Some(log.base_term())
            } else {
                log.term_at(index)
            };
            let want = self.chosen[index as usize - 1].0;
            if have != Some(want) {
                self.fail(format!(
                    "leader completeness: node {i}, leader of term {term}, holds term {have:?} at \
                     committed index {index} (term {want})"
                ));
            }
        }
    }

    /// Entries just appended (`log` is the log after the step; one replaced later in the
    /// same step is left out), to check with [`Checker::settled`] now or, a leader's, later.
    pub fn produced(entries: &[Entry], log: &RaftLog) -> Vec<Produced> {
        entries
            .iter()
            .filter(|e| log.term_at(e.index) == Some(e.term))
            .map(|e| Produced {
                index: e.index,
                term: e.term,
                prev: e.index.checked_sub(1).and_then(|p| log.term_at(p)),
                payload: e.payload.clone(),
            })
            .collect()
    }

    /// Entries node `i` produced as leader, now beyond recall: checked like any other.
    pub fn settled(&mut self, i: Node, produced: &[Produced]) {
        for p in produced {
            self.entry(i, p.index, p.term, p.prev, &p.payload);
        }
    }

    /// Entries node `i` just wrote to its log (`log` is its log after the step).
    pub fn persisted(&mut self, i: Node, entries: &[Entry], log: &RaftLog) {
        self.settled(i, &Self::produced(entries, log));
    }

    /// Every entry of node `i`'s log against what was seen before, but those it produced as
    /// leader that do not count yet (`tentative`, see [`Produced`]).
    pub fn scan_log(&mut self, i: Node, log: &RaftLog, tentative: &[Produced]) {
        let mut prev = (log.base_index() > 0).then(|| log.base_term());
        for index in log.base_index() + 1..=log.last_index() {
            let Some(e) = log.entry(index) else {
                self.fail(format!("node {i}'s log has no entry {index}"));
            };
            let (term, payload) = (e.term, e.payload.clone());
            if !tentative.iter().any(|p| p.index == index && p.term == term) {
                self.entry(i, index, term, prev, &payload);
            }
            prev = Some(term);
        }
    }

    fn entry(
        &mut self,
        i: Node,
        index: LogIndex,
        term: Term,
        prev: Option<Term>,
        payload: &EntryPayload,
    ) {
        match self.seen.get_mut(&(index, term)) {
            None => {
                self.seen.insert((index, term), (prev, payload.clone()));
            }
            Some((p, pl)) => {
                if pl != payload {
                    let what = format!(
                        "log matching: node {i} holds {payload:?} at index {index} term {term}, \
                         another node {pl:?}"
                    );
                    self.fail(what);
                }
                match (*p, prev) {
                    (Some(a), Some(b)) if a != b => {
                        let what = format!(
                            "log matching: node {i} has term {b} before index {index} term \
                             {term}, another node term {a}"
                        );
                        self.fail(what);
                    }
                    (None, Some(b)) => *p = Some(b),
                    _ => {}
                }
            }
        }
    }

    /// Node `i`, which had applied up to `applied`, applies `e`.
    pub fn apply(&mut self, i: Node, applied: LogIndex, e: &Entry) {
        if e.index != applied + 1 {
            self.fail(format!(
                "node {i} applied index {} after {applied}",
                e.index
            ));
        }
        match self.chosen(e.index) {
            None => {
                if e.index != self.chosen_len() + 1 {
                    self.fail(format!("node {i} applied {} past the agreed end", e.index));
                }
                self.chosen.push((e.term, e.payload.clone()));
                if let EntryPayload::Config { configuration } = &e.payload {
                    self.ever_members
                        .extend(configuration.members().map(|m| m.id.clone()));
                    self.chosen_configs.push((e.index, configuration.clone()));
                }
            }
            Some((t, p)) => {
                if (*t, p) != (e.term, &e.payload) {
                    let what = format!(
                        "state-machine safety: node {i} applied term {} {:?} at index {}, \
                         another node term {t} {p:?}",
                        e.term, e.payload, e.index
                    );
                    self.fail(what);
                }
            }
        }
    }

    /// Node `i`, which had applied up to `applied`, restores a snapshot at (`index`, `term`).
    pub fn restore(&mut self, i: Node, applied: LogIndex, index: LogIndex, term: Term) {
        if index < applied {
            self.fail(format!(
                "node {i} restored snapshot {index}, older than its state at {applied}"
            ));
        }
        match self.chosen(index) {
            Some((t, _)) if *t == term => {}
            other => self.fail(format!(
                "node {i} restored snapshot ({index}, {term}), the agreed entry there is {other:?}"
            )),
        }
    }

    /// A configuration nodes may start from before any configuration entry (the initial
    /// cluster's, the first one given, is also the agreed one before the first entry).
    pub fn bootstrap(&mut self, conf: &Configuration) {
        if self.bootstraps.is_empty() {
            self.ever_members
                .extend(conf.members().map(|m| m.id.clone()));
        }
        if !self.bootstraps.contains(conf) {
            self.bootstraps.push(conf.clone());
        }
    }

    /// The agreed configuration in force at `index`: the latest configuration entry of the
    /// agreed sequence up to it, or the initial one.
    pub fn agreed_configuration_at(&self, index: LogIndex) -> Option<&Configuration> {
        let k = self.chosen_configs.partition_point(|(at, _)| *at <= index);
        match k {
            0 => self.bootstraps.first(),
            k => Some(&self.chosen_configs[k - 1].1),
        }
    }

    /// The newest agreed configuration.
    pub fn agreed_configuration(&self) -> Option<&Configuration> {
        self.agreed_configuration_at(LogIndex::MAX)
    }

    /// Configuration entries agreed so far.
    pub fn configs_chosen(&self) -> usize {
        self.chosen_configs.len()
    }

    /// Whether `id` was a member of an agreed configuration and is not in the newest one: it was
    /// removed for good (the simulator never adds an id again).
    pub fn removed(&self, id: &str) -> bool {
        self.ever_members.contains(id)
            && self
                .agreed_configuration()
                .is_some_and(|c| c.member(id).is_none())
    }

    /// Node `i`'s configuration in force is the latest configuration entry in its log, or the
    /// one at its log's base.
    pub fn configuration_in_force(&self, i: Node, core: &RaftCore) {
        let log = core.log();
        let have = core.configuration();
        let latest = (log.base_index() + 1..=log.last_index())
            .rev()
            .find_map(|x| match log.entry(x).map(|e| &e.payload) {
                Some(EntryPayload::Config { configuration }) => Some((x, configuration)),
                _ => None,
            });
        let ok = match latest {
            Some((_, want)) => want == have,
            None => {
                let base = log.base_index();
                let agreed = self.chosen_configs.partition_point(|(at, _)| *at <= base) > 0;
                if agreed {
                    self.agreed_configuration_at(base) == Some(have)
                } else {
                    self.bootstraps.contains(have)
                }
            }
        };
        if !ok {
            self.fail(format!(
                "configuration in force: node {i} ({}) uses {have:?}, but the latest configuration                  entry in its log is {latest:?} (log base {}, agreed there {:?})",
                core.config().id,
                log.base_index(),
                self.agreed_configuration_at(log.base_index())
            ));
        }
    }

    /// Node `i` went from `before` to `now`: only a voter of its configuration in force may
    /// become a (pre-)candidate or leader.
    pub fn role_change(&self, i: Node, core: &RaftCore, before: Role) {
        let now = core.role();
        if now == before || now == Role::Follower {
            return;
        }
        let id = &core.config().id;
        // A voter removed by an entry not known committed may still be needed (thesis §4.2.2).
        let st = core.status();
        let needed = st.config_index > st.commit_index
            && st.config_index > 0
            && core.configuration_at(st.config_index - 1).is_voter(id);
        if !core.configuration().is_voter(id) && !needed {
            self.fail(format!(
                "node {i} ({id}) became {now:?} in term {} but is not a voter of its                  configuration in force {:?}",
                core.term(),
                core.configuration()
            ));
        }
    }

    /// Node `i`, in term `current`, moved its commit index from `before` to `now`: what it
    /// covers in its log is what every node's commit index covers there.
    pub fn committed(
        &mut self,
        i: Node,
        current: Term,
        log: &RaftLog,
        before: LogIndex,
        now: LogIndex,
    ) {
        for index in (before + 1).max(log.base_index() + 1)..=now.min(log.last_index()) {
            let Some(term) = log.term_at(index) else {
                continue;
            };
            let pos = index as usize - 1;
            if self.committed.len() <= pos {
                self.committed.resize(pos + 1, 0);
                self.commit_terms.resize(pos + 1, 0);
            }
            let seen = &mut self.commit_terms[pos];
            if *seen == 0 || current < *seen {
                *seen = current;
            }
            match self.committed[pos] {
                0 => self.committed[pos] = term,
                t if t != term => self.fail(format!(
                    "committed entries changed: node {i} committed term {term} at index {index},                      another node term {t}"
                )),
                _ => {}
            }
        }
    }

    /// Leader `i` (running as `id`, in `term`) advanced its commit index to `index`: the entry
    /// there is of its term and a majority of the voters of its configuration in force hold it
    /// durably (`holds(id, index, term)`).
    pub fn leader_commit(
        &self,
        i: Node,
        core: &RaftCore,
        index: LogIndex,
        holds: impl Fn(&str, LogIndex, Term) -> bool,
    ) {
        let term = core.term();
        if core.log().term_at(index) != Some(term) {
            self.fail(format!(
                "node {i} ({}), leader of term {term}, committed index {index} of term {:?} by                  counting (only entries of its own term may be)",
                core.config().id,
                core.log().term_at(index)
            ));
        }
        let conf = core.configuration();
        let holding: Vec<&str> = conf
            .voters()
            .iter()
            .filter(|m| holds(&m.id, index, term))
            .map(|m| m.id.as_str())
            .collect();
        if holding.len() < conf.quorum() {
            self.fail(format!(
                "node {i} ({}), leader of term {term}, committed index {index} held durably only                  by voters {holding:?} of its configuration {conf:?}",
                core.config().id
            ));
        }
    }

    /// Node `i` (`core`) performs a lease read `read` at its clock's `now_us`, at world tick
    /// `tick`: **a lease read never misses an acknowledged write.**
    ///
    /// - the lease ends in the future of the reader's own clock (`now_us < until_us`);
    /// - every write acknowledged *earlier* has an index `≤ read.index`, and the reader's log
    ///   holds the acknowledged entry (same term) at that index (unless compacted into its
    ///   snapshot: what a snapshot holds is checked against the agreed sequence elsewhere).
    ///
    /// *Earlier* is in simulated time, the only true time: the world's tick, and within a tick
    /// the order in which the simulator carries events out (it runs one event at a time). A
    /// node's clock is only a scaled view of the tick (`clock.rs`), so the nodes cannot tell
    /// apart two events of one tick; linearizability would let a read and an acknowledgement
    /// of the same instant be ordered either way, and this check is stricter: it takes the
    /// execution order as the real-time order and holds every read to every acknowledgement
    /// recorded before it (`acked` is appended at the moment the leader applies the entry and
    /// would tell its client). The acknowledgements of the same tick are covered as well
    /// because the lease's margins are whole ticks here: a lease valid at tick `t` implies
    /// that every node of the majority that granted it still holds at `t`.
    pub fn lease_read(&self, i: Node, core: &RaftCore, read: LeaseRead, now_us: u64, tick: u64) {
        let id = &core.config().id;
        if read.until_us <= now_us {
            self.fail(format!(
                "lease read: node {i} ({id}) served at tick {tick} a lease that ended at {} (its clock: {now_us})",
                read.until_us
            ));
        }
        let log = core.log();
        for a in &self.acked {
            if a.index > read.index {
                self.fail(format!(
                    "lease read misses an acknowledged write: node {i} ({id}, {:?} of term {}) read at index {} at tick {tick}, but proposal {} was acknowledged at index {} term {}",
                    core.role(),
                    core.term(),
                    read.index,
                    a.id,
                    a.index,
                    a.term
                ));
            }
            if a.index > log.base_index() && log.term_at(a.index) != Some(a.term) {
                self.fail(format!(
                    "lease read: node {i} ({id}, term {}) read at index {} at tick {tick}, but holds term {:?} at index {} where proposal {} was acknowledged in term {}",
                    core.term(),
                    read.index,
                    log.term_at(a.index),
                    a.index,
                    a.id,
                    a.term
                ));
            }
        }
    }

    /// The end: every acknowledged proposal is in the agreed sequence where it was acknowledged
    /// (`value_of(id)` is the value the proposal set).
    pub fn check_acked(&self, value_of: impl Fn(u64) -> String) {
        for a in &self.acked {
            match self.chosen(a.index) {
                Some((t, EntryPayload::Command { command })) if *t == a.term => {
                    let want = value_of(a.id);
                    match command {
                        crate::store::Command::Set { value, .. } if **value == *want => {}
                        other => self.fail(format!(
                            "acknowledged proposal {} at {} became {other:?}",
                            a.id, a.index
                        )),
                    }
                }
                other => self.fail(format!(
                    "acknowledged proposal {} (index {} term {}) is lost: {other:?}",
                    a.id, a.index, a.term
                )),
            }
        }
    }
}
