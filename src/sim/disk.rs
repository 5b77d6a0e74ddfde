//! [`Disk`]: what a simulated node keeps across a crash, modelled on the write-ahead log and
//! the snapshot files: a sequence of records that were synced, the newest durable snapshot,
//! and possibly one torn record at the end (a write cut short by the crash).
//!
//! [`Disk::recover`] rebuilds what a restarted node starts from the way start-up does: the
//! newest snapshot, then the records replayed in order (the latest hard state wins, writing
//! entry `i` discards entries at `i` and after, a reset replaces the whole log), entries the
//! snapshot covers skipped, a torn last record cut off, and a log that conflicts with the
//! snapshot at its index dropped (a crash between storing a leader's snapshot and recording
//! the reset). A snapshot records the configuration in force at its index, as the snapshot
//! file does. [`Disk::holds`] answers, without a recovery, whether an entry is durable (for
//! the check that only a majority of voters commits). Pure: no I/O, no clock.

use crate::raft::core::{Configuration, HardState};
use crate::raft::log::{Entry, RaftLog};
use crate::raft::{LogIndex, Term};

/// One record of the simulated write-ahead log: the WAL's own record type.
pub use crate::codec::wal::Record;

/// The newest durable snapshot: the agreed state machine up to `index` (whose entry has `term`)
/// and the configuration in force there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMeta {
    pub index: LogIndex,
    pub term: Term,
    pub configuration: Configuration,
}

/// What survives a crash.
#[derive(Debug, Clone, Default)]
pub struct Disk {
    /// Every record synced, in order (never compacted: replay handles covered entries).
    records: Vec<Record>,
    /// The newest hard state written (an older one is skipped, as the log writer does).
    hard_state: HardState,
    /// A record whose write a crash cut short: never replayed, cut off at recovery.
    torn: Option<Record>,
    /// The newest snapshot file.
    snapshot: Option<SnapshotMeta>,
    /// Torn records cut off at recovery so far.
    pub torn_cut: usize,
    /// The durable log as recovery sees it, kept up to date: the terms of the entries after
    /// `durable_base`.
    durable: Vec<Term>,
    durable_base: LogIndex,
}

/// What a restarted node starts from.
#[derive(Debug, Clone)]
pub struct Recovered {
    pub hard_state: HardState,
    pub log: RaftLog,
    pub snapshot: Option<SnapshotMeta>,
}

/// Whether `new` may follow `old` in the log (same rule as the WAL: never an older term, never
/// a different vote in the same term).
fn supersedes(new: &HardState, old: &HardState) -> bool {
    new.term > old.term
        || (new.term == old.term && (old.voted_for.is_none() || new.voted_for == old.voted_for))
}

impl Disk {
    /// Append `records` as synced (a hard state older than the newest written is skipped).
    pub fn append(&mut self, records: &[Record]) {
        debug_assert!(self.torn.is_none(), "writes after a torn record");
        for rec in records {
            if let Record::HardState(hs) = rec {
                if !supersedes(hs, &self.hard_state) {
                    continue;
                }
                self.hard_state = hs.clone();
            }
            match rec {
                Record::Entry(e) if e.index > self.durable_base => {
                    let mut pos = (e.index - self.durable_base - 1) as usize;
                    let snap = self.snapshot.as_ref().map_or(0, |s| s.index);
                    if pos > self.durable.len() && snap + 1 >= e.index {
                        // Entries before it are only in the snapshot (applied before they
                        // were durable here, then lost in a crash): the log goes on from it.
                        self.durable_base = snap;
                        self.durable.clear();
                        pos = (e.index - snap - 1) as usize;
                    }
                    if pos <= self.durable.len() {
                        self.durable.truncate(pos);
                        self.durable.push(e.term);
                    }
                }
                Record::Reset { index, .. } => {
                    self.durable_base = *index;
                    self.durable.clear();
                }
                _ => {}
            }
            self.records.push(rec.clone());
        }
    }

    /// The term of the newest hard state on the disk.
    pub fn term(&self) -> Term {
        self.hard_state.term
    }

    /// Whether the entry (`index`, `term`) is durable here: in the synced log, or covered by
    /// the durable snapshot.
    pub fn holds(&self, index: LogIndex, term: Term) -> bool {
        if self.snapshot.as_ref().is_some_and(|s| s.index >= index) || index <= self.durable_base {
            return true;
        }
        self.durable
            .get((index - self.durable_base - 1) as usize)
            .is_some_and(|t| *t == term)
    }

    /// A crash while `records` were being written: the first `kept` reached the disk, and if
    /// `torn`, part of the next one did too.
    pub fn crash_during(&mut self, records: &[Record], kept: usize, torn: bool) {
        let kept = kept.min(records.len());
        self.append(&records[..kept]);
        if torn {
            self.torn = records.get(kept).cloned();
        }
    }

    /// The newest snapshot file.
    pub fn snapshot(&self) -> Option<&SnapshotMeta> {
        self.snapshot.as_ref()
    }

    /// A snapshot file was made durable (kept if it is the newest).
    pub fn store_snapshot(&mut self, meta: SnapshotMeta) {
        if self.snapshot.as_ref().is_none_or(|s| s.index < meta.index) {
            self.snapshot = Some(meta);
        }
    }

    /// Records synced so far.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Start-up: cut a torn tail, load the newest snapshot, replay the log after it.
    pub fn recover(&mut self) -> Result<Recovered, String> {
        if self.torn.take().is_some() {
            self.torn_cut += 1;
        }
        let base = self.snapshot.as_ref().map_or(0, |s| s.index);
        let mut hard_state = HardState::default();
        let mut entries: Vec<Entry> = Vec::new();
        let mut term_at_base: Option<Term> = None;
        for rec in &self.records {
            match rec {
                Record::HardState(hs) => {
                    if hs.term < hard_state.term {
                        return Err(format!(
                            "term goes backwards from {} to {}",
                            hard_state.term, hs.term
                        ));
                    }
                    hard_state = hs.clone();
                }
                Record::Reset { index, term } => {
                    if *index > base {
                        return Err(format!(
                            "a reset at {index} after the newest snapshot at {base}"
                        ));
                    }
                    entries.clear();
                    term_at_base = (*index == base).then_some(*term);
                }
                Record::Entry(e) => {
                    if e.index == base {
                        term_at_base = Some(e.term);
                    } else if e.index < base {
                        term_at_base = None;
                    }
                    if e.index <= base {
                        entries.clear();
                        continue;
                    }
                    let next = base + entries.len() as u64 + 1;
                    if e.index > next {
                        return Err(format!("entry {} follows entry {}", e.index, next - 1));
                    }
                    entries.truncate((e.index - base - 1) as usize);
                    entries.push(e.clone());
                }
            }
        }
        let log = match &self.snapshot {
            Some(s) => {
                if term_at_base.is_some_and(|t| t != s.term) {
                    // Another history than the snapshot's: a crash while installing it.
                    entries.clear();
                }
                RaftLog::with_base(s.index, s.term, entries)?
            }
            None => RaftLog::with_base(0, 0, entries)?,
        };
        Ok(Recovered {
            hard_state,
            log,
            snapshot: self.snapshot.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::log::EntryPayload;

    fn e(index: LogIndex, term: Term) -> Record {
        Record::Entry(Entry {
            index,
            term,
            payload: EntryPayload::Noop,
        })
    }

    fn meta(index: LogIndex, term: Term) -> SnapshotMeta {
        SnapshotMeta {
            index,
            term,
            configuration: crate::sim::adapt::configuration(3),
        }
    }

    fn terms(log: &RaftLog) -> Vec<Term> {
        (log.base_index() + 1..=log.last_index())
            .map(|i| log.term_at(i).unwrap())
            .collect()
    }

    #[test]
    fn replay_overwrites_a_suffix_and_keeps_the_newest_hard_state() {
        let mut d = Disk::default();
        let hs = |term| {
            Record::HardState(HardState {
                term,
                voted_for: None,
            })
        };
        d.append(&[hs(1), e(1, 1), e(2, 1), e(3, 1), hs(2), e(2, 2), hs(1)]);
        let r = d.recover().unwrap();
        assert_eq!(r.hard_state.term, 2, "an older hard state is skipped");
        assert_eq!(terms(&r.log), vec![1, 2]);
    }

    #[test]
    fn a_torn_record_is_cut_off_and_a_partial_batch_is_kept() {
        let mut d = Disk::default();
        d.append(&[e(1, 1)]);
        d.crash_during(&[e(2, 1), e(3, 1), e(4, 1)], 1, true);
        let r = d.recover().unwrap();
        assert_eq!(terms(&r.log), vec![1, 1]);
        assert_eq!(d.torn_cut, 1);
    }

    #[test]
    fn a_log_conflicting_with_the_snapshot_is_dropped() {
        let mut d = Disk::default();
        d.append(&[e(1, 1), e(2, 1), e(3, 1), e(4, 1)]);
        // The leader's snapshot at 3 (term 2) is durable; the reset never was.
        d.store_snapshot(meta(3, 2));
        let r = d.recover().unwrap();
        assert_eq!((r.log.base_index(), r.log.last_index()), (3, 3));
        // A matching snapshot keeps what follows it.
        let mut d = Disk::default();
        d.append(&[e(1, 1), e(2, 1), e(3, 1), e(4, 1)]);
        d.store_snapshot(meta(3, 1));
        let r = d.recover().unwrap();
        assert_eq!((r.log.base_index(), r.log.last_index()), (3, 4));
        // After the reset record, the log continues the snapshot.
        d.append(&[Record::Reset { index: 3, term: 1 }, e(4, 3)]);
        assert_eq!(terms(&d.recover().unwrap().log), vec![3]);
    }
}
