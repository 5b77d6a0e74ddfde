//! Snapshot files: the whole key-value map as of one log index, written atomically.
//!
//! Format: `KVSNAP\0\1` magic, then `index u64 | term u64 | pairs u64`, then each pair as
//! `key_len u32 | key | value_len u32 | value`, then a CRC-32 of everything after the magic
//! (little endian). A snapshot is written to a temporary file, fsynced, renamed into place as
//! `{index:020}.snap` and the directory fsynced, so a crash leaves either the old set of
//! snapshots or the new one, never a half-written file under a final name.
//!
//! Loading picks the newest snapshot that checks out; damaged ones are reported, not used. The
//! caller keeps the log entries after the *previous* snapshot until a newer one exists, so a
//! fallback to the previous snapshot leaves no gap (except right after a snapshot installed
//! from the leader replaced the whole log: that log never held the entries in between, and
//! start-up then refuses, naming the snapshot it needs).
//!
//! The same bytes are what a leader streams to a follower that fell behind its log
//! ([`read_chunk`], [`decode`]).
//!
//! Files only: this module never decides when to snapshot.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{dirs, failpoint};
use crate::raft::{LogIndex, Term};

const MAGIC: &[u8; 8] = b"KVSNAP\x00\x01";

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

/// What loading found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The newest valid snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// Snapshot files that were damaged and skipped, with why.
    pub skipped: Vec<(PathBuf, String)>,
}

fn path_for(dir: &Path, index: LogIndex) -> PathBuf {
    dir.join(format!("{index:020}.snap"))
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
        let kl = u32_of(take(4)?) as usize;
        let k = take(kl)?.to_vec();
        let vl = u32_of(take(4)?) as usize;
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

/// Write `pairs` as the snapshot at `meta` into `dir`, atomically, and remove all but the
/// newest `keep` snapshots. Returns the file written.
pub fn write<'a>(
    dir: &Path,
    meta: SnapshotMeta,
    pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
    keep: usize,
) -> io::Result<PathBuf> {
    write_bytes(dir, meta.index, &encode(meta, pairs), keep)
}

/// Write the [`encode`]d snapshot `bytes` (at log index `index`) into `dir`, atomically: a
/// temporary file, fsync, rename, fsync of the directory. Then remove all but the newest
/// `keep` snapshots. Returns the file written.
pub fn write_bytes(dir: &Path, index: LogIndex, bytes: &[u8], keep: usize) -> io::Result<PathBuf> {
    dirs::create_dir_all(dir)?;
    let final_path = path_for(dir, index);
    let tmp = dir.join(format!("{index:020}.snap.tmp"));
    {
        failpoint::hit("snapshot.write.create")?;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        failpoint::hit("snapshot.write.data")?;
        file.write_all(bytes)?;
        failpoint::hit("snapshot.write.sync")?;
        file.sync_all()?;
    }
    failpoint::hit("snapshot.write.rename")?;
    fs::rename(&tmp, &final_path)?;
    failpoint::hit("snapshot.write.renamed")?;
    dirs::sync_dir(dir)?;
    failpoint::hit("snapshot.write.prune")?;
    // Older snapshots beyond `keep` are no longer needed. Another write may be pruning at the
    // same time: a file already gone is fine. (A transfer reading an old file keeps it open,
    // so removing it does not cut the transfer short.)
    let mut all = list(dir, false)?;
    all.sort();
    let excess = all.len().saturating_sub(keep.max(1));
    for (_, p) in all.into_iter().take(excess) {
        match fs::remove_file(p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(final_path)
}

/// Read up to `len` bytes at `offset` of an open snapshot file (a chunk to send to a
/// follower); fewer only at the end of the file.
pub fn read_chunk(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// Snapshot files in `dir` as (index, path), unordered. With `clean`, leftover temporary files
/// (a crash during a write) are removed; only at start-up, when no write can be under way.
fn list(dir: &Path, clean: bool) -> io::Result<Vec<(LogIndex, PathBuf)>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.ends_with(".snap.tmp") && clean {
            // A crash during a write: never renamed, never used.
            fs::remove_file(&path)?;
        } else if let Some(stem) = name.strip_suffix(".snap") {
            if let Ok(index) = stem.parse() {
                out.push((index, path));
            }
        }
    }
    Ok(out)
}

fn read_file(path: &Path) -> Result<Snapshot, String> {
    decode(&fs::read(path).map_err(|e| e.to_string())?)
}

/// Load the newest valid snapshot in `dir`.
pub fn load(dir: &Path) -> io::Result<Loaded> {
    let mut all = list(dir, true)?;
    all.sort();
    let mut loaded = Loaded::default();
    for (index, path) in all.into_iter().rev() {
        match read_file(&path) {
            Ok(s) if s.meta.index == index => {
                loaded.snapshot = Some(Snapshot {
                    path: Some(path),
                    ..s
                });
                break;
            }
            Ok(s) => loaded.skipped.push((
                path,
                format!("names index {index} but holds index {}", s.meta.index),
            )),
            Err(why) => loaded.skipped.push((path, why)),
        }
    }
    Ok(loaded)
}

/// What [`inspect`] found in one file of the snapshot directory.
#[derive(Debug)]
pub struct FileReport {
    pub path: PathBuf,
    /// The index its name gives.
    pub index: LogIndex,
    pub bytes: u64,
    /// Its position and number of keys, or why it cannot be used.
    pub result: Result<(SnapshotMeta, usize), String>,
}

/// Check every snapshot file in `dir`, oldest first, without changing anything. Also returns
/// leftover temporary files (a crash during a write; removed at the next start).
pub fn inspect(dir: &Path) -> io::Result<(Vec<FileReport>, Vec<PathBuf>)> {
    let mut all = list(dir, false)?;
    all.sort();
    let mut reports = Vec::new();
    for (index, path) in all {
        let bytes = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let result = read_file(&path).and_then(|s| {
            if s.meta.index == index {
                Ok((s.meta, s.pairs.len()))
            } else {
                Err(format!(
                    "names index {index} but holds index {}",
                    s.meta.index
                ))
            }
        });
        reports.push(FileReport {
            path,
            index,
            bytes,
            result,
        });
    }
    let mut temps = Vec::new();
    if dir.exists() {
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.to_string_lossy().ends_with(".snap.tmp") {
                temps.push(path);
            }
        }
    }
    Ok((reports, temps))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(n: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("key-{i} 🚀"), "v".repeat(i % 7)))
            .collect()
    }

    fn write_pairs(dir: &Path, index: LogIndex, p: &[(String, String)], keep: usize) -> PathBuf {
        write(
            dir,
            SnapshotMeta { index, term: 3 },
            p.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            keep,
        )
        .unwrap()
    }

    #[test]
    fn round_trip_and_newest_wins() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().snapshot.is_none());
        write_pairs(dir.path(), 10, &pairs(5), 2);
        write_pairs(dir.path(), 20, &pairs(50), 2);
        let l = load(dir.path()).unwrap();
        let s = l.snapshot.unwrap();
        assert_eq!(s.meta, SnapshotMeta { index: 20, term: 3 });
        assert_eq!(s.pairs, pairs(50));
        assert!(l.skipped.is_empty());
        let path = s.path.unwrap();
        let bytes = fs::read(&path).unwrap();
        let mut chunks = Vec::new();
        let mut off = 0;
        let file = File::open(&path).unwrap();
        loop {
            let c = read_chunk(&file, off, 100).unwrap();
            if c.is_empty() {
                break;
            }
            off += c.len() as u64;
            chunks.extend(c);
        }
        assert_eq!(chunks, bytes, "chunks put together are the file");
        assert_eq!(decode(&bytes).unwrap().pairs, pairs(50));
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn only_the_newest_few_are_kept_and_temporaries_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        for i in 1..=5 {
            write_pairs(dir.path(), i * 10, &pairs(3), 2);
        }
        fs::write(dir.path().join("00000000000000000099.snap.tmp"), b"half").unwrap();
        let l = load(dir.path()).unwrap();
        assert_eq!(l.snapshot.unwrap().meta.index, 50);
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec!["00000000000000000040.snap", "00000000000000000050.snap"]
        );
    }

    #[test]
    fn a_damaged_newest_snapshot_falls_back_to_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        write_pairs(dir.path(), 10, &pairs(5), 2);
        let newest = write_pairs(dir.path(), 20, &pairs(5), 2);
        let mut bytes = fs::read(&newest).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        fs::write(&newest, &bytes).unwrap();
        let l = load(dir.path()).unwrap();
        assert_eq!(l.snapshot.unwrap().meta.index, 10);
        assert_eq!(l.skipped.len(), 1);
        assert!(l.skipped[0].1.contains("checksum"), "{:?}", l.skipped);
        // A truncated one too.
        fs::write(&newest, &bytes[..bytes.len() - 3]).unwrap();
        let l = load(dir.path()).unwrap();
        assert_eq!(l.snapshot.unwrap().meta.index, 10);
    }
}
