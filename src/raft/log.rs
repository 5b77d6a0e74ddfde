//! [`RaftLog`]: the in-memory Raft log (entries with their terms), and [`Entry`].
//!
//! Pure data structure: no I/O, no clock. Invariants: indexes are consecutive after the base
//! (the compacted prefix a snapshot holds; index 0 before any snapshot); terms never decrease
//! along the log.

use serde::{Deserialize, Serialize};

use super::core::Configuration;
use super::{LogIndex, Term};
use crate::store::Command;

/// What a log entry carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum EntryPayload {
    /// Appended by a new leader at the start of its term (§5.4.2, §8).
    Noop,
    /// A client command for the key-value store.
    Command { command: Command },
    /// The cluster's configuration from this entry on (it is in force as soon as it is in a
    /// log, committed or not; see `raft::core` membership).
    Config { configuration: Configuration },
}

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub index: LogIndex,
    pub term: Term,
    pub payload: EntryPayload,
}

impl Entry {
    /// Approximate size in bytes, for bounding batches.
    pub fn size_hint(&self) -> usize {
        32 + match &self.payload {
            EntryPayload::Noop => 0,
            EntryPayload::Command { command } => command.payload_bytes(),
            EntryPayload::Config { configuration } => configuration
                .members()
                .map(|m| 16 + m.id.len() + m.url.len())
                .sum(),
        }
    }
}

/// The log: entries after a compacted prefix. Index 0 is the empty prefix with term 0; after a
/// snapshot, the prefix up to the snapshot's index is gone and only its last (index, term) is
/// remembered as the *base*.
///
/// Invariants: `entries[i].index == base_index + 1 + i`; terms never decrease along the log and
/// never fall below the base term.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftLog {
    /// Index of the last compacted entry (0 when nothing was compacted).
    base_index: LogIndex,
    /// Term of that entry (0 when nothing was compacted).
    base_term: Term,
    entries: Vec<Entry>,
}

impl RaftLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A log whose prefix up to (`base_index`, `base_term`) is held by a snapshot, followed by
    /// recovered `entries`, which must be consecutive from `base_index + 1`.
    pub fn with_base(
        base_index: LogIndex,
        base_term: Term,
        entries: Vec<Entry>,
    ) -> Result<Self, String> {
        let mut prev_term = base_term;
        for (i, e) in entries.iter().enumerate() {
            if e.index != base_index + 1 + i as u64 {
                return Err(format!(
                    "entry at position {} has index {}, expected {}",
                    i + 1,
                    e.index,
                    base_index + 1 + i as u64
                ));
            }
            if e.term < prev_term {
                return Err(format!(
                    "entry {} has a lower term than the one before",
                    e.index
                ));
            }
            prev_term = e.term;
        }
        Ok(RaftLog {
            base_index,
            base_term,
            entries,
        })
    }

    /// Index of the last compacted entry (0 when none): entries up to here are only in the
    /// snapshot.
    pub fn base_index(&self) -> LogIndex {
        self.base_index
    }

    /// Term of the last compacted entry.
    pub fn base_term(&self) -> Term {
        self.base_term
    }

    /// Index of the last entry (the base index when no entry follows it).
    pub fn last_index(&self) -> LogIndex {
        self.entries.last().map_or(self.base_index, |e| e.index)
    }

    /// Term of the last entry (the base term when no entry follows it).
    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.base_term, |e| e.term)
    }

    /// Position in `entries` of `index`, if it is held (not compacted, not past the end).
    fn pos(&self, index: LogIndex) -> Option<usize> {
        if index <= self.base_index {
            return None;
        }
        let pos = (index - self.base_index - 1) as usize;
        (pos < self.entries.len()).then_some(pos)
    }

    /// Term of the entry at `index`: known for the base and the entries after it; `None` below
    /// the base (compacted) and past the end.
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.base_index {
            return Some(self.base_term);
        }
        self.pos(index).map(|p| self.entries[p].term)
    }

    /// Append an entry with the next index in `term`; returns its index.
    pub fn append(&mut self, term: Term, payload: EntryPayload) -> LogIndex {
        debug_assert!(
            term >= self.last_term(),
            "terms never decrease along the log"
        );
        let index = self.last_index() + 1;
        self.entries.push(Entry {
            index,
            term,
            payload,
        });
        index
    }

    /// The entry at `index`, if held.
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        self.pos(index).map(|p| &self.entries[p])
    }

    /// Clones of the entries from `start` (which must be after the base) on, at most
    /// `max_count` of them and about `max_bytes` (always at least one, if any exist).
    pub fn entries_from(&self, start: LogIndex, max_count: usize, max_bytes: usize) -> Vec<Entry> {
        let first = start.max(self.base_index + 1) - self.base_index - 1;
        let mut out = Vec::new();
        let mut bytes = 0;
        for e in self.entries.iter().skip(first as usize).take(max_count) {
            bytes += e.size_hint();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(e.clone());
        }
        out
    }

    /// Whether the held entries from `start` on number at least `count` or add up to at least
    /// `bytes` (looks at fewer than `count` entries).
    pub fn holds_at_least(&self, start: LogIndex, count: usize, bytes: usize) -> bool {
        let first = start.max(self.base_index + 1) - self.base_index - 1;
        let mut sum = 0;
        for (n, e) in self.entries.iter().skip(first as usize).enumerate() {
            if n + 1 >= count {
                return true;
            }
            sum += e.size_hint();
            if sum >= bytes {
                return true;
            }
        }
        false
    }

    /// Clones of the held entries in `lo..=hi`.
    pub fn slice(&self, lo: LogIndex, hi: LogIndex) -> Vec<Entry> {
        let lo = lo.max(self.base_index + 1);
        let hi = hi.min(self.last_index());
        if lo > hi {
            return Vec::new();
        }
        let b = self.base_index;
        self.entries[(lo - b - 1) as usize..(hi - b) as usize].to_vec()
    }

    /// Remove every entry from `index` on (never the base or before it).
    pub fn truncate_from(&mut self, index: LogIndex) {
        let keep = index.max(self.base_index + 1) - self.base_index - 1;
        self.entries.truncate(keep as usize);
    }

    /// Append an entry that carries its own index, which must be the next one.
    pub fn push(&mut self, entry: Entry) {
        assert_eq!(
            entry.index,
            self.last_index() + 1,
            "log indexes are consecutive"
        );
        debug_assert!(
            entry.term >= self.last_term(),
            "terms never decrease along the log"
        );
        self.entries.push(entry);
    }

    /// Drop the entries up to `index` (a snapshot holds them); `index` becomes the base. Does
    /// nothing unless `index` is a held entry. Returns whether anything was dropped.
    pub fn compact_to(&mut self, index: LogIndex) -> bool {
        let Some(pos) = self.pos(index) else {
            return false;
        };
        self.base_term = self.entries[pos].term;
        self.base_index = index;
        self.entries.drain(..=pos);
        true
    }

    /// Make a snapshot ending at (`index`, `term`) the base (§7). If the log holds that entry,
    /// the entries after it are kept and `false` is returned; otherwise the whole log is
    /// discarded and `true` is returned (the caller must then make the reset durable).
    pub fn install_base(&mut self, index: LogIndex, term: Term) -> bool {
        if index > self.base_index && self.term_at(index) == Some(term) {
            self.compact_to(index);
            return false;
        }
        self.entries.clear();
        self.base_index = index;
        self.base_term = term;
        true
    }

    /// The first index of the run of entries with the same term as the entry at `index` (not
    /// below the base).
    pub fn first_index_of_term_at(&self, index: LogIndex) -> LogIndex {
        let Some(term) = self.term_at(index) else {
            return index;
        };
        let mut i = index;
        while i > self.base_index && i > 1 && self.term_at(i - 1) == Some(term) {
            i -= 1;
        }
        i
    }

    /// The last index holding an entry of `term`, if any (the base counts).
    pub fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        self.entries
            .iter()
            .rev()
            .skip_while(|e| e.term > term)
            .find(|e| e.term == term)
            .map(|e| e.index)
            .or((self.base_term == term && self.base_index > 0).then_some(self.base_index))
    }

    /// Is a log ending at (`last_index`, `last_term`) at least as up to date as this one (§5.4.1)?
    pub fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_log_is_index_0_term_0() {
        let log = RaftLog::new();
        assert_eq!((log.last_index(), log.last_term()), (0, 0));
        assert_eq!(log.term_at(0), Some(0));
        assert_eq!(log.term_at(1), None);
    }

    #[test]
    fn append_assigns_consecutive_indexes() {
        let mut log = RaftLog::new();
        assert_eq!(log.append(1, EntryPayload::Noop), 1);
        assert_eq!(log.append(1, EntryPayload::Noop), 2);
        assert_eq!(log.append(3, EntryPayload::Noop), 3);
        assert_eq!((log.last_index(), log.last_term()), (3, 3));
        assert_eq!(log.term_at(2), Some(1));
    }

    fn log_of(terms: &[Term]) -> RaftLog {
        let mut log = RaftLog::new();
        for t in terms {
            log.append(*t, EntryPayload::Noop);
        }
        log
    }

    #[test]
    fn holds_at_least_counts_entries_or_bytes_from_a_start() {
        let log = log_of(&[1, 1, 2, 3, 3]);
        let one = log.entry(1).map(Entry::size_hint).unwrap_or(0);
        assert!(log.holds_at_least(2, 4, usize::MAX), "2..=5: four entries");
        assert!(!log.holds_at_least(3, 4, usize::MAX), "3..=5: three");
        assert!(log.holds_at_least(4, 100, 2 * one), "two entries' bytes");
        assert!(!log.holds_at_least(4, 100, 2 * one + 1));
        assert!(!log.holds_at_least(6, 1, 0), "nothing past the end");
        let mut compacted = log_of(&[1, 1, 2, 3, 3]);
        assert!(compacted.compact_to(2));
        assert!(
            compacted.holds_at_least(1, 3, usize::MAX),
            "from the base on: 3..=5"
        );
        assert!(!compacted.holds_at_least(1, 4, usize::MAX));
    }

    #[test]
    fn slices_batches_and_truncation() {
        let mut log = log_of(&[1, 1, 2, 3, 3]);
        assert_eq!(
            log.slice(2, 4).iter().map(|e| e.index).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        assert_eq!(log.entries_from(4, 10, 1 << 20).len(), 2);
        assert_eq!(log.entries_from(1, 2, 1 << 20).len(), 2);
        assert_eq!(
            log.entries_from(1, 10, 1).len(),
            1,
            "at least one entry per batch"
        );
        assert!(log.entries_from(6, 10, 1 << 20).is_empty());
        log.truncate_from(3);
        assert_eq!((log.last_index(), log.last_term()), (2, 1));
        log.push(Entry {
            index: 3,
            term: 4,
            payload: EntryPayload::Noop,
        });
        assert_eq!(log.term_at(3), Some(4));
    }

    #[test]
    fn term_runs_for_fast_backoff() {
        let log = log_of(&[1, 1, 2, 2, 2, 4]);
        assert_eq!(log.first_index_of_term_at(5), 3);
        assert_eq!(log.first_index_of_term_at(2), 1);
        assert_eq!(log.last_index_of_term(2), Some(5));
        assert_eq!(log.last_index_of_term(3), None);
        assert_eq!(log.last_index_of_term(4), Some(6));
    }

    #[test]
    fn up_to_date_compares_last_term_then_length() {
        let mut log = RaftLog::new();
        log.append(1, EntryPayload::Noop);
        log.append(2, EntryPayload::Noop);
        assert!(log.is_up_to_date(2, 2));
        assert!(
            log.is_up_to_date(1, 3),
            "higher last term wins even if shorter"
        );
        assert!(log.is_up_to_date(5, 2), "same term, longer");
        assert!(!log.is_up_to_date(1, 2), "same term, shorter");
        assert!(
            !log.is_up_to_date(9, 1),
            "lower last term loses even if longer"
        );
    }

    #[test]
    fn compaction_keeps_the_base_term_and_offsets_indexes() {
        let mut log = log_of(&[1, 1, 2, 2, 3]);
        assert!(log.compact_to(3));
        assert_eq!((log.base_index(), log.base_term()), (3, 2));
        assert_eq!(log.term_at(2), None, "compacted");
        assert_eq!(log.term_at(3), Some(2), "the base is remembered");
        assert_eq!(log.term_at(5), Some(3));
        assert_eq!((log.last_index(), log.last_term()), (5, 3));
        assert!(log.entry(3).is_none());
        assert_eq!(log.entry(4).unwrap().index, 4);
        assert_eq!(
            log.slice(1, 9).iter().map(|e| e.index).collect::<Vec<_>>(),
            [4, 5]
        );
        assert_eq!(log.entries_from(2, 10, 1 << 20).len(), 2);
        assert_eq!(log.append(3, EntryPayload::Noop), 6);
        log.truncate_from(2);
        assert_eq!(
            (log.last_index(), log.last_term()),
            (3, 2),
            "never below the base"
        );
        assert!(!log.compact_to(3), "nothing held at the base");
        assert_eq!(log.first_index_of_term_at(3), 3);
        assert_eq!(log.last_index_of_term(2), Some(3));
    }

    #[test]
    fn installing_a_snapshot_keeps_a_matching_suffix_and_discards_a_conflicting_log() {
        let mut log = log_of(&[1, 1, 2, 2, 3]);
        assert!(!log.install_base(3, 2), "entry 3 has term 2: keep 4 and 5");
        assert_eq!((log.base_index(), log.last_index()), (3, 5));
        let mut log = log_of(&[1, 1, 2, 2, 3]);
        assert!(log.install_base(4, 5), "entry 4 has term 2, not 5");
        assert_eq!((log.base_index(), log.base_term()), (4, 5));
        assert_eq!((log.last_index(), log.last_term()), (4, 5));
        let mut log = log_of(&[1]);
        assert!(log.install_base(10, 2), "past the end");
        assert_eq!(log.last_index(), 10);
        assert_eq!(log.append(2, EntryPayload::Noop), 11);
        let again = RaftLog::with_base(10, 2, log.slice(11, 11)).unwrap();
        assert_eq!(again, log);
        assert!(
            RaftLog::with_base(10, 3, log.slice(11, 11)).is_err(),
            "term below the base"
        );
        assert!(RaftLog::with_base(9, 2, log.slice(11, 11)).is_err(), "gap");
    }
}
