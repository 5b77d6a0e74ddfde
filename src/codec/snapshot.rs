//! The snapshot file format: the whole key-value map as of one log index, with the cluster
//! configuration in force at that index. Pure: bytes in, values out, and the reverse;
//! [`crate::storage::snapshot`] writes and reads the files.
//!
//! Format v2 (written): `KVSNAP\0\2` magic, then `index u64 | term u64`, then the
//! configuration (`voters u32`, each `id_len u32 | id | url_len u32 | url`, then `learners
//! u32` and each the same; no members at all means "no configuration recorded"), then
//! `pairs u64` and each pair as `key_len u32 | key | value_len u32 | value`, then a CRC-32 of
//! everything after the magic (little endian). At most [`MAX_MEMBERS`] members, ids of at
//! most [`MAX_ID_BYTES`], URLs of at most [`MAX_URL_BYTES`].
//!
//! Format v1 (still read): `KVSNAP\0\1`, the same without the configuration; it decodes with
//! `configuration: None` (the node keeps the configuration it has).
//!
//! The same bytes are what a leader streams to a follower that fell behind.

use std::path::PathBuf;

use crate::raft::core::MAX_MEMBERS;
use crate::raft::rpc::{MAX_ID_BYTES, MAX_URL_BYTES};
use crate::raft::{Configuration, LogIndex, Member, Term};
use crate::store::command::{MAX_KEY_BYTES, MAX_VALUE_BYTES};

/// The magic of the format written now (v2: with the configuration).
pub(crate) const MAGIC: &[u8; 8] = b"KVSNAP\x00\x02";
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
    /// The file it came from (none for bytes received from a leader).
    pub path: Option<PathBuf>,
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// The bytes of a snapshot file holding `pairs` at `meta`, with `configuration` (the one in
/// force at `meta.index`) recorded (the same bytes travel to followers that need the snapshot).
pub fn encode<'a>(
    meta: SnapshotMeta,
    configuration: Option<&Configuration>,
    pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64 + pairs.len() * 32);
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
    put_pairs(&mut buf, pairs);
    let sum = crc32fast::hash(&buf[MAGIC.len()..]);
    buf.extend_from_slice(&sum.to_le_bytes());
    buf
}

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

/// Check and parse the bytes of a snapshot file (v2, or v1 without a configuration).
pub fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
    if bytes.len() < MAGIC.len() + 28 {
        return Err("file too short".into());
    }
    let v2 = match &bytes[..MAGIC.len()] {
        m if m == MAGIC => true,
        m if m == MAGIC_V1 => false,
        _ => return Err("not a kvstore snapshot (bad magic)".into()),
    };
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
    for _ in 0..count {
        // No node ever stored a longer key or value (see `store::command`).
        let k = r.string(MAX_KEY_BYTES, "a key")?;
        let v = r.string(MAX_VALUE_BYTES, "a value")?;
        pairs.push((k, v));
    }
    if r.at != body.len() {
        return Err("trailing bytes after the pairs".into());
    }
    Ok(Snapshot {
        meta: SnapshotMeta { index, term },
        configuration,
        pairs,
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
        let bytes = encode(META, Some(&conf()), refs(&p));
        assert_eq!(&bytes[..8], MAGIC);
        let s = decode(&bytes).unwrap();
        assert_eq!(s.meta, META);
        assert_eq!(s.configuration, Some(conf()));
        assert_eq!(s.pairs, p);
        // Without a configuration: recorded as none.
        let s = decode(&encode(META, None, refs(&p))).unwrap();
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
        let s = decode(&encode(META, Some(&c), refs(&p))).expect("a snapshot it wrote");
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
        let p = pairs();
        let bytes = encode(META, Some(&conf()), refs(&p));
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x04;
            assert!(decode(&bad).is_err(), "a flip at byte {at} went unnoticed");
        }
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "cut to {len} bytes");
        }
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
