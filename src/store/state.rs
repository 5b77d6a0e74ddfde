//! [`KvState`]: the key-value map and the index of the last command applied to it.
//!
//! Pure logic: no I/O, no clock, no actors, no locks. The same sequence of `(index, command)`
//! pairs always produces the same map and the same outcomes, which is what lets Raft replicas
//! agree. Applying out of order is a bug in the caller and is refused, never silently accepted.
//!
//! The map is persistent (copy-on-write): cloning a `KvState` is O(1) and shares every node,
//! and a write after a clone copies only the nodes on its path. That is what lets a snapshot be
//! encoded from a frozen clone on another thread while this state goes on applying. Keys and
//! values are `Arc<str>`, so copying a node only bumps reference counts.
//!
//! Every key keeps its value, its `mod_index` (the log index of the write that last set it)
//! and its `create_index` (the index of the set that created it, since it last did not exist).
//! Writes may carry preconditions (compare-and-set), evaluated here, at apply time, so they are
//! linearizable; and an idempotency stamp, looked up in the [`IdempotencyTable`] (a retry
//! answers the first outcome and applies nothing).
//!
//! Ordered listing (`GET /keys`) uses a second persistent structure, an `imbl::OrdSet` of the
//! keys, touched only when a key is created or deleted: point reads and overwrites never touch
//! it, so they keep the hash map's speed (the alternative, an `imbl::OrdMap` for everything,
//! costs ~2.5x on point reads; see NOTES/BENCHMARKS and `cargo bench --bench maps`). The keys
//! are shared `Arc<str>`s, so the set costs a pointer per key plus its tree nodes.
//!
//! Why `imbl::HashMap` (measured with `cargo bench --bench maps`, figures in BENCHMARKS.md):
//! `imbl` is the maintained fork of `im` (`im` has had no release since 2022); `rpds` was slower
//! on every operation (its red-black tree allocates a node per entry; iterating 1M pairs took
//! 3x `imbl::OrdMap`'s time). No persistent map stays within 10% of `std::collections::HashMap`:
//! at 1M keys `imbl::HashMap` reads take ~1.25x, `imbl::OrdMap` ~3.3x, writes ~3-5x for both.
//! Reads are what the store's one thread serves most, so the hash map stays for point
//! operations and the ordered set beside it serves listing.

use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use super::command::{Command, CommandOutcome, Effect};
use super::idempotency::{IdempotencyTable, Lookup, Record};

/// One key's value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub value: Arc<str>,
    /// Index of the write that last set it.
    pub mod_index: u64,
    /// Index of the set that created it (since it last did not exist).
    pub create_index: u64,
}

/// One key of a snapshot, as the codec reads and writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyEntry<'a> {
    pub key: &'a str,
    pub value: &'a str,
    pub mod_index: u64,
    pub create_index: u64,
}

/// The key-value map plus the index of the last applied command.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KvState {
    map: imbl::HashMap<Arc<str>, Versioned>,
    /// Every key of `map`, in byte order (for listing); changed only on create and delete.
    keys: imbl::OrdSet<Arc<str>>,
    /// Index of the last command applied; 0 before any. Every apply is at exactly `last + 1`.
    last_applied: u64,
    /// Order-independent digest of the map: the wrapping sum of [`pair_digest`] over all keys,
    /// kept up to date on every change. Replicas at the same applied index have equal digests.
    digest: u64,
    /// The first outcomes of writes with an idempotency key.
    idempotency: IdempotencyTable,
}

/// A 64-bit checksum of one key with its value and revisions (CRC-32 of the key, then of key,
/// value and indexes).
fn pair_digest(key: &str, v: &Versioned) -> u64 {
    let mut h = crc32fast::Hasher::new();
    h.update(key.as_bytes());
    let hi = h.clone().finalize();
    h.update(&[0xff]);
    h.update(v.value.as_bytes());
    h.update(&v.mod_index.to_le_bytes());
    h.update(&v.create_index.to_le_bytes());
    (u64::from(hi) << 32) | u64::from(h.finalize())
}

/// A command offered at the wrong index: the caller lost track of the log order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateError {
    pub expected: u64,
    pub got: u64,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "command applied out of order: expected index {}, got {}",
            self.expected, self.got
        )
    }
}

impl std::error::Error for StateError {}

/// A page of `GET /keys`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listing {
    /// `(key, value, mod_index)` in byte order.
    pub keys: Vec<(Arc<str>, Arc<str>, u64)>,
    /// Keys remain after the last one returned.
    pub more: bool,
}

impl KvState {
    /// An empty map at index 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Apply `cmd` as the command at log position `index`, which must be `last_applied() + 1`.
    pub fn apply(&mut self, index: u64, cmd: Command) -> Result<CommandOutcome, StateError> {
        self.advance_to(index)?;
        let Some(stamp) = cmd.stamp().cloned() else {
            return Ok(CommandOutcome::new(index, self.apply_effect(index, cmd)));
        };
        self.idempotency.advance(stamp.now_ms);
        let fingerprint = cmd.fingerprint();
        Ok(match self.idempotency.lookup(&stamp.id, fingerprint) {
            Lookup::Replay(r) => CommandOutcome {
                index: r.index,
                effect: r.effect,
                replayed: true,
            },
            Lookup::Reused => CommandOutcome::new(index, Effect::KeyReused),
            Lookup::New => {
                let effect = self.apply_effect(index, cmd);
                // The window counts from the table's clock (the largest `now_ms` seen, so
                // `stamp.now_ms` unless this leader's clock is behind an earlier one's): a
                // leader whose clock lags by more than the window still records its writes
                // (ending the window at `stamp.expires_ms`, it recorded nothing, and a retry
                // applied again).
                let window = stamp.expires_ms.saturating_sub(stamp.now_ms);
                self.idempotency.record(
                    &stamp.id,
                    Record {
                        fingerprint,
                        index,
                        effect,
                        expires_ms: self.idempotency.clock_ms().saturating_add(window),
                    },
                );
                CommandOutcome::new(index, effect)
            }
        })
    }

    /// The current modIndex of `key` (0: missing).
    fn mod_index_of(&self, key: &str) -> u64 {
        self.map.get(key).map_or(0, |v| v.mod_index)
    }

    fn apply_effect(&mut self, index: u64, cmd: Command) -> Effect {
        match cmd {
            Command::Set {
                key,
                value,
                if_mod_index,
                if_value,
                ..
            } => {
                let current = self.map.get(key.as_str());
                let mod_ok = if_mod_index.is_none_or(|m| m == current.map_or(0, |v| v.mod_index));
                let value_ok = if_value
                    .as_deref()
                    .is_none_or(|w| current.is_some_and(|v| &*v.value == w));
                if !(mod_ok && value_ok) {
                    return Effect::PreconditionFailed {
                        mod_index: self.mod_index_of(&key),
                    };
                }
                let key: Arc<str> = key.into();
                let create_index = current.map_or(index, |v| v.create_index);
                let new = Versioned {
                    value,
                    mod_index: index,
                    create_index,
                };
                self.digest = self.digest.wrapping_add(pair_digest(&key, &new));
                match self.map.insert(key.clone(), new) {
                    Some(old) => self.digest = self.digest.wrapping_sub(pair_digest(&key, &old)),
                    None => {
                        self.keys.insert(key);
                    }
                }
                Effect::Stored
            }
            Command::Delete {
                key, if_mod_index, ..
            } => {
                if let Some(m) = if_mod_index {
                    let current = self.mod_index_of(&key);
                    if m != current {
                        return Effect::PreconditionFailed { mod_index: current };
                    }
                }
                match self.map.remove(key.as_str()) {
                    Some(old) => {
                        self.digest = self.digest.wrapping_sub(pair_digest(&key, &old));
                        self.keys.remove(key.as_str());
                        Effect::Deleted
                    }
                    None => Effect::NotFound,
                }
            }
        }
    }

    /// Record a log position that carries no command (a leader's no-op), which must be
    /// `last_applied() + 1`.
    pub fn apply_noop(&mut self, index: u64) -> Result<(), StateError> {
        self.advance_to(index)
    }

    /// Move the applied index to `index`, which must be the next one.
    fn advance_to(&mut self, index: u64) -> Result<(), StateError> {
        let expected = self.last_applied + 1;
        if index != expected {
            return Err(StateError {
                expected,
                got: index,
            });
        }
        self.last_applied = index;
        Ok(())
    }

    /// The value stored under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(|v| &*v.value)
    }

    /// The value and revisions of `key`, if any.
    pub fn get_versioned(&self, key: &str) -> Option<&Versioned> {
        self.map.get(key)
    }

    /// The stored key (shared with the map) and its value and revisions, if any.
    pub fn get_entry(&self, key: &str) -> Option<(&Arc<str>, &Versioned)> {
        self.map.get_key_value(key)
    }

    /// Keys starting with `prefix`, strictly after `after` (if given), in byte order: at most
    /// `limit` of them, and no more once `max_bytes` of keys and values were taken (at least
    /// one key is).
    pub fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        max_bytes: usize,
    ) -> Listing {
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        let mut out = Listing::default();
        let mut bytes = 0usize;
        for key in self
            .keys
            .range::<_, str>((start, Bound::Unbounded))
            .take_while(|k| k.starts_with(prefix))
        {
            if out.keys.len() >= limit.max(1) || (!out.keys.is_empty() && bytes >= max_bytes) {
                out.more = true;
                break;
            }
            let Some(v) = self.map.get(key) else { continue };
            let next = key.len() + v.value.len();
            if !out.keys.is_empty() && bytes + next > max_bytes {
                out.more = true;
                break;
            }
            bytes += next;
            out.keys.push((key.clone(), v.value.clone(), v.mod_index));
        }
        out
    }

    /// The state a snapshot holds: `pairs` as of log index `last_applied`, each key with
    /// mod and create index `last_applied` (what a v1/v2 snapshot, which has none, gives).
    pub fn from_pairs(last_applied: u64, pairs: Vec<(String, String)>) -> Self {
        let revisions = vec![(last_applied, last_applied); pairs.len()];
        Self::from_parts(last_applied, pairs, revisions, IdempotencyTable::new())
    }

    /// The state a snapshot holds: `pairs` with their `(mod_index, create_index)` in
    /// `revisions` (same order; missing ones get `last_applied`), and the idempotency table.
    pub fn from_parts(
        last_applied: u64,
        pairs: Vec<(String, String)>,
        revisions: Vec<(u64, u64)>,
        idempotency: IdempotencyTable,
    ) -> Self {
        let mut s = KvState {
            last_applied,
            idempotency,
            ..Self::default()
        };
        let mut revs = revisions.into_iter();
        for (k, v) in pairs {
            let (mod_index, create_index) = revs.next().unwrap_or((last_applied, last_applied));
            let k: Arc<str> = k.into();
            let new = Versioned {
                value: v.into(),
                mod_index,
                create_index,
            };
            s.digest = s.digest.wrapping_add(pair_digest(&k, &new));
            match s.map.insert(k.clone(), new) {
                Some(old) => s.digest = s.digest.wrapping_sub(pair_digest(&k, &old)),
                None => {
                    s.keys.insert(k);
                }
            }
        }
        s
    }

    /// Every pair, in no particular order.
    pub fn pairs(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (&**k, &*v.value))
    }

    /// Every key with its value and revisions, in no particular order (for writing a snapshot).
    pub fn entries(&self) -> impl ExactSizeIterator<Item = KeyEntry<'_>> {
        self.map.iter().map(|(k, v)| KeyEntry {
            key: k,
            value: &v.value,
            mod_index: v.mod_index,
            create_index: v.create_index,
        })
    }

    /// The idempotency table (for writing a snapshot).
    pub fn idempotency(&self) -> &IdempotencyTable {
        &self.idempotency
    }

    /// Order-independent digest of the whole state replicas must agree on (keys, values,
    /// revisions, idempotency records), kept up to date incrementally, so reading it is free.
    pub fn digest(&self) -> u64 {
        if self.idempotency.is_empty() && self.idempotency.clock_ms() == 0 {
            self.digest
        } else {
            self.digest ^ self.idempotency.digest().rotate_left(1)
        }
    }

    /// Index of the last applied command (0 before any).
    pub fn last_applied(&self) -> u64 {
        self.last_applied
    }

    /// Number of keys stored.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no key is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::revision_tests::rebuilt;
    use super::*;

    fn set(k: &str, v: &str) -> Command {
        Command::set(k, v)
    }

    fn del(k: &str) -> Command {
        Command::delete(k)
    }

    fn out(index: u64, effect: Effect) -> Result<CommandOutcome, StateError> {
        Ok(CommandOutcome::new(index, effect))
    }

    #[test]
    fn set_then_get_returns_value() {
        let mut s = KvState::new();
        assert_eq!(s.apply(1, set("name", "luffy")), out(1, Effect::Stored));
        assert_eq!(s.get("name"), Some("luffy"));
        assert_eq!(s.len(), 1);
        assert_eq!(s.last_applied(), 1);
    }

    #[test]
    fn set_overwrites_previous_value() {
        let mut s = KvState::new();
        s.apply(1, set("k", "a")).unwrap();
        s.apply(2, set("k", "b")).unwrap();
        assert_eq!(s.get("k"), Some("b"));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn delete_existing_then_missing() {
        let mut s = KvState::new();
        s.apply(1, set("k", "v")).unwrap();
        assert_eq!(s.apply(2, del("k")), out(2, Effect::Deleted));
        assert_eq!(s.get("k"), None);
        assert!(s.is_empty());
        assert_eq!(s.apply(3, del("k")), out(3, Effect::NotFound));
        assert_eq!(
            s.last_applied(),
            3,
            "a no-op delete still advances the index"
        );
    }

    #[test]
    fn noops_advance_the_index_only() {
        let mut s = KvState::new();
        s.apply_noop(1).unwrap();
        s.apply(2, set("k", "v")).unwrap();
        assert_eq!(
            s.apply_noop(2),
            Err(StateError {
                expected: 3,
                got: 2
            })
        );
        s.apply_noop(3).unwrap();
        assert_eq!(s.last_applied(), 3);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn get_missing_is_none() {
        assert_eq!(KvState::new().get("nope"), None);
    }

    #[test]
    fn out_of_order_apply_is_refused_and_changes_nothing() {
        let mut s = KvState::new();
        assert_eq!(
            s.apply(2, set("k", "v")),
            Err(StateError {
                expected: 1,
                got: 2
            })
        );
        assert_eq!(s, KvState::new());
        s.apply(1, set("k", "v")).unwrap();
        assert_eq!(
            s.apply(1, set("k", "w")),
            Err(StateError {
                expected: 2,
                got: 1
            })
        );
        assert_eq!(s.get("k"), Some("v"));
    }

    #[test]
    fn arbitrary_utf8_keys_and_values() {
        let mut s = KvState::new();
        let key = "a b&c=d/é🚀";
        s.apply(1, set(key, "värde ✓")).unwrap();
        assert_eq!(s.get(key), Some("värde ✓"));
        s.apply(2, set("", "empty keys are refused at the API, not here"))
            .unwrap();
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn same_sequence_same_state() {
        let cmds = [
            set("a", "1"),
            set("b", "2"),
            del("a"),
            set("c", "3"),
            del("zz"),
        ];
        let run = || {
            let mut s = KvState::new();
            let outs: Vec<_> = cmds
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, c)| s.apply(i as u64 + 1, c).unwrap())
                .collect();
            (s, outs)
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn digest_depends_on_content_only_and_survives_a_snapshot() {
        let mut a = KvState::new();
        a.apply(1, set("x", "1")).unwrap();
        a.apply(2, set("y", "2")).unwrap();
        a.apply(3, set("x", "3")).unwrap();
        a.apply(4, del("y")).unwrap();
        let mut b = KvState::new();
        b.apply(1, set("x", "1")).unwrap();
        b.apply_noop(2).unwrap();
        b.apply(3, set("x", "3")).unwrap();
        assert_eq!(
            a.digest(),
            b.digest(),
            "same map and revisions, different history"
        );
        b.apply(4, set("x", "4")).unwrap();
        assert_ne!(a.digest(), b.digest());
        let v = |s: &str| Versioned {
            value: s.into(),
            mod_index: 1,
            create_index: 1,
        };
        assert_ne!(
            pair_digest("ab", &v("c")),
            pair_digest("a", &v("bc")),
            "the split between key and value counts"
        );
        let c = rebuilt(&a);
        assert_eq!(c, a);
        assert_eq!(c.digest(), a.digest());
        assert_eq!(KvState::new().digest(), 0);
    }
}

#[cfg(test)]
mod revision_tests {
    use super::*;
    use crate::store::command::Stamp;

    /// `s` written to its parts and read back (what a snapshot does).
    pub(super) fn rebuilt(s: &KvState) -> KvState {
        let (pairs, revisions): (Vec<_>, Vec<_>) = s
            .entries()
            .map(|e| {
                (
                    (e.key.to_owned(), e.value.to_owned()),
                    (e.mod_index, e.create_index),
                )
            })
            .unzip();
        let idem = IdempotencyTable::from_records(
            s.idempotency().clock_ms(),
            s.idempotency()
                .records()
                .map(|(k, r)| (k.to_owned(), *r))
                .collect(),
        );
        KvState::from_parts(s.last_applied(), pairs, revisions, idem)
    }

    fn cas(k: &str, v: &str, m: Option<u64>, iv: Option<&str>) -> Command {
        Command::Set {
            key: k.into(),
            value: v.into(),
            if_mod_index: m,
            if_value: iv.map(Into::into),
            stamp: None,
        }
    }

    fn revs(s: &KvState, k: &str) -> Option<(u64, u64)> {
        s.get_versioned(k).map(|v| (v.mod_index, v.create_index))
    }

    #[test]
    fn indexes_after_set_overwrite_delete_and_recreate() {
        let mut s = KvState::new();
        s.apply(1, Command::set("k", "a")).unwrap();
        assert_eq!(revs(&s, "k"), Some((1, 1)));
        s.apply_noop(2).unwrap();
        s.apply(3, Command::set("k", "b")).unwrap();
        assert_eq!(revs(&s, "k"), Some((3, 1)));
        s.apply(4, Command::delete("k")).unwrap();
        assert_eq!(revs(&s, "k"), None);
        s.apply(5, Command::set("k", "c")).unwrap();
        assert_eq!(revs(&s, "k"), Some((5, 5)));
    }

    #[test]
    fn compare_and_set_cases() {
        let mut s = KvState::new();
        let pf = |m| Effect::PreconditionFailed { mod_index: m };
        // ifModIndex 0: must not exist.
        assert_eq!(
            s.apply(1, cas("k", "a", Some(0), None)).unwrap().effect,
            Effect::Stored
        );
        assert_eq!(
            s.apply(2, cas("k", "b", Some(0), None)).unwrap().effect,
            pf(1)
        );
        assert_eq!(
            s.get("k"),
            Some("a"),
            "a failed precondition changes nothing"
        );
        assert_eq!(
            s.apply(3, cas("k", "b", Some(1), None)).unwrap().effect,
            Effect::Stored
        );
        assert_eq!(
            s.apply(4, cas("k", "c", Some(1), None)).unwrap().effect,
            pf(3)
        );
        // ifValue.
        assert_eq!(
            s.apply(5, cas("k", "c", None, Some("a"))).unwrap().effect,
            pf(3)
        );
        assert_eq!(
            s.apply(6, cas("k", "c", None, Some("b"))).unwrap().effect,
            Effect::Stored
        );
        assert_eq!(
            s.apply(7, cas("nope", "x", None, Some(""))).unwrap().effect,
            pf(0),
            "a missing key never matches"
        );
        // Both: both must hold.
        assert_eq!(
            s.apply(8, cas("k", "d", Some(6), Some("b")))
                .unwrap()
                .effect,
            pf(6)
        );
        assert_eq!(
            s.apply(9, cas("k", "d", Some(5), Some("c")))
                .unwrap()
                .effect,
            pf(6)
        );
        assert_eq!(
            s.apply(10, cas("k", "d", Some(6), Some("c")))
                .unwrap()
                .effect,
            Effect::Stored
        );
        // Delete with ifModIndex.
        let cdel = |m| Command::Delete {
            key: "k".into(),
            if_mod_index: Some(m),
            stamp: None,
        };
        assert_eq!(s.apply(11, cdel(6)).unwrap().effect, pf(10));
        assert_eq!(s.apply(12, cdel(10)).unwrap().effect, Effect::Deleted);
        assert_eq!(
            s.apply(13, cdel(0)).unwrap().effect,
            Effect::NotFound,
            "0 holds for a missing key"
        );
        assert_eq!(s.apply(14, cdel(3)).unwrap().effect, pf(0));
        assert_eq!(s.last_applied(), 14);
    }

    fn stamped(mut c: Command, id: &str, now_ms: u64, window: u64) -> Command {
        let st = Some(Stamp {
            id: id.into(),
            now_ms,
            expires_ms: now_ms + window,
        });
        match &mut c {
            Command::Set { stamp, .. } | Command::Delete { stamp, .. } => *stamp = st,
        }
        c
    }

    #[test]
    fn idempotent_replay_reuse_and_expiry() {
        let mut s = KvState::new();
        s.apply(1, Command::set("k", "v")).unwrap();
        let del = stamped(Command::delete("k"), "d1", 1_000, 500);
        assert_eq!(
            s.apply(2, del.clone()).unwrap(),
            CommandOutcome::new(2, Effect::Deleted)
        );
        // The retry (a later stamp from another leader): the first outcome, nothing applied.
        let retry = stamped(Command::delete("k"), "d1", 1_200, 9_000);
        assert_eq!(
            s.apply(3, retry).unwrap(),
            CommandOutcome {
                index: 2,
                effect: Effect::Deleted,
                replayed: true
            }
        );
        // The same key with another request.
        let other = stamped(Command::set("k", "x"), "d1", 1_200, 500);
        assert_eq!(
            s.apply(4, other).unwrap(),
            CommandOutcome::new(4, Effect::KeyReused)
        );
        assert_eq!(s.get("k"), None);
        // A 409 is recorded too.
        let c = stamped(cas("k", "x", Some(7), None), "c1", 1_300, 500);
        let first = s.apply(5, c.clone()).unwrap();
        assert_eq!(first.effect, Effect::PreconditionFailed { mod_index: 0 });
        s.apply(6, Command::set("k", "now it exists")).unwrap();
        let again = s.apply(7, stamped(c, "c1", 1_400, 500)).unwrap();
        assert_eq!(
            (again.index, again.effect, again.replayed),
            (5, first.effect, true)
        );
        // Past d1's window (1_500) by a later stamp: forgotten, applied anew.
        let late = stamped(Command::delete("k"), "d1", 1_500, 500);
        assert_eq!(
            s.apply(8, late).unwrap(),
            CommandOutcome::new(8, Effect::Deleted)
        );
        assert_eq!(rebuilt(&s), s);
    }

    /// Not fixed (RELIABILITY.md, "Upgrading to revisions"): after an upgrade, a key read from a v1/v2 snapshot
    /// gets the snapshot's index as its modIndex, which differs between replicas (each loads its
    /// own snapshot, or replayed the log); a compare-and-set on that key, evaluated at apply on
    /// every replica, then stores on one and fails on another: the maps diverge. Run with
    /// `cargo test --lib -- --ignored upgraded_replicas`.
    #[test]
    #[ignore = "known bug: replicas upgraded from v1/v2 snapshots can diverge on a CAS"]
    fn upgraded_replicas_apply_a_compare_and_set_alike() {
        // Both replicas applied index 1..=100: `k` was set at 42.
        let pairs = vec![("k".to_owned(), "v".to_owned())];
        let a = KvState::from_pairs(100, pairs.clone()); // restored from its v2 snapshot at 100
        let b = KvState::from_pairs(50, pairs); // from its v2 snapshot at 50, then replayed 51..=100
        let mut b = (51..=100).fold(b, |mut s, i| {
            s.apply_noop(i).unwrap();
            s
        });
        let mut a = a;
        // The leader (b) answered `modIndex: 50`; the client's CAS:
        let c = cas("k", "w", Some(50), None);
        let oa = a.apply(101, c.clone()).unwrap();
        let ob = b.apply(101, c).unwrap();
        assert_eq!(oa, ob, "the same entry, different outcomes");
        assert_eq!(a.get("k"), b.get("k"), "the maps diverged");
    }

    #[test]
    fn a_leader_whose_clock_lags_by_more_than_the_window_still_records() {
        let mut s = KvState::new();
        // A leader with a clock ahead stamped a write: the table's clock is 100_000.
        s.apply(1, stamped(Command::set("a", "1"), "a1", 100_000, 500))
            .unwrap();
        // The next leader's clock is 99 s behind (more than the 0.5 s window).
        let w = stamped(Command::set("k", "v"), "k1", 1_000, 500);
        assert_eq!(
            s.apply(2, w).unwrap(),
            CommandOutcome::new(2, Effect::Stored)
        );
        s.apply(3, Command::set("k", "changed")).unwrap();
        // Its client's retry is answered the first outcome, not applied again.
        let retry = stamped(Command::set("k", "v"), "k1", 1_100, 500);
        assert_eq!(
            s.apply(4, retry).unwrap(),
            CommandOutcome {
                index: 2,
                effect: Effect::Stored,
                replayed: true
            }
        );
        assert_eq!(s.get("k"), Some("changed"));
        // The window still ends: 500 ms past the table's clock.
        let late = stamped(Command::set("k", "v"), "k1", 100_500, 500);
        assert_eq!(
            s.apply(5, late).unwrap(),
            CommandOutcome::new(5, Effect::Stored)
        );
        assert_eq!(rebuilt(&s), s);
    }

    #[test]
    fn replicas_expire_the_same_keys_whatever_their_own_settings() {
        // The window and the clock travel in the commands: two replicas applying the same
        // log agree, entry by entry, on outcomes and digests.
        let log: Vec<Command> = (0..200u64)
            .map(|i| {
                let id = format!("id{}", i % 17);
                let c = if i % 3 == 0 {
                    Command::delete(format!("k{}", i % 5))
                } else {
                    Command::set(format!("k{}", i % 5), i.to_string())
                };
                stamped(c, &id, 10 * i, if i % 2 == 0 { 50 } else { 300 })
            })
            .collect();
        let mut a = KvState::new();
        let mut b = KvState::new();
        for (i, c) in log.into_iter().enumerate() {
            let oa = a.apply(i as u64 + 1, c.clone()).unwrap();
            let ob = b.apply(i as u64 + 1, c).unwrap();
            assert_eq!(oa, ob);
            assert_eq!(a.digest(), b.digest());
            if i == 100 {
                b = rebuilt(&b); // one of them restarted from a snapshot
            }
        }
        assert!(a.idempotency().len() <= 17);
    }

    #[test]
    fn listing_in_byte_order_with_prefix_after_limit_and_bytes() {
        let mut s = KvState::new();
        let keys = ["a", "ab", "abc", "b", "é", "éa", "z", "\u{10348}", "a\u{0}"];
        for (i, k) in keys.iter().enumerate() {
            s.apply(i as u64 + 1, Command::set(*k, "vv")).unwrap();
        }
        let names = |l: &Listing| {
            l.keys
                .iter()
                .map(|(k, _, _)| k.to_string())
                .collect::<Vec<_>>()
        };
        let all = s.list("", None, 100, usize::MAX);
        assert_eq!(
            names(&all),
            ["a", "a\u{0}", "ab", "abc", "b", "z", "é", "éa", "\u{10348}"]
        );
        assert!(!all.more);
        let p = s.list("a", None, 2, usize::MAX);
        assert_eq!(
            (names(&p), p.more),
            (vec!["a".to_owned(), "a\u{0}".to_owned()], true)
        );
        let p = s.list("a", Some("a\u{0}"), 2, usize::MAX);
        assert_eq!(
            (names(&p), p.more),
            (vec!["ab".to_owned(), "abc".to_owned()], false)
        );
        assert_eq!(names(&s.list("é", None, 10, usize::MAX)), ["é", "éa"]);
        assert_eq!(
            names(&s.list("a", Some("0"), 1, usize::MAX)),
            ["a"],
            "after before the prefix"
        );
        assert!(
            s.list("a", Some("b"), 10, usize::MAX).keys.is_empty(),
            "after past the prefix"
        );
        assert!(s.list("q", None, 10, usize::MAX).keys.is_empty());
        // Bytes: stops before going over, but always returns one.
        let b = s.list("", None, 100, 7);
        assert_eq!(
            (names(&b), b.more),
            (vec!["a".to_owned(), "a\u{0}".to_owned()], true)
        );
        let b = s.list("", None, 100, 0);
        assert_eq!(b.keys.len(), 1);
        assert_eq!(b.keys[0].2, 1, "modIndex");
        s.apply(10, Command::delete("ab")).unwrap();
        assert_eq!(names(&s.list("ab", None, 10, usize::MAX)), ["abc"]);
    }
}
