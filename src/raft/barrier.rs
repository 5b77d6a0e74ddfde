//! [`WriteBarrier`]: persist before send, with group commit, as plain data.
//!
//! It owns the records not yet written, the one batch in flight (its id and highest entry
//! index) and the messages held until the write they depend on is durable (at most
//! [`MAX_HELD`]; a bounded message beyond it is refused, to be treated as lost). The
//! `RaftActor` (and the simulator in `crate::sim`, which carries out outputs the same way) asks it
//! what to write next and tells it which batch is durable; it answers with the messages that may
//! go now, in the order they were produced. Generic over the record type `R` (the WAL's
//! `codec::wal::Record` at run time), so this pure module does not depend on a byte format.
//!
//! No actix, no I/O, no clock: it never writes or sends anything itself.

use std::collections::VecDeque;

use super::log::Entry;
use super::LogIndex;

/// Most messages held behind a write that is not yet durable. Beyond it, new messages to peers
/// are dropped as if lost (the core resynchronises that follower, as after any lost message);
/// replies to peers are bounded by the peers' own in-flight limits.
pub const MAX_HELD: usize = 4096;

/// One write to make: its id and records, and the highest entry index among them.
#[derive(Debug, PartialEq)]
pub struct Batch<R> {
    pub id: u64,
    pub records: Vec<R>,
    pub max: Option<LogIndex>,
}

/// What became of a message offered to the barrier.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit<M> {
    /// Nothing it depends on is unwritten: it may go now.
    Now(M),
    /// Held until the write it depends on is durable.
    Held,
    /// Too many messages are held: treat it as lost.
    Refused(M),
}

/// Group commit and persist-before-send. See the module docs.
#[derive(Debug)]
pub struct WriteBarrier<R, M> {
    /// Records gathered for the next write.
    unwritten: Vec<R>,
    /// Highest entry index among `unwritten`.
    unwritten_max: Option<LogIndex>,
    /// Id the gathered records get when written; ids grow by one per write.
    next_batch: u64,
    /// The write in flight: its id.
    writing: Option<u64>,
    /// Messages held until the write with the given id is durable, in order.
    held: VecDeque<(u64, M)>,
}

impl<R, M> Default for WriteBarrier<R, M> {
    fn default() -> Self {
        WriteBarrier {
            unwritten: Vec::new(),
            unwritten_max: None,
            next_batch: 1,
            writing: None,
            held: VecDeque::new(),
        }
    }
}

impl<R: From<Entry>, M> WriteBarrier<R, M> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Gather new entries for the next write.
    pub fn persist_entries(&mut self, entries: Vec<Entry>) {
        let last = entries.last().map(|e| e.index);
        self.unwritten_max = last.max(self.unwritten_max);
        self.unwritten.extend(entries.into_iter().map(R::from));
    }

    /// Gather another record (hard state, log reset) for the next write.
    pub fn push(&mut self, record: R) {
        self.unwritten.push(record);
    }

    /// The write that a message produced now must wait for, if any is not yet durable.
    fn barrier(&self) -> Option<u64> {
        if !self.unwritten.is_empty() {
            Some(self.next_batch)
        } else {
            self.writing
        }
    }

    /// Offer a message: it may go now, is held, or (when `bounded` and [`MAX_HELD`] messages
    /// are already held) is refused. Replies are offered unbounded: a peer waits for them.
    pub fn admit(&mut self, msg: M, bounded: bool) -> Admit<M> {
        match self.barrier() {
            None => Admit::Now(msg),
            Some(_) if bounded && self.held.len() >= MAX_HELD => Admit::Refused(msg),
            Some(b) => {
                self.held.push_back((b, msg));
                Admit::Held
            }
        }
    }

    /// The next batch to write, unless one is in flight (its completion starts the next:
    /// everything gathered meanwhile shares one fsync) or nothing is gathered.
    pub fn next_write(&mut self) -> Option<Batch<R>> {
        if self.writing.is_some() || self.unwritten.is_empty() {
            return None;
        }
        let id = self.next_batch;
        self.next_batch += 1;
        self.writing = Some(id);
        Some(Batch {
            id,
            records: std::mem::take(&mut self.unwritten),
            max: self.unwritten_max.take(),
        })
    }

    /// Batch `id` (the one in flight) is durable: the messages that waited for it (or for an
    /// earlier one), in order.
    pub fn written(&mut self, id: u64) -> Vec<M> {
        if self.writing == Some(id) {
            self.writing = None;
        }
        let mut out = Vec::new();
        while self.held.front().is_some_and(|(b, _)| *b <= id) {
            if let Some((_, m)) = self.held.pop_front() {
                out.push(m);
            }
        }
        out
    }

    /// How many messages are held.
    /// Everything held, in order, leaving none: what a crash loses (the simulator reports it).
    pub fn into_held(self) -> Vec<M> {
        self.held.into_iter().map(|(_, m)| m).collect()
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::log::EntryPayload;

    fn entry(index: LogIndex) -> Entry {
        Entry {
            index,
            term: 1,
            payload: EntryPayload::Noop,
        }
    }

    #[test]
    fn messages_go_at_once_when_nothing_is_unwritten() {
        let mut b = WriteBarrier::<Entry, _>::new();
        assert_eq!(b.admit("a", true), Admit::Now("a"));
        assert_eq!(b.next_write(), None, "nothing to write");
    }

    #[test]
    fn a_message_waits_for_the_write_it_depends_on() {
        let mut b = WriteBarrier::<Entry, _>::new();
        b.persist_entries(vec![entry(1), entry(2)]);
        assert_eq!(b.admit("append", true), Admit::Held);
        let batch = b.next_write().unwrap();
        assert_eq!((batch.id, batch.max, batch.records.len()), (1, Some(2), 2));
        // Written, but not yet durable: a new message still waits for batch 1.
        assert_eq!(b.admit("reply", false), Admit::Held);
        assert_eq!(b.written(1), vec!["append", "reply"]);
        assert_eq!(b.admit("later", true), Admit::Now("later"));
    }

    #[test]
    fn records_gathered_during_a_write_share_the_next_batch() {
        let mut b = WriteBarrier::<Entry, &str>::new();
        b.persist_entries(vec![entry(1)]);
        let first = b.next_write().unwrap();
        b.push(entry(0)); // a record without an entry index of its own, like a hard state
        b.persist_entries(vec![entry(2)]);
        b.persist_entries(vec![entry(3)]);
        assert_eq!(b.admit("after", true), Admit::Held);
        assert_eq!(b.next_write(), None, "one write in flight at a time");
        assert!(b.written(first.id).is_empty(), "`after` waits for batch 2");
        let second = b.next_write().unwrap();
        assert_eq!((second.id, second.max), (2, Some(3)));
        assert_eq!(second.records.len(), 3);
        assert_eq!(b.written(second.id), vec!["after"]);
    }

    #[test]
    fn a_batch_without_entries_has_no_highest_index() {
        let mut b = WriteBarrier::<Entry, ()>::new();
        b.push(entry(0)); // a record without an entry index of its own, like a hard state
        assert_eq!(b.next_write().unwrap().max, None);
    }

    #[test]
    fn beyond_max_held_bounded_messages_are_refused_but_replies_are_held() {
        let mut b = WriteBarrier::<Entry, _>::new();
        b.persist_entries(vec![entry(1)]);
        for i in 0..MAX_HELD {
            assert_eq!(b.admit(i, true), Admit::Held);
        }
        assert_eq!(b.admit(MAX_HELD, true), Admit::Refused(MAX_HELD));
        assert_eq!(b.held(), MAX_HELD);
        assert_eq!(
            b.admit(usize::MAX, false),
            Admit::Held,
            "a reply is never refused"
        );
        let batch = b.next_write().unwrap();
        let released = b.written(batch.id);
        assert_eq!(released.len(), MAX_HELD + 1);
        assert_eq!(released.last(), Some(&usize::MAX), "in order");
        assert_eq!(b.admit(0, true), Admit::Now(0));
    }
}
