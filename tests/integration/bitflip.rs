//! Damaged bytes: single flipped bits and short runs of random bytes all over the write-ahead
//! log and the snapshot files of a stopped node. After each, the node must either refuse to
//! start or start with every acknowledged write; never start having silently lost one.
//!
//! The data directory comes from a real node (snapshots every 1,000 entries, 64 KiB segments,
//! 3,000 keys written, 500 overwritten, 100 deleted). Each trial damages a copy and recovers it
//! with the same code start-up runs (`startup::recover`), then applies the recovered log as a
//! single node does once it commits it; a few trials start the real binary on the copy.
//! `BITFLIP_SEED` replays a run (the seed is printed), `BITFLIP_TRIALS` sets how many trials.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kvstore::raft::log::EntryPayload;
use kvstore::startup::recover;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::helpers::{delete, get, poll_until, put, KvProcess};

const SEGMENT_BYTES: u64 = 64 * 1024;

/// A single node on loopback, a port the OS picks, segments of `seg` bytes.
fn node_args(seg: &str) -> [&str; 6] {
    [
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--wal-segment-bytes",
        seg,
    ]
}

/// Every stored file of a data directory: (path relative to it, bytes).
fn stored_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in ["wal", "snapshots"] {
        let mut names: Vec<_> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let rel = p.strip_prefix(dir).unwrap().to_owned();
            out.push((rel, std::fs::read(&p).unwrap()));
        }
    }
    out
}

/// Write `files` into `dir` (a fresh copy of the data directory, with the identity of
/// `origin`, which is not damaged: the test is about the log and the snapshots).
fn lay_out(dir: &Path, files: &[(PathBuf, Vec<u8>)], origin: &Path) {
    for sub in ["wal", "snapshots"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::copy(origin.join("identity"), dir.join("identity")).unwrap();
    for (rel, bytes) in files {
        std::fs::write(dir.join(rel), bytes).unwrap();
    }
}

/// One damage: where and what.
#[derive(Debug, Clone)]
struct Damage {
    file: PathBuf,
    offset: usize,
    /// A single bit (`bit`), or a run of random bytes.
    kind: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at byte {} of {}",
            self.kind,
            self.offset,
            self.file.display()
        )
    }
}

/// Damage one file of `files` at random (weighted by size): one flipped bit (70%) or a run of
/// 1 to 16 random bytes that differs from what was there.
fn damage(rng: &mut StdRng, files: &mut [(PathBuf, Vec<u8>)]) -> Damage {
    let total: usize = files.iter().map(|f| f.1.len()).sum();
    let mut at = rng.gen_range(0..total);
    let idx = files
        .iter()
        .position(|f| {
            if at < f.1.len() {
                true
            } else {
                at -= f.1.len();
                false
            }
        })
        .unwrap();
    let (file, bytes) = &mut files[idx];
    let offset = at;
    let kind = if rng.gen_bool(0.7) {
        let bit = rng.gen_range(0..8);
        bytes[offset] ^= 1 << bit;
        format!("bit {bit} flipped")
    } else {
        let len = rng.gen_range(1..=16).min(bytes.len() - offset);
        let before = bytes[offset..offset + len].to_vec();
        loop {
            rng.fill(&mut bytes[offset..offset + len]);
            if bytes[offset..offset + len] != before[..] {
                break;
            }
        }
        format!("{len} random bytes")
    };
    Damage {
        file: file.clone(),
        offset,
        kind,
    }
}

/// Start-up's recovery on `dir`, then the recovered log applied: the map the node serves once
/// it has committed its log, or why it refuses to start.
fn served_map(dir: &Path) -> Result<kvstore::store::KvState, String> {
    let rec = recover(dir, SEGMENT_BYTES).map_err(|e| e.to_string())?;
    let mut state = rec.state;
    let log = rec.log;
    for index in log.base_index() + 1..=log.last_index() {
        let entry = log.entry(index).ok_or("log gap")?;
        let applied = match &entry.payload {
            EntryPayload::Noop | EntryPayload::Config { .. } => state.apply_noop(index).map(|_| ()),
            EntryPayload::Command { command } => state.apply(index, command.clone()).map(|_| ()),
        };
        applied.map_err(|e| format!("apply: {e:?}"))?;
    }
    Ok(state)
}

/// A real node's data directory and the acknowledged value of every key (`None`: deleted).
async fn make_data_dir(dir: &Path) -> BTreeMap<String, Option<String>> {
    let d = dir.to_string_lossy().into_owned();
    let seg = SEGMENT_BYTES.to_string();
    let mut node = KvProcess::start(
        &node_args(&seg),
        &[
            ("KVSTORE_DATA_DIR", &d),
            ("KVSTORE_SNAPSHOT_ENTRIES", "1000"),
        ],
    );
    let base = node.url("");
    let mut acked = BTreeMap::new();
    for k in 0..3000 {
        let (key, value) = (
            format!("key{k:04}"),
            format!("value-{k}-{}", "x".repeat(k % 40)),
        );
        assert_eq!(put(&base, &key, &value).await.0, 200, "{key}");
        acked.insert(key, Some(value));
    }
    for k in (0..3000).step_by(6) {
        let (key, value) = (format!("key{k:04}"), format!("second-{k}"));
        assert_eq!(put(&base, &key, &value).await.0, 200, "{key}");
        acked.insert(key, Some(value));
    }
    for k in (3..3000).step_by(30) {
        let key = format!("key{k:04}");
        assert_eq!(delete(&base, &key).await, 200, "{key}");
        acked.insert(key, None);
    }
    node.signal(libc::SIGKILL);
    node.wait_exit(Duration::from_secs(10)).expect("killed");
    acked
}

#[actix_web::test]
async fn damaged_bytes_anywhere_refuse_to_start_or_lose_no_acknowledged_write() {
    let seed: u64 = std::env::var("BITFLIP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let trials: usize = std::env::var("BITFLIP_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    println!("bit-flip test: BITFLIP_SEED={seed} BITFLIP_TRIALS={trials}");
    let origin = tempfile::tempdir().unwrap();
    let acked = make_data_dir(origin.path()).await;
    let pristine = stored_files(origin.path());
    let count = |sub: &str| pristine.iter().filter(|f| f.0.starts_with(sub)).count();
    assert!(
        count("snapshots") >= 2,
        "{:?}",
        pristine.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert!(count("wal") >= 2);
    assert_eq!(
        served_map(origin.path()).map(|s| s.len()),
        Ok(acked.values().filter(|v| v.is_some()).count()),
        "the undamaged copy serves every write"
    );

    let mut rng = StdRng::seed_from_u64(seed);
    let (mut refused, mut started) = (BTreeMap::new(), BTreeMap::new());
    for trial in 0..trials {
        let mut files = pristine.clone();
        let dmg = damage(&mut rng, &mut files);
        let work = tempfile::tempdir().unwrap();
        lay_out(work.path(), &files, origin.path());
        let kind = if dmg.file.starts_with("wal") {
            "wal"
        } else {
            "snapshot"
        };
        match served_map(work.path()) {
            Err(why) => {
                assert!(
                    why.contains("damaged") || why.contains("snapshot"),
                    "trial {trial} (BITFLIP_SEED={seed}): unclear refusal {why:?} after {dmg}"
                );
                *refused.entry(kind).or_insert(0) += 1;
            }
            Ok(state) => {
                for (key, want) in &acked {
                    assert_eq!(
                        state.get(key),
                        want.as_deref(),
                        "trial {trial} (replay with BITFLIP_SEED={seed}): started after {dmg} \
                         but lost the acknowledged value of {key}"
                    );
                }
                *started.entry(kind).or_insert(0) += 1;
            }
        }
    }
    println!("bit-flip test: {trials} trials: refused {refused:?}, started intact {started:?}");
    assert!(!refused.is_empty(), "some damage must be refused");

    // The real binary on a few damaged copies: it refuses with a pointer to `kvstore verify`,
    // or serves every acknowledged write.
    for trial in 0..6 {
        let mut files = pristine.clone();
        let dmg = damage(&mut rng, &mut files);
        let work = tempfile::tempdir().unwrap();
        lay_out(work.path(), &files, origin.path());
        let d = work.path().to_string_lossy().into_owned();
        let seg = SEGMENT_BYTES.to_string();
        match KvProcess::try_start(&node_args(&seg), &[("KVSTORE_DATA_DIR", &d)]) {
            Err(printed) => {
                assert!(
                    printed.contains("kvstore verify --data-dir"),
                    "process trial {trial} (BITFLIP_SEED={seed}) after {dmg}: {printed}"
                );
            }
            Ok(node) => {
                let first = acked.keys().next().unwrap().clone();
                poll_until(Duration::from_secs(20), || async {
                    match get(&node.url(""), &first, false).await.0 {
                        200 | 404 => Ok(()),
                        st => Err(st),
                    }
                })
                .await
                .expect("the restarted node serves reads");
                for (key, want) in &acked {
                    let (st, body) = get(&node.url(""), key, false).await;
                    let got = (st == 200).then(|| body["value"].as_str().map(str::to_owned));
                    assert_eq!(
                        got.flatten(),
                        want.clone(),
                        "process trial {trial} (BITFLIP_SEED={seed}) after {dmg}: {key}"
                    );
                }
            }
        }
    }
}
