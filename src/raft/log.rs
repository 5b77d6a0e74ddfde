//! [`RaftLog`]: the in-memory Raft log (entries with their terms), and [`Entry`].
//!
//! Pure data structure: no I/O, no clock. Invariants: indexes are consecutive starting at 1;
//! terms never decrease along the log.

use serde::{Deserialize, Serialize};

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
            EntryPayload::Command { command } => match command {
                Command::Set { key, value } => key.len() + value.len(),
                Command::Delete { key } => key.len(),
            },
        }
    }
}

/// The log. Index 0 is the empty prefix with term 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftLog {
    entries: Vec<Entry>,
}

impl RaftLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A log of recovered entries, which must be consecutive from index 1.
    pub fn from_entries(entries: Vec<Entry>) -> Result<Self, String> {
        for (i, e) in entries.iter().enumerate() {
            if e.index != i as u64 + 1 {
                return Err(format!("entry at position {} has index {}", i + 1, e.index));
            }
            if i > 0 && e.term < entries[i - 1].term {
                return Err(format!(
                    "entry {} has a lower term than the one before",
                    e.index
                ));
            }
        }
        Ok(RaftLog { entries })
    }

    /// Index of the last entry (0 when empty).
    pub fn last_index(&self) -> LogIndex {
        self.entries.last().map_or(0, |e| e.index)
    }

    /// Term of the last entry (0 when empty).
    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(0, |e| e.term)
    }

    /// Term of the entry at `index` (0 for index 0; `None` past the end).
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == 0 {
            return Some(0);
        }
        self.entries.get(index as usize - 1).map(|e| e.term)
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

    /// The entry at `index`, if present.
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        if index == 0 {
            return None;
        }
        self.entries.get(index as usize - 1)
    }

    /// Clones of the entries from `start` on, at most `max_count` of them and about `max_bytes`
    /// (always at least one, if any exist).
    pub fn entries_from(&self, start: LogIndex, max_count: usize, max_bytes: usize) -> Vec<Entry> {
        let first = start.max(1) as usize - 1;
        let mut out = Vec::new();
        let mut bytes = 0;
        for e in self.entries.iter().skip(first).take(max_count) {
            bytes += e.size_hint();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(e.clone());
        }
        out
    }

    /// Clones of the entries in `lo..=hi`.
    pub fn slice(&self, lo: LogIndex, hi: LogIndex) -> Vec<Entry> {
        if lo > hi || lo == 0 {
            return Vec::new();
        }
        let hi = hi.min(self.last_index());
        self.entries[lo as usize - 1..hi as usize].to_vec()
    }

    /// Remove every entry from `index` on.
    pub fn truncate_from(&mut self, index: LogIndex) {
        self.entries.truncate(index.max(1) as usize - 1);
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

    /// The first index of the run of entries with the same term as the entry at `index`.
    pub fn first_index_of_term_at(&self, index: LogIndex) -> LogIndex {
        let Some(term) = self.term_at(index) else {
            return index;
        };
        let mut i = index;
        while i > 1 && self.term_at(i - 1) == Some(term) {
            i -= 1;
        }
        i
    }

    /// The last index holding an entry of `term`, if any.
    pub fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        self.entries
            .iter()
            .rev()
            .skip_while(|e| e.term > term)
            .find(|e| e.term == term)
            .map(|e| e.index)
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
}
