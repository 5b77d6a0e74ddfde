//! The snapshot file format: the whole key-value map as of one log index, with the cluster
//! configuration in force at that index. Pure: bytes in, values out, and the reverse;
//! [`crate::storage::snapshot`] writes and reads the files.
//!
//! Format v3 (written): `KVSNAP\0\3` magic, then `index u64 | term u64`, then the
//! configuration (`voters u32`, each `id_len u32 | id | url_len u32 | url`, then `learners
//! u32` and each the same; no members at all means "no configuration recorded"), then
//! `pairs u64` and each key as `key_len u32 | key | value_len u32 | value | mod_index u64 |
//! create_index u64`, then the idempotency table: `clock_ms u64 | records u64` and each record
//! as `id_len u32 | id | fingerprint [16] | index u64 | effect u8 | mod_index u64 |
//! expires_ms u64`, then a CRC-32 of everything after the magic (little endian). At most
//! [`MAX_MEMBERS`] members, ids of at most [`MAX_ID_BYTES`], URLs of at most [`MAX_URL_BYTES`],
//! idempotency records at most [`idempotency::MAX_ENTRIES`].
//!
//! Format v2 (still read): `KVSNAP\0\2`, pairs without revisions and no idempotency table;
//! format v1 (still read): `KVSNAP\0\1`, the same without the configuration (it decodes with
//! `configuration: None`: the node keeps the configuration it has). Their keys get mod and
//! create index = the snapshot's index (replicas that replayed the log instead may know older
//! ones: see RELIABILITY's upgrade note).
//!
//! The same bytes are what a leader streams to a follower that fell behind.

use std::path::PathBuf;

use crate::raft::core::MAX_MEMBERS;
use crate::raft::rpc::{MAX_ID_BYTES, MAX_URL_BYTES};
use crate::raft::{Configuration, LogIndex, Member, Term};
use crate::store::command::{
    Fingerprint, MAX_IDEMPOTENCY_KEY_BYTES, MAX_KEY_BYTES, MAX_VALUE_BYTES,
};
use crate::store::idempotency::{self, IdempotencyTable, Record};
use crate::store::state::{KeyEntry, KvState};

/// The magic of the format written now (v3: with revisions and the idempotency table).
pub(crate) const MAGIC: &[u8; 8] = b"KVSNAP\x00\x03";
/// The magic of v2 (with the configuration, no revisions), still read.
pub(crate) const MAGIC_V2: &[u8; 8] = b"KVSNAP\x00\x02";
/// The magic of the first format (no configuration), still read.
pub(crate) const MAGIC_V1: &[u8; 8] = b"KVSNAP\x00\x01";

/// A snapshot's position in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SnapshotMeta {
    /// Index of the last entry the snapshot includes.
    pub index: LogIndex,
    /// Term of that entry.
    pub term: Term,
}

/// A snapshot read back from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    /// The configuration in force at `meta.index` (`None`: a v1 file, or none recorded).
    pub configuration: Option<Configuration>,
    pub pairs: Vec<(String, String)>,
    /// `(mod_index, create_index)` of each pair, in the same order (a v1/v2 file: the
    /// snapshot's index for every key).
    pub revisions: Vec<(u64, u64)>,
    /// The first outcomes of idempotent writes (empty from a v1/v2 file).
    pub idempotency: IdempotencyTable,
    /// The file it came from (none for bytes received from a leader).
    pub path: Option<PathBuf>,
}

impl Snapshot {
    /// The state machine it holds.
    pub fn into_state(self) -> KvState {
        KvState::from_parts(
            self.meta.index,
            self.pairs,
            self.revisions,
            self.idempotency,
        )
    }

    /// Every key with its value and revisions.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = KeyEntry<'_>> {
        self.pairs
            .iter()
            .zip(&self.revisions)
            .map(|((k, v), (m, c))| KeyEntry {
                key: k,
                value: v,
                mod_index: *m,
                create_index: *c,
            })
    }
}

/// The bytes of a snapshot holding `state` at `meta` (`meta.index` is normally
/// `state.last_applied()`), with `configuration` recorded. O(keys).
pub fn encode_state(
    meta: SnapshotMeta,
    configuration: Option<&Configuration>,
    state: &KvState,
) -> Vec<u8> {
    encode(meta, configuration, state.entries(), state.idempotency())
}

/// The bytes of a snapshot holding plain `pairs`, each with mod and create index `meta.index`,
/// and no idempotency record (tests and tools).
pub fn encode_pairs<'a>(
    meta: SnapshotMeta,
    configuration: Option<&Configuration>,
    pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
) -> Vec<u8> {
    let entries = pairs.map(|(key, value)| KeyEntry {
        key,
        value,
        mod_index: meta.index,
        create_index: meta.index,
    });
    encode(meta, configuration, entries, &IdempotencyTable::new())
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// The bytes of a snapshot file holding `entries` and `idempotency` at `meta`, with
/// `configuration` (the one in force at `meta.index`) recorded (the same bytes travel to
/// followers that need the snapshot).
pub fn encode<'a>(
    meta: SnapshotMeta,
    configuration: Option<&Configuration>,
    entries: impl ExactSizeIterator<Item = KeyEntry<'a>>,
    idempotency: &IdempotencyTable,
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64 + entries.len() * 48);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&meta.index.to_le_bytes());
    buf.extend_from_slice(&meta.term.to_le_bytes());
    let (voters, learners) = match configuration {
        Some(c) => (c.voters(), c.learners()),
        None => (&[][..], &[][..]),
    };
    for members in [voters, learners] {
        buf.extend_from_slice(&(members.len() as u32).to_le_bytes());
        for m in members {
            put_str(&mut buf, &m.id);
            put_str(&mut buf, &m.url);
        }
    }
    buf.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for e in entries {
        put_str(&mut buf, e.key);
        put_str(&mut buf, e.value);
        buf.extend_from_slice(&e.mod_index.to_le_bytes());
        buf.extend_from_slice(&e.create_index.to_le_bytes());
    }
    buf.extend_from_slice(&idempotency.clock_ms().to_le_bytes());
    let records = idempotency.records();
    buf.extend_from_slice(&(records.len() as u64).to_le_bytes());
    for (id, r) in records {
        put_str(&mut buf, id);
        buf.extend_from_slice(&r.fingerprint.0);
        buf.extend_from_slice(&r.index.to_le_bytes());
        let (tag, m) = idempotency::effect_code(r.effect);
        buf.push(tag);
        buf.extend_from_slice(&m.to_le_bytes());
        buf.extend_from_slice(&r.expires_ms.to_le_bytes());
    }
    let sum = crc32fast::hash(&buf[MAGIC.len()..]);
    buf.extend_from_slice(&sum.to_le_bytes());
    buf
}

/// The bytes of a v2 snapshot (configuration, no revisions), as nodes wrote before v3: only
/// for tests of reading old files.
#[cfg(test)]
pub(crate) fn encode_v2<'a>(
    meta: SnapshotMeta,
    configuration: Option<&Configuration>,
    pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
) -> Vec<u8> {
    let mut buf = MAGIC_V2.to_vec();
    buf.extend_from_slice(&meta.index.to_le_bytes());
    buf.extend_from_slice(&meta.term.to_le_bytes());
    let (voters, learners) = match configuration {
        Some(c) => (c.voters(), c.learners()),
        None => (&[][..], &[][..]),
    };
    for members in [voters, learners] {
        buf.extend_from_slice(&(members.len() as u32).to_le_bytes());
        for m in members {
            put_str(&mut buf, &m.id);
            put_str(&mut buf, &m.url);
        }
    }
    put_pairs(&mut buf, pairs);
    let sum = crc32fast::hash(&buf[MAGIC.len()..]);
    buf.extend_from_slice(&sum.to_le_bytes());
    buf
}

#[cfg(test)]
fn put_pairs<'a>(buf: &mut Vec<u8>, pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)>) {
    buf.extend_from_slice(&(pairs.len() as u64).to_le_bytes());
    for (k, v) in pairs {
        put_str(buf, k);
        put_str(buf, v);
    }
}

/// The bytes of a v1 snapshot (no configuration), as nodes wrote before v2: only for tests of
/// reading old files.
#[cfg(test)]
pub(crate) fn encode_v1<'a>(
    meta: SnapshotMeta,
    pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
) -> Vec<u8> {
    let mut buf = Vec::new();
    buf.extend_from_slice(MAGIC_V1);
    buf.extend_from_slice(&meta.index.to_le_bytes());
    buf.extend_from_slice(&meta.term.to_le_bytes());
    put_pairs(&mut buf, pairs);
    let sum = crc32fast::hash(&buf[MAGIC_V1.len()..]);
    buf.extend_from_slice(&sum.to_le_bytes());
    buf
}

/// Reads fields out of the checked body; every error is a short description.
struct Reader<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let out = self
            .at
            .checked_add(n)
            .and_then(|end| self.body.get(self.at..end))
            .ok_or_else(|| "content ends too early".to_owned())?;
        self.at += n;
        Ok(out)
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| "bad u64")?))
    }
    fn u32(&mut self) -> Result<usize, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes(b.try_into().map_err(|_| "bad u32")?) as usize)
    }
    /// A string of at most `max` bytes; `what` names it in errors.
    fn string(&mut self, max: usize, what: &str) -> Result<String, String> {
        let n = self.u32()?;
        if n > max {
            return Err(format!("{what} of {n} bytes, more than any node accepts"));
        }
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }
    /// A count of members (at most `room`), then each id and URL.
    fn members(&mut self, room: usize) -> Result<Vec<Member>, String> {
        let n = self.u32()?;
        if n > room {
            return Err(format!(
                "a configuration of more than {MAX_MEMBERS} members"
            ));
        }
        (0..n)
            .map(|_| {
                // A peer known by its URL only has it as its (provisional) id: up to a URL's
                // length; any other id up to an id's.
                let id = self.string(MAX_URL_BYTES, "a member id")?;
                let url = self.string(MAX_URL_BYTES, "a member URL")?;
                if id.len() > MAX_ID_BYTES && id != url {
                    return Err(format!(
                        "a member id of {} bytes, more than any node accepts",
                        id.len()
                    ));
                }
                Ok(Member::new(id, url))
            })
            .collect()
    }
}

/// Check and parse the bytes of a snapshot file (v3; v2 without revisions; v1 without a
/// configuration either).
pub fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
    if bytes.len() < MAGIC.len() + 28 {
        return Err("file too short".into());
    }
    let version = match &bytes[..MAGIC.len()] {
        m if m == MAGIC => 3,
        m if m == MAGIC_V2 => 2,
        m if m == MAGIC_V1 => 1,
        _ => return Err("not a kvstore snapshot (bad magic)".into()),
    };
    let v2 = version >= 2;
    let (body, sum) = bytes[MAGIC.len()..].split_at(bytes.len() - MAGIC.len() - 4);
    let expected = u32::from_le_bytes(sum.try_into().map_err(|_| "checksum missing")?);
    if crc32fast::hash(body) != expected {
        return Err("checksum mismatch".into());
    }
    let mut r = Reader { body, at: 0 };
    let index = r.u64()?;
    let term = r.u64()?;
    let configuration = if v2 {
        let voters = r.members(MAX_MEMBERS)?;
        let learners = r.members(MAX_MEMBERS - voters.len())?;
        if voters.is_empty() && learners.is_empty() {
            None
        } else {
            Some(
                Configuration::with_learners(voters, learners)
                    .map_err(|e| format!("bad configuration: {e}"))?,
            )
        }
    } else {
        None
    };
    let count = r.u64()?;
    let mut pairs = Vec::with_capacity(count.min(body.len() as u64 / 8) as usize);
    let mut revisions = Vec::with_capacity(pairs.capacity());
    for _ in 0..count {
        // No node ever stored a longer key or value (see `store::command`).
        let k = r.string(MAX_KEY_BYTES, "a key")?;
        let v = r.string(MAX_VALUE_BYTES, "a value")?;
        pairs.push((k, v));
        revisions.push(if version >= 3 {
            let (m, c) = (r.u64()?, r.u64()?);
            if m > index || c > m || c == 0 {
                return Err(format!(
                    "a key with modIndex {m} and createIndex {c} in a snapshot at index {index}"
                ));
            }
            (m, c)
        } else {
            (index, index)
        });
    }
    let idempotency = if version >= 3 {
        let clock_ms = r.u64()?;
        let n = r.u64()?;
        if n > idempotency::MAX_ENTRIES as u64 {
            return Err(format!(
                "{n} idempotency records (at most {})",
                idempotency::MAX_ENTRIES
            ));
        }
        let mut records = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let id = r.string(MAX_IDEMPOTENCY_KEY_BYTES, "an idempotency key")?;
            let mut fp = [0u8; 16];
            fp.copy_from_slice(r.take(16)?);
            let at = r.u64()?;
            let tag = r.take(1)?[0];
            let m = r.u64()?;
            let effect = idempotency::effect_from_code(tag, m)
                .ok_or_else(|| format!("bad idempotency outcome tag {tag}"))?;
            let expires_ms = r.u64()?;
            if at > index {
                return Err(format!(
                    "an idempotency record at index {at} in a snapshot at index {index}"
                ));
            }
            records.push((
                id,
                Record {
                    fingerprint: Fingerprint(fp),
                    index: at,
                    effect,
                    expires_ms,
                },
            ));
        }
        IdempotencyTable::from_records(clock_ms, records)
    } else {
        IdempotencyTable::new()
    };
    if r.at != body.len() {
        return Err("trailing bytes after the pairs".into());
    }
    Ok(Snapshot {
        meta: SnapshotMeta { index, term },
        configuration,
        pairs,
        revisions,
        idempotency,
        path: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf() -> Configuration {
        Configuration::with_learners(
            vec![
                Member::new("n1", "http://127.0.0.1:8081"),
                Member::by_url("http://127.0.0.1:8082"),
            ],
            vec![Member::new("n4", "http://127.0.0.1:8084")],
        )
        .unwrap()
    }

    const META: SnapshotMeta = SnapshotMeta { index: 42, term: 7 };

    fn pairs() -> Vec<(String, String)> {
        (0..20)
            .map(|i| (format!("k{i} ü"), "v".repeat(i)))
            .collect()
    }

    fn refs(p: &[(String, String)]) -> impl ExactSizeIterator<Item = (&str, &str)> {
        p.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    #[test]
    fn a_v2_snapshot_round_trips_with_its_configuration() {
        let p = pairs();
        let bytes = encode_v2(META, Some(&conf()), refs(&p));
        assert_eq!(&bytes[..8], MAGIC_V2);
        let s = decode(&bytes).unwrap();
        assert_eq!(s.meta, META);
        assert_eq!(s.configuration, Some(conf()));
        assert_eq!(s.pairs, p);
        assert!(
            s.revisions.iter().all(|r| *r == (42, 42)),
            "v2: the snapshot's index"
        );
        assert!(s.idempotency.is_empty());
        // Without a configuration: recorded as none.
        let s = decode(&encode_v2(META, None, refs(&p))).unwrap();
        assert_eq!((s.configuration, s.pairs), (None, p));
    }

    #[test]
    fn a_provisional_id_may_be_as_long_as_a_url() {
        // PEERS allows URLs longer than an id may be; a peer known by its URL only (say one
        // that never answered) has it as its id, and every snapshot records it.
        let long = format!("http://{}.example:8082", "h".repeat(MAX_ID_BYTES));
        let c = Configuration::new(vec![
            Member::new("n1", "http://127.0.0.1:8081"),
            Member::by_url(long.as_str()),
        ])
        .unwrap();
        let p = pairs();
        let s = decode(&encode_pairs(META, Some(&c), refs(&p))).expect("a snapshot it wrote");
        assert_eq!(s.configuration, Some(c));
    }

    #[test]
    fn a_v1_snapshot_still_reads_without_a_configuration() {
        let p = pairs();
        let bytes = encode_v1(META, refs(&p));
        assert_eq!(&bytes[..8], MAGIC_V1);
        let s = decode(&bytes).unwrap();
        assert_eq!((s.meta, s.configuration, s.pairs), (META, None, p));
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let bytes = encode_state(META, Some(&conf()), &rich_state());
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x04;
            assert!(decode(&bad).is_err(), "a flip at byte {at} went unnoticed");
        }
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "cut to {len} bytes");
        }
    }

    /// A state with revisions and idempotency records of every kind, at index 42.
    fn rich_state() -> KvState {
        use crate::store::{Command, Stamp};
        let mut s = KvState::new();
        let stamp = |id: &str, now_ms| {
            Some(Stamp {
                id: id.into(),
                now_ms,
                expires_ms: now_ms + 1_000,
            })
        };
        for i in 1..=42u64 {
            let c = match i % 4 {
                0 => Command::set(format!("k{} ü", i % 7), "v".repeat(i as usize)),
                1 => Command::Delete {
                    key: format!("k{} ü", i % 7),
                    if_mod_index: None,
                    stamp: stamp(&format!("d{i}"), i * 10),
                },
                2 => Command::Set {
                    key: format!("k{}", i % 5),
                    value: "x".into(),
                    if_mod_index: Some(i % 3),
                    if_value: None,
                    stamp: stamp(&format!("s{i}"), i * 10),
                },
                _ => Command::set(format!("k{}", i % 5), "y"),
            };
            s.apply(i, c).unwrap();
        }
        assert!(s.idempotency().len() > 10);
        s
    }

    #[test]
    fn a_v3_snapshot_round_trips_revisions_and_the_idempotency_table() {
        let state = rich_state();
        let bytes = encode_state(META, Some(&conf()), &state);
        assert_eq!(&bytes[..8], MAGIC);
        let snap = decode(&bytes).unwrap();
        assert_eq!(snap.configuration, Some(conf()));
        let back = snap.into_state();
        assert_eq!(back, state);
        assert_eq!(back.digest(), state.digest());
    }

    #[test]
    fn v3_records_out_of_bounds_are_refused_with_a_clear_message() {
        let mut b = header(0);
        b.extend_from_slice(&0u32.to_le_bytes()); // no learners
        b.extend_from_slice(&1u64.to_le_bytes()); // one key
        put_str(&mut b, "k");
        put_str(&mut b, "v");
        b.extend_from_slice(&5u64.to_le_bytes()); // modIndex 5 > the snapshot's index 1
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        assert!(decode(&sealed(&b)).unwrap_err().contains("modIndex 5"));
        let mut b = header(0);
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes()); // no key
        b.extend_from_slice(&0u64.to_le_bytes()); // clock
        b.extend_from_slice(&(idempotency::MAX_ENTRIES as u64 + 1).to_le_bytes());
        assert!(decode(&sealed(&b))
            .unwrap_err()
            .contains("idempotency records"));
        let mut b = header(0);
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        put_str(&mut b, &"i".repeat(MAX_IDEMPOTENCY_KEY_BYTES + 1));
        assert!(decode(&sealed(&b))
            .unwrap_err()
            .contains("an idempotency key of"));
        let mut b = header(0);
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        put_str(&mut b, "id");
        b.extend_from_slice(&[0; 16]);
        b.extend_from_slice(&1u64.to_le_bytes());
        b.push(9);
        b.extend_from_slice(&[0; 16]);
        assert!(decode(&sealed(&b)).unwrap_err().contains("outcome tag 9"));
    }

    /// Bytes with a valid checksum around `body` (what follows the magic).
    fn sealed(body: &[u8]) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(body);
        b.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        b
    }

    fn header(voters: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&voters.to_le_bytes());
        b
    }

    #[test]
    fn a_configuration_out_of_bounds_or_invalid_is_refused_even_with_a_good_checksum() {
        let mut b = header(MAX_MEMBERS as u32 + 1);
        b.extend_from_slice(&[0; 12]);
        assert!(decode(&sealed(&b)).unwrap_err().contains("members"));
        let mut b = header(1);
        put_str(&mut b, &"i".repeat(MAX_ID_BYTES + 1));
        put_str(&mut b, "http://a:1");
        b.extend_from_slice(&[0; 12]);
        assert!(decode(&sealed(&b)).unwrap_err().contains("a member id of"));
        let mut b = header(1);
        put_str(&mut b, "n1");
        put_str(&mut b, &"u".repeat(MAX_URL_BYTES + 1));
        b.extend_from_slice(&[0; 12]);
        assert!(decode(&sealed(&b)).unwrap_err().contains("a member URL of"));
        // Learners only: no voter, not a configuration.
        let mut b = header(0);
        b.extend_from_slice(&1u32.to_le_bytes());
        put_str(&mut b, "n1");
        put_str(&mut b, "http://a:1");
        b.extend_from_slice(&0u64.to_le_bytes());
        assert!(decode(&sealed(&b))
            .unwrap_err()
            .contains("bad configuration"));
        // Two members with one id.
        let mut b = header(2);
        for url in ["http://a:1", "http://a:2"] {
            put_str(&mut b, "n1");
            put_str(&mut b, url);
        }
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        assert!(decode(&sealed(&b))
            .unwrap_err()
            .contains("bad configuration"));
    }
}
