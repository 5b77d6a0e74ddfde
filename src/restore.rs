//! `kvstore restore --from FILE --data-dir DIR --node-id ID [--peers id=url,...]`: a new data
//! directory from a backup (`GET /admin/snapshot`, `kvstore backup`), like `etcdutl snapshot
//! restore`.
//!
//! The backup is checked first (the snapshot format's magic and CRC, every field's bound: the
//! same decoder start-up uses); a damaged file is refused (exit 1). `DIR` must not exist or be
//! empty (else exit 2). What it creates is what `kvstore` starts from:
//! - `identity`: this node's id and a **new cluster id** ([`derive_restored_cluster_id`]: from
//!   the backup's own checksum (the CRC-32 it ends with) and the sorted members, or
//!   `--cluster-id`), so every node restored from one file with the same `--peers` agrees on
//!   it and none of them ever takes in (or is taken in by) a node of the old cluster, whose
//!   RPCs carry the old id;
//! - `snapshots/`: the backup's map at its index and term, with the configuration of
//!   `--peers` (all voters; without `--peers`, the one the backup records) in force;
//! - `wal/`: an empty log after the snapshot, with the snapshot's term as the hard state.
//!
//! The first start needs no PEERS (the configuration is in the snapshot); PEERS, if given, is
//! a hint as usual. Exit status: 0 restored, 1 a damaged or unreadable backup or a failure
//! while writing, 2 a usage error (bad flags, a non-empty `DIR`, `--node-id` not a member).
//!
//! Offline: it never talks to a node; it writes only inside `DIR`.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use crate::config::{parse_base_url, MAX_NODE_ID_BYTES};
use crate::raft::{Configuration, HardState, Member};
use crate::storage::identity::{derive_restored_cluster_id, ClusterId, DataDir};
use crate::storage::snapshot::{self, Snapshot};
use crate::storage::wal::{Record, Wal};

/// Segment size of the restored log (the server's default; a node may roll over at another).
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Snapshots kept in the restored directory (it has one).
const KEEP: usize = 2;

/// Create a data directory from a backup.
#[derive(Debug, Parser)]
#[command(
    name = "kvstore restore",
    about = "Create a new data directory from a backup (GET /admin/snapshot, kvstore backup)",
    after_help = "Every node of the new cluster is restored from the same file with the same \
                  --peers; they share a new cluster id and never join the old cluster.\n\n\
                  Exit status: 0 restored, 1 damaged or unreadable backup (or a write failed), \
                  2 usage error (bad flags, non-empty --data-dir).\n\n\
                  Examples:\n  \
                  kvstore restore --from backup.snap --data-dir data/n1 --node-id n1 \\\n    \
                  --peers n1=http://10.0.0.1:8080,n2=http://10.0.0.2:8080,n3=http://10.0.0.3:8080\n  \
                  NODE_ID=n1 PORT=8080 KVSTORE_DATA_DIR=data/n1 kvstore   # then start it"
)]
struct Args {
    /// The backup file (a snapshot file, as `GET /admin/snapshot` answers).
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// The data directory to create (must not exist, or be empty).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// This node's id (one of --peers).
    #[arg(long, value_name = "ID")]
    node_id: String,
    /// Every member of the new cluster as id=url (comma-separated), all voters. Default: the
    /// members the backup records.
    #[arg(long, value_name = "ID=URL,...")]
    peers: Option<String>,
    /// The new cluster's id (default: derived from the backup and the members).
    #[arg(long, value_name = "ID")]
    cluster_id: Option<String>,
    /// `text` (one summary line) or `json`.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    output: String,
}

/// What went wrong, with its exit status.
#[derive(Debug)]
pub enum RestoreError {
    /// Bad flags, a non-empty directory, an id that is not a member (exit 2).
    Usage(String),
    /// A damaged or unreadable backup, or a failure while writing (exit 1).
    Failed(String),
}

impl RestoreError {
    fn code(&self) -> u8 {
        match self {
            RestoreError::Usage(_) => 2,
            RestoreError::Failed(_) => 1,
        }
    }
}

impl std::fmt::Display for RestoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestoreError::Usage(m) | RestoreError::Failed(m) => f.write_str(m),
        }
    }
}

/// What a restore made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub dir: PathBuf,
    pub keys: usize,
    pub index: u64,
    pub term: u64,
    pub cluster_id: String,
    pub node_id: String,
}

/// Run `kvstore restore` with the arguments after `restore`.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args: Args = match crate::config::parse_command("kvstore restore", args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    if args.output != "text" && args.output != "json" {
        eprintln!(
            "error: --output must be text or json, not {:?}",
            args.output
        );
        return ExitCode::from(2);
    }
    let members = match args.peers.as_deref().map(parse_members).transpose() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match restore(
        &args.from,
        &args.data_dir,
        &args.node_id,
        members,
        args.cluster_id,
    ) {
        Ok(r) if args.output == "json" => {
            println!("{}", summary_json(&r));
            ExitCode::SUCCESS
        }
        Ok(r) => {
            println!(
                "restored {} keys at index {} into {} (cluster {})",
                r.keys,
                r.index,
                r.dir.display(),
                r.cluster_id
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.code())
        }
    }
}

/// The `--output json` summary of a restore. The directory is shown as `Path::display` does
/// (a path that is not UTF-8 would make serializing it fail).
fn summary_json(r: &Restored) -> serde_json::Value {
    serde_json::json!({
        "ok": true, "dataDir": r.dir.display().to_string(), "keys": r.keys, "index": r.index,
        "term": r.term, "clusterId": r.cluster_id, "nodeId": r.node_id,
    })
}

/// `id=url,id=url,...` → (id, url) pairs: every entry named, ids and URLs valid and distinct.
pub fn parse_members(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, url) = match item.split_once('=') {
            Some((id, url)) if !id.contains("://") => (id.trim(), url.trim()),
            _ => return Err(format!("--peers entry {item:?} must be id=url")),
        };
        if id.is_empty()
            || id.len() > MAX_NODE_ID_BYTES
            || id.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "invalid node id {id:?} in --peers: non-empty, at most {MAX_NODE_ID_BYTES} \
                 bytes, no spaces"
            ));
        }
        let url =
            parse_base_url(url).map_err(|why| format!("invalid URL {url:?} in --peers: {why}"))?;
        if out.iter().any(|(i, _)| i == id) {
            return Err(format!("--peers names {id:?} twice"));
        }
        if out.iter().any(|(_, u)| *u == url) {
            return Err(format!("--peers lists {url} twice"));
        }
        out.push((id.to_owned(), url));
    }
    if out.is_empty() {
        return Err("--peers lists no member".into());
    }
    Ok(out)
}

/// Restore `from` into the new data directory `dir` for node `node_id` of the cluster of
/// `members` (`None`: the members the backup records); see the module header.
pub fn restore(
    from: &Path,
    dir: &Path,
    node_id: &str,
    members: Option<Vec<(String, String)>>,
    cluster_id: Option<String>,
) -> Result<Restored, RestoreError> {
    check_empty(dir)?;
    let (snap, crc) = read_backup(from)?;
    if snap.meta.index == 0 {
        return Err(RestoreError::Failed(format!(
            "{} holds no committed index (index 0): not a backup of a running cluster",
            from.display()
        )));
    }
    // With --peers: all voters. Without: the configuration the backup records, learners
    // still learners (a learner made a voter would count in every quorum of the new cluster
    // even if it is never restored).
    let recorded = match members {
        Some(_) => None,
        None => snap.configuration.clone(),
    };
    let members = match members {
        Some(m) => m,
        None => match &snap.configuration {
            Some(c) => c
                .voters()
                .iter()
                .chain(c.learners())
                .map(|m| (m.id.clone(), m.url.clone()))
                .collect(),
            None => {
                return Err(RestoreError::Usage(format!(
                    "{} records no members (an old format): give --peers",
                    from.display()
                )))
            }
        },
    };
    if !members.iter().any(|(id, _)| id == node_id) {
        let ids: Vec<&str> = members.iter().map(|(id, _)| id.as_str()).collect();
        return Err(RestoreError::Usage(format!(
            "--node-id {node_id:?} is not one of the members ({})",
            ids.join(", ")
        )));
    }
    let configuration = match recorded {
        Some(c) => c,
        None => Configuration::new(
            members
                .iter()
                .map(|(id, url)| Member::new(id.clone(), url.clone()))
                .collect(),
        )
        .map_err(|e| RestoreError::Usage(format!("--peers: {e}")))?,
    };
    let cluster_id = cluster_id.unwrap_or_else(|| derive_restored_cluster_id(crc, &members));
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        RestoreError::Failed(format!(
            "{what}: {e}; {} is incomplete: remove it before trying again",
            dir.display()
        ))
    };
    let spinner = crate::progress::spinner("writing the data directory");
    let data_dir = DataDir::open(dir, node_id, ClusterId::Explicit(cluster_id.clone()))
        .map_err(|e| failed("cannot create the data directory", &e))?;
    // Revisions and idempotency records as the backup has them (a v1/v2 backup: none).
    let bytes = snapshot::encode(
        snap.meta,
        Some(&configuration),
        snap.entries(),
        &snap.idempotency,
    );
    snapshot::write_bytes(
        &data_dir.dir.join("snapshots"),
        snap.meta.index,
        &bytes,
        KEEP,
    )
    .map_err(|e| failed("cannot write the snapshot", &e))?;
    let (mut wal, _) = Wal::open(&data_dir.dir.join("wal"), SEGMENT_BYTES, snap.meta.index)
        .map_err(|e| failed("cannot create the log", &e))?;
    let hard_state = HardState {
        term: snap.meta.term,
        voted_for: None,
    };
    wal.append(&[Record::HardState(hard_state)])
        .and_then(|()| wal.sync())
        .map_err(|e| failed("cannot write the log", &e))?;
    spinner.finish_and_clear();
    Ok(Restored {
        dir: data_dir.dir.clone(),
        keys: snap.pairs.len(),
        index: snap.meta.index,
        term: snap.meta.term,
        cluster_id,
        node_id: node_id.to_owned(),
    })
}

/// `dir` must not exist, or be an empty directory.
fn check_empty(dir: &Path) -> Result<(), RestoreError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(RestoreError::Usage(format!(
                "--data-dir {} is not empty: restore creates a new data directory (a node's \
                 existing data is never overwritten); give a new or empty directory",
                dir.display()
            ))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RestoreError::Usage(format!(
            "--data-dir {}: {e}",
            dir.display()
        ))),
    }
}

/// Read and check the backup; the snapshot and its own checksum (the CRC-32 the file ends
/// with, of everything after the magic).
///
/// Not the CRC-32 of the whole file: a file that ends with the CRC-32 of what precedes it
/// (after a fixed magic) has a whole-file CRC-32 that depends only on its length, so two
/// different backups of the same size would have the same one (and their restored clusters,
/// with the same members, the same cluster id).
fn read_backup(from: &Path) -> Result<(Snapshot, u32), RestoreError> {
    let unreadable = |e: std::io::Error| {
        RestoreError::Failed(format!("cannot read the backup {}: {e}", from.display()))
    };
    let mut file = std::fs::File::open(from).map_err(unreadable)?;
    let len = file.metadata().map_err(unreadable)?.len();
    let bar = crate::progress::bytes(len, "reading the backup");
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                bytes.extend_from_slice(&chunk[..n]);
                bar.inc(n as u64);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(unreadable(e)),
        }
    }
    bar.finish_and_clear();
    let spinner = crate::progress::spinner("checking the backup");
    let snap = snapshot::decode(&bytes).map_err(|why| {
        RestoreError::Failed(format!(
            "{} is not a usable backup: {why}; nothing was written",
            from.display()
        ))
    })?;
    spinner.finish_and_clear();
    // decode checked that the file is longer than its 4-byte checksum.
    let mut trailer = [0u8; 4];
    trailer.copy_from_slice(&bytes[bytes.len() - 4..]);
    Ok((snap, u32::from_le_bytes(trailer)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::snapshot::SnapshotMeta;

    fn backup(dir: &Path) -> PathBuf {
        let meta = SnapshotMeta { index: 9, term: 3 };
        let old = Configuration::new(vec![Member::new("a", "http://old:1")]).unwrap();
        let bytes = snapshot::encode_pairs(meta, Some(&old), [("k", "v"), ("x", "y")].into_iter());
        let path = dir.join("backup.snap");
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn members_are_id_url_pairs() {
        let m = parse_members("n1=http://a:1, n2=http://b:2").unwrap();
        assert_eq!(m[1], ("n2".to_owned(), "http://b:2".to_owned()));
        for bad in [
            "http://a:1",
            "n1=http://a:1,n1=http://b:2",
            "n1=ftp://a",
            "",
            "=http://a:1",
        ] {
            assert!(parse_members(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_restored_directory_holds_the_map_the_new_members_and_a_new_cluster_id() {
        let tmp = tempfile::tempdir().unwrap();
        let from = backup(tmp.path());
        let members = parse_members("n1=http://h:1,n2=http://h:2").unwrap();
        let dir = tmp.path().join("n1");
        let r = restore(&from, &dir, "n1", Some(members.clone()), None).unwrap();
        assert_eq!((r.keys, r.index, r.term), (2, 9, 3));
        let rec = crate::startup::recover(&dir, SEGMENT_BYTES).unwrap();
        assert_eq!(rec.state.len(), 2);
        assert_eq!(rec.hard_state.term, 3);
        assert_eq!(rec.log.last_index(), 9);
        assert_eq!(rec.configuration.unwrap().voters().len(), 2);
        // The second node of the same restore agrees on the cluster id.
        let r2 = restore(&from, &tmp.path().join("n2"), "n2", Some(members), None).unwrap();
        assert_eq!(r.cluster_id, r2.cluster_id);
        let report = crate::verify::report(&dir);
        assert_eq!(report.1, crate::verify::Outcome::Intact, "{}", report.0);
    }

    /// Two different backups of the same size restored with the same members are two
    /// clusters: the cluster id depends on the backup's content, not only on its length.
    #[test]
    fn backups_of_the_same_size_restore_to_different_cluster_ids() {
        let tmp = tempfile::tempdir().unwrap();
        let meta = SnapshotMeta { index: 9, term: 3 };
        let mut ids = Vec::new();
        for (i, value) in ["v", "w"].into_iter().enumerate() {
            let path = tmp.path().join(format!("b{i}.snap"));
            std::fs::write(
                &path,
                snapshot::encode_pairs(meta, None, [("k", value)].into_iter()),
            )
            .unwrap();
            let members = parse_members("n1=http://h:1").unwrap();
            let dir = tmp.path().join(format!("d{i}"));
            ids.push(
                restore(&path, &dir, "n1", Some(members), None)
                    .unwrap()
                    .cluster_id,
            );
        }
        let (a, b) = (
            std::fs::read(tmp.path().join("b0.snap")).unwrap(),
            std::fs::read(tmp.path().join("b1.snap")).unwrap(),
        );
        assert_eq!(a.len(), b.len());
        assert_eq!(
            crc32fast::hash(&a),
            crc32fast::hash(&b),
            "the whole-file CRC-32 of equal-length snapshots is the same"
        );
        assert_ne!(ids[0], ids[1], "two backups, two clusters");
    }

    /// Without --peers the backup's configuration is restored as it is: its learners stay
    /// learners (not voters every quorum of the new cluster would then need).
    #[test]
    fn without_peers_the_recorded_learners_stay_learners() {
        let tmp = tempfile::tempdir().unwrap();
        let recorded = Configuration::with_learners(
            vec![
                Member::new("a", "http://h:1"),
                Member::new("b", "http://h:2"),
            ],
            vec![Member::new("r", "http://far:3")],
        )
        .unwrap();
        let meta = SnapshotMeta { index: 9, term: 3 };
        let path = tmp.path().join("b.snap");
        std::fs::write(
            &path,
            snapshot::encode_pairs(meta, Some(&recorded), [("k", "v")].into_iter()),
        )
        .unwrap();
        let dir = tmp.path().join("a");
        restore(&path, &dir, "a", None, None).unwrap();
        let rec = crate::startup::recover(&dir, SEGMENT_BYTES).unwrap();
        let c = rec.configuration.unwrap();
        assert_eq!(c.voters().len(), 2, "{c:?}");
        assert_eq!(c.learners().len(), 1, "{c:?}");
        assert!(!c.is_voter("r"));
    }

    #[test]
    fn the_json_summary_of_a_directory_whose_name_is_not_utf8() {
        use std::os::unix::ffi::OsStrExt;
        let r = Restored {
            dir: PathBuf::from(std::ffi::OsStr::from_bytes(b"data/n\xff1")),
            keys: 2,
            index: 9,
            term: 3,
            cluster_id: "c0".into(),
            node_id: "n1".into(),
        };
        let v = summary_json(&r);
        assert_eq!(v["dataDir"], "data/n\u{fffd}1");
        assert_eq!(v["keys"], 2);
    }

    #[test]
    fn refusals_a_non_empty_dir_a_damaged_file_a_stranger() {
        let tmp = tempfile::tempdir().unwrap();
        let from = backup(tmp.path());
        let m = || Some(parse_members("n1=http://h:1").unwrap());
        let e = restore(&from, tmp.path(), "n1", m(), None).unwrap_err();
        assert!(matches!(e, RestoreError::Usage(_)) && e.to_string().contains("not empty"));
        let e = restore(&from, &tmp.path().join("d"), "n9", m(), None).unwrap_err();
        assert!(matches!(e, RestoreError::Usage(_)), "{e}");
        let mut bytes = std::fs::read(&from).unwrap();
        bytes[30] ^= 1;
        std::fs::write(&from, bytes).unwrap();
        let e = restore(&from, &tmp.path().join("d"), "n1", m(), None).unwrap_err();
        assert!(matches!(e, RestoreError::Failed(_)), "{e}");
        assert!(e.to_string().contains("checksum"), "{e}");
        assert!(!tmp.path().join("d").exists(), "nothing written");
    }
}
