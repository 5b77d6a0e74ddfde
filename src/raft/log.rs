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
