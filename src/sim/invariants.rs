//! [`Checker`]: the safety properties of Raft (Figure 3), checked as the simulation runs, and
//! the record of acknowledged proposals checked at the end.
//!
//! - election safety: at most one leader per term;
//! - log matching: an (index, term) pair names one entry, and one term at the index before it
//!   (so two logs that share an entry share everything before it);
//! - leader completeness: a node that becomes leader holds every entry applied anywhere;
//! - state-machine safety: no two nodes apply different entries at one index, and each node
//!   applies every index once, in order;
//! - no acknowledged proposal is lost: at the end it is applied, at the index and term it was
//!   acknowledged at, by every node.
//!
//! A violation panics with the seed. Pure: no I/O, no clock.

use std::collections::HashMap;

use super::adapt::Node;
use crate::raft::log::{Entry, EntryPayload, RaftLog};
use crate::raft::{LogIndex, Term};

/// A proposal the client was told succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub id: u64,
    pub index: LogIndex,
    pub term: Term,
}

#[derive(Debug, Default)]
pub struct Checker {
    pub seed: u64,
    leaders: HashMap<Term, Node>,
    /// The agreed sequence: what was applied at each index (position `index - 1`).
    chosen: Vec<(Term, EntryPayload)>,
    /// Log matching: (index, term) → (term at index - 1 if known, payload).
    seen: HashMap<(LogIndex, Term), (Option<Term>, EntryPayload)>,
    pub acked: Vec<Ack>,
    /// Counts, for reports and for making sure the faults happened.
    pub elections: usize,
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

    /// Node `i` is leader of `term` (after a step). `new` when it just became leader.
    pub fn leader(&mut self, i: Node, term: Term, new: bool, log: &RaftLog) {
        match self.leaders.insert(term, i) {
            Some(j) if j != i => self.fail(format!("two leaders in term {term}: {j} and {i}")),
            _ => {}
        }
        if !new {
            return;
        }
        self.elections += 1;
        // Leader completeness: every entry applied anywhere is in the new leader's log.
        let chosen = self.chosen_len();
        if log.last_index() < chosen {
            self.fail(format!(
                "leader completeness: node {i}, leader of term {term}, ends its log at {} but \
                 {chosen} entries are committed",
                log.last_index()
            ));
        }
        let base = log.base_index();
        for index in base.max(1)..=chosen {
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

    /// Entries node `i` just wrote to its log (`log` is its log after the step).
    pub fn persisted(&mut self, i: Node, entries: &[Entry], log: &RaftLog) {
        for e in entries {
            if log.term_at(e.index) != Some(e.term) {
                continue; // replaced later in the same step
            }
            let prev = e.index.checked_sub(1).and_then(|p| log.term_at(p));
            self.entry(i, e.index, e.term, prev, &e.payload);
        }
    }

    /// Every entry of node `i`'s log against what was seen before.
    pub fn scan_log(&mut self, i: Node, log: &RaftLog) {
        let mut prev = (log.base_index() > 0).then(|| log.base_term());
        for index in log.base_index() + 1..=log.last_index() {
            let Some(e) = log.entry(index) else {
                self.fail(format!("node {i}'s log has no entry {index}"));
            };
            let (term, payload) = (e.term, e.payload.clone());
            self.entry(i, index, term, prev, &payload);
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

    /// The end: every acknowledged proposal is in the agreed sequence where it was acknowledged
    /// (`value_of(id)` is the value the proposal set).
    pub fn check_acked(&self, value_of: impl Fn(u64) -> String) {
        for a in &self.acked {
            match self.chosen(a.index) {
                Some((t, EntryPayload::Command { command })) if *t == a.term => {
                    let want = value_of(a.id);
                    match command {
                        crate::store::Command::Set { value, .. } if *value == want => {}
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
