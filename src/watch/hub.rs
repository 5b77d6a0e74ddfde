//! [`Hub`]: the pure heart of `GET /watch`: the recent history of committed changes, the
//! registry of watchers and what each one is sent next.
//!
//! - **History**: every change the store applied, with its Server-Sent Event (encoded when a
//!   watcher first needs it, then shared by every watcher through [`Bytes`]; a node nobody
//!   watches never encodes one), bounded by a number of changes and a number of bytes.
//!   All changes after `floor` are kept, so a watcher may start at any `fromIndex > floor`: the
//!   oldest index available is `floor + 1` (the applied index + 1 at start, the last evicted
//!   change's index + 1 afterwards, the snapshot's index + 1 after a [`Hub::reset`]). An older
//!   `fromIndex` is refused ([`Refusal::Compacted`], a 410).
//! - **Watchers**: a prefix, `next` (the first index not yet queued for it: every matching
//!   change below it is queued or was sent) and a bounded queue of events waiting for its
//!   connection. A watcher with `next <= applied` is *catching up*: it is filled from the
//!   history in slices as its queue empties ([`Hub::peek`]), and live changes are not pushed to
//!   it (it will read them from the history). A watcher with `next > applied` is *live*: each
//!   new change of its prefix is pushed to its queue.
//! - **Slow watchers**: a live watcher whose queue would go over its bound (events or bytes),
//!   or a catching-up one whose `next` falls out of the history, is cut: its queue is dropped,
//!   it gets one last `error` event naming the `fromIndex` to reconnect with, and it is
//!   removed ([`Hub::take_ended`]). A snapshot installed from the leader ([`Hub::reset`]) cuts
//!   every watcher that had not reached the snapshot's index with a `compacted` event.
//! - **Heartbeats**: [`Hub::heartbeat`] queues, for every watcher with nothing waiting, an
//!   event whose id is the index up to which that watcher has everything.
//!
//! Pure: no clock (the actor's timer calls [`Hub::heartbeat`]), no I/O, no actix or tokio. It
//! never changes the map and never talks to Raft; it only relays what the store applied.

use std::cell::OnceCell;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use bytes::Bytes;
use serde::Serialize;

use super::Change;

/// Default `--watch-history-changes`.
pub const DEFAULT_HISTORY_CHANGES: usize = 100_000;
/// Most bytes of events the history keeps (64 MiB).
pub const HISTORY_BYTES: usize = 64 * 1024 * 1024;
/// Default `--watch-queue-events`: events waiting for one watcher's connection before it is cut.
pub const DEFAULT_QUEUE_EVENTS: usize = 4096;
/// Most bytes of events waiting for one watcher's connection before it is cut (16 MiB; the
/// bytes are mostly shared with the history and the other watchers).
pub const QUEUE_BYTES: usize = 16 * 1024 * 1024;
/// Default `--watch-max-watchers`.
pub const DEFAULT_MAX_WATCHERS: usize = 10_000;
/// What one history entry costs besides its key and value, counted whether or not its event
/// was encoded yet: the entry itself, the `Arc`s and the event's framing (`id:`, `event:`, the
/// JSON around the key and value).
const ENTRY_OVERHEAD: usize = 160;

/// The hub's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchLimits {
    /// Most changes kept in the history (at least 1).
    pub history_changes: usize,
    /// Most bytes of events (plus keys and a fixed overhead each) kept in the history.
    pub history_bytes: usize,
    /// Most events waiting for one watcher (at least 2).
    pub queue_events: usize,
    /// Most bytes of events waiting for one watcher.
    pub queue_bytes: usize,
    /// Most watchers open at once.
    pub max_watchers: usize,
}

impl Default for WatchLimits {
    fn default() -> Self {
        WatchLimits {
            history_changes: DEFAULT_HISTORY_CHANGES,
            history_bytes: HISTORY_BYTES,
            queue_events: DEFAULT_QUEUE_EVENTS,
            queue_bytes: QUEUE_BYTES,
            max_watchers: DEFAULT_MAX_WATCHERS,
        }
    }
}

/// Names one watcher of a hub (never reused by that hub).
pub type WatcherId = u64;

/// Why a watch cannot start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `from` is older than the oldest index this node still has (`oldest`).
    Compacted { from: u64, oldest: u64 },
    /// This node already has `limit` watchers.
    TooMany { limit: usize },
    /// The node is stopping.
    Stopping,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Compacted { from, oldest } => write!(
                f,
                "index {from} was compacted; the oldest index available is {oldest}"
            ),
            Refusal::TooMany { limit } => write!(
                f,
                "too many watchers on this node (limit {limit}); retry later or watch another node"
            ),
            Refusal::Stopping => write!(f, "this node is stopping; watch another node"),
        }
    }
}

/// A watch that started: its id and the applied index when it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    pub id: WatcherId,
    pub applied: u64,
}

/// One change in the history, and its event once a watcher needed it.
#[derive(Debug)]
struct Entry {
    change: Change,
    event: OnceCell<Bytes>,
}

impl Entry {
    fn index(&self) -> u64 {
        self.change.index
    }

    fn key(&self) -> &str {
        &self.change.key
    }

    /// The change's event, encoded on the first call.
    fn event(&self) -> &Bytes {
        self.event.get_or_init(|| encode_change(&self.change))
    }

    /// The memory it holds once encoded: the event (the key and value plus framing, escapes
    /// aside), plus [`ENTRY_OVERHEAD`]. The change's key and value are shared with the map
    /// (`Arc`s) while the key keeps that value.
    fn cost(&self) -> usize {
        self.change.key.len() + self.change.value.as_deref().map_or(0, str::len) + ENTRY_OVERHEAD
    }
}

/// An event waiting for a watcher's connection.
#[derive(Debug)]
struct Queued {
    /// Where the watcher resumes if it is cut before this event is sent: the change's index,
    /// or a heartbeat's index + 1.
    resume: u64,
    event: Bytes,
}

#[derive(Debug)]
struct Watcher {
    prefix: Box<str>,
    next: u64,
    queue: VecDeque<Queued>,
    queued_bytes: usize,
}

impl Watcher {
    fn push(&mut self, resume: u64, event: Bytes) {
        self.queued_bytes += event.len();
        self.queue.push_back(Queued { resume, event });
    }

    /// The `fromIndex` this watcher would resume at if cut now.
    fn resume(&self) -> u64 {
        self.queue.front().map_or(self.next, |q| q.resume)
    }
}

/// The history and the watchers (see the module's documentation).
#[derive(Debug)]
pub struct Hub {
    limits: WatchLimits,
    history: VecDeque<Entry>,
    history_bytes: usize,
    /// Every change after this index is in `history`.
    floor: u64,
    applied: u64,
    watchers: BTreeMap<WatcherId, Watcher>,
    next_id: WatcherId,
    /// Watchers removed by a cut, each with its last event, for the actor to deliver.
    ended: Vec<(WatcherId, Bytes)>,
    stopping: bool,
}

impl Hub {
    /// An empty hub over a store that has applied up to `applied`.
    pub fn new(applied: u64, limits: WatchLimits) -> Self {
        let limits = WatchLimits {
            history_changes: limits.history_changes.max(1),
            queue_events: limits.queue_events.max(2),
            ..limits
        };
        Hub {
            limits,
            history: VecDeque::new(),
            history_bytes: 0,
            floor: applied,
            applied,
            watchers: BTreeMap::new(),
            next_id: 1,
            ended: Vec::new(),
            stopping: false,
        }
    }

    /// The store's applied index as last reported.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The smallest `fromIndex` a new watch may start at.
    pub fn oldest(&self) -> u64 {
        self.floor + 1
    }

    /// How many changes the history holds.
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// How many watchers are open.
    pub fn watchers(&self) -> usize {
        self.watchers.len()
    }

    /// Every open watcher's id.
    pub fn ids(&self) -> Vec<WatcherId> {
        self.watchers.keys().copied().collect()
    }

    /// Open a watch of the keys starting with `prefix` from `from` (`None`: from the next
    /// change on). A `from` beyond the applied index is allowed (a client resuming on a node
    /// that lags the one it came from): nothing below it is ever sent.
    pub fn subscribe(&mut self, prefix: &str, from: Option<u64>) -> Result<Started, Refusal> {
        if self.stopping {
            return Err(Refusal::Stopping);
        }
        let next = match from {
            None => self.applied + 1,
            Some(from) if from <= self.floor => {
                return Err(Refusal::Compacted {
                    from,
                    oldest: self.oldest(),
                })
            }
            Some(from) => from,
        };
        if self.watchers.len() >= self.limits.max_watchers {
            return Err(Refusal::TooMany {
                limit: self.limits.max_watchers,
            });
        }
        let id = self.next_id;
        self.next_id += 1;
        self.watchers.insert(
            id,
            Watcher {
                prefix: prefix.into(),
                next,
                queue: VecDeque::new(),
                queued_bytes: 0,
            },
        );
        Ok(Started {
            id,
            applied: self.applied,
        })
    }

    /// Forget a watcher (its connection is gone).
    pub fn remove(&mut self, id: WatcherId) {
        self.watchers.remove(&id);
    }

    /// The node is stopping: forget every watcher (their streams end without a last event)
    /// and refuse new ones. Returns the ids that were open.
    pub fn stop(&mut self) -> Vec<WatcherId> {
        self.stopping = true;
        let ids = self.ids();
        self.watchers.clear();
        ids
    }

    /// Record one applied batch (changes in index order; `applied` the store's applied index
    /// after it) and push each change to the live watchers of its prefix. Returns the watchers
    /// whose queue got something (cut ones are in [`Hub::take_ended`]).
    pub fn applied_batch(&mut self, changes: &[Change], applied: u64) -> Vec<WatcherId> {
        let before = self.applied;
        let first_new = changes.partition_point(|c| c.index <= before);
        let new_entries: Vec<Entry> = changes[first_new..]
            .iter()
            .map(|c| Entry {
                change: c.clone(),
                event: OnceCell::new(),
            })
            .collect();
        self.applied = self.applied.max(applied);
        let (applied, limits) = (self.applied, self.limits);
        let mut touched = Vec::new();
        let mut cut = Vec::new();
        for (&id, w) in self.watchers.iter_mut() {
            if w.next <= before {
                continue; // catching up from the history: nothing to push (see below)
            }
            let mut got = false;
            for e in &new_entries {
                let index = e.index();
                if index < w.next || !e.key().starts_with(&*w.prefix) {
                    continue;
                }
                let event = e.event();
                if w.queue.len() + 1 > limits.queue_events
                    || w.queued_bytes + event.len() > limits.queue_bytes
                {
                    let resume = w.queue.front().map_or(index, |q| q.resume);
                    cut.push((id, too_slow_queue(resume, &limits)));
                    got = false;
                    break;
                }
                w.push(index, event.clone());
                got = true;
            }
            w.next = w.next.max(applied + 1);
            if got {
                touched.push(id);
            }
        }
        for e in new_entries {
            self.record(e);
        }
        // A watcher still catching up (every live one now has `next > applied`) whose next
        // change fell out of the history is cut.
        let floor = self.floor;
        for (&id, w) in &self.watchers {
            if w.next <= floor {
                cut.push((id, too_slow_behind(w.resume())));
            }
        }
        for (id, last) in cut {
            self.watchers.remove(&id);
            self.ended.push((id, last));
        }
        touched
    }

    /// Add one change to the history, evicting the oldest ones over the bounds (the newest
    /// is always kept).
    fn record(&mut self, entry: Entry) {
        self.history_bytes += entry.cost();
        self.history.push_back(entry);
        while self.history.len() > 1
            && (self.history.len() > self.limits.history_changes
                || self.history_bytes > self.limits.history_bytes)
        {
            if let Some(old) = self.history.pop_front() {
                self.history_bytes -= old.cost();
                self.floor = old.index();
            }
        }
    }

    /// The store's map was replaced by a snapshot at `index`: the history starts again after
    /// it, and every watcher that had not reached `index` ends with a `compacted` event.
    pub fn reset(&mut self, index: u64) {
        self.history.clear();
        self.history_bytes = 0;
        self.floor = index;
        self.applied = index;
        let oldest = index + 1;
        let behind: Vec<WatcherId> = self
            .watchers
            .iter()
            .filter(|(_, w)| w.next <= index)
            .map(|(&id, _)| id)
            .collect();
        for id in behind {
            if let Some(w) = self.watchers.remove(&id) {
                self.ended.push((id, compacted(w.resume(), oldest)));
            }
        }
    }

    /// Queue a heartbeat for every watcher that has nothing waiting; returns them. Its id
    /// and index are the index up to which the watcher has every matching change (the
    /// applied index for a live watcher).
    pub fn heartbeat(&mut self) -> Vec<WatcherId> {
        let mut touched = Vec::new();
        for (&id, w) in self.watchers.iter_mut() {
            if w.queue.is_empty() {
                let upto = w.next - 1;
                w.push(w.next, encode_heartbeat(upto));
                touched.push(id);
            }
        }
        touched
    }

    /// The next event to send to watcher `id` (it stays queued until [`Hub::pop`]); a
    /// catching-up watcher with an empty queue is first refilled from the history.
    pub fn peek(&mut self, id: WatcherId) -> Option<Bytes> {
        let (applied, limits) = (self.applied, self.limits);
        let w = self.watchers.get_mut(&id)?;
        if w.queue.is_empty() && w.next <= applied {
            refill(w, &self.history, applied, &limits);
        }
        w.queue.front().map(|q| q.event.clone())
    }

    /// The event [`Hub::peek`] returned was handed to the connection.
    pub fn pop(&mut self, id: WatcherId) {
        if let Some(w) = self.watchers.get_mut(&id) {
            if let Some(q) = w.queue.pop_front() {
                w.queued_bytes -= q.event.len();
            }
        }
    }

    /// The watchers cut since the last call, each with the last event to send it.
    pub fn take_ended(&mut self) -> Vec<(WatcherId, Bytes)> {
        std::mem::take(&mut self.ended)
    }
}

/// Queue the watcher's next slice of matching changes from the history: up to half its
/// bounds (the other half is room for live changes once it has caught up).
fn refill(w: &mut Watcher, history: &VecDeque<Entry>, applied: u64, limits: &WatchLimits) {
    let start = history.partition_point(|e| e.index() < w.next);
    let (max_events, max_bytes) = (limits.queue_events / 2, limits.queue_bytes / 2);
    for e in history.range(start..) {
        if !e.key().starts_with(&*w.prefix) {
            continue;
        }
        let event = e.event();
        if !w.queue.is_empty()
            && (w.queue.len() >= max_events || w.queued_bytes + event.len() > max_bytes)
        {
            w.next = e.index();
            return;
        }
        w.push(e.index(), event.clone());
    }
    w.next = applied + 1;
}

#[derive(Serialize)]
struct SetData<'a> {
    key: &'a str,
    value: &'a str,
    #[serde(rename = "modIndex")]
    mod_index: u64,
    #[serde(rename = "createIndex")]
    create_index: u64,
}

#[derive(Serialize)]
struct DeleteData<'a> {
    key: &'a str,
    #[serde(rename = "modIndex")]
    mod_index: u64,
}

#[derive(Serialize)]
struct EndData<'a> {
    message: &'a str,
    #[serde(rename = "fromIndex", skip_serializing_if = "Option::is_none")]
    from_index: Option<u64>,
    #[serde(rename = "oldestIndex", skip_serializing_if = "Option::is_none")]
    oldest_index: Option<u64>,
}

/// One Server-Sent Event: `id` (if any), `event`, one `data` line of JSON, a blank line.
fn sse(id: Option<u64>, event: &str, data: &impl Serialize) -> Bytes {
    let mut out = String::with_capacity(96);
    if let Some(id) = id {
        let _ = writeln!(out, "id: {id}");
    }
    let _ = write!(out, "event: {event}\ndata: ");
    // serde_json escapes control characters, so the data is one line.
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".into());
    out.push_str(&json);
    out.push_str("\n\n");
    Bytes::from(out)
}

/// The `set` or `delete` event of a change.
pub fn encode_change(c: &Change) -> Bytes {
    match &c.value {
        Some(value) => sse(
            Some(c.index),
            "set",
            &SetData {
                key: &c.key,
                value,
                mod_index: c.index,
                create_index: c.create_index,
            },
        ),
        None => sse(
            Some(c.index),
            "delete",
            &DeleteData {
                key: &c.key,
                mod_index: c.index,
            },
        ),
    }
}

/// A heartbeat: every matching change up to `index` was sent.
pub fn encode_heartbeat(index: u64) -> Bytes {
    #[derive(Serialize)]
    struct Beat {
        index: u64,
    }
    sse(Some(index), "heartbeat", &Beat { index })
}

fn too_slow_queue(resume: u64, limits: &WatchLimits) -> Bytes {
    let message = format!(
        "watcher too slow: more than {} events or {} bytes waiting to be sent; reconnect with \
         fromIndex={resume}",
        limits.queue_events, limits.queue_bytes
    );
    end_event("error", &message, Some(resume), None)
}

fn too_slow_behind(resume: u64) -> Bytes {
    let message = format!(
        "watcher too slow: this node's history moved past index {resume} before it was sent; \
         reconnect with fromIndex={resume}"
    );
    end_event("error", &message, Some(resume), None)
}

fn compacted(resume: u64, oldest: u64) -> Bytes {
    let message = format!(
        "index {resume} was compacted (a snapshot from the leader replaced this node's \
         history); the oldest index available is {oldest}"
    );
    end_event("compacted", &message, None, Some(oldest))
}

fn end_event(event: &str, message: &str, from: Option<u64>, oldest: Option<u64>) -> Bytes {
    sse(
        None,
        event,
        &EndData {
            message,
            from_index: from,
            oldest_index: oldest,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(index: u64, key: &str, value: &str) -> Change {
        Change {
            index,
            key: key.into(),
            value: Some(value.into()),
            create_index: index,
        }
    }

    fn del(index: u64, key: &str) -> Change {
        Change {
            index,
            key: key.into(),
            value: None,
            create_index: 1,
        }
    }

    fn limits() -> WatchLimits {
        WatchLimits {
            history_changes: 1000,
            history_bytes: 1 << 20,
            queue_events: 100,
            queue_bytes: 1 << 20,
            max_watchers: 10,
        }
    }

    /// Everything queued for `id`, as text, popping it.
    fn drain(hub: &mut Hub, id: WatcherId) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(b) = hub.peek(id) {
            out.push(String::from_utf8(b.to_vec()).unwrap());
            hub.pop(id);
        }
        out
    }

    /// The ids of the change events in `events`.
    fn ids(events: &[String]) -> Vec<u64> {
        events
            .iter()
            .filter(|e| !e.contains("event: heartbeat"))
            .filter_map(|e| e.strip_prefix("id: "))
            .map(|e| e.split('\n').next().unwrap().parse().unwrap())
            .collect()
    }

    #[test]
    fn events_have_the_contract_shape() {
        assert_eq!(
            &encode_change(&set(12, "k", "v"))[..],
            b"id: 12\nevent: set\ndata: {\"key\":\"k\",\"value\":\"v\",\"modIndex\":12,\"createIndex\":12}\n\n"
        );
        assert_eq!(
            &encode_change(&del(13, "k"))[..],
            b"id: 13\nevent: delete\ndata: {\"key\":\"k\",\"modIndex\":13}\n\n"
        );
        assert_eq!(
            &encode_heartbeat(20)[..],
            b"id: 20\nevent: heartbeat\ndata: {\"index\":20}\n\n"
        );
        // A newline in a value stays inside one data line.
        let e = encode_change(&set(1, "a\nb", "x\r\ny"));
        assert_eq!(std::str::from_utf8(&e).unwrap().lines().count(), 4);
    }

    #[test]
    fn live_changes_reach_matching_watchers_in_order() {
        let mut hub = Hub::new(5, limits());
        let a = hub.subscribe("a/", None).unwrap();
        let all = hub.subscribe("", None).unwrap();
        assert_eq!(a.applied, 5);
        let touched = hub.applied_batch(&[set(6, "a/1", "x"), set(7, "b/1", "y")], 7);
        assert_eq!(touched, vec![a.id, all.id]);
        hub.applied_batch(&[del(9, "a/1")], 10);
        assert_eq!(ids(&drain(&mut hub, a.id)), vec![6, 9]);
        assert_eq!(ids(&drain(&mut hub, all.id)), vec![6, 7, 9]);
        // A batch touches only the watchers it has something for.
        assert_eq!(hub.applied_batch(&[set(11, "c", "z")], 11), vec![all.id]);
    }

    #[test]
    fn catch_up_then_live_has_no_gap_and_no_duplicate() {
        let mut l = limits();
        l.queue_events = 6; // refills of 3
        let mut hub = Hub::new(0, l);
        let batch: Vec<Change> = (1..=20)
            .map(|i| set(i, &format!("k{}", i % 2), "v"))
            .collect();
        hub.applied_batch(&batch, 20);
        let w = hub.subscribe("k1", Some(4)).unwrap();
        // Read a little, then changes arrive while it is still behind.
        let mut seen = Vec::new();
        for _ in 0..2 {
            seen.extend(ids(&[
                String::from_utf8(hub.peek(w.id).unwrap().to_vec()).unwrap()
            ]));
            hub.pop(w.id);
        }
        hub.applied_batch(&[set(21, "k1", "v"), set(22, "k0", "v")], 22);
        seen.extend(ids(&drain(&mut hub, w.id)));
        hub.applied_batch(&[set(23, "k1", "v"), set(25, "k1", "v")], 26);
        seen.extend(ids(&drain(&mut hub, w.id)));
        let want: Vec<u64> = (4..=26)
            .filter(|i| i % 2 == 1 && *i != 24 && *i != 22)
            .collect();
        assert_eq!(seen, want);
        // Live now: a heartbeat says 26.
        hub.heartbeat();
        assert_eq!(
            drain(&mut hub, w.id),
            vec!["id: 26\nevent: heartbeat\ndata: {\"index\":26}\n\n"]
        );
    }

    #[test]
    fn from_index_is_refused_exactly_below_the_oldest_index() {
        let mut l = limits();
        l.history_changes = 3;
        let mut hub = Hub::new(10, l);
        assert_eq!(hub.oldest(), 11);
        assert_eq!(
            hub.subscribe("", Some(10)),
            Err(Refusal::Compacted {
                from: 10,
                oldest: 11
            })
        );
        let w = hub.subscribe("", Some(11)).unwrap();
        hub.remove(w.id);
        hub.applied_batch(
            &[set(11, "a", "1"), set(12, "a", "2"), set(14, "a", "3")],
            14,
        );
        hub.applied_batch(&[set(15, "a", "4")], 15);
        // 11 was evicted: everything after it is still there.
        assert_eq!(hub.history_len(), 3);
        assert_eq!(hub.oldest(), 12);
        assert_eq!(
            hub.subscribe("", Some(11)),
            Err(Refusal::Compacted {
                from: 11,
                oldest: 12
            })
        );
        let w = hub.subscribe("", Some(12)).unwrap();
        assert_eq!(ids(&drain(&mut hub, w.id)), vec![12, 14, 15]);
        assert_eq!(
            Refusal::Compacted {
                from: 11,
                oldest: 12
            }
            .to_string(),
            "index 11 was compacted; the oldest index available is 12"
        );
    }

    #[test]
    fn the_history_is_bounded_in_bytes_too_and_keeps_the_newest() {
        let mut l = limits();
        l.history_bytes = 800; // two entries with 200-byte values (361 each), not three
        let mut hub = Hub::new(0, l);
        let big = "x".repeat(200);
        for i in 1..=10 {
            hub.applied_batch(&[set(i, "k", &big)], i);
        }
        assert_eq!(hub.history_len(), 2);
        assert_eq!(hub.oldest(), 9);
        let huge = "y".repeat(5000);
        hub.applied_batch(&[set(11, "k", &huge)], 11);
        assert_eq!(hub.history_len(), 1, "the newest stays even over the bound");
        assert_eq!(hub.oldest(), 11);
    }

    #[test]
    fn a_future_from_index_waits_and_never_goes_back() {
        let mut hub = Hub::new(5, limits());
        let w = hub.subscribe("", Some(9)).unwrap();
        hub.heartbeat();
        assert_eq!(ids(&drain(&mut hub, w.id)), Vec::<u64>::new());
        hub.applied_batch(&[set(6, "a", "1"), set(8, "a", "2")], 8);
        hub.heartbeat();
        let got = drain(&mut hub, w.id);
        assert_eq!(
            got,
            vec!["id: 8\nevent: heartbeat\ndata: {\"index\":8}\n\n"]
        );
        hub.applied_batch(&[set(9, "a", "3"), set(10, "a", "4")], 10);
        assert_eq!(ids(&drain(&mut hub, w.id)), vec![9, 10]);
    }

    #[test]
    fn a_reset_cuts_the_watchers_behind_it_with_compacted() {
        let mut hub = Hub::new(0, limits());
        hub.applied_batch(&[set(1, "a", "1"), set(2, "a", "2")], 2);
        let behind = hub.subscribe("", Some(1)).unwrap();
        let live = hub.subscribe("", None).unwrap();
        let ahead = hub.subscribe("", Some(60)).unwrap();
        hub.reset(50);
        let ended = hub.take_ended();
        assert_eq!(ended.len(), 2);
        let text: Vec<(WatcherId, String)> = ended
            .into_iter()
            .map(|(id, b)| (id, String::from_utf8(b.to_vec()).unwrap()))
            .collect();
        assert_eq!(text[0].0, behind.id);
        assert_eq!(text[1].0, live.id);
        assert!(text[1]
            .1
            .starts_with("event: compacted\ndata: {\"message\":\"index 3 was compacted"));
        assert!(
            text[1].1.ends_with(",\"oldestIndex\":51}\n\n"),
            "{}",
            text[1].1
        );
        assert_eq!(hub.watchers(), 1);
        assert_eq!(hub.oldest(), 51);
        assert_eq!(
            hub.subscribe("", Some(50)),
            Err(Refusal::Compacted {
                from: 50,
                oldest: 51
            })
        );
        hub.applied_batch(&[set(51, "a", "1"), set(60, "a", "2")], 60);
        assert_eq!(ids(&drain(&mut hub, ahead.id)), vec![60]);
        // A watcher exactly at the snapshot's index + 1 is not behind it.
        let at = hub.subscribe("", None).unwrap();
        hub.reset(60);
        assert!(hub.take_ended().is_empty());
        assert_eq!(hub.watchers(), 2);
        let _ = at;
    }

    #[test]
    fn a_live_watcher_over_its_event_bound_is_cut_with_where_to_resume() {
        let mut l = limits();
        l.queue_events = 4;
        let mut hub = Hub::new(0, l);
        let slow = hub.subscribe("", None).unwrap();
        let fast = hub.subscribe("", None).unwrap();
        for i in 1..=3 {
            hub.applied_batch(&[set(i, "k", "v")], i);
            drain(&mut hub, fast.id);
        }
        // slow read one event (sent: 1); 2 and 3 are queued.
        hub.peek(slow.id);
        hub.pop(slow.id);
        hub.applied_batch(&[set(4, "k", "v"), set(5, "k", "v")], 5);
        assert!(hub.take_ended().is_empty());
        hub.applied_batch(&[set(6, "k", "v")], 6);
        let ended = hub.take_ended();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].0, slow.id);
        let text = String::from_utf8(ended[0].1.to_vec()).unwrap();
        assert!(
            text.starts_with("event: error\ndata: {\"message\":\"watcher too slow: "),
            "{text}"
        );
        assert!(
            text.ends_with("reconnect with fromIndex=2\",\"fromIndex\":2}\n\n"),
            "{text}"
        );
        assert!(hub.peek(slow.id).is_none());
        assert_eq!(ids(&drain(&mut hub, fast.id)), vec![4, 5, 6]);
    }

    #[test]
    fn a_live_watcher_over_its_byte_bound_is_cut() {
        let mut l = limits();
        l.queue_bytes = 1000;
        let mut hub = Hub::new(0, l);
        let w = hub.subscribe("", None).unwrap();
        let v = "x".repeat(400);
        hub.applied_batch(&[set(1, "k", &v), set(2, "k", &v)], 2);
        assert!(hub.take_ended().is_empty());
        hub.applied_batch(&[set(3, "k", &v)], 3);
        let ended = hub.take_ended();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].0, w.id);
        assert!(String::from_utf8(ended[0].1.to_vec())
            .unwrap()
            .contains("\"fromIndex\":1}"));
        assert_eq!(hub.watchers(), 0);
    }

    #[test]
    fn a_catching_up_watcher_passed_by_the_history_is_cut() {
        let mut l = limits();
        l.history_changes = 5;
        l.queue_events = 4;
        let mut hub = Hub::new(0, l);
        let batch: Vec<Change> = (1..=5).map(|i| set(i, "k", "v")).collect();
        hub.applied_batch(&batch, 5);
        let w = hub.subscribe("", Some(1)).unwrap();
        hub.peek(w.id); // queues 1, 2; next = 3
        hub.pop(w.id); // 1 sent
        hub.applied_batch(&[set(6, "k", "v"), set(7, "k", "v")], 7); // evicts 1, 2
        assert!(
            hub.take_ended().is_empty(),
            "2 is queued, 3 is still in the history"
        );
        hub.applied_batch(&[set(8, "k", "v")], 8); // evicts 3
        let ended = hub.take_ended();
        assert_eq!(ended.len(), 1);
        let text = String::from_utf8(ended[0].1.to_vec()).unwrap();
        assert!(text.contains("\"fromIndex\":2}"), "{text}");
    }

    #[test]
    fn watchers_are_bounded_and_stop_refuses_new_ones() {
        let mut l = limits();
        l.max_watchers = 2;
        let mut hub = Hub::new(0, l);
        let a = hub.subscribe("", None).unwrap();
        hub.subscribe("", None).unwrap();
        assert_eq!(hub.subscribe("", None), Err(Refusal::TooMany { limit: 2 }));
        hub.remove(a.id);
        assert!(hub.subscribe("", None).is_ok());
        assert_eq!(hub.stop().len(), 2);
        assert_eq!(hub.subscribe("", None), Err(Refusal::Stopping));
    }

    #[test]
    fn heartbeats_go_only_to_watchers_with_nothing_waiting() {
        let mut hub = Hub::new(3, limits());
        let idle = hub.subscribe("a", None).unwrap();
        let busy = hub.subscribe("b", None).unwrap();
        hub.applied_batch(&[set(4, "b", "1"), set(5, "c", "1")], 5);
        assert_eq!(hub.heartbeat(), vec![idle.id]);
        assert_eq!(
            drain(&mut hub, idle.id),
            vec!["id: 5\nevent: heartbeat\ndata: {\"index\":5}\n\n"]
        );
        assert_eq!(ids(&drain(&mut hub, busy.id)), vec![4]);
    }
}
