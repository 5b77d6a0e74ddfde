//! A recorded history of concurrent set/get/delete against a real 3-process cluster, while the
//! leader is SIGKILLed and restarted four times, must be linearizable (checked per key with the
//! Wing–Gong/Lowe checker in `kvstore::check`). The history is written as JSON lines in
//! porcupine's shape, so other checkers can read it.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use kvstore::check::history::{to_json_lines, Op, OpInput, OpOutput};
use kvstore::check::{check_history, CheckResult};
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::cluster_proc::ProcCluster;

const KEYS: usize = 3;

async fn run_client(id: u64, urls: Vec<String>, start: Instant, until: Instant) -> Vec<Op> {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(3))
        .finish();
    let mut rng = rand::rngs::StdRng::seed_from_u64(id);
    let mut ops = Vec::new();
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let base = &urls[rng.gen_range(0..urls.len())];
        let key = format!("k{}", rng.gen_range(0..KEYS));
        let input = match rng.gen_range(0..10) {
            0..=3 => OpInput::Set {
                key: key.clone(),
                value: format!("c{id}-{n}"),
            },
            4..=7 => OpInput::Get { key: key.clone() },
            _ => OpInput::Delete { key: key.clone() },
        };
        let call = start.elapsed().as_nanos() as i64;
        let output = match &input {
            OpInput::Set { value, .. } => {
                let res = client
                    .put(format!("{base}/set"))
                    .send_json(&serde_json::json!({"key": key, "value": value}))
                    .await;
                match res.map(|r| r.status().as_u16()) {
                    Ok(200) => OpOutput::stored(),
                    _ => OpOutput::unknown(),
                }
            }
            OpInput::Get { .. } => match client.get(format!("{base}/get?key={key}")).send().await {
                Ok(mut r) if r.status() == 200 => match r.body().await {
                    Ok(b) => {
                        let v: Value = serde_json::from_slice(&b).unwrap();
                        OpOutput::read(Some(v["value"].as_str().unwrap().to_owned()))
                    }
                    Err(_) => OpOutput::unknown(),
                },
                Ok(r) if r.status() == 404 => OpOutput::read(None),
                _ => OpOutput::unknown(),
            },
            OpInput::Delete { .. } => {
                let res = client
                    .delete(format!("{base}/delete?key={key}"))
                    .send()
                    .await;
                match res.map(|r| r.status().as_u16()) {
                    Ok(200) => OpOutput::deleted(true),
                    Ok(404) => OpOutput::deleted(false),
                    _ => OpOutput::unknown(),
                }
            }
        };
        let ret = if output.unknown {
            i64::MAX
        } else {
            start.elapsed().as_nanos() as i64
        };
        ops.push(Op {
            client_id: id,
            input,
            call,
            output,
            ret,
        });
    }
    ops
}

/// Kill the leader, wait for a new one, restart the old one; four times.
async fn nemesis(cluster: &mut ProcCluster, start: Instant) -> Vec<String> {
    let mut log = Vec::new();
    for at in [1500, 3000, 4500, 6000].map(Duration::from_millis) {
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
    let clients = join_all((0..8).map(|id| run_client(id, urls.clone(), start, until)));
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
        panic!(
            "history is not linearizable on key {key}; its {} ops are in {}",
            ops.len(),
            path.display()
        );
    }
}

/// With `CHECK_HISTORY=<file>`: find the shortest failing prefix of a recorded history (by call
/// time; operations still running at the cut count as unknown) and print its last operations.
#[test]
fn debug_history() {
    let Ok(path) = std::env::var("CHECK_HISTORY") else {
        return;
    };
    let text = std::fs::read_to_string(path).unwrap();
    let mut ops = kvstore::check::history::from_json_lines(&text).unwrap();
    if let Ok(key) = std::env::var("CHECK_KEY") {
        ops.retain(|o| o.input.key() == key);
    }
    ops.sort_by_key(|o| o.call);
    let prefix = |t: i64| -> Vec<Op> {
        ops.iter()
            .filter(|o| o.call < t)
            .map(|o| {
                let mut o = o.clone();
                if o.ret > t {
                    o.output = OpOutput::unknown();
                    o.ret = i64::MAX;
                }
                o
            })
            .collect()
    };
    let (mut lo, mut hi) = (0i64, ops.last().unwrap().call + 1);
    assert!(
        check_history(&prefix(hi)) != CheckResult::Linearizable,
        "whole history passes"
    );
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if check_history(&prefix(mid)) == CheckResult::Linearizable {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let p = prefix(hi);
    println!(
        "shortest failing prefix ends at call time {hi}; {} ops",
        p.len()
    );
    let window = 40;
    for o in p.iter().rev().take(window).rev() {
        println!("{}", serde_json::to_string(o).unwrap());
    }
}
