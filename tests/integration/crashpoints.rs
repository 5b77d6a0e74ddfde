//! Every crash point of the storage write path: a real node runs with a failpoint that ends
//! the process (`_exit`, as abrupt as a SIGKILL) at one step of creating a segment, writing a
//! snapshot or compacting the log, while a client writes. The data directory it leaves must
//! start and hold every acknowledged write, and keep working: more writes, another crash, a
//! restart, nothing lost. Also: `kvstore verify` on intact and damaged directories.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kvstore::storage::failpoint::CRASH_STATUS;

use crate::helpers::{binary, client, get, poll_until, KvProcess};

/// Small segments and frequent snapshots, so every step is reached within a few hundred writes.
fn start(dir: &Path, failpoints: Option<&str>) -> Result<KvProcess, String> {
    let d = dir.to_string_lossy().into_owned();
    let mut envs = vec![
        ("KVSTORE_DATA_DIR", d.as_str()),
        ("KVSTORE_SNAPSHOT_ENTRIES", "150"),
    ];
    if let Some(f) = failpoints {
        envs.push(("KVSTORE_FAILPOINTS", f));
    }
    KvProcess::try_start(
        &[
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--wal-segment-bytes",
            "4096",
        ],
        &envs,
    )
}

/// `PUT /set`; `None` when the node did not answer (it crashed).
async fn try_put(base: &str, key: &str, value: &str) -> Option<u16> {
    let res = client()
        .put(format!("{base}/set"))
        .timeout(Duration::from_secs(10))
        .send_json(&serde_json::json!({ "key": key, "value": value }))
        .await
        .ok()?;
    Some(res.status().as_u16())
}

/// Write keys `prefix0..` until the node stops answering or `max` writes; returns the
/// acknowledged ones.
async fn write_until_crash(node: &KvProcess, prefix: &str, max: usize) -> BTreeMap<String, String> {
    let mut acked = BTreeMap::new();
    for i in 0..max {
        let (k, v) = (format!("{prefix}{i}"), format!("value {i} of {prefix}"));
        match try_put(&node.url(""), &k, &v).await {
            Some(200) => {
                acked.insert(k, v);
            }
            Some(_) => {}
            None => break,
        }
    }
    acked
}

async fn assert_holds(node: &KvProcess, acked: &BTreeMap<String, String>, what: &str) {
    if let Some(first) = acked.keys().next() {
        poll_until(Duration::from_secs(20), || async {
            match get(&node.url(""), first, false).await.0 {
                200 => Ok(()),
                st => Err(st),
            }
        })
        .await
        .unwrap_or_else(|st| panic!("{what}: the restarted node does not serve reads ({st})"));
    }
    for (k, v) in acked {
        let (st, body) = get(&node.url(""), k, false).await;
        assert_eq!(
            (st, body["value"].as_str()),
            (200, Some(v.as_str())),
            "{what}: acknowledged {k} lost"
        );
    }
}

/// Run with `failpoint` (a `name=crash@N`), write until the crash, check the process died at
/// the failpoint, restart and check every acknowledged write; then write more, SIGKILL, restart
/// and check again.
async fn survives(failpoint: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = BTreeMap::new();
    match start(dir.path(), Some(failpoint)) {
        Ok(mut node) => {
            acked = write_until_crash(&node, "a", 3000).await;
            let status = node
                .wait_exit(Duration::from_secs(20))
                .unwrap_or_else(|| panic!("{failpoint}: not reached within 3000 writes"));
            assert_eq!(status.code(), Some(CRASH_STATUS), "{failpoint}: {status}");
        }
        Err(printed) => {
            // Crashed during start-up (the first segment, the data directory).
            assert!(
                printed.contains("failpoint"),
                "{failpoint}: did not start and did not crash at the failpoint: {printed}"
            );
        }
    }
    let node = start(dir.path(), None)
        .unwrap_or_else(|p| panic!("{failpoint}: refuses to start after the crash:\n{p}"));
    assert_holds(&node, &acked, failpoint).await;
    let more = write_until_crash(&node, "b", 400).await;
    assert_eq!(more.len(), 400, "{failpoint}: writes after the restart");
    acked.extend(more);
    node.signal(libc::SIGKILL);
    let mut node = node;
    node.wait_exit(Duration::from_secs(10)).expect("killed");
    drop(node);
    let node = start(dir.path(), None)
        .unwrap_or_else(|p| panic!("{failpoint}: refuses the second restart:\n{p}"));
    assert_holds(&node, &acked, failpoint).await;
    let report = verify(dir.path());
    drop(node);
    assert_eq!(report.0, Some(0), "{failpoint}: verify says\n{}", report.1);
}

/// `kvstore verify --data-dir DIR`: (exit code, stdout).
fn verify(dir: &Path) -> (Option<i32>, String) {
    let out = Command::new(binary())
        .args(["verify", "--data-dir"])
        .arg(dir)
        .output()
        .expect("run kvstore verify");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[actix_web::test]
async fn a_crash_at_any_step_of_creating_a_segment_loses_nothing() {
    // Hit 1 is the first segment at the first start; hit 2 the first roll-over.
    for step in ["create", "header", "sync", "rename", "renamed"] {
        for n in [1, 2] {
            survives(&format!("wal.segment.{step}=crash@{n}")).await;
        }
    }
}

#[actix_web::test]
async fn a_crash_at_any_step_of_writing_a_snapshot_loses_nothing() {
    for step in ["create", "data", "sync", "rename", "renamed", "prune"] {
        survives(&format!("snapshot.write.{step}=crash@1")).await;
    }
    // Pruning only happens from the third snapshot on (two are kept).
    survives("snapshot.write.prune=crash@3").await;
}

#[actix_web::test]
async fn a_crash_at_any_step_of_compaction_or_a_directory_sync_loses_nothing() {
    for point in [
        "wal.roll.created=crash@1",
        "wal.roll.marked=crash@1",
        "wal.compact.remove=crash@1",
        "wal.compact.remove=crash@2",
        "dir.create=crash@1",
        "dir.create=crash@2",
        "identity.write=crash@1",
        "identity.rename=crash@1",
        "dir.sync=crash@1",
        "dir.sync=crash@3",
        "dir.sync=crash@6",
        "wal.write=crash@40",
        "wal.sync=crash@40",
    ] {
        survives(point).await;
    }
}

/// `writers` clients each write keys `prefix{w}-0..` (at most `max` each) until the node stops
/// answering; once `kill_after` writes are acknowledged (if given) the node gets a SIGKILL.
/// Returns the acknowledged writes.
async fn write_concurrently(
    node: &KvProcess,
    prefix: &str,
    writers: usize,
    max: usize,
    kill_after: Option<usize>,
) -> BTreeMap<String, String> {
    let acked = std::cell::RefCell::new(BTreeMap::new());
    let base = node.url("");
    let one = |w: usize| {
        let (acked, base) = (&acked, base.clone());
        async move {
            for i in 0..max {
                let (k, v) = (format!("{prefix}{w}-{i}"), format!("value {i} of {w}"));
                match try_put(&base, &k, &v).await {
                    Some(200) => {
                        let n = {
                            let mut a = acked.borrow_mut();
                            a.insert(k, v);
                            a.len()
                        };
                        if kill_after == Some(n) {
                            node.signal(libc::SIGKILL);
                        }
                    }
                    Some(_) => {}
                    None => break,
                }
            }
        }
    };
    futures_util::future::join_all((0..writers).map(one)).await;
    acked.into_inner()
}

/// Pipelined group commit: the process ends while two batches are in flight (the first one
/// fsynced but not yet answered, the next appended but not fsynced: the `wal.sync.pipelined`
/// point), with 16 clients writing at once; then a SIGKILL in the middle of the same load.
/// Every acknowledged write survives both, and the log verifies intact.
#[actix_web::test]
async fn a_crash_with_two_batches_in_flight_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let point = "wal.sync.pipelined=crash@5";
    let mut node = start(dir.path(), Some(point)).expect("starts");
    let mut acked = write_concurrently(&node, "a", 16, 200, None).await;
    let status = node
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("{point}: not reached with 16 writers"));
    assert_eq!(status.code(), Some(CRASH_STATUS), "{point}: {status}");
    drop(node);
    let node = start(dir.path(), None).expect("restarts after the crash");
    assert_holds(&node, &acked, point).await;
    let more = write_concurrently(&node, "b", 16, 100, Some(600)).await;
    assert!(
        more.len() >= 600,
        "{} writes before the SIGKILL",
        more.len()
    );
    acked.extend(more);
    let mut node = node;
    node.wait_exit(Duration::from_secs(10)).expect("killed");
    drop(node);
    let node = start(dir.path(), None).expect("restarts after the SIGKILL");
    assert_holds(&node, &acked, "SIGKILL under load").await;
    let report = verify(dir.path());
    drop(node);
    assert_eq!(report.0, Some(0), "verify says\n{}", report.1);
}

#[actix_web::test]
async fn verify_reports_an_intact_directory_and_names_the_first_damage() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), None).expect("starts");
    let acked = write_until_crash(&node, "k", 500).await;
    assert_eq!(acked.len(), 500);
    drop(node); // SIGKILL
    let (code, out) = verify(dir.path());
    assert_eq!(code, Some(0), "{out}");
    for want in [
        "snapshots",
        ".snap",
        ".wal",
        "hard state: term",
        "result: intact",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    // Damage the middle of the oldest segment: exit 1, file and offset named, nothing changed.
    let mut segs: Vec<_> = std::fs::read_dir(dir.path().join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    let seg = &segs[0];
    let mut bytes = std::fs::read(seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(seg, &bytes).unwrap();
    let (code, out) = verify(dir.path());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("DAMAGED"), "{out}");
    assert!(out.contains(&seg.display().to_string()), "{out}");
    assert!(out.contains("at byte"), "{out}");
    assert_eq!(std::fs::read(seg).unwrap(), bytes, "verify changes nothing");
    let (code, _) = verify(&dir.path().join("no-such-dir"));
    assert_eq!(code, Some(2));
}
