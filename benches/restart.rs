//! Restart and memory figures for durable storage: prints numbers, asserts nothing.
//!
//! 1. A data directory whose log holds N entries (no snapshot): time from starting `kvstore`
//!    until it listens, and until every entry is applied; disk bytes per entry.
//! 2. A data directory holding a snapshot of N keys (16-byte keys, 100-byte values) and an
//!    empty log: the same times, the snapshot's bytes per key, and the node's resident memory
//!    (RSS) per key against an empty node's, compared with the raw bytes (116 per pair).
//!
//! Run: `cargo bench --bench restart` (N = 1,000,000; `RESTART_N=...` to change). Every run
//! uses fresh temporary directories; each process is killed by its handle.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kvstore::raft::log::{Entry, EntryPayload};
use kvstore::raft::HardState;
use kvstore::storage::snapshot::{self, SnapshotMeta};
use kvstore::storage::{Record, Wal};
use kvstore::store::Command as KvCommand;

const KEY_BYTES: usize = 16;
const VALUE_BYTES: usize = 100;

fn key(i: u64) -> String {
    format!("key-{i:012}")
}

fn value(i: u64) -> String {
    format!("{i:0100}")
}

/// A node started on a data directory; killed on drop.
struct Node {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `kvstore` on `dir`; returns the node and how long it took until it listened.
fn start(dir: &Path) -> (Node, Duration) {
    let (node, listening, _) = start_with(dir, &[]);
    (node, listening)
}

/// Like [`start`], with extra environment; also returns a channel of the node's later log lines.
fn start_with(dir: &Path, env: &[(&str, &str)]) -> (Node, Duration, mpsc::Receiver<String>) {
    let t0 = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_kvstore"))
        .args(["--host", "127.0.0.1", "--port", "0"])
        .envs(env.iter().copied())
        .env("KVSTORE_DATA_DIR", dir)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kvstore starts");
    // Owned by `Node` at once, so it is killed and reaped whatever happens next.
    let mut node = Node {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let stderr = node.child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // Keep reading after the receiver is gone, so the node never blocks on a full pipe.
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("kvstore prints its address in time");
        if let Some(at) = line.find("listening on http://") {
            let rest = &line[at + "listening on http://".len()..];
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '"')
                .unwrap_or(rest.len());
            node.addr = rest[..end].parse().expect("an address");
            // The caller reads later lines, or drops the receiver (the reader thread then stops
            // forwarding, and the pipe is still drained).
            return (node, t0.elapsed(), rx);
        }
    }
}

fn health(addr: SocketAddr) -> Option<serde_json::Value> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    serde_json::from_str(&out[out.find("\r\n\r\n")? + 4..]).ok()
}

/// Poll `/health` until the store has applied `index`; the time since `t0`.
fn until_applied(node: &Node, index: u64, t0: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        if let Some(h) = health(node.addr) {
            if h["store"]["appliedIndex"].as_u64().unwrap_or(0) >= index {
                return t0.elapsed();
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("the node did not apply {index} in time");
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.metadata().map_or(0, |m| m.len()))
                .sum()
        })
        .unwrap_or(0)
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn main() {
    let n: u64 = std::env::var("RESTART_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let raw = (KEY_BYTES + VALUE_BYTES) as u64;
    println!("restart figures, N = {n}, {KEY_BYTES}-byte keys, {VALUE_BYTES}-byte values");

    // An empty node: the baseline for memory.
    let empty = tempfile::tempdir().expect("temp dir");
    let (node, _) = start(empty.path());
    until_applied(&node, 1, Instant::now());
    let base_rss = rss_bytes(node.child.id());
    drop(node);
    println!("empty node RSS: {:.1} MiB", mib(base_rss));

    // 1. A log of N entries, no snapshot.
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let (mut wal, _) = Wal::open(&dir.path().join("wal"), 64 << 20, 0).expect("wal");
        wal.append(&[Record::HardState(HardState {
            term: 1,
            voted_for: None,
        })])
        .expect("write");
        let mut batch = Vec::with_capacity(10_000);
        for i in 1..=n {
            batch.push(Record::Entry(Entry {
                index: i,
                term: 1,
                payload: EntryPayload::Command {
                    command: KvCommand::set(key(i), value(i)),
                },
            }));
            if batch.len() == 10_000 || i == n {
                wal.append(&batch).expect("write");
                batch.clear();
            }
        }
        wal.sync().expect("sync");
    }
    let wal_bytes = dir_bytes(&dir.path().join("wal"));
    println!(
        "log: {:.1} MiB on disk, {:.1} bytes per entry ({raw} raw)",
        mib(wal_bytes),
        wal_bytes as f64 / n as f64
    );
    let t0 = Instant::now();
    let (node, listening) = start(dir.path());
    let applied = until_applied(&node, n, t0);
    println!(
        "restart from a {n}-entry log: listening after {} ms, all applied after {} ms",
        listening.as_millis(),
        applied.as_millis()
    );
    drop(node);
    drop(dir);

    // 2. A snapshot of N keys and an empty log.
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let pairs: Vec<(String, String)> = (1..=n).map(|i| (key(i), value(i))).collect();
        snapshot::write(
            &dir.path().join("snapshots"),
            SnapshotMeta { index: n, term: 1 },
            None,
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            2,
        )
        .expect("snapshot");
        let (mut wal, _) = Wal::open(&dir.path().join("wal"), 64 << 20, n).expect("wal");
        wal.append(&[Record::HardState(HardState {
            term: 1,
            voted_for: None,
        })])
        .expect("write");
        wal.sync().expect("sync");
    }
    let snap_bytes = dir_bytes(&dir.path().join("snapshots"));
    println!(
        "snapshot: {:.1} MiB on disk, {:.1} bytes per key ({raw} raw)",
        mib(snap_bytes),
        snap_bytes as f64 / n as f64
    );
    let t0 = Instant::now();
    let (node, listening) = start(dir.path());
    let applied = until_applied(&node, n, t0);
    let rss = rss_bytes(node.child.id());
    println!(
        "restart from a {n}-key snapshot: listening after {} ms, serving after {} ms",
        listening.as_millis(),
        applied.as_millis()
    );
    let per_key = rss.saturating_sub(base_rss) as f64 / n as f64;
    println!(
        "memory: RSS {:.1} MiB ({:.1} MiB over an empty node): {per_key:.0} bytes per key, {:.2}x the raw {raw} bytes",
        mib(rss),
        mib(rss.saturating_sub(base_rss)),
        per_key / raw as f64
    );
    drop(node);

    // 3. Taking a snapshot of N keys: restart with a snapshot due after one entry (the new
    // term's no-op; factor 0, so the log need not outgrow the snapshot) and read the node's
    // own report of it.
    let (node, _, lines) = start_with(
        dir.path(),
        &[
            ("KVSTORE_SNAPSHOT_ENTRIES", "1"),
            ("KVSTORE_SNAPSHOT_LOG_FACTOR", "0"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut taken = None;
    while Instant::now() < deadline {
        match lines.recv_timeout(Duration::from_secs(1)) {
            Ok(l) if l.contains("snapshot taken") => {
                taken = Some(l);
                break;
            }
            _ => {}
        }
    }
    let field = |l: &str, k: &str| -> String {
        l.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .unwrap_or("?")
            .to_owned()
    };
    match taken {
        Some(l) => println!(
            "snapshot of {n} keys: the store answered with its view after {} ms; encoded and written to disk after {} ms in all",
            field(&l, "store_ms="),
            field(&l, "ms=")
        ),
        None => println!("snapshot of {n} keys: no snapshot reported within 120 s"),
    }
    drop(node);
}
