//! Who owns a data directory: the cluster id and node id recorded in `DIR/identity` at first
//! start, and an exclusive `flock` on `DIR/lock` held for the life of the process.
//!
//! [`DataDir::open`] runs before anything else reads the directory: it creates the directory
//! and its `wal/` and `snapshots/` subdirectories (each new one fsynced in its parent), takes the
//! lock (a second process is refused with the holder's pid), then checks or records the
//! identity (written atomically: temp file, fsync, rename, fsync the directory). A node whose
//! `NODE_ID` or cluster id differs from the directory's is refused, naming the directory and
//! both ids. [`derive_cluster_id`] is the pure rule that gives every node of a new cluster the
//! same id without coordination.
//!
//! This module reads and writes only these files and directories; it never reads the log or
//! the snapshots, and never decides what a node does with them.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{dirs, failpoint};

/// The file that records the identity.
pub const IDENTITY_FILE: &str = "identity";
/// The file locked by the process that owns the directory (it holds that process's pid).
pub const LOCK_FILE: &str = "lock";

/// The cluster id of a node without peers.
pub const STANDALONE: &str = "standalone";

/// The ids recorded in a data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub cluster_id: String,
    pub node_id: String,
}

/// Where this start's cluster id comes from (it decides what a mismatch message suggests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterId {
    /// Given with `--cluster-id` / `KVSTORE_CLUSTER_ID`.
    Explicit(String),
    /// Derived from the member URLs by [`derive_cluster_id`].
    Derived(String),
}

impl ClusterId {
    pub fn as_str(&self) -> &str {
        match self {
            ClusterId::Explicit(s) | ClusterId::Derived(s) => s,
        }
    }
}

/// The cluster id every member of a new cluster computes alike: [`STANDALONE`] without peers,
/// else `c` and 16 hex digits of a 64-bit FNV-1a hash of the sorted member URLs (this node's
/// and its peers'), with `localhost`, `127.x.x.x` and `[::1]` counted as one loopback host so
/// that one spelling or another on one machine still agrees. Pure.
pub fn derive_cluster_id(me: &str, peers: &[String]) -> String {
    if peers.is_empty() {
        return STANDALONE.to_owned();
    }
    let mut members: Vec<String> = std::iter::once(me)
        .chain(peers.iter().map(String::as_str))
        .map(normalize_loopback)
        .collect();
    members.sort();
    members.dedup();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in members.join("\n").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("c{hash:016x}")
}

/// The cluster id of a cluster restored from a backup (`kvstore restore`): `c` and 16 hex
/// digits of a 64-bit FNV-1a hash of the backup's own checksum (the CRC-32 its last four bytes
/// hold, which depends on its content; the whole file's CRC-32 depends only on its length) and
/// the sorted `id=url` members (loopback spellings counted as one, as in [`derive_cluster_id`]),
/// under a `restore` prefix so that it never equals the id [`derive_cluster_id`] gives the same
/// URLs: every node restored from one file with the same members gets the same id, and a
/// restored cluster never takes in a node of the old one. Pure.
pub fn derive_restored_cluster_id(backup_crc32: u32, members: &[(String, String)]) -> String {
    let mut members: Vec<String> = members
        .iter()
        .map(|(id, url)| format!("{id}={}", normalize_loopback(url)))
        .collect();
    members.sort();
    members.dedup();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let text = format!("restore\n{backup_crc32:08x}\n{}", members.join("\n"));
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("c{hash:016x}")
}

fn normalize_loopback(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (rest, None),
    };
    let host = if host == "localhost" || host == "[::1]" || host.starts_with("127.") {
        "localhost"
    } else {
        host
    };
    match port {
        Some(p) => format!("{scheme}://{host}:{p}"),
        None => format!("{scheme}://{host}"),
    }
}

/// Why a data directory cannot be used by this process.
#[derive(Debug)]
pub enum IdentityError {
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    /// Another process holds the lock.
    Locked { dir: PathBuf, holder: String },
    /// The directory belongs to another node.
    WrongNode {
        dir: PathBuf,
        recorded: Identity,
        node_id: String,
    },
    /// The directory belongs to another cluster.
    WrongCluster {
        dir: PathBuf,
        recorded: Identity,
        cluster_id: ClusterId,
    },
    /// The identity file does not parse.
    Damaged { path: PathBuf, reason: String },
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::Io { path, op, source } => {
                write!(
                    f,
                    "data directory: cannot {op} {}: {source}",
                    path.display()
                )
            }
            IdentityError::Locked { dir, holder } => write!(
                f,
                "data directory {} is in use by another kvstore process (pid {holder}); \
                 one directory serves one process: stop that one or choose another \
                 --data-dir",
                dir.display()
            ),
            IdentityError::WrongNode {
                dir,
                recorded,
                node_id,
            } => write!(
                f,
                "data directory {} belongs to node {:?} of cluster {:?}, but this node is \
                 NODE_ID {node_id:?}: start it with its own --data-dir (or NODE_ID {:?})",
                dir.display(),
                recorded.node_id,
                recorded.cluster_id,
                recorded.node_id
            ),
            IdentityError::WrongCluster {
                dir,
                recorded,
                cluster_id,
            } => {
                write!(
                    f,
                    "data directory {} belongs to cluster {:?} (node {:?}), but this node \
                     starts in cluster {:?}",
                    dir.display(),
                    recorded.cluster_id,
                    recorded.node_id,
                    cluster_id.as_str()
                )?;
                match cluster_id {
                    ClusterId::Explicit(_) => write!(f, " (from --cluster-id)"),
                    ClusterId::Derived(_) => write!(
                        f,
                        " (derived from this node's URL and PEERS): use this cluster's own \
                         --data-dir, or, if only the peers' URLs changed, start with \
                         --cluster-id {}",
                        recorded.cluster_id
                    ),
                }
            }
            IdentityError::Damaged { path, reason } => {
                write!(f, "data directory: {} is damaged: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for IdentityError {}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> IdentityError + 'a {
    move |source| IdentityError::Io {
        path: path.to_owned(),
        op,
        source,
    }
}

/// An opened, locked data directory of this node. The lock is held while this value lives.
#[derive(Debug)]
pub struct DataDir {
    /// The directory, as an absolute path.
    pub dir: PathBuf,
    pub identity: Identity,
    /// The identity was recorded by this start (a new directory, or one from before identity
    /// files existed).
    pub recorded_now: bool,
    /// Opened with [`DataDir::open_resuming`]: the cluster id this start derived from PEERS,
    /// when it differs from the recorded one (which `identity` keeps), and the refusal
    /// [`DataDir::open`] would have given. The caller refuses the start only when the
    /// directory holds no state.
    pub derived_differs: Option<(String, IdentityError)>,
    _lock: File,
}

impl DataDir {
    /// Create (durably) and lock `dir`, then check or record its identity; see the module
    /// header.
    pub fn open(
        dir: &Path,
        node_id: &str,
        cluster_id: ClusterId,
    ) -> Result<DataDir, IdentityError> {
        Self::open_with(dir, node_id, cluster_id, false)
    }

    /// [`DataDir::open`], except that a cluster id *derived* from PEERS that differs from the
    /// recorded one is not refused here: the recorded id is kept and the difference reported in
    /// [`DataDir::derived_differs`]. After the first start the log's configuration decides the
    /// membership and PEERS is only a hint, so a node with state resumes in its cluster even
    /// when PEERS now list other URLs; an explicit `--cluster-id` must still match.
    pub fn open_resuming(
        dir: &Path,
        node_id: &str,
        cluster_id: ClusterId,
    ) -> Result<DataDir, IdentityError> {
        Self::open_with(dir, node_id, cluster_id, true)
    }

    fn open_with(
        dir: &Path,
        node_id: &str,
        cluster_id: ClusterId,
        resuming: bool,
    ) -> Result<DataDir, IdentityError> {
        let dir = std::path::absolute(dir).map_err(io_err(dir, "resolve"))?;
        create_dir_durably(&dir)?;
        let lock = lock(&dir)?;
        for sub in ["wal", "snapshots"] {
            create_dir_durably(&dir.join(sub))?;
        }
        let path = dir.join(IDENTITY_FILE);
        let recorded = match fs::read(&path) {
            Ok(bytes) => Some(serde_json::from_slice::<Identity>(&bytes).map_err(|e| {
                IdentityError::Damaged {
                    path: path.clone(),
                    reason: e.to_string(),
                }
            })?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&path, "read")(e)),
        };
        let mut derived_differs = None;
        let (identity, recorded_now) = match recorded {
            Some(recorded) if recorded.node_id != node_id => {
                return Err(IdentityError::WrongNode {
                    dir,
                    recorded,
                    node_id: node_id.to_owned(),
                })
            }
            Some(recorded)
                if recorded.cluster_id != cluster_id.as_str()
                    && resuming
                    && matches!(cluster_id, ClusterId::Derived(_)) =>
            {
                let derived = cluster_id.as_str().to_owned();
                let refusal = IdentityError::WrongCluster {
                    dir: dir.clone(),
                    recorded: recorded.clone(),
                    cluster_id,
                };
                derived_differs = Some((derived, refusal));
                (recorded, false)
            }
            Some(recorded) if recorded.cluster_id != cluster_id.as_str() => {
                return Err(IdentityError::WrongCluster {
                    dir,
                    recorded,
                    cluster_id,
                })
            }
            Some(recorded) => (recorded, false),
            None => {
                let identity = Identity {
                    cluster_id: cluster_id.as_str().to_owned(),
                    node_id: node_id.to_owned(),
                };
                write_atomically(&dir, IDENTITY_FILE, &identity)?;
                (identity, true)
            }
        };
        Ok(DataDir {
            dir,
            identity,
            recorded_now,
            derived_differs,
            _lock: lock,
        })
    }
}

/// Create `dir` and any missing parents, each fsynced in its parent (see [`dirs`]).
fn create_dir_durably(dir: &Path) -> Result<(), IdentityError> {
    dirs::create_dir_all(dir).map_err(io_err(dir, "create directory"))
}

fn sync_dir(dir: &Path) -> Result<(), IdentityError> {
    dirs::sync_dir(dir).map_err(io_err(dir, "fsync directory"))
}

/// Take the exclusive lock on `dir/lock` (without waiting) and write this process's pid in it.
fn lock(dir: &Path) -> Result<File, IdentityError> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err(&path, "open"))?;
    // SAFETY: flock(2) on a file descriptor this function owns.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::WouldBlock {
            return Err(io_err(&path, "lock")(err));
        }
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        return Err(IdentityError::Locked {
            dir: dir.to_owned(),
            holder: if holder.is_empty() {
                "unknown".to_owned()
            } else {
                holder.chars().take(20).collect()
            },
        });
    }
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .map_err(io_err(&path, "write"))?;
    Ok(file)
}

/// Write `value` as JSON to `dir/name`: a temp file, fsync, rename, fsync the directory.
fn write_atomically(dir: &Path, name: &str, value: &Identity) -> Result<(), IdentityError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| IdentityError::Io {
        path: path.clone(),
        op: "encode",
        source: io::Error::other(e),
    })?;
    bytes.push(b'\n');
    failpoint::hit("identity.write")
        .and_then(|()| File::create(&tmp))
        .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
        .map_err(io_err(&tmp, "write"))?;
    failpoint::hit("identity.rename")
        .and_then(|()| fs::rename(&tmp, &path))
        .map_err(io_err(&path, "rename into"))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derived(s: &str) -> ClusterId {
        ClusterId::Derived(s.to_owned())
    }

    #[test]
    fn every_member_derives_the_same_cluster_id() {
        let urls = [
            "http://localhost:8081",
            "http://localhost:8082",
            "http://localhost:8083",
        ];
        let ids: Vec<String> = (0..3)
            .map(|i| {
                let peers: Vec<String> = (0..3)
                    .filter(|j| *j != i)
                    .map(|j| urls[j].to_owned())
                    .collect();
                derive_cluster_id(urls[i], &peers)
            })
            .collect();
        assert_eq!(ids[0], ids[1]);
        assert_eq!(ids[1], ids[2]);
        assert!(ids[0].starts_with('c') && ids[0].len() == 17, "{}", ids[0]);
        // 127.0.0.1 and localhost are one host; another port is another cluster.
        let mixed = derive_cluster_id(
            "http://127.0.0.1:8081",
            &[
                "http://localhost:8082".into(),
                "http://127.0.0.1:8083".into(),
            ],
        );
        assert_eq!(mixed, ids[0]);
        let other = derive_cluster_id("http://localhost:8081", &["http://localhost:9999".into()]);
        assert_ne!(other, ids[0]);
        assert_eq!(derive_cluster_id("http://localhost:1", &[]), STANDALONE);
    }

    #[test]
    fn a_restored_cluster_gets_one_new_id_per_backup_and_members() {
        let m = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(i, u)| (i.to_string(), u.to_string()))
                .collect()
        };
        let a = m(&[("n1", "http://localhost:1"), ("n2", "http://127.0.0.1:2")]);
        let b = m(&[("n2", "http://localhost:2"), ("n1", "http://127.0.0.1:1")]);
        let id = derive_restored_cluster_id(7, &a);
        assert_eq!(
            id,
            derive_restored_cluster_id(7, &b),
            "order and loopback spelling"
        );
        assert!(id.starts_with('c') && id.len() == 17, "{id}");
        assert_ne!(id, derive_restored_cluster_id(8, &a), "another backup");
        let urls = [
            "http://localhost:1".to_owned(),
            "http://localhost:2".to_owned(),
        ];
        assert_ne!(
            id,
            derive_cluster_id(&urls[0], &urls[1..]),
            "never the old cluster's"
        );
    }

    #[test]
    fn first_start_records_the_identity_and_later_starts_check_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/n1");
        let d = DataDir::open(&dir, "n1", derived("c1")).unwrap();
        assert!(d.recorded_now && d.dir.is_absolute());
        assert!(dir.join("wal").is_dir() && dir.join("snapshots").is_dir());
        drop(d);
        let d = DataDir::open(&dir, "n1", derived("c1")).unwrap();
        assert!(!d.recorded_now);
        drop(d);
        let e = DataDir::open(&dir, "n2", derived("c1")).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, IdentityError::WrongNode { .. })
                && msg.contains("\"n1\"")
                && msg.contains("\"n2\"")
                && msg.contains(&dir.display().to_string()),
            "{msg}"
        );
        let e = DataDir::open(&dir, "n1", derived("c2")).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("\"c1\"") && msg.contains("\"c2\"") && msg.contains("--cluster-id c1"),
            "{msg}"
        );
        let e = DataDir::open(&dir, "n1", ClusterId::Explicit("c2".into())).unwrap_err();
        assert!(matches!(e, IdentityError::WrongCluster { .. }), "{e}");
        fs::write(dir.join(IDENTITY_FILE), b"{nope").unwrap();
        let e = DataDir::open(&dir, "n1", derived("c1")).unwrap_err();
        assert!(matches!(e, IdentityError::Damaged { .. }), "{e}");
    }

    #[test]
    fn resuming_keeps_the_recorded_cluster_id_when_peers_derive_another() {
        let tmp = tempfile::tempdir().unwrap();
        drop(DataDir::open(tmp.path(), "n1", derived("c1")).unwrap());
        let d = DataDir::open_resuming(tmp.path(), "n1", derived("c2")).unwrap();
        assert_eq!(d.identity.cluster_id, "c1", "the recorded id wins");
        let (derived_id, refusal) = d.derived_differs.as_ref().unwrap();
        assert_eq!(derived_id, "c2");
        assert!(refusal.to_string().contains("--cluster-id c1"), "{refusal}");
        drop(d);
        let d = DataDir::open_resuming(tmp.path(), "n1", derived("c1")).unwrap();
        assert!(d.derived_differs.is_none());
        drop(d);
        // An explicit id must still match; another node id is still refused.
        let e = DataDir::open_resuming(tmp.path(), "n1", ClusterId::Explicit("c2".into()));
        assert!(matches!(e, Err(IdentityError::WrongCluster { .. })));
        let e = DataDir::open_resuming(tmp.path(), "n2", derived("c1"));
        assert!(matches!(e, Err(IdentityError::WrongNode { .. })));
    }

    #[test]
    fn a_second_open_of_a_locked_directory_is_refused_with_the_holders_pid() {
        let tmp = tempfile::tempdir().unwrap();
        let held = DataDir::open(tmp.path(), "n1", derived("c")).unwrap();
        let e = DataDir::open(tmp.path(), "n1", derived("c")).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        drop(held);
        DataDir::open(tmp.path(), "n1", derived("c")).expect("free again once dropped");
    }
}
