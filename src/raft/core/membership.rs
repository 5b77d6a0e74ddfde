//! Membership change (thesis §4): the history of configurations a node's log holds
//! ([`Membership`]), the leader's checks before it proposes a change
//! ([`Input::ChangeMembership`](super::Input::ChangeMembership)), what follows a change of the
//! configuration in force (who is replicated to, who counts), provisional ids learned from
//! answers, and the step-down of a leader that was removed.
//!
//! # The rule
//! A configuration entry ([`EntryPayload::Config`]) holds the whole configuration it leads to.
//! A node uses the **latest configuration in its log, committed or not** (thesis §4.1), or,
//! when its log holds none, the base one it was built with (a snapshot's, or the bootstrap one
//! from `PEERS`, in force at the log's base). Every change is a *single-server* change: it adds
//! or removes one voter (adding a learner, or removing one, changes no quorum at all). Joint
//! consensus (§4.3) is not used.
//!
//! # Why it is safe
//! - *Overlap.* Let C have n voters and C' = C plus one voter x. A majority of C has
//!   ⌊n/2⌋ + 1 voters, a majority of C' ⌊(n+1)/2⌋ + 1; together that is n + 2 voters, more
//!   than the n + 1 of C ∪ C', so any two such majorities share a voter. Removal is the same
//!   pair read backwards. So two leaders cannot be elected in one term, one by C and one by
//!   C', and an entry committed by a majority of C is on some voter of every majority of C'
//!   (the election restriction then keeps it, §5.4).
//! - *One change at a time.* A leader proposes a change only when the latest configuration
//!   entry of its log is committed ([`MembershipError::InProgress`] otherwise). So the
//!   configurations in force anywhere are at most two consecutive ones, C (committed, on a
//!   majority of C) and C' (its successor), whose majorities overlap as above; a third one
//!   cannot appear until C' is committed, at which point no majority of C alone can elect a
//!   leader lacking C' (every majority of C' holds it).
//! - *The errata.* The argument above needs the leader's log to hold the latest committed
//!   configuration. A new leader's log holds every committed entry, but an uncommitted change
//!   of an earlier leader may be in other logs and be committed later by someone who never saw
//!   this leader's change, with the two changes not consecutive. Committing an entry of its own
//!   term first (its no-op) rules this out: from then on no earlier leader's uncommitted entry
//!   can be committed. Until then a change is refused with [`MembershipError::NotReady`].
//! - *In force before committed.* A follower that truncates an uncommitted configuration entry
//!   goes back to the one before it ([`Membership::truncate_from`]); a snapshot records the
//!   configuration in force at its index, which is committed.
//!
//! # Learners, promotion, removal
//! Learners receive the log and snapshots and count for nothing: not in elections (they never
//! campaign, their votes are not counted), not in commitment, not in check-quorum. A learner
//! is promoted only when caught up (no snapshot on its way, heard from within an election
//! timeout, within [`MAX_PROMOTE_LAG`] entries of the leader's log), and a promotion or a voter
//! removal only when the new configuration's voters this leader can reach are a quorum of it
//! ([`MembershipError::NoQuorum`]), so a change never stalls the cluster by itself.
//! A member removed stays in the leader's replication until the entry that removed it is
//! committed, so it learns it was removed (and, not being a voter of its configuration, never
//! campaigns). A leader that removes itself keeps leading, without counting itself, until the
//! removal commits; then it hands over (TimeoutNow to its most caught-up voter) and steps down.
//!
//! # Provisional ids
//! A peer known by URL only has its URL as id. Followers send their id in every AppendEntries
//! answer; a leader that hears a real id from a provisional member renames it in the
//! configuration in force (its URL, its role, so the same node: no quorum changes). Once no
//! member is provisional, if the configuration in force is in no entry (the bootstrap one) or
//! was renamed, the leader (once it committed an entry of its term, with no change pending)
//! appends it as a configuration entry of the same members: a change of names, not of
//! membership, so always safe. From then on the log holds the membership.
//!
//! Pure: no I/O, no clock.

use super::configuration::{ConfigChange, Configuration, MembershipError};
use super::io::{Output, Role, MAX_PROMOTE_LAG};
use super::progress::{Progress, ProgressState};
use super::RaftCore;
use crate::raft::log::{EntryPayload, RaftLog};
use crate::raft::rpc::{Message, TimeoutNowRequest};
use crate::raft::{LogIndex, NodeId};

/// The configurations a node's log holds, oldest first: the base (in force at the log's base;
/// its index is 0 for the bootstrap configuration, in no entry), then one per configuration
/// entry after the base, by index. Never empty; the last one is in force.
#[derive(Debug, Clone)]
pub(super) struct Membership {
    history: Vec<(LogIndex, Configuration)>,
    /// The index of the history entry whose configuration was renamed in memory (provisional
    /// ids replaced by real ones), so differs from what its entry holds.
    renamed_at: Option<LogIndex>,
    /// The base is the bootstrap configuration (from `PEERS`): no entry or snapshot holds it.
    bootstrap: bool,
}

impl Membership {
    /// `base` in force at `base_index` (0: the bootstrap configuration), then every
    /// configuration entry of `log`.
    pub(super) fn new(base: Configuration, base_index: LogIndex, log: &RaftLog) -> Self {
        let mut m = Membership {
            history: vec![(base_index, base)],
            renamed_at: None,
            bootstrap: base_index == 0,
        };
        for e in log.slice(log.base_index() + 1, log.last_index()) {
            if let EntryPayload::Config { configuration } = e.payload {
                m.push(e.index, configuration);
            }
        }
        m
    }

    /// The configuration in force.
    pub(super) fn current(&self) -> &Configuration {
        &self.history[self.history.len() - 1].1
    }

    /// The index of the entry that holds the configuration in force (0: the bootstrap one).
    pub(super) fn current_index(&self) -> LogIndex {
        self.history[self.history.len() - 1].0
    }

    /// The configuration in force at `index` (the base one for any index before it).
    pub(super) fn at(&self, index: LogIndex) -> &Configuration {
        self.history
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map_or(&self.history[0].1, |(_, c)| c)
    }

    /// Whether a configuration entry lies in `(lo, hi]`.
    pub(super) fn changes_in(&self, lo: LogIndex, hi: LogIndex) -> bool {
        self.history[1..].iter().any(|(i, _)| *i > lo && *i <= hi)
    }

    /// A configuration entry at `index` (after every one held) is in the log.
    pub(super) fn push(&mut self, index: LogIndex, configuration: Configuration) {
        debug_assert!(index > self.current_index() || self.history.len() == 1);
        self.history.push((index, configuration));
    }

    /// The entries from `index` on were removed: their configurations go (never the base).
    /// Whether the configuration in force changed.
    pub(super) fn truncate_from(&mut self, index: LogIndex) -> bool {
        let before = self.history.len();
        while self.history.len() > 1 && self.history[self.history.len() - 1].0 >= index {
            self.history.pop();
        }
        if self.renamed_at.is_some_and(|i| i >= index && i > 0) {
            self.renamed_at = None;
        }
        self.history.len() != before
    }

    /// The log was compacted up to `index`: the configuration in force there becomes the base.
    pub(super) fn compact_to(&mut self, index: LogIndex) {
        let keep_from = self.history.iter().rposition(|(i, _)| *i <= index);
        if let Some(k) = keep_from.filter(|k| *k > 0) {
            self.history.drain(..k);
            self.bootstrap = false;
        }
    }

    /// A snapshot ending at `index` became the log's base: `configuration` (if it records one;
    /// else the one in force at `index`) is the base; when the log was `reset`, nothing after
    /// it remains.
    pub(super) fn install(
        &mut self,
        index: LogIndex,
        configuration: Option<Configuration>,
        reset: bool,
    ) {
        let base = configuration.unwrap_or_else(|| {
            if reset {
                self.current().clone()
            } else {
                self.at(index).clone()
            }
        });
        self.bootstrap = false;
        if reset {
            self.history = vec![(index, base)];
            self.renamed_at = None;
        } else {
            self.compact_to(index);
            self.history[0] = (self.history[0].0.min(index), base);
        }
    }

    /// Rename member `id` of the configuration in force `new_id`; whether it was done.
    pub(super) fn rename(&mut self, id: &str, new_id: &str) -> bool {
        let last = self.history.len() - 1;
        match self.history[last].1.renamed(id, new_id) {
            Some(c) => {
                self.history[last].1 = c;
                self.renamed_at = Some(self.history[last].0);
                true
            }
            None => false,
        }
    }

    /// Whether the configuration in force is in no entry (the bootstrap one), or differs from
    /// its entry.
    pub(super) fn needs_entry(&self) -> bool {
        (self.bootstrap && self.history.len() == 1) || self.renamed_at == Some(self.current_index())
    }

    /// The same history, its base taken as recorded (as if an entry at the log's base held
    /// it): tests that are not about membership use it to keep the log to their own entries.
    #[cfg(test)]
    pub(super) fn recorded(mut self) -> Self {
        self.bootstrap = false;
        self
    }
}

impl RaftCore {
    /// Has this leader committed an entry of its own term (thesis errata)?
    pub(super) fn committed_own_term(&self) -> bool {
        self.log.term_at(self.commit_index) == Some(self.term)
    }

    /// Is the latest configuration entry (or the provisional-id rewrite) still to commit?
    fn change_pending(&self) -> bool {
        self.membership.current_index() > self.commit_index || self.rewrite_due()
    }

    /// Should this leader append the configuration in force as an entry of the same members?
    fn rewrite_due(&self) -> bool {
        let conf = self.membership.current();
        self.membership.needs_entry() && !conf.is_provisional()
    }

    pub(super) fn change_membership(&mut self, change: ConfigChange) {
        let result = self.check_change(&change);
        match result {
            Err(error) => self.out.push(Output::ChangeRejected { error }),
            Ok(None) => self.out.push(Output::ChangeDone),
            Ok(Some(conf)) => {
                let index = self.append_configuration(conf);
                let term = self.term;
                self.out.push(Output::ChangeProposed { index, term });
                self.after_append(index);
            }
        }
    }

    /// Whether `change` may be made now, and the configuration it leads to.
    fn check_change(
        &self,
        change: &ConfigChange,
    ) -> Result<Option<Configuration>, MembershipError> {
        if self.role != Role::Leader {
            return Err(MembershipError::NotLeader(self.leader.clone()));
        }
        if self.transfer.is_some() {
            return Err(MembershipError::TransferInProgress);
        }
        if !self.committed_own_term() {
            return Err(MembershipError::NotReady);
        }
        if self.change_pending() {
            return Err(MembershipError::InProgress);
        }
        let current = self.membership.current();
        let Some(next) = current.change(change)? else {
            return Ok(None);
        };
        let last = self.log.last_index();
        if let ConfigChange::Promote(id) = change {
            let lagging = || {
                let matched = self.progress.get(id).map_or(0, |p| p.match_index);
                MembershipError::Lagging {
                    id: id.clone(),
                    matched,
                    last,
                }
            };
            let pr = self.progress.get(id).ok_or_else(lagging)?;
            let caught_up = pr.state != ProgressState::Snapshot
                && self.heard_recently(pr)
                && pr.match_index.saturating_add(MAX_PROMOTE_LAG) >= last;
            if !caught_up {
                return Err(lagging());
            }
        }
        let voters_change = match change {
            ConfigChange::AddLearner(_) => false,
            ConfigChange::Promote(_) => true,
            ConfigChange::Remove(id) => current.is_voter(id),
        };
        if voters_change {
            let reachable = next
                .voters()
                .iter()
                .filter(|m| {
                    m.id == self.cfg.id
                        || self
                            .progress
                            .get(&m.id)
                            .is_some_and(|p| self.heard_recently(p))
                })
                .count();
            if reachable < next.quorum() {
                return Err(MembershipError::NoQuorum {
                    reachable,
                    quorum: next.quorum(),
                });
            }
        }
        Ok(Some(next))
    }

    /// Did this member answer within the last election timeout?
    pub(super) fn heard_recently(&self, pr: &Progress) -> bool {
        pr.last_heard.is_some_and(|t| t < self.cfg.election_ticks)
    }

    /// Append `conf` as a configuration entry (leaders): it is in force at once.
    fn append_configuration(&mut self, conf: Configuration) -> LogIndex {
        let index = self.log.append(
            self.term,
            EntryPayload::Config {
                configuration: conf.clone(),
            },
        );
        self.membership.push(index, conf);
        self.configuration_changed();
        index
    }

    /// After a leader appended at `index`: persist, count, send.
    fn after_append(&mut self, index: LogIndex) {
        self.persist_from(index);
        self.maybe_commit();
        self.broadcast(false);
    }

    /// The configuration in force changed (or the committed one did): update who is replicated
    /// to and the votes counted. A leader replicates to every member of the configuration in
    /// force and of the committed one (members removed still learn of their removal); new
    /// ones are probed from the end of the log.
    pub(super) fn configuration_changed(&mut self) {
        // Majorities may have changed: the lease is proved anew in this configuration.
        self.lease_reset(false);
        let me = self.cfg.id.clone();
        let current = self.membership.current();
        let committed = self.membership.at(self.commit_index);
        let mut peers: Vec<NodeId> = current.others(&me).map(|m| m.id.clone()).collect();
        for m in committed.others(&me) {
            if !peers.contains(&m.id) {
                peers.push(m.id.clone());
            }
        }
        self.peers = peers;
        let current = self.membership.current();
        self.votes.retain(|id, _| current.member(id).is_some());
        if self.role == Role::Leader {
            let last = self.log.last_index();
            let peers = &self.peers;
            self.progress.retain(|id, _| peers.contains(id));
            for id in &self.peers {
                self.progress
                    .entry(id.clone())
                    .or_insert_with(|| Progress::new(last));
            }
        }
    }

    /// The member to which a peer message for `id` goes: of the configuration in force, or a
    /// member removed that the leader still replicates to.
    pub fn member(&self, id: &str) -> Option<&crate::raft::core::Member> {
        self.membership
            .current()
            .member(id)
            .or_else(|| self.membership.at(self.commit_index).member(id))
    }

    /// A leader heard `node_id` from `from`, which the configuration in force knows by its URL
    /// only: rename it (and what is keyed by it). Returns the id to use from now on.
    pub(super) fn learn_id(&mut self, from: NodeId, node_id: Option<&NodeId>) -> NodeId {
        let Some(real) = node_id else {
            return from;
        };
        let provisional = self
            .membership
            .current()
            .member(&from)
            .is_some_and(|m| m.id == m.url);
        if self.role != Role::Leader || !provisional || *real == from {
            return from;
        }
        if !self.membership.rename(&from, real) {
            return from;
        }
        if let Some(pr) = self.progress.remove(&from) {
            self.progress.insert(real.clone(), pr);
        }
        if let Some(v) = self.votes.remove(&from) {
            self.votes.insert(real.clone(), v);
        }
        self.configuration_changed();
        real.clone()
    }

    /// What must follow any step on a leader: a leader that is no longer a voter of the
    /// committed configuration hands over and steps down; the configuration is written down
    /// under real ids when due; a leadership transfer goes on.
    pub(super) fn reconcile(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let committed = self.membership.at(self.commit_index);
        if self.membership.current_index() <= self.commit_index && !committed.is_voter(&self.cfg.id)
        {
            if let Some(to) = self.most_caught_up_voter() {
                let term = self.term;
                let msg = Message::TimeoutNowRequest(TimeoutNowRequest {
                    term,
                    leader_id: self.cfg.id.clone(),
                });
                self.send(&to, msg);
            }
            let term = self.term;
            self.become_follower(term, None);
            return;
        }
        if self.transfer.is_none()
            && self.committed_own_term()
            && self.membership.current_index() <= self.commit_index
            && self.rewrite_due()
        {
            let conf = self.membership.current().clone();
            let index = self.append_configuration(conf);
            self.after_append(index);
        }
        self.continue_transfer();
    }

    /// The voter of the configuration in force, other than this node, with the highest match
    /// index (the first in configuration order on a tie).
    pub(super) fn most_caught_up_voter(&self) -> Option<NodeId> {
        let mut best: Option<(&NodeId, LogIndex)> = None;
        for m in self.membership.current().voters() {
            if m.id == self.cfg.id {
                continue;
            }
            let matched = self.progress.get(&m.id).map_or(0, |p| p.match_index);
            if best.is_none_or(|(_, b)| matched > b) {
                best = Some((&m.id, matched));
            }
        }
        best.map(|(id, _)| id.clone())
    }

    /// The log lost its entries from `index` on (a follower's conflict): the configurations
    /// they held go too.
    pub(super) fn membership_truncated(&mut self, index: LogIndex) {
        if self.membership.truncate_from(index) {
            self.configuration_changed();
        }
    }
}
