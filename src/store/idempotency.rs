//! [`IdempotencyTable`]: the outcomes of writes that carried an `Idempotency-Key`, so that a
//! retry answers the first outcome instead of applying again.
//!
//! Pure and deterministic: no clock of its own, no I/O. Its clock is the largest `now_ms` any
//! stamped command carried (the leader's wall clock when it proposed it), so every replica
//! expires the same keys at the same log index whatever its own settings or clock. Bounded two
//! ways: a key is forgotten once the clock passes the end of its window (`expires_ms`: the
//! clock when it was recorded plus the window its command carried), and at most [`MAX_ENTRIES`] keys are kept (when full, the key
//! expiring first is evicted, ties broken by the index it was recorded at: deterministic).
//! Persistent maps, so a snapshot clones it in O(1).
//!
//! It must never decide a window or read a clock: the leader's handler does.

use std::sync::Arc;

use super::command::{Effect, Fingerprint};

/// Most idempotency keys remembered at once (about 300 bytes each at most: ~60 MiB).
pub const MAX_ENTRIES: usize = 200_000;

/// The first outcome of one idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Of the request's fields (a retry must match it).
    pub fingerprint: Fingerprint,
    /// The log index it was applied at.
    pub index: u64,
    pub effect: Effect,
    /// The end of its window (ms since the Unix epoch): forgotten once the clock reaches it.
    pub expires_ms: u64,
}

/// See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdempotencyTable {
    by_key: imbl::HashMap<Arc<str>, Record>,
    /// `(expires_ms, index, key)` of every record: what expires or is evicted first.
    by_expiry: imbl::OrdSet<(u64, u64, Arc<str>)>,
    /// The largest `now_ms` seen.
    clock_ms: u64,
    /// Order-independent digest of the records (wrapping sum of [`record_digest`]).
    digest: u64,
}

/// What a stamped command finds in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Not recorded (or expired): apply it, then [`IdempotencyTable::record`].
    New,
    /// Recorded with this request: answer the record, apply nothing.
    Replay(Record),
    /// Recorded with another request: refuse (422).
    Reused,
}

fn record_digest(key: &str, r: &Record) -> u64 {
    let mut h = crc32fast::Hasher::new();
    h.update(key.as_bytes());
    let hi = h.clone().finalize();
    h.update(&[0xfe]);
    h.update(&r.fingerprint.0);
    h.update(&r.index.to_le_bytes());
    h.update(&r.expires_ms.to_le_bytes());
    let (tag, m) = effect_code(r.effect);
    h.update(&[tag]);
    h.update(&m.to_le_bytes());
    (u64::from(hi) << 32) | u64::from(h.finalize())
}

/// The effect as a tag and a number (the codec's encoding too).
pub fn effect_code(e: Effect) -> (u8, u64) {
    match e {
        Effect::Stored => (1, 0),
        Effect::Deleted => (2, 0),
        Effect::NotFound => (3, 0),
        Effect::PreconditionFailed { mod_index } => (4, mod_index),
        Effect::KeyReused => (5, 0),
    }
}

/// The reverse of [`effect_code`] (`None`: not a tag ever written).
pub fn effect_from_code(tag: u8, m: u64) -> Option<Effect> {
    Some(match tag {
        1 => Effect::Stored,
        2 => Effect::Deleted,
        3 => Effect::NotFound,
        4 => Effect::PreconditionFailed { mod_index: m },
        _ => return None,
    })
}

impl IdempotencyTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Move the clock to `now_ms` (never back) and forget every key whose window ended.
    pub fn advance(&mut self, now_ms: u64) {
        self.clock_ms = self.clock_ms.max(now_ms);
        while let Some((expires, _, _)) = self.by_expiry.get_min() {
            if *expires > self.clock_ms {
                break;
            }
            self.evict_first();
        }
    }

    fn evict_first(&mut self) {
        if let Some((_, _, key)) = self.by_expiry.remove_min() {
            if let Some(r) = self.by_key.remove(&key) {
                self.digest = self.digest.wrapping_sub(record_digest(&key, &r));
            }
        }
    }

    /// What `id` holds for a request with `fingerprint` (call [`Self::advance`] first).
    pub fn lookup(&self, id: &str, fingerprint: Fingerprint) -> Lookup {
        match self.by_key.get(id) {
            None => Lookup::New,
            Some(r) if r.fingerprint == fingerprint => Lookup::Replay(*r),
            Some(_) => Lookup::Reused,
        }
    }

    /// Remember the first outcome of `id` (a [`Lookup::New`] one). A record whose window has
    /// already ended is not kept; past [`MAX_ENTRIES`], the first to expire goes.
    pub fn record(&mut self, id: &str, r: Record) {
        if r.expires_ms <= self.clock_ms || matches!(r.effect, Effect::KeyReused) {
            return;
        }
        let key: Arc<str> = id.into();
        if let Some(old) = self.by_key.insert(key.clone(), r) {
            // Not reached through `lookup` (a recorded key is never New); kept consistent.
            self.by_expiry
                .remove(&(old.expires_ms, old.index, key.clone()));
            self.digest = self.digest.wrapping_sub(record_digest(&key, &old));
        }
        self.digest = self.digest.wrapping_add(record_digest(&key, &r));
        self.by_expiry.insert((r.expires_ms, r.index, key));
        while self.by_key.len() > MAX_ENTRIES {
            self.evict_first();
        }
    }

    /// The clock: the largest `now_ms` seen.
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Order-independent digest of the records and the clock.
    pub fn digest(&self) -> u64 {
        self.digest ^ self.clock_ms.rotate_left(17)
    }

    /// Every record, first to expire first (for snapshots).
    pub fn records(&self) -> impl ExactSizeIterator<Item = (&str, &Record)> + '_ {
        let by_key = &self.by_key;
        RecordsIter {
            inner: self.by_expiry.iter(),
            by_key,
            left: by_key.len(),
        }
    }

    /// A table read back from a snapshot (records in any order). Records past the clock are
    /// dropped, and at most [`MAX_ENTRIES`] are kept, as if recorded one by one.
    pub fn from_records(clock_ms: u64, records: Vec<(String, Record)>) -> Self {
        let mut t = IdempotencyTable {
            clock_ms,
            ..Self::default()
        };
        for (id, r) in records {
            t.record(&id, r);
        }
        t
    }
}

struct RecordsIter<'a, I> {
    inner: I,
    by_key: &'a imbl::HashMap<Arc<str>, Record>,
    left: usize,
}

impl<'a, I: Iterator<Item = &'a (u64, u64, Arc<str>)>> Iterator for RecordsIter<'a, I> {
    type Item = (&'a str, &'a Record);
    fn next(&mut self) -> Option<Self::Item> {
        let (_, _, key) = self.inner.next()?;
        self.left = self.left.saturating_sub(1);
        let r = self.by_key.get(key)?;
        Some((&**key, r))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<'a, I: Iterator<Item = &'a (u64, u64, Arc<str>)>> ExactSizeIterator for RecordsIter<'a, I> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(b: u8) -> Fingerprint {
        Fingerprint([b; 16])
    }

    fn rec(b: u8, index: u64, expires_ms: u64) -> Record {
        Record {
            fingerprint: fp(b),
            index,
            effect: Effect::Stored,
            expires_ms,
        }
    }

    #[test]
    fn replay_reuse_and_expiry() {
        let mut t = IdempotencyTable::new();
        t.advance(100);
        assert_eq!(t.lookup("a", fp(1)), Lookup::New);
        t.record("a", rec(1, 7, 200));
        assert_eq!(t.lookup("a", fp(1)), Lookup::Replay(rec(1, 7, 200)));
        assert_eq!(t.lookup("a", fp(2)), Lookup::Reused);
        t.advance(150); // not yet
        assert_eq!(t.len(), 1);
        t.advance(120); // the clock never goes back
        assert_eq!(t.clock_ms(), 150);
        t.advance(200);
        assert_eq!(t.lookup("a", fp(1)), Lookup::New);
        assert!(t.is_empty());
        assert_eq!(
            t.digest(),
            IdempotencyTable::from_records(200, vec![]).digest()
        );
    }

    #[test]
    fn a_record_already_expired_is_not_kept() {
        let mut t = IdempotencyTable::new();
        t.advance(100);
        t.record("a", rec(1, 1, 100));
        assert!(t.is_empty());
    }

    #[test]
    fn the_cap_evicts_the_first_to_expire_deterministically() {
        let mut t = IdempotencyTable::new();
        for i in 0..(MAX_ENTRIES as u64 + 3) {
            // Two windows interleaved: the shorter ones go first.
            let expires = if i % 2 == 0 { 1_000 + i } else { 10_000 + i };
            t.record(&format!("k{i}"), rec(1, i + 1, expires));
        }
        assert_eq!(t.len(), MAX_ENTRIES);
        for gone in ["k0", "k2", "k4"] {
            assert_eq!(t.lookup(gone, fp(1)), Lookup::New, "{gone}");
        }
        assert!(matches!(t.lookup("k6", fp(1)), Lookup::Replay(_)));
        let again = IdempotencyTable::from_records(
            t.clock_ms(),
            t.records().map(|(k, r)| (k.to_owned(), *r)).collect(),
        );
        assert_eq!(again, t);
        assert_eq!(t.records().len(), MAX_ENTRIES);
    }

    #[test]
    fn codes_round_trip() {
        for e in [
            Effect::Stored,
            Effect::Deleted,
            Effect::NotFound,
            Effect::PreconditionFailed { mod_index: 9 },
        ] {
            let (t, m) = effect_code(e);
            assert_eq!(effect_from_code(t, m), Some(e));
        }
        assert_eq!(effect_from_code(5, 0), None);
        assert_eq!(effect_from_code(0, 0), None);
    }
}
