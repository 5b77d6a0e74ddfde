//! [`StoreActor`]: the single owner of the [`KvState`] at run time.
//!
//! The `RaftActor` sends it committed log entries ([`ApplyEntries`]), in log order; handlers
//! read from it, either at once ([`Get`], stale) or once a given log index is applied
//! ([`ReadAt`], the last step of a linearizable read). It never blocks, never does I/O and never
//! talks to the network. Because one actor owns the map, no lock guards it. It runs on its own
//! thread (an arbiter, see `startup`), apart from the `RaftActor`.
//!
//! A snapshot ([`TakeSnapshot`]) is an O(1) clone of the persistent map plus its position: the
//! caller encodes and writes it on a blocking thread, while this actor goes on applying and
//! answering reads.
//!
//! Bounds: a parked read lives until its index is applied or its requester gives up (the HTTP
//! request timed out or the client went away, so its receiver is closed): closed ones are
//! dropped every [`PRUNE_EVERY`] and whenever the parked count doubles, so parked reads are
//! bounded by the reads in flight.

use std::collections::BTreeMap;
use std::time::Duration;

use actix::{Actor, Addr, AsyncContext, Context, Handler, MailboxError, Message};
use tokio::sync::oneshot;

use super::command::{Command, CommandOutcome, Effect};
use super::state::{KvState, Listing, StateError, Versioned};
use super::{LogIndex, Term};
use crate::storage::snapshot::{self, SnapshotMeta};
use crate::watch::actor::{
    Applied as WatchApplied, FedBy, HasWatchers, Reset as WatchReset, WatchActor,
};
use crate::watch::Change;

/// A read waiting for its index: what it reads and where to send the answer.
#[derive(Debug)]
enum ParkedRead {
    Key(String, oneshot::Sender<KeyRead>),
    List(ListQuery, oneshot::Sender<ListRead>),
}

impl ParkedRead {
    fn is_closed(&self) -> bool {
        match self {
            ParkedRead::Key(_, tx) => tx.is_closed(),
            ParkedRead::List(_, tx) => tx.is_closed(),
        }
    }
}

/// One key as read, and the applied index when it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRead {
    /// `None`: no such key.
    pub entry: Option<Versioned>,
    pub applied: LogIndex,
}

impl KeyRead {
    /// The value alone.
    pub fn value(&self) -> Option<&str> {
        self.entry.as_ref().map(|v| &*v.value)
    }
}

/// What a listing asks for (see [`KvState::list`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub prefix: String,
    pub after: Option<String>,
    pub limit: usize,
    pub max_bytes: usize,
}

/// A page of keys, and the applied index when it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRead {
    pub listing: Listing,
    pub applied: LogIndex,
}

/// How often parked reads whose requester gave up are dropped.
pub const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// Parked reads below this count are not pruned on arrival (only by the timer).
const PRUNE_FLOOR: usize = 1024;

/// While no watcher is open, applied changes wait here at most this long before they go to
/// the `WatchActor`'s history (one message per this period instead of one per batch).
pub const FEED_IDLE_DELAY: Duration = Duration::from_millis(50);

/// While no watcher is open, this many waiting changes go to the `WatchActor` at once.
pub const FEED_IDLE_BATCH: usize = 4096;

/// The store stopped before a parked read could be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStopped;

/// Owns the key-value map.
#[derive(Debug, Default)]
pub struct StoreActor {
    state: KvState,
    /// Term of the last applied entry (a snapshot records it).
    applied_term: Term,
    /// Reads waiting for their index to be applied, by index.
    parked: BTreeMap<LogIndex, Vec<ParkedRead>>,
    /// Number of reads in `parked`.
    parked_count: usize,
    /// Prune on arrival once `parked_count` reaches this (twice the count after the last prune).
    prune_at: usize,
    /// Where committed changes go (`GET /watch`); `None` in tests that need no watch.
    watch: Option<Addr<WatchActor>>,
    /// Changes applied but not yet sent to `watch`, in index order.
    feed: Vec<Change>,
    /// Whether `watch` has watchers (it says so on every change of that): then every applied
    /// batch goes at once; otherwise changes wait in `feed` (see [`FEED_IDLE_DELAY`]).
    watched: bool,
    /// A flush of `feed` is scheduled.
    feed_timer: bool,
    /// How long changes may wait in `feed` while nobody watches ([`FEED_IDLE_DELAY`]; tests
    /// make it longer to tell the two modes apart).
    feed_delay: Option<Duration>,
}

impl StoreActor {
    /// An actor over an empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// An actor over a state restored from a snapshot whose last entry has `term`.
    pub fn with_state(state: KvState, term: Term) -> Self {
        StoreActor {
            state,
            applied_term: term,
            ..Self::default()
        }
    }

    /// Send applied changes (and snapshot installs) to `watch`: every batch at once while it
    /// has watchers, at most [`FEED_IDLE_DELAY`] late while it has none.
    pub fn with_watch(mut self, watch: Addr<WatchActor>) -> Self {
        self.watch = Some(watch);
        self
    }

    /// Send the waiting changes (if any) and the applied index to `watch`.
    fn flush_feed(&mut self) {
        if let Some(watch) = &self.watch {
            watch.do_send(WatchApplied {
                changes: std::mem::take(&mut self.feed),
                applied: self.state.last_applied(),
            });
        }
    }

    /// A batch was applied: send its changes now, or later if nobody watches.
    fn feed_applied(&mut self, ctx: &mut Context<Self>) {
        if self.watch.is_none() {
            return;
        }
        if self.watched || self.feed.len() >= FEED_IDLE_BATCH {
            self.flush_feed();
        } else if !self.feed_timer {
            self.feed_timer = true;
            let delay = self.feed_delay.unwrap_or(FEED_IDLE_DELAY);
            ctx.run_later(delay, |act, _| {
                act.feed_timer = false;
                act.flush_feed();
            });
        }
    }

    /// Drop parked reads whose requester is gone (timed out or disconnected).
    fn prune_parked(&mut self) {
        self.parked.retain(|_, reads| {
            reads.retain(|r| !r.is_closed());
            !reads.is_empty()
        });
        self.parked_count = self.parked.values().map(Vec::len).sum();
        self.prune_at = (2 * self.parked_count).max(PRUNE_FLOOR);
    }

    /// Number of reads waiting for their index.
    pub fn parked_reads(&self) -> usize {
        self.parked_count
    }

    fn release_parked(&mut self) {
        let applied = self.state.last_applied();
        while let Some(entry) = self.parked.first_entry() {
            if *entry.key() > applied {
                break;
            }
            let reads = entry.remove();
            self.parked_count -= reads.len();
            for read in reads {
                match read {
                    ParkedRead::Key(key, tx) => {
                        let _ = tx.send(self.read_key(&key));
                    }
                    ParkedRead::List(q, tx) => {
                        let _ = tx.send(self.read_list(&q));
                    }
                }
            }
        }
    }
}

impl StoreActor {
    fn read_key(&self, key: &str) -> KeyRead {
        KeyRead {
            entry: self.state.get_versioned(key).cloned(),
            applied: self.state.last_applied(),
        }
    }

    fn read_list(&self, q: &ListQuery) -> ListRead {
        ListRead {
            listing: self
                .state
                .list(&q.prefix, q.after.as_deref(), q.limit, q.max_bytes),
            applied: self.state.last_applied(),
        }
    }

    /// Park `read` until `index` is applied.
    fn park(&mut self, index: LogIndex, read: ParkedRead) {
        if self.parked_count >= self.prune_at {
            self.prune_parked();
        }
        self.parked.entry(index).or_default().push(read);
        self.parked_count += 1;
    }
}

impl Actor for StoreActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        crate::fatal::mark_critical_thread();
        // Reads arrive from every HTTP worker; a deeper mailbox than actix's default of 16
        // keeps them from waiting on each other while still bounding memory.
        ctx.set_mailbox_capacity(4096);
        ctx.run_interval(PRUNE_EVERY, |act, _| act.prune_parked());
        if let Some(watch) = &self.watch {
            // Be told whether anyone watches (until then, changes go in bulk).
            watch.do_send(FedBy(ctx.address().recipient()));
        }
    }
}

/// What applying one log entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub index: LogIndex,
    pub term: Term,
    /// `None` for a no-op entry.
    pub outcome: Option<CommandOutcome>,
}

/// One committed log entry, as the store sees it: its position and, unless it carries no
/// command (a new leader's no-op), the command to apply. The caller (the `RaftActor`) converts
/// its log entries into these; the store never sees Raft's own types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub index: LogIndex,
    pub term: Term,
    /// `None`: an entry that only advances the applied index.
    pub command: Option<Command>,
}

/// Apply committed entries, which must continue the applied sequence without a gap.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<Applied>, StateError>")]
pub struct ApplyEntries(pub Vec<Committed>);

impl Handler<ApplyEntries> for StoreActor {
    type Result = Result<Vec<Applied>, StateError>;

    fn handle(&mut self, msg: ApplyEntries, ctx: &mut Context<Self>) -> Self::Result {
        let mut done = Vec::with_capacity(msg.0.len());
        for e in msg.0 {
            if e.index <= self.state.last_applied() {
                continue; // already applied (a duplicate delivery); applying twice would be wrong
            }
            let outcome = match e.command {
                None => {
                    self.state.apply_noop(e.index)?;
                    None
                }
                Some(command) => {
                    let key = self.watch.is_some().then(|| command.key().to_owned());
                    let outcome = self.state.apply(e.index, command)?;
                    // A change for watchers: what was applied now (not a replay, not a failed
                    // precondition, not a delete of a missing key).
                    if let (Some(key), false) = (key, outcome.replayed) {
                        let change = match outcome.effect {
                            Effect::Stored => self.state.get_entry(&key).map(|(key, v)| Change {
                                index: e.index,
                                key: key.clone(),
                                value: Some(v.value.clone()),
                                create_index: v.create_index,
                            }),
                            Effect::Deleted => Some(Change {
                                index: e.index,
                                key: key.into(),
                                value: None,
                                create_index: 0,
                            }),
                            _ => None,
                        };
                        self.feed.extend(change);
                    }
                    Some(outcome)
                }
            };
            self.applied_term = e.term;
            done.push(Applied {
                index: e.index,
                term: e.term,
                outcome,
            });
        }
        self.release_parked();
        if !done.is_empty() {
            self.feed_applied(ctx);
        }
        Ok(done)
    }
}

/// Send the changes held back (if any) and the applied index to the `WatchActor` now; a
/// `GET /watch` asks before it subscribes, so it starts from the node's history up to now.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct FlushFeed;

impl Handler<FlushFeed> for StoreActor {
    type Result = ();

    fn handle(&mut self, _: FlushFeed, _: &mut Context<Self>) {
        self.flush_feed();
    }
}

impl Handler<HasWatchers> for StoreActor {
    type Result = ();

    fn handle(&mut self, msg: HasWatchers, _: &mut Context<Self>) {
        self.watched = msg.0;
        if self.watched && !self.feed.is_empty() {
            self.flush_feed();
        }
    }
}

/// Ask for a frozen view of the map as of the last applied entry, to encode as a snapshot
/// elsewhere. Answering costs O(1) (a clone of the persistent map): encoding and writing are
/// the caller's job, off this actor's thread.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "SnapshotView")]
pub struct TakeSnapshot;

/// The map as of one log position; later applies do not change it.
#[derive(Debug, Clone)]
pub struct SnapshotView {
    pub meta: SnapshotMeta,
    pub state: KvState,
}

impl SnapshotView {
    /// The snapshot file's bytes (see [`crate::storage::snapshot`]), without a cluster
    /// configuration (the store knows none: the `RaftActor` encodes its snapshots with the
    /// configuration in force, through [`snapshot::encode`]). O(keys): call it on a blocking
    /// thread, never on an actor's.
    pub fn encode(&self) -> Vec<u8> {
        snapshot::encode_state(self.meta, None, &self.state)
    }
}

impl Handler<TakeSnapshot> for StoreActor {
    type Result = actix::MessageResult<TakeSnapshot>;

    fn handle(&mut self, _: TakeSnapshot, _: &mut Context<Self>) -> Self::Result {
        let meta = SnapshotMeta {
            index: self.state.last_applied(),
            term: self.applied_term,
        };
        actix::MessageResult(SnapshotView {
            meta,
            state: self.state.clone(),
        })
    }
}

/// Replace the whole map with a snapshot's (installed from the leader), whose last entry has
/// `term`. Comes in log order with [`ApplyEntries`].
#[derive(Debug, Message)]
#[rtype(result = "LogIndex")]
pub struct Restore {
    pub state: KvState,
    pub term: Term,
}

impl Handler<Restore> for StoreActor {
    type Result = LogIndex;

    fn handle(&mut self, msg: Restore, _: &mut Context<Self>) -> LogIndex {
        // The changes before the snapshot go first, in order.
        if !self.feed.is_empty() {
            self.flush_feed();
        }
        self.state = msg.state;
        self.applied_term = msg.term;
        if let Some(watch) = &self.watch {
            watch.do_send(WatchReset {
                index: self.state.last_applied(),
            });
        }
        self.release_parked();
        self.state.last_applied()
    }
}

/// What the map holds, in brief, for `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreSummary {
    /// Index of the last applied entry.
    pub applied_index: LogIndex,
    /// [`KvState::digest`] at that index: replicas at the same index must agree.
    pub digest: u64,
    pub keys: usize,
}

/// Ask for a [`StoreSummary`].
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "StoreSummary")]
pub struct Summary;

impl Handler<Summary> for StoreActor {
    type Result = actix::MessageResult<Summary>;

    fn handle(&mut self, _: Summary, _: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(StoreSummary {
            applied_index: self.state.last_applied(),
            digest: self.state.digest(),
            keys: self.state.len(),
        })
    }
}

/// Read one key now, whatever has been applied (a stale read).
#[derive(Debug, Clone, Message)]
#[rtype(result = "KeyRead")]
pub struct Get {
    pub key: String,
}

impl Handler<Get> for StoreActor {
    type Result = actix::MessageResult<Get>;

    fn handle(&mut self, msg: Get, _: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(self.read_key(&msg.key))
    }
}

/// Read one key once every entry up to `index` has been applied. Answered at once with the
/// value, or with a receiver the value arrives on: the store keeps only the sender, so a reader
/// that gives up (drops the receiver) leaves a closed sender that the store prunes. Use
/// [`read_at`].
#[derive(Debug, Clone, Message)]
#[rtype(result = "ReadAtReply")]
pub struct ReadAt {
    pub key: String,
    pub index: LogIndex,
}

/// The answer to a read at an index.
#[derive(Debug)]
pub enum AtReply<T> {
    /// The index was already applied.
    Now(T),
    /// The answer arrives once the index is applied.
    Later(oneshot::Receiver<T>),
}

/// The answer to [`ReadAt`].
pub type ReadAtReply = AtReply<KeyRead>;

impl<T> AtReply<T> {
    /// The answer, once its index is applied.
    pub async fn value(self) -> Result<T, StoreStopped> {
        match self {
            AtReply::Now(v) => Ok(v),
            // A dropped sender means the store stopped: an error, never "not found".
            AtReply::Later(rx) => rx.await.map_err(|_| StoreStopped),
        }
    }
}

/// Read `key` from `store` once `index` is applied. Dropping the future (a timeout) lets the
/// store forget the read.
pub async fn read_at(
    store: &Addr<StoreActor>,
    key: String,
    index: LogIndex,
) -> Result<Result<KeyRead, StoreStopped>, MailboxError> {
    let reply = store.send(ReadAt { key, index }).await?;
    Ok(reply.value().await)
}

impl Handler<ReadAt> for StoreActor {
    type Result = actix::MessageResult<ReadAt>;

    fn handle(&mut self, msg: ReadAt, _: &mut Context<Self>) -> Self::Result {
        if msg.index <= self.state.last_applied() {
            return actix::MessageResult(AtReply::Now(self.read_key(&msg.key)));
        }
        let (tx, rx) = oneshot::channel();
        self.park(msg.index, ParkedRead::Key(msg.key, tx));
        actix::MessageResult(AtReply::Later(rx))
    }
}

/// List keys once every entry up to `index` has been applied (0: now). Use [`list_at`].
#[derive(Debug, Clone, Message)]
#[rtype(result = "AtReply<ListRead>")]
pub struct ListAt {
    pub query: ListQuery,
    pub index: LogIndex,
}

/// List keys from `store` once `index` is applied. Dropping the future lets the store forget
/// the read.
pub async fn list_at(
    store: &Addr<StoreActor>,
    query: ListQuery,
    index: LogIndex,
) -> Result<Result<ListRead, StoreStopped>, MailboxError> {
    let reply = store.send(ListAt { query, index }).await?;
    Ok(reply.value().await)
}

impl Handler<ListAt> for StoreActor {
    type Result = actix::MessageResult<ListAt>;

    fn handle(&mut self, msg: ListAt, _: &mut Context<Self>) -> Self::Result {
        if msg.index <= self.state.last_applied() {
            return actix::MessageResult(AtReply::Now(self.read_list(&msg.query)));
        }
        let (tx, rx) = oneshot::channel();
        self.park(msg.index, ParkedRead::List(msg.query, tx));
        actix::MessageResult(AtReply::Later(rx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::Actor;

    /// How many reads are parked (tests only).
    #[derive(Message)]
    #[rtype(result = "usize")]
    struct ParkedCount;

    impl Handler<ParkedCount> for StoreActor {
        type Result = usize;
        fn handle(&mut self, _: ParkedCount, _: &mut Context<Self>) -> usize {
            self.parked_reads()
        }
    }

    fn entry(index: LogIndex, command: Option<Command>) -> Committed {
        Committed {
            index,
            term: 1,
            command,
        }
    }

    fn set(k: &str, v: &str) -> Option<Command> {
        Some(Command::set(k, v))
    }

    #[actix_rt::test]
    async fn apply_and_get_round_trip() {
        let addr = StoreActor::new().start();
        let out = addr
            .send(ApplyEntries(vec![
                entry(1, None),
                entry(2, set("name", "luffy")),
            ]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            vec![
                Applied {
                    index: 1,
                    term: 1,
                    outcome: None
                },
                Applied {
                    index: 2,
                    term: 1,
                    outcome: Some(CommandOutcome::new(2, Effect::Stored))
                }
            ]
        );
        let got = addr.send(Get { key: "name".into() }).await.unwrap();
        assert_eq!(got.value(), Some("luffy"));
    }

    #[actix_rt::test]
    async fn delete_reports_found_and_missing() {
        let addr = StoreActor::new().start();
        let del = || Some(Command::delete("k"));
        let out = addr
            .send(ApplyEntries(vec![
                entry(1, set("k", "v")),
                entry(2, del()),
                entry(3, del()),
            ]))
            .await
            .unwrap()
            .unwrap();
        let outcomes: Vec<_> = out.iter().map(|a| a.outcome.map(|o| o.effect)).collect();
        assert_eq!(
            outcomes,
            vec![
                Some(Effect::Stored),
                Some(Effect::Deleted),
                Some(Effect::NotFound)
            ]
        );
        assert_eq!(
            addr.send(Get { key: "k".into() }).await.unwrap().entry,
            None
        );
    }

    #[actix_rt::test]
    async fn duplicates_are_skipped_and_gaps_refused() {
        let addr = StoreActor::new().start();
        addr.send(ApplyEntries(vec![entry(1, set("k", "a"))]))
            .await
            .unwrap()
            .unwrap();
        let again = addr
            .send(ApplyEntries(vec![entry(1, set("k", "b"))]))
            .await
            .unwrap()
            .unwrap();
        assert!(again.is_empty(), "an entry is applied once");
        assert_eq!(
            addr.send(Get { key: "k".into() }).await.unwrap().value(),
            Some("a")
        );
        let gap = addr.send(ApplyEntries(vec![entry(5, None)])).await.unwrap();
        assert_eq!(
            gap,
            Err(StateError {
                expected: 2,
                got: 5
            })
        );
    }

    #[actix_rt::test]
    async fn read_at_waits_for_its_index() {
        let addr = StoreActor::new().start();
        let early = addr.send(ReadAt {
            key: "k".into(),
            index: 2,
        });
        let now = addr
            .send(ReadAt {
                key: "k".into(),
                index: 0,
            })
            .await
            .unwrap();
        assert_eq!(now.value().await.unwrap().entry, None);
        addr.send(ApplyEntries(vec![entry(1, set("k", "one"))]))
            .await
            .unwrap()
            .unwrap();
        addr.send(ApplyEntries(vec![entry(2, set("k", "two"))]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            early.await.unwrap().value().await.unwrap().value(),
            Some("two")
        );
    }

    #[actix_rt::test]
    async fn parked_reads_whose_requester_gave_up_are_dropped() {
        let mut store = StoreActor::new();
        let (tx_gone, rx_gone) = oneshot::channel();
        let (tx_live, mut rx_live) = oneshot::channel();
        store
            .parked
            .insert(5, vec![ParkedRead::Key("a".into(), tx_gone)]);
        store
            .parked
            .insert(6, vec![ParkedRead::Key("b".into(), tx_live)]);
        store.parked_count = 2;
        drop(rx_gone); // the HTTP request timed out
        store.prune_parked();
        assert_eq!(store.parked_reads(), 1);
        assert_eq!(store.parked.keys().copied().collect::<Vec<_>>(), vec![6]);
        assert_eq!(store.prune_at, PRUNE_FLOOR);
        assert!(rx_live.try_recv().is_err(), "a live read is still waiting");
    }

    #[actix_rt::test]
    async fn many_abandoned_reads_do_not_pile_up() {
        let addr = StoreActor::new().start();
        // Far more reads than the prune floor, each abandoned at once (a timeout): the
        // store keeps pruning them as they arrive.
        for i in 0..(4 * PRUNE_FLOOR as u64) {
            let read = addr.send(ReadAt {
                key: "k".into(),
                index: 10 + i,
            });
            // The reader gives up at once (a timeout).
            drop(read.await.unwrap());
        }
        let view = addr.send(TakeSnapshot).await.unwrap();
        assert_eq!(view.meta.index, 0);
        let parked = addr.send(ParkedCount).await.unwrap();
        assert!(parked <= 2 * PRUNE_FLOOR, "{parked} reads still parked");
    }

    #[actix_rt::test]
    async fn a_snapshot_view_stays_frozen_while_applies_go_on() {
        let addr = StoreActor::new().start();
        addr.send(ApplyEntries(vec![entry(1, set("k", "one"))]))
            .await
            .unwrap()
            .unwrap();
        let view = addr.send(TakeSnapshot).await.unwrap();
        addr.send(ApplyEntries(vec![
            entry(2, set("k", "two")),
            entry(3, set("j", "x")),
        ]))
        .await
        .unwrap()
        .unwrap();
        assert_eq!(view.meta, SnapshotMeta { index: 1, term: 1 });
        assert_eq!((view.state.get("k"), view.state.len()), (Some("one"), 1));
        let decoded = snapshot::decode(&view.encode()).unwrap();
        assert_eq!(decoded.pairs, vec![("k".to_owned(), "one".to_owned())]);
        let got = addr.send(Get { key: "k".into() }).await.unwrap();
        assert_eq!(got.value(), Some("two"));
    }

    /// Whether the store believes someone watches (tests only).
    #[derive(Message)]
    #[rtype(result = "bool")]
    struct IsWatched;

    impl Handler<IsWatched> for StoreActor {
        type Result = bool;
        fn handle(&mut self, _: IsWatched, _: &mut Context<Self>) -> bool {
            self.watched
        }
    }

    /// A store feeding a watch actor, whose idle feed waits an hour (so only a flush or a
    /// watcher moves changes within a test).
    fn fed_store() -> (Addr<StoreActor>, Addr<WatchActor>) {
        let watch = WatchActor::new(0).start();
        let mut store = StoreActor::new().with_watch(watch.clone());
        store.feed_delay = Some(Duration::from_secs(3600));
        (store.start(), watch)
    }

    async fn next_event(sub: &mut crate::watch::actor::Subscription) -> String {
        use futures_util::StreamExt;
        let next = tokio::time::timeout(Duration::from_secs(10), sub.events.next());
        let bytes = next.await.expect("an event within 10 s").unwrap().unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[actix_rt::test]
    async fn an_unwatched_store_holds_changes_until_a_watch_asks_for_them() {
        use crate::watch::actor::{GetWatchStatus, Subscribe};
        let (store, watch) = fed_store();
        let batch = (1..=3)
            .map(|i| entry(i, set("k", &i.to_string())))
            .collect();
        store.send(ApplyEntries(batch)).await.unwrap().unwrap();
        // What `GET /watch` does: flush, then subscribe; the flush reaches the watch first.
        store.send(FlushFeed).await.unwrap();
        let status = watch.send(GetWatchStatus).await.unwrap();
        assert_eq!(status.applied, 3, "the held changes went with the flush");
        let sub = Subscribe {
            prefix: String::new(),
            from_index: Some(1),
        };
        let mut sub = watch.send(sub).await.unwrap().expect("subscribed");
        for i in 1..=3 {
            let e = next_event(&mut sub).await;
            assert!(e.starts_with(&format!("id: {i}\nevent: set\n")), "{e}");
        }
    }

    #[actix_rt::test]
    async fn a_watched_store_sends_every_batch_at_once() {
        use crate::watch::actor::Subscribe;
        let (store, watch) = fed_store();
        let sub = Subscribe {
            prefix: String::new(),
            from_index: None,
        };
        let mut sub = watch.send(sub).await.unwrap().expect("subscribed");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !store.send(IsWatched).await.unwrap() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never told of the watcher"
            );
            tokio::task::yield_now().await;
        }
        store
            .send(ApplyEntries(vec![entry(1, set("k", "v"))]))
            .await
            .unwrap()
            .unwrap();
        // No flush: with an hour's idle delay, only the watched mode delivers it.
        let e = next_event(&mut sub).await;
        assert!(e.starts_with("id: 1\nevent: set\n"), "{e}");
    }

    #[actix_rt::test]
    async fn entries_apply_in_send_order() {
        let addr = StoreActor::new().start();
        let sends: Vec<_> = (1..=500u64)
            .map(|i| addr.send(ApplyEntries(vec![entry(i, set("k", &i.to_string()))])))
            .collect();
        for s in sends {
            s.await.unwrap().unwrap();
        }
        let got = addr.send(Get { key: "k".into() }).await.unwrap();
        assert_eq!(got.value(), Some("500"));
    }
}
