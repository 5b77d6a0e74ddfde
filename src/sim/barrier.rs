//! [`Barrier`]: the write barrier of one simulated node. The contract (records gathered for
//! the next write, one write in flight, messages held until the write they depend on is
//! durable, at most `MAX_HELD` of them) is the `RaftActor`'s own [`WriteBarrier`]; this adds
//! only what a simulated disk needs: when the write in flight finishes, and what a crash loses
//! (the write in flight, to cut short, and the held messages, which never leave). Pure: no I/O,
//! no clock.

use crate::codec::wal::Record;
use crate::raft::barrier::{Admit, WriteBarrier};
use crate::raft::log::Entry;
use crate::raft::LogIndex;

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

/// The shared barrier and the write in flight.
#[derive(Debug)]
pub struct Barrier<H> {
    inner: WriteBarrier<Record, H>,
    writing: Option<Write>,
}

impl<H> Default for Barrier<H> {
    fn default() -> Self {
        Barrier {
            inner: WriteBarrier::default(),
            writing: None,
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
        self.inner.push(rec);
    }

    /// Let `h` go now (`Ok(Some(h))`), hold it behind the pending write (`Ok(None)`), or refuse
    /// it when `bounded` and too many are held (`Err(h)`: treat as lost; replies are never
    /// refused, a peer waits for them).
    pub fn admit(&mut self, h: H, bounded: bool) -> Result<Option<H>, H> {
        match self.inner.admit(h, bounded) {
            Admit::Now(h) => Ok(Some(h)),
            Admit::Held => Ok(None),
            Admit::Refused(h) => Err(h),
        }
    }

    /// Start writing the gathered records, unless a write is in flight. Returns whether one
    /// started.
    pub fn write_next(&mut self, done_at: u64) -> bool {
        let Some(batch) = self.inner.next_write() else {
            return false;
        };
        self.writing = Some(Write {
            id: batch.id,
            max: batch.max,
            records: batch.records,
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
        self.inner.written(id)
    }

    /// A crash: the write in flight (to cut short) and the held messages, which never leave.
    pub fn crash(self) -> (Option<Write>, Vec<H>) {
        (self.writing, self.inner.into_held())
    }

    pub fn held_len(&self) -> usize {
        self.inner.held()
    }
}
