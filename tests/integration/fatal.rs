//! "Fatal means fatal", with real processes: an fsync of the write-ahead log that fails (an
//! injected failure, `KVSTORE_FAILPOINTS=wal.sync=error@N`) ends the node within a second, with
//! exit status 70 and one `fatal:` log line; a leader that dies that way is replaced and the
//! cluster keeps serving. A state machine that refuses a committed entry (injected,
//! `store.apply=error@N`) ends the node with status 71, and a panic on the thread of an actor
//! that owns node state (`store.apply=panic@N`) with status 73.

use std::time::{Duration, Instant};

use crate::cluster_proc::ProcCluster;
use crate::helpers::{client, poll_until, KvProcess};

/// Exit status of a node whose log could not be made durable (README: operations).
const STORAGE_FATAL: i32 = 70;

/// The 8th fsync of the WAL fails. Start-up takes 2-3 (opening the log, the first election's
/// hard state and no-op entry), so a few writes succeed first.
const FAILING_SYNC: &str = "wal.sync=error@8";

/// `PUT /set`; `true` only for a 200 (a refused write, a reset connection: `false`).
async fn try_put(base: &str, key: &str) -> bool {
    match client()
        .put(format!("{base}/set"))
        .timeout(Duration::from_secs(5))
        .send_json(&serde_json::json!({"key": key, "value": "v"}))
        .await
    {
        Ok(res) => res.status().as_u16() == 200,
        Err(_) => false,
    }
}

/// Write through `base` until a write fails (at most 200 writes); how many succeeded, and when
/// the first one failed.
async fn write_until_failure(base: &str) -> (usize, Instant) {
    for k in 0..200 {
        if !try_put(base, &format!("k{k}")).await {
            return (k, Instant::now());
        }
    }
    panic!("200 writes succeeded: the injected fsync failure never happened");
}

/// Assert that `node` exits within a few seconds of `since` with the storage status and
/// printed exactly one `fatal:` line naming the failed fsync.
fn assert_fatal_exit(node: &mut KvProcess, since: Instant) {
    assert_exit(node, since, STORAGE_FATAL, "cannot sync");
}

/// Assert that `node` exits within a few seconds of `since` with `code` and printed exactly one
/// `fatal:` line containing `reason` and the status.
fn assert_exit(node: &mut KvProcess, since: Instant, code: i32, reason: &str) {
    let status = node
        .wait_exit(Duration::from_secs(5))
        .expect("the node exits after its fsync failed");
    let took = since.elapsed();
    assert_eq!(status.code(), Some(code), "{status:?}");
    // The README promises "within a second"; allow a loaded test machine some slack.
    assert!(took < Duration::from_secs(3), "exit took {took:?}");
    // Everything it printed: read until its stderr closes (the reader thread may still be
    // forwarding the last lines).
    let printed = node
        .wait_for_line(Duration::from_secs(5), |_| false)
        .unwrap_err();
    let lines: Vec<&str> = printed.lines().collect();
    let fatal: Vec<&&str> = lines.iter().filter(|l| l.contains("fatal:")).collect();
    assert_eq!(
        fatal.len(),
        1,
        "one fatal line expected:\n{}",
        lines.join("\n")
    );
    assert!(
        fatal[0].contains(reason) && fatal[0].contains(&format!("exit status {code}")),
        "{}",
        fatal[0]
    );
}

#[actix_web::test]
async fn a_single_node_whose_fsync_fails_exits_with_status_70_and_one_fatal_line() {
    let mut node = KvProcess::start(
        &["--host", "127.0.0.1", "--port", "0"],
        &[("KVSTORE_FAILPOINTS", FAILING_SYNC)],
    );
    let (written, failed_at) = write_until_failure(&node.url("")).await;
    assert!(written >= 1, "start-up got past the failpoint");
    assert_fatal_exit(&mut node, failed_at);
}

#[actix_web::test]
async fn a_node_whose_state_machine_refuses_an_entry_exits_with_status_71() {
    // The first applied batches are the leader's no-op and the configuration entry it writes
    // down once it leads (at most one each); the fourth fails, so at least one write is in.
    let mut node = KvProcess::start(
        &["--host", "127.0.0.1", "--port", "0"],
        &[("KVSTORE_FAILPOINTS", "store.apply=error@4")],
    );
    let (written, failed_at) = write_until_failure(&node.url("")).await;
    assert!(written >= 1, "start-up got past the failpoint");
    assert_exit(
        &mut node,
        failed_at,
        71,
        "state machine refused a committed entry",
    );
}

#[actix_web::test]
async fn a_leader_whose_fsync_fails_exits_and_the_others_elect_a_new_leader_and_serve() {
    // n1 times out first (the others wait at least a second), so it is usually the first
    // leader; but every node refuses votes for an election timeout after it starts (the lease
    // reads' start hold), so another may win: then leadership is handed to n1. Its 14th fsync
    // fails: room for start-up, a term or two as a follower and the transfer.
    let mut cluster = ProcCluster::start_with_node_env(
        3,
        &[("RAFT_ELECTION_TIMEOUT_MS", "1000")],
        &[
            (0, "KVSTORE_FAILPOINTS", "wal.sync=error@14"),
            (0, "RAFT_ELECTION_TIMEOUT_MS", "150"),
        ],
    );
    let (leader, _) = cluster.wait_for_leader(Duration::from_secs(15)).await;
    if leader != 0 {
        let url = format!("{}/cluster/leader", cluster.url(leader));
        let res = client()
            .post(url)
            .send_json(&serde_json::json!({"id": "n1"}))
            .await;
        assert_eq!(
            res.map(|r| r.status().as_u16()).ok(),
            Some(200),
            "transfer to n1"
        );
        poll_until(Duration::from_secs(15), || async {
            match cluster.wait_for_leader(Duration::from_secs(15)).await.0 {
                0 => Ok(()),
                other => Err(other),
            }
        })
        .await
        .expect("n1 leads after the transfer");
    }
    let (written, failed_at) = write_until_failure(&cluster.url(0)).await;
    assert!(written >= 1, "start-up got past the failpoint");
    assert_fatal_exit(cluster.process(0), failed_at);
    cluster.forget(0);
    // The two others elect a leader among themselves and keep serving writes and reads.
    let (new_leader, _) = cluster.wait_for_leader(Duration::from_secs(15)).await;
    assert_ne!(new_leader, 0);
    let via = cluster.url(3 - new_leader); // the follower forwards to the new leader
    poll_until(Duration::from_secs(10), || async {
        try_put(&via, "after").await.then_some(()).ok_or(())
    })
    .await
    .expect("the remaining two accept writes");
    let (st, body) = crate::helpers::get(&cluster.url(new_leader), "after", false).await;
    assert_eq!((st, body["value"].as_str()), (200, Some("v")), "{body}");
}

#[actix_web::test]
async fn a_panic_on_the_thread_that_owns_raft_state_ends_the_node_with_status_73() {
    // The panic hits the Raft actor's thread while it takes an applied batch back: the fourth,
    // after the no-op's, the configuration entry's and at least one write's.
    let mut node = KvProcess::start(
        &["--host", "127.0.0.1", "--port", "0"],
        &[("KVSTORE_FAILPOINTS", "store.apply=panic@4")],
    );
    let (written, failed_at) = write_until_failure(&node.url("")).await;
    assert!(written >= 1, "start-up got past the failpoint");
    assert_exit(
        &mut node,
        failed_at,
        73,
        "a thread that owns node state panicked",
    );
}
