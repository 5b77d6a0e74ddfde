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
//! fallback to the previous snapshot never leaves a gap.
//!
//! Files only: this module never decides when to snapshot.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

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

/// Write `pairs` as the snapshot at `meta` into `dir`, atomically, and remove all but the
/// newest `keep` snapshots. Returns the file written.
pub fn write<'a>(
    dir: &Path,
    meta: SnapshotMeta,
    pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
    keep: usize,
) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let final_path = path_for(dir, meta.index);
    let tmp = dir.join(format!("{:020}.snap.tmp", meta.index));
    {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let mut crc = crc32fast::Hasher::new();
        let mut put = |w: &mut BufWriter<File>, bytes: &[u8]| -> io::Result<()> {
            crc.update(bytes);
            w.write_all(bytes)
        };
        w.write_all(MAGIC)?;
        put(&mut w, &meta.index.to_le_bytes())?;
        put(&mut w, &meta.term.to_le_bytes())?;
        put(&mut w, &(pairs.len() as u64).to_le_bytes())?;
        for (k, v) in pairs {
            put(&mut w, &(k.len() as u32).to_le_bytes())?;
            put(&mut w, k.as_bytes())?;
            put(&mut w, &(v.len() as u32).to_le_bytes())?;
            put(&mut w, v.as_bytes())?;
        }
        let sum = crc.finalize();
        w.write_all(&sum.to_le_bytes())?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
    }
    fs::rename(&tmp, &final_path)?;
    File::open(dir)?.sync_all()?;
    // Older snapshots beyond `keep` are no longer needed.
    let mut all = list(dir)?;
    all.sort();
    let excess = all.len().saturating_sub(keep.max(1));
    for (_, p) in all.into_iter().take(excess) {
        fs::remove_file(p)?;
    }
    Ok(final_path)
}

/// Snapshot files in `dir` as (index, path), unordered. Leftover temporary files are removed.
fn list(dir: &Path) -> io::Result<Vec<(LogIndex, PathBuf)>> {
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
        if name.ends_with(".snap.tmp") {
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
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)
        .map_err(|_| "file too short".to_owned())?;
    if &magic != MAGIC {
        return Err("not a kvstore snapshot (bad magic)".into());
    }
    let mut crc = crc32fast::Hasher::new();
    let mut take = |r: &mut BufReader<File>, n: usize| -> Result<Vec<u8>, String> {
        let mut buf = vec![0u8; n];
        r.read_exact(&mut buf)
            .map_err(|_| "file ends too early".to_owned())?;
        crc.update(&buf);
        Ok(buf)
    };
    let u64_of = |b: Vec<u8>| u64::from_le_bytes(b.try_into().unwrap_or_default());
    let u32_of = |b: Vec<u8>| u32::from_le_bytes(b.try_into().unwrap_or_default());
    let index = u64_of(take(&mut r, 8)?);
    let term = u64_of(take(&mut r, 8)?);
    let count = u64_of(take(&mut r, 8)?);
    let mut pairs = Vec::with_capacity(count.min(1 << 20) as usize);
    for _ in 0..count {
        let kl = u32_of(take(&mut r, 4)?) as usize;
        let k = take(&mut r, kl)?;
        let vl = u32_of(take(&mut r, 4)?) as usize;
        let v = take(&mut r, vl)?;
        let k = String::from_utf8(k).map_err(|_| "a key is not UTF-8".to_owned())?;
        let v = String::from_utf8(v).map_err(|_| "a value is not UTF-8".to_owned())?;
        pairs.push((k, v));
    }
    let expected = crc.finalize();
    let mut sum = [0u8; 4];
    r.read_exact(&mut sum)
        .map_err(|_| "checksum missing".to_owned())?;
    if u32::from_le_bytes(sum) != expected {
        return Err("checksum mismatch".into());
    }
    let mut rest = [0u8; 1];
    if r.read(&mut rest).map_err(|e| e.to_string())? != 0 {
        return Err("trailing bytes after the checksum".into());
    }
    Ok(Snapshot {
        meta: SnapshotMeta { index, term },
        pairs,
    })
}

/// Load the newest valid snapshot in `dir`.
pub fn load(dir: &Path) -> io::Result<Loaded> {
    let mut all = list(dir)?;
    all.sort();
    let mut loaded = Loaded::default();
    for (index, path) in all.into_iter().rev() {
        match read_file(&path) {
            Ok(s) if s.meta.index == index => {
                loaded.snapshot = Some(s);
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
