//! A recorded history of concurrent set/get/delete against a real 3-process cluster, while the
//! leader is SIGKILLed and restarted four times, must be linearizable (checked per key with the
//! Wing–Gong/Lowe checker in `kvstore::check`). The history is written as JSON lines in
//! porcupine's shape, so other checkers can read it. The clients are `kvstore check`'s own
//! recorded workload; a failure prints the shrunk failing sub-history.

use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use kvstore::check::history::{to_json_lines, Op, OpInput};
use kvstore::check::minimize::shrink;
use kvstore::check::workload::{Counters, Workload, WorkloadKind};
use kvstore::check::{check_history, CheckResult};

use crate::cluster_proc::ProcCluster;

const KEYS: usize = 3;

/// 8 clients, 3 keys, the same recorded workload `kvstore check` runs.
fn workload(urls: Vec<String>) -> Workload {
    Workload {
        nodes: urls,
        clients: 8,
        keys: KEYS,
        key_prefix: "k".into(),
        rate: 0,
        request_timeout: Duration::from_secs(3),
        seed: 7,
        token: None,
        kind: WorkloadKind::Mixed,
        // Writes of unknown outcome stay unknown (not retried), as before idempotency keys.
        idempotent: false,
        lease_reads: false,
        retry_for: Duration::from_secs(10),
    }
}

/// Kill the leader, wait for a new one, restart the old one; four times.
async fn nemesis(cluster: &mut ProcCluster, start: Instant) -> Vec<String> {
    let mut log = Vec::new();
    for at in [1500, 3000, 4500, 6000].map(Duration::from_millis) {
        // The fault schedule (a kill every 1.5 s of the workload) is the thing under test, not
        // a wait for something to happen.
        let wait = at.saturating_sub(start.elapsed());
        actix_web::rt::time::sleep(wait).await;
        let (leader, term) = cluster.wait_for_leader(Duration::from_secs(10)).await;
        cluster.kill(leader);
        let (new, new_term) = cluster.wait_for_leader(Duration::from_secs(10)).await;
        cluster.start_node(leader);
        log.push(format!(
            "{:?}: killed n{} (term {term}); n{} leads in term {new_term}",
            start.elapsed(),
            leader + 1,
            new + 1
        ));
    }
    log
}

#[actix_web::test]
async fn history_under_leader_kills_is_linearizable() {
    let mut cluster = ProcCluster::start_with(3, &[("KVSTORE_REQUEST_TIMEOUT_MS", "2000")]);
    cluster.wait_for_leader(Duration::from_secs(10)).await;
    let urls: Vec<String> = (0..3).map(|i| cluster.url(i)).collect();
    let start = Instant::now();
    let until = start + Duration::from_secs(8);
    let w = workload(urls);
    let counters = Rc::new(Counters::default());
    let clients = join_all((0..8).map(|id| w.run_client(id, start, until, counters.clone())));
    let (histories, events) =
        futures_util::future::join(clients, nemesis(&mut cluster, start)).await;
    let ops: Vec<Op> = histories.into_iter().flatten().collect();

    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("linearizable-history.jsonl");
    std::fs::write(&path, to_json_lines(&ops)).unwrap();
    let unknown = ops.iter().filter(|o| o.output.unknown).count();
    let ok_writes = ops
        .iter()
        .filter(|o| !o.output.unknown && !matches!(o.input, OpInput::Get { .. }))
        .count();
    println!(
        "{} ops ({unknown} unknown, {ok_writes} acknowledged writes); nemesis: {events:?}; history: {}",
        ops.len(),
        path.display()
    );
    assert!(
        ok_writes > 100,
        "the workload must make progress ({ok_writes} writes)"
    );
    let started = Instant::now();
    let verdict = check_history(&ops);
    println!("checked in {:?}", started.elapsed());
    if let CheckResult::Violation { key, ops } = verdict {
        let small = shrink(&ops);
        let lines: Vec<String> = small
            .iter()
            .map(|o| serde_json::to_string(o).unwrap())
            .collect();
        panic!(
            "history is not linearizable on key {key}; its {} ops are in {}; a failing \
             sub-history:\n{}",
            ops.len(),
            path.display(),
            lines.join("\n")
        );
    }
}
