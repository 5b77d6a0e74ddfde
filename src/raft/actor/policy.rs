//! When a node takes snapshots ([`SnapshotPolicy`]), what it holds of the newest one
//! ([`SnapshotInfo`]), and the sizes snapshots move in. Plain data: the taking, sending and
//! receiving are in `snapshots`. Never does I/O.

use std::path::PathBuf;

use crate::storage::snapshot::SnapshotMeta;

/// Size of one chunk of a snapshot sent to a follower.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

/// Most bytes per second a leader streams a snapshot to one follower: a joining node's
/// transfer (~12 MB for 100,000 keys of 100 bytes: under a second) is spread out so that
/// it does not take the CPU and the network from the writes in one burst.
pub const SNAPSHOT_SEND_BYTES_PER_SEC: u64 = 16 * 1024 * 1024;

/// Largest snapshot a follower accepts from a leader (4 GiB, ~35M keys of 100-byte values):
/// a bound on the disk (or, in memory, the RAM) an incoming transfer may take.
pub const MAX_SNAPSHOT_BYTES: u64 = 4 << 30;

/// Snapshot files kept on disk (the newest and the one before, so a damaged newest one can
/// fall back without a gap in the log).
pub(super) const SNAPSHOTS_KEPT: usize = 2;

/// Default for [`SnapshotPolicy::factor`].
pub const DEFAULT_SNAPSHOT_FACTOR: u64 = 1;

/// When to take snapshots and where they go.
///
/// The rule (Raft thesis §5.1: snapshot when the log outgrows the state), see [`Self::due`]:
/// a snapshot is due once **at least `entries` entries** were applied since the last one
/// **and** the log applied since then (in bytes) is at least **`factor` times the last
/// snapshot's size**; or, whatever the state's size, once that log reaches **`log_bytes`** (a
/// limit on the log to replay at restart and to keep on disk). A small state is so snapshotted
/// about every `entries` entries; a million-key state only once its log outgrows it (or hits
/// the limit), so snapshot work stays proportional to the writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// The floor: at least this many entries applied since the last snapshot (0: the growth
    /// rule is off, only `log_bytes` triggers).
    pub entries: u64,
    /// The log since the last snapshot must be at least this many times its size (0: the
    /// floor alone decides).
    pub factor: u64,
    /// The limit: a snapshot is due once this many bytes of entries were applied since the last
    /// one, whatever `entries` and `factor` say (0: no limit).
    pub log_bytes: u64,
    /// Entries kept in the log before a snapshot's index, so a follower only slightly behind
    /// still gets entries rather than the whole snapshot.
    pub trailing: u64,
    /// Where snapshot files go; `None` keeps the newest snapshot in memory only.
    pub dir: Option<PathBuf>,
}

impl SnapshotPolicy {
    /// Snapshots after at least `entries` entries once the log outgrows the last snapshot
    /// ([`DEFAULT_SNAPSHOT_FACTOR`]), or after `log_bytes` bytes of log; keeps a tenth of
    /// `entries` in the log after each.
    pub fn every(entries: u64, log_bytes: u64, dir: Option<PathBuf>) -> Self {
        SnapshotPolicy {
            entries,
            factor: DEFAULT_SNAPSHOT_FACTOR,
            log_bytes,
            trailing: entries / 10,
            dir,
        }
    }

    /// The same with another growth factor.
    pub fn with_factor(self, factor: u64) -> Self {
        SnapshotPolicy { factor, ..self }
    }

    /// Never take a snapshot (followers can still install one from a leader).
    pub fn never() -> Self {
        SnapshotPolicy::every(0, 0, None)
    }

    /// Whether a snapshot is due, given the entries and bytes of log applied since the last
    /// snapshot and that snapshot's size in bytes (0 if none). Pure.
    pub fn due(&self, entries_since: u64, log_bytes_since: u64, last_snapshot_len: u64) -> bool {
        if entries_since == 0 {
            return false;
        }
        let grown = self.entries > 0
            && entries_since >= self.entries
            && log_bytes_since >= self.factor.saturating_mul(last_snapshot_len);
        let limit = self.log_bytes > 0 && log_bytes_since >= self.log_bytes;
        grown || limit
    }
}

/// The newest snapshot this node holds.
#[derive(Debug)]
pub struct SnapshotInfo {
    pub meta: SnapshotMeta,
    /// Length of the snapshot file in bytes.
    pub len: u64,
    pub data: SnapshotData,
}

/// Where a snapshot's bytes are.
#[derive(Debug)]
pub enum SnapshotData {
    File(PathBuf),
    Memory(Vec<u8>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_due_after_the_floor_once_the_log_outgrows_the_last_snapshot() {
        let p = SnapshotPolicy::every(100, 0, None);
        assert!(!p.due(0, 0, 0), "nothing applied, nothing to snapshot");
        assert!(!p.due(99, 1 << 20, 0), "below the entry floor");
        assert!(p.due(100, 1, 0), "no snapshot yet: the floor alone decides");
        // A 1 MB state: 100 small entries are not enough, 1 MB of log is.
        assert!(!p.due(100, 50_000, 1_000_000));
        assert!(!p.due(10_000, 999_999, 1_000_000));
        assert!(p.due(10_000, 1_000_000, 1_000_000));
        let p2 = p.clone().with_factor(2);
        assert!(!p2.due(10_000, 1_000_000, 1_000_000));
        assert!(p2.due(10_000, 2_000_000, 1_000_000));
        let floor_only = p.with_factor(0);
        assert!(floor_only.due(100, 1, 1_000_000));
    }

    #[test]
    fn the_log_limit_forces_a_snapshot_whatever_the_state_size() {
        let p = SnapshotPolicy::every(100, 64 << 20, None);
        assert!(!p.due(50, (64 << 20) - 1, 0));
        assert!(p.due(50, 64 << 20, 0), "the limit ignores the entry floor");
        assert!(
            p.due(500_000, 64 << 20, 200 << 20),
            "and the state's size: the log to replay stays bounded"
        );
        let limit_only = SnapshotPolicy::every(0, 1_000, None);
        assert!(!limit_only.due(1_000_000, 999, 0));
        assert!(limit_only.due(1, 1_000, 0));
    }

    #[test]
    fn never_means_never() {
        let p = SnapshotPolicy::never();
        assert!(!p.due(u64::MAX, u64::MAX, 0));
    }
}
