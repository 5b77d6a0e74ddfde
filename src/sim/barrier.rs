//! [`Barrier`]: the write barrier of one simulated node. The contract (records gathered for
//! the next write, at most `MAX_IN_FLIGHT` writes in flight, messages held until the write they
//! depend on is durable, at most `MAX_HELD` of them, a leader's AppendEntries overtaking its own
//! entries, a follower's answer acknowledging only durable entries overtaking later ones) is the `RaftActor`'s own [`WriteBarrier`]; this adds only what a simulated disk
//! needs: when each write in flight finishes (in order, like the WAL's one syncer), and what a
//! crash loses (the writes in flight, of which a prefix may reach the disk, and the held
//! messages, which never leave). Pure: no I/O, no clock.

use crate::codec::wal::Record;
use std::collections::VecDeque;

use crate::raft::barrier::{Admit, WriteBarrier, Written};
use crate::raft::log::Entry;
use crate::raft::LogIndex;

/// A write handed to the disk.
#[derive(Debug, Clone)]
pub struct Write {
    pub id: u64,
    pub records: Vec<Record>,
    /// When the disk finishes it (or, after a refused write, retries it).
    pub done_at: u64,
}

/// The shared barrier and the writes in flight, oldest first.
#[derive(Debug)]
pub struct Barrier<H> {
    inner: WriteBarrier<Record, H>,
    writing: VecDeque<Write>,
}

impl<H> Default for Barrier<H> {
    fn default() -> Self {
        Barrier {
            inner: WriteBarrier::default(),
            writing: VecDeque::new(),
        }
    }
}

impl<H> Barrier<H> {
    /// `Output::PersistEntries`.
    pub fn persist(&mut self, entries: Vec<Entry>) {
        self.inner.persist_entries(entries);
    }

    /// `Output::SaveHardState`, `Output::ResetLog`.
    pub fn record(&mut self, rec: Record) {
        if let Record::Reset { index, .. } = rec {
            self.inner.truncated(index);
        }
        self.inner.push(rec);
    }

    /// Let `h` go now (`Ok(Some(h))`), hold it behind the pending write (`Ok(None)`), or refuse
    /// it when `bounded` and too many are held (`Err(h)`: treat as lost; replies are never
    /// refused, a peer waits for them).
    pub fn admit(&mut self, h: H, bounded: bool) -> Result<Option<H>, H> {
        Self::admitted(self.inner.admit(h, bounded))
    }

    /// Like [`Barrier::admit`] for a leader's AppendEntries request, which waits only for the
    /// hard state, not for the leader's own entries.
    pub fn admit_leader_append(&mut self, h: H) -> Result<Option<H>, H> {
        Self::admitted(self.inner.admit_leader_append(h))
    }

    /// Like [`Barrier::admit`] for a follower's successful AppendEntries answer acknowledging
    /// the entries up to `index`: it goes now when they are durable and no hard state is
    /// pending.
    pub fn admit_ack(&mut self, h: H, index: LogIndex) -> Result<Option<H>, H> {
        Self::admitted(self.inner.admit_ack(h, index))
    }

    fn admitted(a: Admit<H>) -> Result<Option<H>, H> {
        match a {
            Admit::Now(h) => Ok(Some(h)),
            Admit::Held => Ok(None),
            Admit::Refused(h) => Err(h),
        }
    }

    /// Start writing the gathered records, unless `MAX_IN_FLIGHT` writes are in flight or a
    /// refused one waits. A write finishes no earlier than `done_at` and no earlier than the
    /// one before it (the disk makes them durable in order). Returns whether one started.
    pub fn write_next(&mut self, done_at: u64) -> bool {
        let Some(batch) = self.inner.next_write() else {
            return false;
        };
        let done_at = self
            .writing
            .back()
            .map_or(done_at, |w| w.done_at.max(done_at));
        self.writing.push_back(Write {
            id: batch.id,
            records: batch.records,
            done_at,
        });
        true
    }

    /// The oldest write in flight: the next to finish.
    pub fn writing(&self) -> Option<&Write> {
        self.writing.front()
    }

    /// The oldest write in flight is refused for now: try again at `at` (the later ones wait
    /// behind it, as the WAL writer refuses them until it is written).
    pub fn retry_at(&mut self, at: u64) {
        if let Some(w) = self.writing.front_mut() {
            w.done_at = at;
            self.inner.refused(w.id);
        }
        for w in self.writing.iter_mut().skip(1) {
            w.done_at = w.done_at.max(at);
        }
    }

    /// The oldest write in flight is durable: it is no longer in flight.
    pub fn finish(&mut self) -> Option<Write> {
        self.writing.pop_front()
    }

    /// Write `id` is durable: what waited for it (once every earlier write is durable too), in
    /// order, and the entry index now durable.
    pub fn release(&mut self, id: u64) -> Written<H> {
        self.inner.written(id)
    }

    /// A crash: the writes in flight, oldest first (a prefix of their records may have reached
    /// the disk), and the held messages, which never leave.
    pub fn crash(self) -> (Vec<Write>, Vec<H>) {
        (self.writing.into(), self.inner.into_held())
    }

    pub fn held_len(&self) -> usize {
        self.inner.held()
    }
}
