//! Backup and restore: `GET /admin/snapshot` on a 3-node durable process cluster under write
//! load (leader and follower), the whole cluster destroyed, three data directories made with
//! `kvstore restore`, a new cluster started from them (no PEERS) that holds every write
//! acknowledged before the backup was asked for, under a new cluster id that refuses the old
//! one's RPCs; a damaged backup and a non-empty directory refused; the admin role required
//! when client tokens are configured.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster_proc::ProcCluster;
use crate::helpers::{binary, client, free_ports, get, poll_until, KvProcess};

/// `kvstore backup --endpoints ENDPOINTS --out OUT`, as an operator would (the first endpoint
/// may be dead): exit 0 and the summary line `backup: FILE, index N, term T, K bytes, crc32 X`,
/// whose figures match the file.
fn cli_backup(endpoints: &str, out: &Path) -> BackupInfo {
    let out_s = out.to_str().expect("utf-8 path");
    let child = Command::new(binary())
        .args(["--endpoints", endpoints, "backup", "--out", out_s])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn kvstore backup");
    let (_tx, rx) = mpsc::channel();
    let mut p = KvProcess::wrap(child, rx);
    let status = p
        .wait_exit(Duration::from_secs(60))
        .expect("kvstore backup ends within 60 s");
    let mut stdout = String::new();
    if let Some(mut o) = p.child.stdout.take() {
        std::io::Read::read_to_string(&mut o, &mut stdout).expect("read its output");
    }
    assert!(
        status.success(),
        "kvstore backup failed: {status:?} {stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("backup: "))
        .unwrap_or_else(|| panic!("no summary line in {stdout:?}"));
    let field = |after: &str| -> String {
        let rest = &line[line
            .find(after)
            .unwrap_or_else(|| panic!("{after} in {line}"))
            + after.len()..];
        rest.split([',', ' '])
            .find(|w| !w.is_empty())
            .unwrap_or_default()
            .to_owned()
    };
    let body = std::fs::read(out).expect("the backup file");
    let info = BackupInfo {
        index: field("index ").parse().expect("index"),
        term: field("term ").parse().expect("term"),
        crc: field("crc32 "),
        bytes: body.len(),
    };
    assert_eq!(
        info.crc,
        format!("{:08x}", crc32fast::hash(&body[..body.len() - 4])),
        "{line}"
    );
    assert!(line.contains(&format!("{} bytes", body.len())), "{line}");
    info
}

/// What a backup's headers said, checked against its body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BackupInfo {
    index: u64,
    term: u64,
    crc: String,
    bytes: usize,
}

/// Fetch `GET /admin/snapshot` from `base` (with an optional bearer `token`) into `out`:
/// status 200, the content type, and index, term, CRC-32 and length headers that match the
/// body. (The disaster test takes its main backup with `kvstore backup`: [`cli_backup`].)
async fn fetch_backup(base: &str, token: Option<&str>, out: &Path) -> Result<BackupInfo, String> {
    let mut req = client()
        .get(format!("{base}/admin/snapshot"))
        .timeout(Duration::from_secs(30));
    if let Some(t) = token {
        req = req.insert_header(("authorization", format!("Bearer {t}")));
    }
    let mut res = req.send().await.map_err(|e| e.to_string())?;
    let body = res
        .body()
        .limit(512 << 20)
        .await
        .map_err(|e| e.to_string())?;
    if res.status() != 200 {
        return Err(format!(
            "{}: {}",
            res.status(),
            String::from_utf8_lossy(&body)
        ));
    }
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| format!("no {name} header"))
    };
    assert_eq!(header("content-type")?, "application/octet-stream");
    let info = BackupInfo {
        index: header("x-kvstore-snapshot-index")?.parse().unwrap(),
        term: header("x-kvstore-snapshot-term")?.parse().unwrap(),
        crc: header("x-kvstore-snapshot-crc32")?,
        bytes: body.len(),
    };
    assert_eq!(header("content-length")?, body.len().to_string());
    assert_eq!(
        info.crc,
        format!("{:08x}", crc32fast::hash(&body[..body.len() - 4]))
    );
    assert_eq!(info.crc.len(), 8);
    assert!(info.index > 0 && info.term > 0, "{info:?}");
    std::fs::write(out, &body).unwrap();
    Ok(info)
}

/// A writer on its own thread: unique keys `w-N` = `v-N` through `base` (forwarded by a
/// follower), each acknowledgement sent back with the instant it arrived.
struct Writer {
    stop: Arc<AtomicBool>,
    /// How many writes were acknowledged so far.
    acked: Arc<AtomicU64>,
    acks: mpsc::Receiver<(String, Instant)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(bases: Vec<String>) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, acks) = mpsc::channel();
        let flag = stop.clone();
        let acked = Arc::new(AtomicU64::new(0));
        let count = acked.clone();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let c = client();
                let mut n = 0u64;
                while !flag.load(Ordering::Relaxed) {
                    n += 1;
                    let base = &bases[n as usize % bases.len()];
                    let key = format!("w-{n}");
                    let sent = c
                        .put(format!("{base}/set"))
                        .timeout(Duration::from_secs(5))
                        .send_json(&serde_json::json!({"key": key, "value": format!("v-{n}")}))
                        .await;
                    if sent.is_ok_and(|r| r.status() == 200) {
                        if tx.send((key, Instant::now())).is_err() {
                            break;
                        }
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        });
        Writer {
            stop,
            acked,
            acks,
            thread: Some(thread),
        }
    }

    /// Stop and return every acknowledged key with when it was acknowledged.
    fn finish(mut self) -> Vec<(String, Instant)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("writer thread");
        }
        self.acks.try_iter().collect()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Run `kvstore restore ARGS`: (exit code, stdout, stderr).
fn restore(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary())
        .arg("restore")
        .args(args)
        .env_remove("KVSTORE_DATA_DIR")
        .output()
        .expect("run kvstore restore");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn health(base: &str) -> Option<Value> {
    let mut res = client()
        .get(format!("{base}/health"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    serde_json::from_slice(&res.body().await.ok()?).ok()
}

/// Poll until one of `bases` leads and every one names it; the leader's index.
async fn wait_for_leader(bases: &[String], within: Duration) -> usize {
    poll_until(within, || async {
        let mut hs = Vec::new();
        for b in bases {
            hs.push(health(b).await);
        }
        let leaders: Vec<usize> = (0..hs.len())
            .filter(|i| hs[*i].as_ref().is_some_and(|h| h["state"] == "leader"))
            .collect();
        match leaders[..] {
            [l] if hs.iter().all(|h| {
                h.as_ref()
                    .is_some_and(|h| h["leaderId"] == hs[l].as_ref().unwrap()["id"])
            }) =>
            {
                Ok(l)
            }
            _ => Err(hs),
        }
    })
    .await
    .unwrap_or_else(|hs| panic!("no agreed leader within {within:?}: {hs:#?}"))
}

/// Restore `backup` into three new directories under `root` for new ports, and start the
/// new cluster from them (no PEERS); retried on new ports if one was taken meanwhile.
fn restore_and_start(backup: &Path, root: &Path) -> (Vec<String>, Vec<KvProcess>, String) {
    let mut last = String::new();
    for attempt in 0..5 {
        let ports = free_ports(3);
        let urls: Vec<String> = ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        let peers = (0..3)
            .map(|i| format!("n{}={}", i + 1, urls[i]))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster_ids = Vec::new();
        let dirs: Vec<PathBuf> = (0..3)
            .map(|i| root.join(format!("try{attempt}-n{}", i + 1)))
            .collect();
        for (i, dir) in dirs.iter().enumerate() {
            let id = format!("n{}", i + 1);
            let (code, out, err) = restore(&[
                "--from",
                backup.to_str().unwrap(),
                "--data-dir",
                dir.to_str().unwrap(),
                "--node-id",
                &id,
                "--peers",
                &peers,
            ]);
            assert_eq!(code, 0, "restore failed: {err}");
            let line = out.trim();
            assert!(
                line.starts_with("restored ") && line.contains(" keys at index "),
                "{line}"
            );
            let cluster = line
                .rsplit_once("(cluster ")
                .and_then(|(_, c)| c.strip_suffix(')'))
                .expect("the summary names the cluster")
                .to_owned();
            cluster_ids.push(cluster);
        }
        assert!(
            cluster_ids.iter().all(|c| *c == cluster_ids[0]),
            "every node of one restore gets one cluster id: {cluster_ids:?}"
        );
        let mut nodes = Vec::new();
        let mut failed = None;
        for (i, dir) in dirs.iter().enumerate() {
            let id = format!("n{}", i + 1);
            let port = ports[i].to_string();
            let env = [
                ("NODE_ID", id.as_str()),
                ("PORT", port.as_str()),
                ("KVSTORE_DATA_DIR", dir.to_str().unwrap()),
            ];
            match KvProcess::try_start(&["--host", "127.0.0.1"], &env) {
                Ok(p) => nodes.push(p),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        match failed {
            None => return (urls, nodes, cluster_ids[0].clone()),
            Some(e) if e.contains("in use") => last = e,
            Some(e) => panic!("a restored node did not start; it printed:\n{e}"),
        }
    }
    panic!("no free ports for the restored cluster: {last}");
}

#[actix_web::test]
async fn a_cluster_destroyed_after_a_backup_under_load_is_restored_with_every_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    let mut old = ProcCluster::start(3);
    let (leader, _) = old.wait_for_leader(Duration::from_secs(15)).await;
    let follower = (leader + 1) % 3;
    let old_id = old.cluster_id().to_owned();
    let writer = Writer::start((0..3).map(|i| old.url(i)).collect());
    // Let the load build up (some writes acknowledged), then take the backups.
    let acked = |at_least: u64| {
        let counter = writer.acked.clone();
        poll_until(Duration::from_secs(20), move || {
            let n = counter.load(Ordering::Relaxed);
            async move {
                if n >= at_least {
                    Ok(())
                } else {
                    Err(n)
                }
            }
        })
    };
    acked(50).await.expect("writes go through");
    let asked = Instant::now();
    let backup = tmp.path().join("backup.snap");
    // With the CLI, through a dead endpoint first, as an operator would.
    let endpoints = format!(
        "http://127.0.0.1:{},{}",
        crate::helpers::free_port(),
        old.url(leader)
    );
    let from_leader = cli_backup(&endpoints, &backup);
    // A follower serves one too (its ReadIndex through the leader), at or after the first.
    let other = tmp.path().join("follower.snap");
    let from_follower = fetch_backup(&old.url(follower), None, &other)
        .await
        .unwrap();
    assert!(
        from_follower.index >= from_leader.index,
        "{from_follower:?}"
    );
    // Writes go on a little after the backups, then the cluster is destroyed.
    let so_far = writer.acked.load(Ordering::Relaxed);
    acked(so_far + 20).await.expect("writes go on");
    let acks = writer.finish();
    for i in 0..3 {
        old.kill(i);
    }
    drop(old); // removes the data directories
    let before: Vec<&String> = acks
        .iter()
        .filter(|(_, at)| *at < asked)
        .map(|(k, _)| k)
        .collect();
    assert!(
        before.len() >= 50,
        "only {} writes before the backup",
        before.len()
    );
    assert!(
        acks.len() > before.len(),
        "writes went on during the backup"
    );

    // A damaged backup is refused, nothing written.
    let damaged = tmp.path().join("damaged.snap");
    let mut bytes = std::fs::read(&backup).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&damaged, bytes).unwrap();
    let dir = tmp.path().join("never");
    let (code, _, err) = restore(&[
        "--from",
        damaged.to_str().unwrap(),
        "--data-dir",
        dir.to_str().unwrap(),
        "--node-id",
        "n1",
        "--peers",
        "n1=http://127.0.0.1:1",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("checksum"),
        "{err}"
    );
    assert!(!dir.exists(), "nothing written for a damaged backup");
    // A non-empty directory is refused.
    let full = tmp.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("keep-me"), b"data").unwrap();
    let (code, _, err) = restore(&[
        "--from",
        backup.to_str().unwrap(),
        "--data-dir",
        full.to_str().unwrap(),
        "--node-id",
        "n1",
        "--peers",
        "n1=http://127.0.0.1:1",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(std::fs::read(full.join("keep-me")).unwrap(), b"data");

    // The new cluster, from the leader's backup.
    let (urls, _nodes, new_id) = restore_and_start(&backup, tmp.path());
    assert_ne!(new_id, old_id);
    let leader = wait_for_leader(&urls, Duration::from_secs(20)).await;
    let mut res = client()
        .get(format!("{}/cluster", urls[leader]))
        .send()
        .await
        .unwrap();
    let view: Value = serde_json::from_slice(&res.body().await.unwrap()).unwrap();
    assert_eq!(view["clusterId"], new_id.as_str(), "{view}");
    assert_eq!(view["members"].as_array().map(Vec::len), Some(3), "{view}");
    for key in &before {
        let n: u64 = key[2..].parse().unwrap();
        let (st, v) = get(&urls[n as usize % 3], key, false).await;
        assert_eq!(
            (st, &v["value"]),
            (200, &Value::from(format!("v-{n}"))),
            "{key} was acknowledged before the backup: {v}"
        );
    }
    // The restored cluster writes, and refuses an RPC of the old cluster.
    let (st, v, _) = crate::helpers::put(&urls[0], "after-restore", "1").await;
    assert_eq!(st, 200, "{v}");
    let mut res = client()
        .post(format!("{}/raft/vote", urls[leader]))
        .insert_header(("x-kvstore-cluster", old_id.as_str()))
        .insert_header(("content-type", "application/json"))
        .send_body(r#"{"term":999,"candidateId":"n1","lastLogIndex":999999,"lastLogTerm":999,"preVote":false}"#)
        .await
        .unwrap();
    let body = res.body().await.unwrap();
    assert_eq!(res.status(), 409, "{}", String::from_utf8_lossy(&body));
    let leader_after = wait_for_leader(&urls, Duration::from_secs(5)).await;
    assert_eq!(
        leader_after, leader,
        "the old cluster's vote changed nothing"
    );
}

#[actix_web::test]
async fn the_snapshot_route_needs_the_admin_role_on_leader_and_follower() {
    let dir = tempfile::tempdir().unwrap();
    let (read, admin) = (
        uuid::Uuid::new_v4().simple().to_string(),
        uuid::Uuid::new_v4().simple().to_string(),
    );
    let path = dir.path().join("tokens");
    std::fs::write(&path, format!("read {read}\nadmin {admin}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let path = path.to_str().unwrap().to_owned();
    let path: &'static str = Box::leak(path.into_boxed_str());
    let cluster = ProcCluster::start_with(3, &[("KVSTORE_CLIENT_TOKENS_FILE", path)]);
    let (leader, _) = cluster.wait_for_leader(Duration::from_secs(15)).await;
    for i in [leader, (leader + 1) % 3] {
        let base = cluster.url(i);
        let out = dir.path().join(format!("b{i}.snap"));
        let e = fetch_backup(&base, None, &out).await.unwrap_err();
        assert!(e.starts_with("401"), "{e}");
        let e = fetch_backup(&base, Some(&read), &out).await.unwrap_err();
        assert!(e.starts_with("403"), "{e}");
        let info = fetch_backup(&base, Some(&admin), &out).await.unwrap();
        let snap = kvstore::codec::snapshot::decode(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!((snap.meta.index, snap.meta.term), (info.index, info.term));
        assert_eq!(snap.configuration.unwrap().voters().len(), 3);
    }
}
