//! The snapshot file format: the whole key-value map as of one log index. Pure: bytes in,
//! pairs out, and the reverse; [`crate::storage::snapshot`] writes and reads the files.
//!
//! Format: `KVSNAP\0\1` magic, then `index u64 | term u64 | pairs u64`, then each pair as
//! `key_len u32 | key | value_len u32 | value`, then a CRC-32 of everything after the magic
//! (little endian). The same bytes are what a leader streams to a follower that fell behind.

use std::path::PathBuf;

use crate::raft::{LogIndex, Term};
use crate::store::command::{MAX_KEY_BYTES, MAX_VALUE_BYTES};

pub(crate) const MAGIC: &[u8; 8] = b"KVSNAP\x00\x01";

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
    pub pairs: Vec<(String, String)>,
    /// The file it came from (none for bytes received from a leader).
    pub path: Option<PathBuf>,
}

/// The bytes of a snapshot file holding `pairs` at `meta` (the same bytes travel to followers
/// that need the snapshot).
pub fn encode<'a>(
    meta: SnapshotMeta,
    pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64 + pairs.len() * 32);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&meta.index.to_le_bytes());
    buf.extend_from_slice(&meta.term.to_le_bytes());
    buf.extend_from_slice(&(pairs.len() as u64).to_le_bytes());
    for (k, v) in pairs {
        buf.extend_from_slice(&(k.len() as u32).to_le_bytes());
        buf.extend_from_slice(k.as_bytes());
        buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
        buf.extend_from_slice(v.as_bytes());
    }
    let sum = crc32fast::hash(&buf[MAGIC.len()..]);
    buf.extend_from_slice(&sum.to_le_bytes());
    buf
}

/// Check and parse the bytes of a snapshot file.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
    if bytes.len() < MAGIC.len() + 28 {
        return Err("file too short".into());
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a kvstore snapshot (bad magic)".into());
    }
    let (body, sum) = bytes[MAGIC.len()..].split_at(bytes.len() - MAGIC.len() - 4);
    let expected = u32::from_le_bytes(sum.try_into().map_err(|_| "checksum missing")?);
    if crc32fast::hash(body) != expected {
        return Err("checksum mismatch".into());
    }
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8], String> {
        let out = body
            .get(at..at + n)
            .ok_or_else(|| "content ends too early".to_owned())?;
        at += n;
        Ok(out)
    };
    let u64_of = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
    let u32_of = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap_or_default());
    let index = u64_of(take(8)?);
    let term = u64_of(take(8)?);
    let count = u64_of(take(8)?);
    let mut pairs = Vec::with_capacity(count.min(body.len() as u64 / 8) as usize);
    for _ in 0..count {
        // No node ever stored a longer key or value (see `store::command`).
        let kl = u32_of(take(4)?) as usize;
        if kl > MAX_KEY_BYTES {
            return Err(format!("a key of {kl} bytes, more than any node accepts"));
        }
        let k = take(kl)?.to_vec();
        let vl = u32_of(take(4)?) as usize;
        if vl > MAX_VALUE_BYTES {
            return Err(format!("a value of {vl} bytes, more than any node accepts"));
        }
        let v = take(vl)?.to_vec();
        let k = String::from_utf8(k).map_err(|_| "a key is not UTF-8".to_owned())?;
        let v = String::from_utf8(v).map_err(|_| "a value is not UTF-8".to_owned())?;
        pairs.push((k, v));
    }
    if at != body.len() {
        return Err("trailing bytes after the pairs".into());
    }
    Ok(Snapshot {
        meta: SnapshotMeta { index, term },
        pairs,
        path: None,
    })
}
