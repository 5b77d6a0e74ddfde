//! [`WriteBarrier`]: persist before send, with a pipelined group commit, as plain data.
//!
//! It owns the records not yet written, the batches in flight (at most [`MAX_IN_FLIGHT`]: their
//! ids, highest entry indexes, and whether they hold a record other than an entry), and the
//! messages held until the write they depend on is durable (at most [`MAX_HELD`]; a bounded
//! message beyond it is refused, to be treated as lost). The `RaftActor` (and the simulator in
//! `crate::sim`, which carries out outputs the same way) asks it what to write next and tells
//! it which batch is durable; it answers with the messages that may go now, in the order they
//! were produced, and the highest entry index now durable **in order** (a batch that finishes
//! before an earlier one counts only once the earlier one has). Generic over the record type
//! `R` (the WAL's `codec::wal::Record` at run time), so this pure module does not depend on a
//! byte format.
//!
//! ## Which message may overtake which write
//!
//! Every message waits for every record gathered or in flight before it was produced
//! ([`WriteBarrier::admit`]): a vote waits for the hard state that records it, a follower's
//! AppendEntries answer for the entries it acknowledges, a snapshot offer and a TimeoutNow for
//! everything before them. **Two exceptions.** The first ([`WriteBarrier::admit_leader_append`]): a
//! leader's AppendEntries request (entries or heartbeat) waits only for the records that are
//! not entries (hard state, log reset), not for the leader's own entries: the leader's write and
//! the followers' writes run in parallel (Raft thesis §10.2.1; etcd does the same). Why it is
//! safe:
//! - Commitment counts durable copies only. A follower acknowledges entries only once they are
//!   durable on it (its answer waits for its write), and the core counts the leader itself only
//!   up to the index reported with `Input::Persisted` ("durable index"). So an entry is
//!   committed only when a majority holds it durably, whether or not the leader is among them;
//!   that is all Leader Completeness (§5.4) needs: every later leader needs a vote from that
//!   majority, and a voter refuses a candidate whose log is behind its own.
//! - The leader's term is still durable before any AppendEntries of that term leaves: the hard
//!   state recording it (term, vote for itself) is a record that this message waits for. So a
//!   leader that crashes and restarts is still in its term, has voted in it, and cannot become
//!   leader of that term again: every entry of term `T` on any node still comes from the one
//!   leader of `T`, and Log Matching holds. (Without this wait, a lone voter that lost its
//!   unsynced hard state could lead term `T` twice and send a learner two different entries at
//!   one index and term.)
//! - A leader that crashes before its own write may have sent entries that followers persist:
//!   after the restart its log is shorter than theirs, and entries of its own term exist on
//!   followers but not locally. The core's restart path takes this in its stride: the node
//!   starts as a follower at the durable term with the durable log (`RaftCore::new` sets the
//!   durable index to the log it was given), its shorter log loses votes against the followers
//!   that hold more (§5.4.1), and whichever leader comes next either holds those entries
//!   (they may have been committed by the followers' majority: they survive) or overwrites them
//!   on the followers that hold them (they were not committed: no majority held them). The
//!   restarted node is then sent the entries it lacks like any follower behind
//!   (`sim::tests::a_leader_crashing_before_its_own_fsync_loses_nothing_committed`).
//! - An acknowledged client write is committed, so it is on a majority's disks: a crash of the
//!   leader before its own fsync loses nothing that was acknowledged.
//!
//! **A second exception** ([`WriteBarrier::admit_ack`]): a follower's successful AppendEntries
//! answer acknowledges only that the follower holds the entries up to its `match_index` and
//! has accepted the leader's term. When those entries are already durable (in order, and not
//! cut from the log since: [`WriteBarrier::truncated`] lowers the durable index) and no hard
//! state or log reset is gathered or in flight, nothing it claims can be lost by a crash, so
//! it need not wait for the entries written after it. This is what keeps a follower's answers
//! to heartbeats flowing while its disk stalls on a long fsync under write load: without it,
//! every answer waits for the write in flight, and a stall longer than an election timeout
//! makes the leader see no majority and step down (check-quorum). An answer acknowledging
//! entries not yet durable, or given while the follower's term or vote is not yet durable,
//! still waits for everything before it.
//!
//! ## Pipelining
//!
//! [`WriteBarrier::next_write`] hands out a new batch while fewer than [`MAX_IN_FLIGHT`] are in
//! flight, so the next batches are written while the previous one is fsynced; a batch refused by
//! the disk ([`WriteBarrier::refused`]) stops new batches until it is written (the writer
//! refuses later ones meanwhile, so none lands before it). Batches are reported durable in
//! their order only.
//!
//! No actix, no I/O, no clock: it never writes or sends anything itself.

use std::collections::VecDeque;

use super::log::Entry;
use super::LogIndex;

/// Most messages held behind a write that is not yet durable. Beyond it, new messages to peers
/// are dropped as if lost (the core resynchronises that follower, as after any lost message);
/// replies to peers are bounded by the peers' own in-flight limits.
pub const MAX_HELD: usize = 4096;

/// Most batches in flight at once: one being fsynced while the next ones are written. More
/// than two matters: a batch handed out during an fsync is appended at once, so the syncer's
/// next fsync covers it; with only two, whatever arrived after the second batch waited in the
/// actor until the first fsync was answered, and so missed the next fsync too (one more fsync
/// of latency under load). Every batch in flight is bounded by what the actor gathers, and the
/// writer's and syncer's queues hold this many.
pub const MAX_IN_FLIGHT: usize = 8;

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

/// What a durable batch made durable, in order.
#[derive(Debug, PartialEq, Eq)]
pub struct Written<M> {
    /// Messages that may go now, in the order they were produced.
    pub released: Vec<M>,
    /// The highest entry index now durable in order, if it grew (report `Input::Persisted`).
    pub persisted: Option<LogIndex>,
}

/// A batch handed out and not yet known durable in order.
#[derive(Debug)]
struct InFlight {
    id: u64,
    max: Option<LogIndex>,
    /// The writer answered that it is durable (an earlier batch may not be yet).
    done: bool,
}

/// Group commit and persist-before-send. See the module docs.
#[derive(Debug)]
pub struct WriteBarrier<R, M> {
    /// Records gathered for the next write.
    unwritten: Vec<R>,
    /// Highest entry index among `unwritten`.
    unwritten_max: Option<LogIndex>,
    /// `unwritten` holds a record that is not an entry (hard state, log reset).
    unwritten_state: bool,
    /// Id the gathered records get when written; ids grow by one per write.
    next_batch: u64,
    /// Batches handed out, oldest first, until durable in order.
    in_flight: VecDeque<InFlight>,
    /// Every batch up to this id is durable.
    durable: u64,
    /// The newest batch handed out that holds a record other than an entry.
    last_state_batch: u64,
    /// A batch the disk refused for now: no new batch until it is written.
    refused: Option<u64>,
    /// Messages held until the write with the given id is durable, in order.
    held: VecDeque<(u64, M)>,
    /// Entries up to this index are durable in order and still in the log (clamped when the
    /// log is cut below it): what an acknowledgement may claim without waiting.
    durable_index: LogIndex,
}

impl<R, M> Default for WriteBarrier<R, M> {
    fn default() -> Self {
        WriteBarrier {
            unwritten: Vec::new(),
            unwritten_max: None,
            unwritten_state: false,
            next_batch: 1,
            in_flight: VecDeque::new(),
            durable: 0,
            last_state_batch: 0,
            refused: None,
            held: VecDeque::new(),
            durable_index: 0,
        }
    }
}

impl<R: From<Entry>, M> WriteBarrier<R, M> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Gather new entries for the next write. Entries that replace others (a follower's log
    /// was cut at the first of them) make the replaced ones count for nothing: see
    /// [`WriteBarrier::truncated`].
    pub fn persist_entries(&mut self, entries: Vec<Entry>) {
        if let Some(first) = entries.first() {
            self.truncated(first.index.saturating_sub(1));
        }
        let last = entries.last().map(|e| e.index);
        self.unwritten_max = last.max(self.unwritten_max);
        self.unwritten.extend(entries.into_iter().map(R::from));
    }

    /// The log was cut after `index` (entries replaced after a conflict, or a snapshot reset
    /// the log to it): a batch gathered or in flight that wrote entries beyond it must not
    /// report them durable, since the log now holds other entries (or none) there; they are
    /// reported by the batch that writes them. Without this, an earlier batch finishing would
    /// claim the replacements durable while the batch that holds them is still in flight.
    pub fn truncated(&mut self, index: LogIndex) {
        let clamp = |max: &mut Option<LogIndex>| {
            if max.is_some_and(|m| m > index) {
                *max = Some(index);
            }
        };
        clamp(&mut self.unwritten_max);
        self.in_flight.iter_mut().for_each(|b| clamp(&mut b.max));
        self.durable_index = self.durable_index.min(index);
    }

    /// Gather another record (hard state, log reset) for the next write.
    pub fn push(&mut self, record: R) {
        self.unwritten.push(record);
        self.unwritten_state = true;
    }

    /// The write that a message produced now must wait for, if any is not yet durable.
    fn barrier(&self) -> Option<u64> {
        if !self.unwritten.is_empty() {
            Some(self.next_batch)
        } else {
            Some(self.next_batch - 1).filter(|b| *b > self.durable)
        }
    }

    /// The write holding a record other than an entry that a message produced now must wait
    /// for, if any is not yet durable.
    fn state_barrier(&self) -> Option<u64> {
        if self.unwritten_state {
            Some(self.next_batch)
        } else {
            Some(self.last_state_batch).filter(|b| *b > self.durable)
        }
    }

    fn hold(&mut self, barrier: Option<u64>, msg: M, bounded: bool) -> Admit<M> {
        match barrier {
            None => Admit::Now(msg),
            Some(_) if bounded && self.held.len() >= MAX_HELD => Admit::Refused(msg),
            Some(b) => {
                self.held.push_back((b, msg));
                Admit::Held
            }
        }
    }

    /// Offer a message that waits for every record gathered or written before it: it may go
    /// now, is held, or (when `bounded` and [`MAX_HELD`] messages are already held) is refused.
    /// Replies are offered unbounded: a peer waits for them.
    pub fn admit(&mut self, msg: M, bounded: bool) -> Admit<M> {
        self.hold(self.barrier(), msg, bounded)
    }

    /// Offer a leader's AppendEntries request: it waits only for records other than entries
    /// (the hard state with its term), not for the leader's own entries. See the module docs
    /// for why that is safe. Bounded like any message to a peer.
    pub fn admit_leader_append(&mut self, msg: M) -> Admit<M> {
        self.hold(self.state_barrier(), msg, true)
    }

    /// Offer a follower's successful AppendEntries answer, which acknowledges the entries up
    /// to `index` and nothing else: it goes now when those entries are durable and no record
    /// other than an entry (hard state, log reset) is gathered or in flight; otherwise it
    /// waits like any reply ([`WriteBarrier::admit`]). See the module docs for why that is
    /// safe. Replies are never refused.
    pub fn admit_ack(&mut self, msg: M, index: LogIndex) -> Admit<M> {
        if index <= self.durable_index && self.state_barrier().is_none() {
            Admit::Now(msg)
        } else {
            self.admit(msg, false)
        }
    }

    /// The next batch to write, unless [`MAX_IN_FLIGHT`] are in flight (a completion starts
    /// the next: everything gathered meanwhile shares one fsync), a refused batch waits to be
    /// written again, or nothing is gathered.
    pub fn next_write(&mut self) -> Option<Batch<R>> {
        if self.in_flight.len() >= MAX_IN_FLIGHT
            || self.refused.is_some()
            || self.unwritten.is_empty()
        {
            return None;
        }
        let id = self.next_batch;
        self.next_batch += 1;
        if std::mem::take(&mut self.unwritten_state) {
            self.last_state_batch = id;
        }
        let max = self.unwritten_max.take();
        self.in_flight.push_back(InFlight {
            id,
            max,
            done: false,
        });
        Some(Batch {
            id,
            records: std::mem::take(&mut self.unwritten),
            max,
        })
    }

    /// Batch `id` could not be written for now (the disk refused it; it will be written again
    /// with the same id): no new batch is handed out until it is written.
    pub fn refused(&mut self, id: u64) {
        if self.in_flight.iter().any(|b| b.id == id) {
            self.refused = Some(self.refused.map_or(id, |r| r.min(id)));
        }
    }

    /// Whether a refused batch waits to be written again.
    pub fn is_refused(&self) -> bool {
        self.refused.is_some()
    }

    /// Batch `id` (one in flight) is durable: the messages that waited for it or for an earlier
    /// batch, once every earlier batch is durable too, and the entry index now durable.
    pub fn written(&mut self, id: u64) -> Written<M> {
        if let Some(b) = self.in_flight.iter_mut().find(|b| b.id == id) {
            b.done = true;
        }
        if self.refused.is_some_and(|r| r <= id) {
            // Written again (a batch after it was refused by the writer as long as it was).
            self.refused = None;
        }
        let mut persisted = None;
        while self.in_flight.front().is_some_and(|b| b.done) {
            if let Some(b) = self.in_flight.pop_front() {
                self.durable = b.id;
                persisted = b.max.max(persisted);
            }
        }
        if let Some(p) = persisted {
            self.durable_index = self.durable_index.max(p);
        }
        let durable = self.durable;
        let mut released = Vec::new();
        if self.held.iter().any(|(b, _)| *b <= durable) {
            let mut kept = VecDeque::with_capacity(self.held.len());
            for (b, m) in self.held.drain(..) {
                if b <= durable {
                    released.push(m);
                } else {
                    kept.push_back((b, m));
                }
            }
            self.held = kept;
        }
        Written {
            released,
            persisted,
        }
    }

    /// Batches in flight (handed out, not yet durable in order).
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Everything held, in order, leaving none: what a crash loses (the simulator reports it).
    pub fn into_held(self) -> Vec<M> {
        self.held.into_iter().map(|(_, m)| m).collect()
    }

    /// How many messages are held.
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

    fn entry_of(index: LogIndex, term: u64) -> Entry {
        Entry {
            index,
            term,
            payload: EntryPayload::Noop,
        }
    }

    #[test]
    fn entries_replaced_while_in_flight_are_reported_durable_only_by_the_batch_that_holds_them() {
        let mut b = WriteBarrier::<Entry, ()>::new();
        b.persist_entries((1..=10).map(|i| entry_of(i, 2)).collect());
        let a = b.next_write().unwrap();
        // A leader of term 3 replaces 6..: 6'..12' are gathered while batch A is in flight.
        b.persist_entries((6..=12).map(|i| entry_of(i, 3)).collect());
        let c = b.next_write().unwrap();
        assert_eq!(
            b.written(a.id).persisted,
            Some(5),
            "A holds 1..5 of the log now"
        );
        assert_eq!(b.written(c.id).persisted, Some(12));
        // Replaced before being written: one batch writes both, and reports the new end.
        b.persist_entries((13..=20).map(|i| entry_of(i, 3)).collect());
        b.persist_entries((15..=16).map(|i| entry_of(i, 4)).collect());
        let d = b.next_write().unwrap();
        assert_eq!(d.max, Some(16));
        assert_eq!(b.written(d.id).persisted, Some(16));
        // A snapshot resets the log below what is in flight.
        b.persist_entries((17..=18).map(|i| entry_of(i, 4)).collect());
        let e = b.next_write().unwrap();
        b.truncated(10);
        assert_eq!(b.written(e.id).persisted, Some(10));
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
        assert_eq!(b.written(1).released, vec!["append", "reply"]);
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
        let second = b.next_write().unwrap();
        assert_eq!((second.id, second.max), (2, Some(3)));
        assert_eq!(second.records.len(), 3);
        assert!(
            b.written(first.id).released.is_empty(),
            "`after` waits for batch 2"
        );
        assert_eq!(b.written(second.id).released, vec!["after"]);
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
        let released = b.written(batch.id).released;
        assert_eq!(released.len(), MAX_HELD + 1);
        assert_eq!(released.last(), Some(&usize::MAX), "in order");
        assert_eq!(b.admit(0, true), Admit::Now(0));
    }

    #[test]
    fn at_most_max_in_flight_batches_are_in_flight_and_the_next_waits() {
        let mut b = WriteBarrier::<Entry, &str>::new();
        let mut ids = Vec::new();
        for i in 1..=MAX_IN_FLIGHT as LogIndex {
            b.persist_entries(vec![entry(i)]);
            ids.push(b.next_write().unwrap().id);
        }
        let last = MAX_IN_FLIGHT as LogIndex + 1;
        b.persist_entries(vec![entry(last)]);
        assert_eq!(b.next_write(), None, "at most MAX_IN_FLIGHT");
        assert_eq!(b.in_flight(), MAX_IN_FLIGHT);
        let w = b.written(ids[0]);
        assert_eq!(w.persisted, Some(1));
        let next = b.next_write().unwrap();
        assert_eq!((next.id, next.max), (last, Some(last)));
        assert_eq!(b.next_write(), None, "full again");
    }

    #[test]
    fn batches_are_durable_in_order_only() {
        let mut b = WriteBarrier::<Entry, &str>::new();
        b.persist_entries(vec![entry(1)]);
        let one = b.next_write().unwrap();
        assert_eq!(b.admit("after 1", true), Admit::Held);
        b.persist_entries(vec![entry(2)]);
        let two = b.next_write().unwrap();
        assert_eq!(b.admit("after 2", false), Admit::Held);
        let early = b.written(two.id);
        assert_eq!(early.persisted, None, "batch 1 is not durable yet");
        assert!(early.released.is_empty());
        let w = b.written(one.id);
        assert_eq!(w.persisted, Some(2), "both, in order");
        assert_eq!(w.released, vec!["after 1", "after 2"]);
        assert_eq!(b.admit("now", true), Admit::Now("now"));
    }

    #[test]
    fn a_leader_append_overtakes_entries_but_not_a_hard_state() {
        let mut b = WriteBarrier::<Entry, &str>::new();
        b.push(entry(0)); // the hard state with the leader's term
        assert_eq!(
            b.admit_leader_append("ae0"),
            Admit::Held,
            "waits for its term"
        );
        let hs = b.next_write().unwrap();
        b.persist_entries(vec![entry(1)]);
        assert_eq!(
            b.admit_leader_append("ae1"),
            Admit::Held,
            "term still in flight"
        );
        assert_eq!(b.written(hs.id).released, vec!["ae0", "ae1"]);
        // The term is durable: the leader's own entries no longer hold its appends.
        assert_eq!(b.admit_leader_append("ae2"), Admit::Now("ae2"));
        let one = b.next_write().unwrap();
        assert_eq!(b.admit_leader_append("ae3"), Admit::Now("ae3"));
        // Anything else still waits for them: a reply, a vote.
        assert_eq!(b.admit("reply", false), Admit::Held);
        b.persist_entries(vec![entry(2)]);
        assert_eq!(b.admit_leader_append("ae4"), Admit::Now("ae4"));
        let w = b.written(one.id);
        assert_eq!((w.persisted, w.released), (Some(1), vec!["reply"]));
    }

    #[test]
    fn overtaking_appends_are_released_past_a_message_still_waiting() {
        let mut b = WriteBarrier::<Entry, &str>::new();
        b.persist_entries(vec![entry(1)]);
        assert_eq!(b.admit("reply", false), Admit::Held);
        b.push(entry(0));
        assert_eq!(b.admit_leader_append("ae"), Admit::Held);
        let one = b.next_write().unwrap();
        assert_eq!(b.written(one.id).released, vec!["reply", "ae"]);
        b.persist_entries(vec![entry(2)]);
        assert_eq!(b.admit("later reply", false), Admit::Held);
        assert_eq!(b.admit_leader_append("ae2"), Admit::Now("ae2"));
        assert_eq!(b.held(), 1);
    }

    #[test]
    fn an_answer_acknowledging_durable_entries_overtakes_the_write_in_flight() {
        let mut b = WriteBarrier::<Entry, &str>::new();
        b.persist_entries(vec![entry(1), entry(2)]);
        assert_eq!(b.admit_ack("ack 2", 2), Admit::Held, "2 is not durable yet");
        let one = b.next_write().unwrap();
        assert_eq!(b.written(one.id).released, vec!["ack 2"]);
        // Entries 3.. are written while a heartbeat's answer acknowledges 2.
        b.persist_entries(vec![entry(3)]);
        let two = b.next_write().unwrap();
        b.persist_entries(vec![entry(4)]);
        assert_eq!(b.admit_ack("heartbeat ack", 2), Admit::Now("heartbeat ack"));
        assert_eq!(
            b.admit_ack("ack 4", 4),
            Admit::Held,
            "waits for its entries"
        );
        assert_eq!(b.admit("vote", false), Admit::Held, "anything else waits");
        assert!(
            b.written(two.id).released.is_empty(),
            "entry 4 is not written yet"
        );
        let three = b.next_write().unwrap();
        let w = b.written(three.id);
        assert_eq!((w.persisted, w.released), (Some(4), vec!["ack 4", "vote"]));
        // A term or vote not yet durable: every answer waits for it.
        b.push(entry(0)); // a record without an entry index of its own, like a hard state
        assert_eq!(b.admit_ack("new term", 1), Admit::Held);
        let hs = b.next_write().unwrap();
        assert_eq!(b.admit_ack("still", 1), Admit::Held, "in flight");
        assert_eq!(b.written(hs.id).released, vec!["new term", "still"]);
        assert_eq!(b.admit_ack("then", 1), Admit::Now("then"));
    }

    #[test]
    fn entries_cut_from_the_log_are_no_longer_durable_for_an_answer() {
        let mut b = WriteBarrier::<Entry, &str>::new();
        b.persist_entries((1..=5).map(|i| entry_of(i, 1)).collect());
        let one = b.next_write().unwrap();
        b.written(one.id);
        assert_eq!(b.admit_ack("ack 5", 5), Admit::Now("ack 5"));
        // A new leader replaces 4..: 4' and 5' are not durable, 3 still is.
        b.persist_entries((4..=5).map(|i| entry_of(i, 2)).collect());
        assert_eq!(b.admit_ack("ack 5'", 5), Admit::Held);
        assert_eq!(b.admit_ack("ack 3", 3), Admit::Now("ack 3"));
        let two = b.next_write().unwrap();
        assert_eq!(b.written(two.id).released, vec!["ack 5'"]);
        assert_eq!(b.admit_ack("ack 5' again", 5), Admit::Now("ack 5' again"));
        // A snapshot resets the log to 2: entries beyond it are gone.
        b.truncated(2);
        b.push(entry(0)); // the reset record
        let reset = b.next_write().unwrap();
        b.written(reset.id);
        assert_eq!(b.admit_ack("ack 2", 2), Admit::Now("ack 2"));
        b.persist_entries(vec![entry_of(3, 3)]);
        assert_eq!(b.admit_ack("ack 3 of the new log", 3), Admit::Held);
    }

    #[test]
    fn a_refused_batch_stops_new_batches_until_written_again() {
        let mut b = WriteBarrier::<Entry, &str>::new();
        b.persist_entries(vec![entry(1)]);
        let one = b.next_write().unwrap();
        b.refused(one.id);
        assert!(b.is_refused());
        b.persist_entries(vec![entry(2)]);
        assert_eq!(
            b.next_write(),
            None,
            "nothing may land before the refused batch"
        );
        assert_eq!(b.written(one.id).persisted, Some(1));
        assert!(!b.is_refused());
        assert_eq!(b.next_write().unwrap().max, Some(2));
    }
}
