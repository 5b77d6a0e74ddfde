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
//! Why `imbl::HashMap` (measured with `cargo bench --bench maps`, figures in BENCHMARKS.md):
//! `imbl` is the maintained fork of `im` (`im` has had no release since 2022); `rpds` was slower
//! on every operation (its red-black tree allocates a node per entry; iterating 1M pairs took
//! 3x `imbl::OrdMap`'s time). No persistent map stays within 10% of `std::collections::HashMap`:
//! at 1M keys `imbl::HashMap` reads take ~1.25x, `imbl::OrdMap` ~3.3x, writes ~3-5x for both.
//! Reads are what the store's one thread serves most, so the hash map wins for now; the ordered
//! `imbl::OrdMap` has the same API, so prefix listing can switch with a one-line change and a
//! re-measure.

use std::fmt;
use std::sync::Arc;

use super::command::{Command, CommandOutcome};

/// The key-value map plus the index of the last applied command.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KvState {
    map: imbl::HashMap<Arc<str>, Arc<str>>,
    /// Index of the last command applied; 0 before any. Every apply is at exactly `last + 1`.
    last_applied: u64,
    /// Order-independent digest of the map: the wrapping sum of [`pair_digest`] over all pairs,
    /// kept up to date on every change. Replicas at the same applied index have equal digests.
    digest: u64,
}

/// A 64-bit checksum of one key-value pair (CRC-32 of the key, then of key and value).
fn pair_digest(key: &str, value: &str) -> u64 {
    let mut h = crc32fast::Hasher::new();
    h.update(key.as_bytes());
    let hi = h.clone().finalize();
    h.update(&[0xff]);
    h.update(value.as_bytes());
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

impl KvState {
    /// An empty map at index 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Apply `cmd` as the command at log position `index`, which must be `last_applied() + 1`.
    pub fn apply(&mut self, index: u64, cmd: Command) -> Result<CommandOutcome, StateError> {
        self.advance_to(index)?;
        Ok(match cmd {
            Command::Set { key, value } => {
                let key: Arc<str> = key.into();
                self.digest = self.digest.wrapping_add(pair_digest(&key, &value));
                if let Some(old) = self.map.insert(key.clone(), value.into()) {
                    self.digest = self.digest.wrapping_sub(pair_digest(&key, &old));
                }
                CommandOutcome::Stored
            }
            Command::Delete { key } => match self.map.remove(key.as_str()) {
                Some(old) => {
                    self.digest = self.digest.wrapping_sub(pair_digest(&key, &old));
                    CommandOutcome::Deleted
                }
                None => CommandOutcome::NotFound,
            },
        })
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
        self.map.get(key).map(|v| &**v)
    }

    /// The state a snapshot holds: `pairs` as of log index `last_applied`.
    pub fn from_pairs(last_applied: u64, pairs: Vec<(String, String)>) -> Self {
        let mut digest = 0u64;
        let mut map = imbl::HashMap::<Arc<str>, Arc<str>>::new();
        for (k, v) in pairs {
            let k: Arc<str> = k.into();
            digest = digest.wrapping_add(pair_digest(&k, &v));
            if let Some(old) = map.insert(k.clone(), v.into()) {
                digest = digest.wrapping_sub(pair_digest(&k, &old));
            }
        }
        KvState {
            map,
            last_applied,
            digest,
        }
    }

    /// Every pair, in no particular order (for writing a snapshot).
    pub fn pairs(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (&**k, &**v))
    }

    /// Order-independent digest of the whole map (equal maps have equal digests), kept up to
    /// date incrementally, so reading it is free.
    pub fn digest(&self) -> u64 {
        self.digest
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
    use super::*;

    fn set(k: &str, v: &str) -> Command {
        Command::Set {
            key: k.into(),
            value: v.into(),
        }
    }

    fn del(k: &str) -> Command {
        Command::Delete { key: k.into() }
    }

    #[test]
    fn set_then_get_returns_value() {
        let mut s = KvState::new();
        assert_eq!(s.apply(1, set("name", "luffy")), Ok(CommandOutcome::Stored));
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
        assert_eq!(s.apply(2, del("k")), Ok(CommandOutcome::Deleted));
        assert_eq!(s.get("k"), None);
        assert!(s.is_empty());
        assert_eq!(s.apply(3, del("k")), Ok(CommandOutcome::NotFound));
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
        b.apply(1, set("x", "3")).unwrap();
        assert_eq!(a.digest(), b.digest(), "same map, different history");
        b.apply(2, set("x", "4")).unwrap();
        assert_ne!(a.digest(), b.digest());
        assert_ne!(
            pair_digest("ab", "c"),
            pair_digest("a", "bc"),
            "the split between key and value counts"
        );
        let pairs = a
            .pairs()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let c = KvState::from_pairs(4, pairs);
        assert_eq!(c, a);
        assert_eq!(KvState::new().digest(), 0);
    }
}
