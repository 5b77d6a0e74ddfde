//! [`ApplyPump`]: committed entries on their way to the state machine, as plain data.
//!
//! It owns the apply queue (committed entries and snapshot restores, in log order), the one
//! batch in flight to the `StoreActor` (one at a time, so batches reach the store in log order
//! even when its mailbox is full: actix may deliver a parked send after a later one), the
//! client writes (and membership changes) waiting for their entry's outcome, the applied index and the "broken" state
//! (the store refused an entry: nothing more is applied or acknowledged). The `RaftActor`
//! asks it what to hand the store next and tells it what the store applied; it answers with
//! the waiting writes to answer.
//!
//! **Bound.** The queue is not capped, on purpose: it only ever holds committed entries above
//! the applied index, each a copy of one still in the core's log (the core emits each committed
//! entry once, and compacts its log only below a snapshot of *applied* state). So it is at most
//! the log's unapplied tail, which grows only as fast as the cluster commits (on a leader,
//! bounded by admission control, `max_pending`); it at most doubles that tail's memory. A cap
//! would mean refusing committed entries, which Raft cannot do: a slow store shows as a growing
//! gap between `commitIndex` and `appliedIndex` in `/health` instead.
//!
//! No actix, no I/O, no clock: it never sends anything itself.

use std::collections::{HashMap, VecDeque};

use super::ClientError;
use crate::raft::{LogIndex, Term};
use crate::store::actor::{Applied, Committed};
use crate::store::{CommandOutcome, KvState};

/// Work for the store, in log order.
#[derive(Debug)]
pub enum ApplyItem {
    Entries(Vec<Committed>),
    /// Replace the whole state with a snapshot's (the term of its last entry beside).
    Restore(KvState, Term),
}

/// The fate of a proposed entry once the store applied its index: `Ok` with the outcome of
/// applying it (`None` for an entry without a command: a no-op or a configuration entry) when
/// the entry there is the one proposed (same term), [`ClientError::NotApplied`] when another
/// leader's entry took its place.
pub type WriteAnswer = Result<Option<CommandOutcome>, ClientError>;

/// See the module docs. `W` is whoever waits for a write's outcome (a channel's sender).
#[derive(Debug)]
pub struct ApplyPump<W> {
    queue: VecDeque<ApplyItem>,
    /// An item is in flight to the store.
    applying: bool,
    /// Client writes proposed here, by log index: (term of their entry, who waits).
    pending_writes: HashMap<LogIndex, (Term, W)>,
    /// Highest index the store has applied.
    applied_index: LogIndex,
    /// Set when the store refused an entry: nothing more is applied or acknowledged.
    broken: Option<String>,
    /// Most client writes waiting at once (admission control).
    max_pending: usize,
}

impl<W> ApplyPump<W> {
    /// A pump whose store has applied everything up to `applied_index`.
    pub fn new(applied_index: LogIndex, max_pending: usize) -> Self {
        ApplyPump {
            queue: VecDeque::new(),
            applying: false,
            pending_writes: HashMap::new(),
            applied_index,
            broken: None,
            max_pending: max_pending.max(1),
        }
    }

    pub fn applied_index(&self) -> LogIndex {
        self.applied_index
    }

    /// Why nothing more is applied, if the store refused an entry.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Whether as many client writes wait as may.
    pub fn full(&self) -> bool {
        self.pending_writes.len() >= self.max_pending
    }

    /// Client writes (and membership changes) waiting for their entry's outcome.
    pub fn waiting(&self) -> usize {
        self.pending_writes.len()
    }

    /// Most client writes (or, on the actor, reads) waiting at once.
    pub fn max_pending(&self) -> usize {
        self.max_pending
    }

    /// `w` waits for the entry at `index`, proposed in `term`.
    pub fn wait(&mut self, index: LogIndex, term: Term, w: W) {
        self.pending_writes.insert(index, (term, w));
    }

    /// Queue committed entries (after whatever is queued).
    pub fn push_entries(&mut self, entries: Vec<Committed>) {
        match self.queue.back_mut() {
            Some(ApplyItem::Entries(queued)) => queued.extend(entries),
            _ => self.queue.push_back(ApplyItem::Entries(entries)),
        }
    }

    /// Queue a snapshot's state to replace the store's (after whatever is queued).
    pub fn push_restore(&mut self, state: KvState, term: Term) {
        self.queue.push_back(ApplyItem::Restore(state, term));
    }

    /// The next item to hand the store, unless one is in flight or the pump is broken. The
    /// caller reports its end with [`Self::applied`] or [`Self::restored`].
    pub fn next_item(&mut self) -> Option<ApplyItem> {
        if self.applying || self.broken.is_some() {
            return None;
        }
        let item = self.queue.pop_front()?;
        self.applying = true;
        Some(item)
    }

    /// Nothing is queued or in flight (and the pump works): the applied state is current.
    pub fn idle(&self) -> bool {
        !self.applying && self.queue.is_empty() && self.broken.is_none()
    }

    /// The store applied a batch: the writes waiting for these entries, with their answers. A
    /// write whose index now holds another term's entry was overwritten: not applied.
    pub fn applied(&mut self, applied: Vec<Applied>) -> Vec<(W, WriteAnswer)> {
        self.applying = false;
        let mut answers = Vec::new();
        for a in applied {
            self.applied_index = self.applied_index.max(a.index);
            if let Some((term, w)) = self.pending_writes.remove(&a.index) {
                let answer = match term == a.term {
                    true => Ok(a.outcome),
                    false => Err(ClientError::NotApplied),
                };
                answers.push((w, answer));
            }
        }
        answers
    }

    /// The store took a snapshot's state, which ends at `index`.
    pub fn restored(&mut self, index: LogIndex) {
        self.applying = false;
        self.applied_index = self.applied_index.max(index);
    }

    /// Every write still waiting (leadership was lost, or the node stops).
    pub fn take_waiting(&mut self) -> Vec<W> {
        self.pending_writes.drain().map(|(_, (_, w))| w).collect()
    }

    /// The writes waiting for an entry above `committed`: leadership was lost, so their fate
    /// is unknown. Those at or below it wait on: a committed entry never changes, so applying
    /// it answers them.
    pub fn take_waiting_above(&mut self, committed: LogIndex) -> Vec<W> {
        let above: Vec<LogIndex> = self
            .pending_writes
            .keys()
            .copied()
            .filter(|i| *i > committed)
            .collect();
        above
            .into_iter()
            .filter_map(|i| self.pending_writes.remove(&i).map(|(_, w)| w))
            .collect()
    }

    /// The store failed: nothing more is applied; the writes still waiting.
    pub fn break_down(&mut self, why: String) -> Vec<W> {
        self.broken = Some(why);
        self.take_waiting()
    }

    /// Entries queued, not yet handed to the store.
    pub fn queued_entries(&self) -> usize {
        self.queue
            .iter()
            .map(|i| match i {
                ApplyItem::Entries(e) => e.len(),
                ApplyItem::Restore(..) => 0,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Command;

    fn committed(index: LogIndex, term: Term) -> Committed {
        Committed {
            index,
            term,
            command: Some(Command::delete("k")),
        }
    }

    fn applied(index: LogIndex, term: Term) -> Applied {
        Applied {
            index,
            term,
            outcome: Some(CommandOutcome::new(1, crate::store::Effect::Stored)),
        }
    }

    #[test]
    fn one_batch_in_flight_and_queued_entries_merge() {
        let mut p = ApplyPump::<u32>::new(0, 8);
        p.push_entries(vec![committed(1, 1)]);
        let Some(ApplyItem::Entries(first)) = p.next_item() else {
            panic!("entries first");
        };
        assert_eq!(first.len(), 1);
        p.push_entries(vec![committed(2, 1)]);
        p.push_entries(vec![committed(3, 1)]);
        assert!(p.next_item().is_none(), "one batch in flight at a time");
        assert_eq!(p.queued_entries(), 2);
        p.applied(vec![applied(1, 1)]);
        assert_eq!(p.applied_index(), 1);
        let Some(ApplyItem::Entries(second)) = p.next_item() else {
            panic!("the next batch");
        };
        assert_eq!(second.len(), 2, "entries queued meanwhile go together");
        p.applied(vec![applied(2, 1), applied(3, 1)]);
        assert!(p.idle());
    }

    #[test]
    fn a_restore_keeps_its_place_in_log_order() {
        let mut p = ApplyPump::<u32>::new(0, 8);
        p.push_entries(vec![committed(1, 1)]);
        p.push_restore(KvState::new(), 1);
        p.push_entries(vec![committed(11, 2)]);
        assert!(matches!(p.next_item(), Some(ApplyItem::Entries(_))));
        p.applied(vec![applied(1, 1)]);
        assert!(matches!(p.next_item(), Some(ApplyItem::Restore(..))));
        p.restored(10);
        assert_eq!(p.applied_index(), 10);
        assert!(matches!(p.next_item(), Some(ApplyItem::Entries(e)) if e[0].index == 11));
    }

    #[test]
    fn a_write_is_answered_with_its_own_entrys_outcome() {
        let mut p = ApplyPump::new(0, 8);
        p.wait(1, 1, "same term");
        p.wait(2, 1, "overwritten");
        p.push_entries(vec![committed(1, 1), committed(2, 2)]);
        p.next_item();
        let answers = p.applied(vec![applied(1, 1), applied(2, 2)]);
        assert_eq!(
            answers,
            vec![
                (
                    "same term",
                    Ok(Some(CommandOutcome::new(1, crate::store::Effect::Stored)))
                ),
                ("overwritten", Err(ClientError::NotApplied)),
            ]
        );
    }

    #[test]
    fn an_entry_without_a_command_answers_with_no_outcome() {
        let mut p = ApplyPump::new(0, 8);
        p.wait(1, 1, "config");
        p.push_entries(vec![Committed {
            index: 1,
            term: 1,
            command: None,
        }]);
        p.next_item();
        let applied = Applied {
            index: 1,
            term: 1,
            outcome: None,
        };
        assert_eq!(p.applied(vec![applied]), vec![("config", Ok(None))]);
    }

    #[test]
    fn losing_leadership_gives_up_only_the_uncommitted_waiters() {
        let mut p = ApplyPump::new(0, 8);
        p.wait(3, 1, 3);
        p.wait(5, 1, 5);
        p.wait(6, 1, 6);
        let mut lost = p.take_waiting_above(5);
        lost.sort();
        assert_eq!(lost, vec![6]);
        let mut left = p.take_waiting();
        left.sort();
        assert_eq!(
            left,
            vec![3, 5],
            "committed entries still answer when applied"
        );
    }

    #[test]
    fn admission_is_bounded_by_max_pending() {
        let mut p = ApplyPump::new(0, 2);
        p.wait(1, 1, ());
        assert!(!p.full());
        p.wait(2, 1, ());
        assert!(p.full());
        assert_eq!(p.take_waiting().len(), 2);
        assert!(!p.full());
    }

    #[test]
    fn a_broken_pump_hands_out_nothing_and_gives_up_its_waiters() {
        let mut p = ApplyPump::new(0, 8);
        p.wait(1, 1, 7);
        p.push_entries(vec![committed(1, 1)]);
        assert_eq!(p.break_down("refused".into()), vec![7]);
        assert_eq!(p.broken(), Some("refused"));
        assert!(p.next_item().is_none());
        assert!(!p.idle());
    }
}
