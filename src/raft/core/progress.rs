//! What a leader knows of one follower ([`Progress`]: Figure 2's nextIndex and matchIndex,
//! plus flow control and liveness), and the quorum arithmetic over such values
//! ([`quorum_min`]).
//!
//! Pure data and arithmetic; the rules that move a progress are in `replication.rs` and
//! `snapshot.rs`, who counts toward a quorum is the [`Configuration`](super::Configuration)'s.

use crate::raft::LogIndex;

/// Whether the leader knows where a follower's log matches its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProgressState {
    /// Unknown: send one AppendEntries at a time until one succeeds.
    Probe,
    /// Matching: stream batches, up to [`MAX_INFLIGHT`](super::MAX_INFLIGHT) at once (small
    /// ones one at a time: see `RaftCore::send_append_within`).
    Replicate,
    /// Behind the start of the log: a snapshot is on its way (its `seq` is the one in flight).
    Snapshot,
}

/// The leader's view of one follower.
#[derive(Debug, Clone)]
pub(super) struct Progress {
    pub(super) match_index: LogIndex,
    pub(super) next_index: LogIndex,
    pub(super) state: ProgressState,
    /// `seq`s of AppendEntries with entries (or of the snapshot transfer) not yet answered.
    pub(super) inflight: Vec<u64>,
    /// Highest `seq` answered (successfully or not) in this term.
    pub(super) acked_seq: u64,
    /// Highest `seq` answered by this follower with `lease_hold` (it refuses votes for its
    /// hold since): what the lease counts (`lease.rs`); a follower too old to hold never adds.
    pub(super) lease_seq: u64,
    /// The leader's `seq` counter when `match_index` last advanced: a rejection at
    /// `match_index` of a request sent after that means the follower lost entries.
    pub(super) match_seq: u64,
    /// Ticks to wait before sending a snapshot again after one failed.
    pub(super) snapshot_backoff: u32,
    /// Heard from since the last check-quorum round.
    pub(super) recent_active: bool,
    /// Ticks since its last current answer (`None`: none yet in this term).
    pub(super) last_heard: Option<u32>,
    /// Learners only: bytes of budget of the ticks on which it had entries to get but its
    /// window was full (see `RaftCore::pace_learners`); later batches may carry them too.
    pub(super) credit: usize,
}

impl Progress {
    /// A follower of a new leader whose log ends at `last_index`: probe from there.
    pub(super) fn new(last_index: LogIndex) -> Self {
        Progress {
            match_index: 0,
            next_index: last_index + 1,
            state: ProgressState::Probe,
            inflight: Vec::new(),
            acked_seq: 0,
            lease_seq: 0,
            match_seq: 0,
            snapshot_backoff: 0,
            recent_active: false,
            last_heard: None,
            credit: 0,
        }
    }

    /// Back to probing: nothing in flight, next at least just after the known match.
    pub(super) fn probe(&mut self) {
        self.state = ProgressState::Probe;
        self.inflight.clear();
        self.next_index = self.next_index.max(self.match_index + 1);
    }

    /// Whether another request with entries (or a snapshot) may go out now.
    pub(super) fn window_open(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.inflight.is_empty(),
            ProgressState::Replicate => self.inflight.len() < super::MAX_INFLIGHT,
            ProgressState::Snapshot => false,
        }
    }

    /// Forget `seq` as in flight; whether it was.
    pub(super) fn take_inflight(&mut self, seq: u64) -> bool {
        match self.inflight.iter().position(|s| *s == seq) {
            Some(pos) => {
                self.inflight.remove(pos);
                true
            }
            None => false,
        }
    }
}

/// The highest value that at least `quorum` of `values` reach or exceed (the `quorum`-th
/// largest); 0 when there are fewer values than that. With one value per voter, it is the
/// index stored on a majority, or the sequence number a majority has answered.
pub fn quorum_min(mut values: Vec<u64>, quorum: usize) -> u64 {
    if quorum == 0 || quorum > values.len() {
        return 0;
    }
    values.sort_unstable_by(|a, b| b.cmp(a));
    values[quorum - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_min_is_the_value_a_majority_reaches() {
        assert_eq!(quorum_min(vec![5], 1), 5);
        assert_eq!(quorum_min(vec![5, 3, 9], 2), 5);
        assert_eq!(quorum_min(vec![1, 2, 3, 4], 3), 2);
        assert_eq!(quorum_min(vec![4, 4, 0, 0, 7], 3), 4);
        assert_eq!(
            quorum_min(vec![u64::MAX, 3, 1], 2),
            3,
            "a leader's own answer"
        );
        assert_eq!(quorum_min(vec![1, 2], 3), 0, "too few values");
    }

    #[test]
    fn probing_clears_the_window_and_keeps_next_past_the_match() {
        let mut p = Progress::new(10);
        assert_eq!((p.next_index, p.state), (11, ProgressState::Probe));
        assert!(p.window_open());
        p.inflight.push(1);
        assert!(!p.window_open(), "one probe at a time");
        p.state = ProgressState::Replicate;
        p.inflight.extend([2, 3]);
        assert!(p.window_open());
        p.inflight.push(4);
        assert!(!p.window_open(), "MAX_INFLIGHT batches at once");
        assert!(p.take_inflight(2) && !p.take_inflight(2));
        p.match_index = 20;
        p.next_index = 5;
        p.probe();
        assert_eq!((p.next_index, p.inflight.len()), (21, 0));
        assert_eq!(p.state, ProgressState::Probe);
        p.state = ProgressState::Snapshot;
        assert!(
            !p.window_open(),
            "nothing else while a snapshot is on its way"
        );
    }
}
