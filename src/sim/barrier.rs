//! [`Barrier`]: the write barrier of one simulated node, the same contract as the `RaftActor`'s
//! (`unwritten`, `writing`, `held`, `barrier`, `write_next`, `release`): records the core asks
//! to persist are gathered; one write is in flight at a time and everything gathered meanwhile
//! goes into the next one (group commit); a message produced while a write is pending is held
//! until that write is durable, and released in order. A crash loses what was gathered and
//! held, and cuts the write in flight short. Pure: no I/O, no clock.

use std::collections::VecDeque;

use super::disk::Record;
use crate::raft::log::Entry;
use crate::raft::LogIndex;

/// Most messages held behind a write that is not yet durable (the actor's `MAX_HELD`): beyond
/// it, new messages to peers are dropped as lost.
pub const MAX_HELD: usize = 4096;

/// A write handed to the disk.
#[derive(Debug, Clone)]
pub struct Write {
    pub id: u64,
    /// Highest entry index in it (reported back as `Input::Persisted`).
    pub max: Option<LogIndex>,
    pub records: Vec<Record>,
    /// When the disk finishes it (or, after a refused write, retries it).
    pub done_at: u64,
}

/// Gathered records, the write in flight, and the messages held behind writes.
#[derive(Debug)]
pub struct Barrier<H> {
    unwritten: Vec<Record>,
    unwritten_max: Option<LogIndex>,
    next_batch: u64,
    writing: Option<Write>,
    held: VecDeque<(u64, H)>,
}

impl<H> Default for Barrier<H> {
    fn default() -> Self {
        Barrier {
            unwritten: Vec::new(),
            unwritten_max: None,
            next_batch: 0,
            writing: None,
            held: VecDeque::new(),
        }
    }
}

impl<H> Barrier<H> {
    /// `Output::PersistEntries`.
    pub fn persist(&mut self, entries: Vec<Entry>) {
        let last = entries.last().map(|e| e.index);
        self.unwritten_max = last.max(self.unwritten_max);
        self.unwritten
            .extend(entries.into_iter().map(Record::Entry));
    }

    /// `Output::SaveHardState`, `Output::ResetLog`.
    pub fn record(&mut self, rec: Record) {
        self.unwritten.push(rec);
    }

    /// The write that a message produced now must wait for, if any is not yet durable.
    pub fn barrier(&self) -> Option<u64> {
        if !self.unwritten.is_empty() {
            Some(self.next_batch)
        } else {
            self.writing.as_ref().map(|w| w.id)
        }
    }

    /// Hold `h` until write `b` is durable; when `bounded`, refused (given back) if too many
    /// are held already (replies are not bounded: a peer waits for them).
    pub fn hold(&mut self, b: u64, h: H, bounded: bool) -> Result<(), H> {
        if bounded && self.held.len() >= MAX_HELD {
            return Err(h);
        }
        self.held.push_back((b, h));
        Ok(())
    }

    /// Start writing the gathered records, unless a write is in flight. Returns whether one
    /// started.
    pub fn write_next(&mut self, done_at: u64) -> bool {
        if self.writing.is_some() || self.unwritten.is_empty() {
            return false;
        }
        let id = self.next_batch;
        self.next_batch += 1;
        self.writing = Some(Write {
            id,
            max: self.unwritten_max.take(),
            records: std::mem::take(&mut self.unwritten),
            done_at,
        });
        true
    }

    pub fn writing(&self) -> Option<&Write> {
        self.writing.as_ref()
    }

    /// The write in flight is refused for now: try again at `at`.
    pub fn retry_at(&mut self, at: u64) {
        if let Some(w) = &mut self.writing {
            w.done_at = at;
        }
    }

    /// The write in flight is durable: it is no longer in flight.
    pub fn finish(&mut self) -> Option<Write> {
        self.writing.take()
    }

    /// Everything that waited for writes up to `id`, in order.
    pub fn release(&mut self, id: u64) -> Vec<H> {
        let mut out = Vec::new();
        while self.held.front().is_some_and(|(b, _)| *b <= id) {
            if let Some((_, h)) = self.held.pop_front() {
                out.push(h);
            }
        }
        out
    }

    /// A crash: the write in flight (to cut short) and the held messages, which never leave.
    pub fn crash(self) -> (Option<Write>, Vec<H>) {
        (
            self.writing,
            self.held.into_iter().map(|(_, h)| h).collect(),
        )
    }

    pub fn held_len(&self) -> usize {
        self.held.len()
    }
}
