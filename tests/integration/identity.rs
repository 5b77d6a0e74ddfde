//! Safe identity, with real processes: one data directory serves one process (a second is
//! refused naming the holder's pid), a directory refuses a node with another NODE_ID, a peer
//! RPC from another cluster is refused and changes nothing, memory storage with PEERS is
//! refused, and the start line names the absolute data directory and whether it was new or
//! recovered.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{client, free_ports, parse_listen_addr, put, KvProcess};

/// Spawn a node that must refuse to start: its exit status and everything it printed.
fn refused(cwd: Option<&Path>, args: &[&str], envs: &[(&str, &str)]) -> (i32, String) {
    let mut p = KvProcess::spawn_in(cwd, args, envs);
    let status = p
        .wait_exit(Duration::from_secs(20))
        .expect("the node refuses to start and exits");
    let printed = p
        .wait_for_line(Duration::from_secs(5), |_| false)
        .unwrap_err();
    (status.code().unwrap_or(-1), printed)
}

/// Spawn in `cwd` and wait for the storage start line, then the listening line: (process, the
/// storage line).
fn start_showing_storage(cwd: &Path, args: &[&str]) -> (KvProcess, String) {
    let mut p = KvProcess::spawn_in(Some(cwd), args, &[]);
    let storage = p
        .wait_for_line(Duration::from_secs(20), |l| l.contains("storage: "))
        .unwrap_or_else(|seen| panic!("no storage line; printed:\n{seen}"));
    let listening = p
        .wait_for_line(Duration::from_secs(20), |l| {
            l.contains("listening on http://")
        })
        .unwrap_or_else(|seen| panic!("did not start; printed:\n{seen}"));
    p.addr = parse_listen_addr(&listening);
    (p, storage)
}

async fn health(base: &str) -> Value {
    let mut res = client()
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("health answered");
    serde_json::from_slice(&res.body().await.unwrap()).unwrap()
}

#[actix_web::test]
async fn a_second_process_on_the_same_data_dir_is_refused_naming_the_holders_pid() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_string_lossy().into_owned();
    let first = KvProcess::start(
        &["--host", "127.0.0.1", "--port", "0"],
        &[("KVSTORE_DATA_DIR", &d)],
    );
    let (code, printed) = refused(
        None,
        &["--host", "127.0.0.1", "--port", "0"],
        &[("KVSTORE_DATA_DIR", &d)],
    );
    assert_ne!(code, 0, "{printed}");
    assert!(
        printed.contains(&format!(
            "in use by another kvstore process (pid {})",
            first.child.id()
        )),
        "{printed}"
    );
    assert_eq!(
        put(&first.url(""), "k", "v").await.0,
        200,
        "the first goes on"
    );
}

#[actix_web::test]
async fn a_data_dir_refuses_a_node_with_another_node_id() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_string_lossy().into_owned();
    let mut n1 = KvProcess::start(
        &["--host", "127.0.0.1", "--port", "0", "--node-id", "n1"],
        &[("KVSTORE_DATA_DIR", &d)],
    );
    assert_eq!(put(&n1.url(""), "k", "v").await.0, 200);
    n1.signal(libc::SIGKILL);
    n1.wait_exit(Duration::from_secs(10)).expect("killed");
    drop(n1);
    let (code, printed) = refused(
        None,
        &["--host", "127.0.0.1", "--port", "0", "--node-id", "n2"],
        &[("KVSTORE_DATA_DIR", &d)],
    );
    assert_eq!(code, 1, "{printed}");
    assert!(
        printed.contains(&format!("data directory {d} belongs to node \"n1\""))
            && printed.contains("NODE_ID \"n2\""),
        "{printed}"
    );
}

#[actix_web::test]
async fn a_peer_rpc_from_another_cluster_is_refused_and_changes_nothing() {
    // B: a single node (cluster "standalone"). A: a node of another cluster that lists B as a
    // peer (its cluster id is derived from its own URL and its peers'), and campaigns at it.
    let b = KvProcess::start(&["--host", "127.0.0.1", "--port", "0"], &[]);
    let before = health(&b.url("")).await;
    let ports = free_ports(2);
    let port = ports[0].to_string();
    let peers = format!("{},http://127.0.0.1:{}", b.url(""), ports[1]);
    let a_url = format!("http://127.0.0.1:{port}");
    let a = KvProcess::start(
        &["--host", "127.0.0.1", "--port", &port, "--node-id", "a"],
        &[("PEERS", &peers)],
    );
    let mut b = b;
    let line = b
        .wait_for_line(Duration::from_secs(20), |l| l.contains("peer RPC refused"))
        .unwrap_or_else(|seen| panic!("B never refused A's RPCs; it printed:\n{seen}"));
    assert!(
        line.contains(r#"belongs to cluster "standalone""#) && line.contains(&a_url),
        "{line}"
    );
    let after = health(&b.url("")).await;
    assert_eq!(
        (&after["state"], &after["term"], &after["votedFor"]),
        (&before["state"], &before["term"], &before["votedFor"]),
        "B's Raft state did not change: {after}"
    );
    assert_ne!(health(&a.url("")).await["state"], "leader");
}

#[actix_web::test]
async fn memory_storage_with_peers_is_refused_at_start() {
    let (code, printed) = refused(
        None,
        &[
            "--port",
            "8081",
            "--node-id",
            "n1",
            "--in-memory",
            "--peers",
            "http://localhost:8082",
        ],
        &[],
    );
    assert_eq!(code, 2, "{printed}");
    assert!(printed.contains("cannot be used with PEERS"), "{printed}");
}

#[actix_web::test]
async fn the_start_line_names_the_absolute_data_dir_and_says_new_or_recovered() {
    // The default data directory, data/n1, relative to the working directory.
    let cwd = tempfile::tempdir().unwrap();
    let abs = cwd.path().canonicalize().unwrap().join("data").join("n1");
    let args = ["--host", "127.0.0.1", "--port", "0", "--storage", "disk"];
    let (mut node, line) = start_showing_storage(cwd.path(), &args);
    assert!(
        line.contains("storage: new, empty data directory")
            && line.contains(&format!("dir={}", abs.display())),
        "{line}"
    );
    for k in 0..5 {
        assert_eq!(put(&node.url(""), &format!("k{k}"), "v").await.0, 200);
    }
    node.signal(libc::SIGKILL);
    node.wait_exit(Duration::from_secs(10)).expect("killed");
    drop(node);
    let (node, line) = start_showing_storage(cwd.path(), &args);
    assert!(line.contains("storage: recovered"), "{line}");
    let replayed: u64 = line
        .split("entries_replayed=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no entries_replayed in {line}"));
    assert!(replayed >= 5, "{line}");
    assert!(line.contains(&format!("dir={}", abs.display())), "{line}");
    let mut node = node;
    let line = node
        .wait_for_line(Duration::from_secs(20), |l| {
            l.contains("recovered: every entry replayed at start is applied")
        })
        .unwrap_or_else(|seen| panic!("no recovered-keys line; printed:\n{seen}"));
    assert!(line.contains("keys=5"), "{line}");
    assert_eq!(health(&node.url("")).await["ok"], true);
}
