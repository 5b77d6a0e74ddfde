//! Snapshot files: the whole key-value map as of one log index, written atomically.
//!
//! Format: see [`crate::codec::snapshot`] (v2 records the configuration in force at the
//! snapshot's index; v1 files are still read). A snapshot is written to a temporary file, fsynced, renamed into place as
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
use crate::raft::{Configuration, LogIndex};

pub use crate::codec::snapshot::{
    decode, encode, encode_pairs, encode_state, Snapshot, SnapshotMeta,
};

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

/// Write plain `pairs` (revisions: `meta.index`, no idempotency record) as the snapshot at
/// `meta` (with `configuration`, the one in force there) into `dir`, atomically, and remove
/// all but the newest `keep` snapshots. Returns the file written.
pub fn write<'a>(
    dir: &Path,
    meta: SnapshotMeta,
    configuration: Option<&Configuration>,
    pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
    keep: usize,
) -> io::Result<PathBuf> {
    write_bytes(
        dir,
        meta.index,
        &encode_pairs(meta, configuration, pairs),
        keep,
    )
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
    prune(dir, keep)?;
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
    /// The configuration it records (`None`: damaged, a v1 file, or none recorded).
    pub configuration: Option<Configuration>,
}

/// Check every snapshot file in `dir`, oldest first, without changing anything. Also returns
/// leftover temporary files (a crash during a write; removed at the next start).
pub fn inspect(dir: &Path) -> io::Result<(Vec<FileReport>, Vec<PathBuf>)> {
    let mut all = list(dir, false)?;
    all.sort();
    let mut reports = Vec::new();
    for (index, path) in all {
        let bytes = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut configuration = None;
        let result = read_file(&path).and_then(|s| {
            if s.meta.index == index {
                configuration = s.configuration;
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
            configuration,
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
    use crate::store::command::{MAX_KEY_BYTES, MAX_VALUE_BYTES};

    #[test]
    fn a_key_or_value_longer_than_any_node_accepts_is_refused() {
        let meta = SnapshotMeta { index: 1, term: 1 };
        let key = "k".repeat(MAX_KEY_BYTES);
        let value = "v".repeat(MAX_VALUE_BYTES);
        let ok = encode_pairs(meta, None, [(key.as_str(), value.as_str())].into_iter());
        assert_eq!(decode(&ok).unwrap().pairs.len(), 1);
        let key = "k".repeat(MAX_KEY_BYTES + 1);
        let bad = encode_pairs(meta, None, [(key.as_str(), "v")].into_iter());
        assert!(decode(&bad).unwrap_err().contains("a key of"));
        let value = "v".repeat(MAX_VALUE_BYTES + 1);
        let bad = encode_pairs(meta, None, [("k", value.as_str())].into_iter());
        assert!(decode(&bad).unwrap_err().contains("a value of"));
    }

    fn pairs(n: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("key-{i} 🚀"), "v".repeat(i % 7)))
            .collect()
    }

    fn write_pairs(dir: &Path, index: LogIndex, p: &[(String, String)], keep: usize) -> PathBuf {
        write(
            dir,
            SnapshotMeta { index, term: 3 },
            None,
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

// ---- receiving a snapshot chunk by chunk ---------------------------------------------------

/// A received snapshot would exceed its size cap.
#[derive(Debug)]
pub enum StreamError {
    /// Appending would make the file `len` bytes, over the `cap`.
    TooBig {
        cap: u64,
        len: u64,
    },
    Io(io::Error),
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::TooBig { cap, len } => {
                write!(f, "snapshot too big: {len} bytes, the cap is {cap}")
            }
            StreamError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StreamError {}

impl From<io::Error> for StreamError {
    fn from(e: io::Error) -> Self {
        StreamError::Io(e)
    }
}

/// A snapshot file written chunk by chunk as it arrives from the leader, so it is never held
/// whole in memory: chunks are appended to a temporary file (`{index:020}.{n}.recv.snap.tmp`,
/// removed at start-up if a crash leaves it), at most `cap` bytes in all; [`Self::finish`]
/// makes it durable under its final name (fsync, rename, fsync of the directory). Dropped
/// unfinished, it removes its temporary file. Blocking I/O: use it on a blocking thread.
///
/// Failpoints, one per step: `snapshot.install.create`, `.append`, `.fsync`, `.rename`,
/// `.dirsync`.
#[derive(Debug)]
pub struct SnapshotWriter {
    dir: PathBuf,
    index: LogIndex,
    tmp: PathBuf,
    file: Option<File>,
    len: u64,
    cap: u64,
}

impl SnapshotWriter {
    /// Start writing the snapshot at `index` into `dir` (created if missing), at most `cap`
    /// bytes.
    pub fn create(dir: &Path, index: LogIndex, cap: u64) -> io::Result<Self> {
        failpoint::hit("snapshot.install.create")?;
        dirs::create_dir_all(dir)?;
        // A fresh name per writer, so an abandoned transfer's cleanup never removes a newer
        // transfer's file of the same index.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!("{index:020}.{n}.recv.snap.tmp"));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        Ok(SnapshotWriter {
            dir: dir.to_owned(),
            index,
            tmp,
            file: Some(file),
            len: 0,
            cap,
        })
    }

    /// Append the next chunk; refused (nothing written) if the file would exceed the cap.
    pub fn append(&mut self, chunk: &[u8]) -> Result<(), StreamError> {
        let len = self.len.saturating_add(chunk.len() as u64);
        if len > self.cap {
            return Err(StreamError::TooBig { cap: self.cap, len });
        }
        failpoint::hit("snapshot.install.append")?;
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("writer finished"))?;
        file.write_all(chunk)?;
        self.len = len;
        Ok(())
    }

    /// Bytes appended so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True before any byte was appended.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Check and parse what was written (the whole file: call it once all chunks are in).
    pub fn read(&self) -> Result<Snapshot, String> {
        read_file(&self.tmp)
    }

    /// Make the snapshot durable under its final name: fsync, rename, fsync of the directory;
    /// then remove all but the newest `keep` snapshots. Returns the file.
    pub fn finish(mut self, keep: usize) -> io::Result<PathBuf> {
        let file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("writer finished"))?;
        failpoint::hit("snapshot.install.fsync")?;
        file.sync_all()?;
        drop(file);
        let final_path = path_for(&self.dir, self.index);
        failpoint::hit("snapshot.install.rename")?;
        fs::rename(&self.tmp, &final_path)?;
        // Renamed: nothing left for `drop` to remove.
        self.tmp = PathBuf::new();
        failpoint::hit("snapshot.install.dirsync")?;
        dirs::sync_dir(&self.dir)?;
        prune(&self.dir, keep)?;
        Ok(final_path)
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            // Unfinished: the temporary file is of no use (start-up removes it otherwise).
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Remove all but the newest `keep` snapshots in `dir`: older ones are no longer needed.
/// Another write may be pruning at the same time: a file already gone is fine. (A transfer
/// reading an old file keeps it open, so removing it does not cut the transfer short.)
fn prune(dir: &Path, keep: usize) -> io::Result<()> {
    let mut all = list(dir, false)?;
    all.sort();
    let excess = all.len().saturating_sub(keep.max(1));
    for (_, p) in all.into_iter().take(excess) {
        match fs::remove_file(p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod writer_tests {
    use super::*;

    fn bytes_of(n: usize, index: LogIndex) -> Vec<u8> {
        let p: Vec<(String, String)> = (0..n).map(|i| (format!("k{i}"), "v".repeat(50))).collect();
        encode_pairs(
            SnapshotMeta { index, term: 2 },
            None,
            p.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn chunks_appended_then_finished_make_the_same_file_as_a_whole_write() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = bytes_of(500, 7);
        let mut w = SnapshotWriter::create(dir.path(), 7, 1 << 20).unwrap();
        for chunk in bytes.chunks(1000) {
            w.append(chunk).unwrap();
        }
        assert_eq!(w.len(), bytes.len() as u64);
        let tmp = names(dir.path());
        assert!(
            tmp.len() == 1
                && tmp[0].starts_with("00000000000000000007.")
                && tmp[0].ends_with(".recv.snap.tmp"),
            "{tmp:?}"
        );
        let snap = w.read().unwrap();
        assert_eq!((snap.meta.index, snap.pairs.len()), (7, 500));
        let path = w.finish(2).unwrap();
        assert_eq!(fs::read(&path).unwrap(), bytes);
        assert_eq!(names(dir.path()), vec!["00000000000000000007.snap"]);
        assert_eq!(load(dir.path()).unwrap().snapshot.unwrap().meta.index, 7);
    }

    #[test]
    fn a_snapshot_over_the_cap_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = bytes_of(100, 3);
        let cap = bytes.len() as u64 - 1;
        let mut w = SnapshotWriter::create(dir.path(), 3, cap).unwrap();
        let (head, tail) = bytes.split_at(bytes.len() / 2);
        w.append(head).unwrap();
        match w.append(tail) {
            Err(StreamError::TooBig { cap: c, len }) => {
                assert_eq!((c, len), (cap, bytes.len() as u64))
            }
            other => panic!("expected TooBig, got {other:?}"),
        }
        assert_eq!(
            w.len(),
            head.len() as u64,
            "the refused chunk was not written"
        );
        drop(w);
        assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
    }

    #[test]
    fn damaged_or_incomplete_bytes_fail_the_check_before_anything_is_renamed() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = bytes_of(50, 9);
        let mut w = SnapshotWriter::create(dir.path(), 9, 1 << 20).unwrap();
        w.append(&bytes[..bytes.len() - 10]).unwrap();
        assert!(w.read().is_err(), "incomplete");
        drop(w);
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x10;
        let mut w = SnapshotWriter::create(dir.path(), 9, 1 << 20).unwrap();
        w.append(&bytes).unwrap();
        assert!(w.read().unwrap_err().contains("checksum"));
        drop(w);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn a_crash_leftover_temporary_is_removed_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let w = SnapshotWriter::create(dir.path(), 4, 1 << 20).unwrap();
        std::mem::forget(w); // as if the process died mid-transfer
        assert_eq!(names(dir.path()).len(), 1);
        assert!(load(dir.path()).unwrap().snapshot.is_none());
        assert!(names(dir.path()).is_empty());
    }
}
