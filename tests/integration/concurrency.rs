//! Many concurrent clients on overlapping keys against an in-process server, checked against a
//! model of what each key may hold; and a bounded stress run.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::helpers::TestServer;

#[derive(Debug, Clone)]
enum Op {
    /// Set `value`; acknowledged with 200.
    Set(String),
    /// Delete; `true` if it answered "deleted", `false` for 404.
    Delete(bool),
    /// Get; `Some(value)` or `None` for 404.
    Get(Option<String>),
}

#[derive(Debug, Clone)]
struct Record {
    key: String,
    op: Op,
    call: Instant,
    ret: Instant,
}

async fn run_client(
    base: String,
    client_id: usize,
    ops: usize,
    keys: usize,
    seed: u64,
) -> Vec<Record> {
    let c = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ client_id as u64);
    let mut out = Vec::with_capacity(ops);
    for seq in 0..ops {
        let key = format!("key-{}", rng.gen_range(0..keys));
        let call = Instant::now();
        let op = match rng.gen_range(0..10) {
            0..=3 => {
                let value = format!("c{client_id}-s{seq}");
                let mut r = c
                    .put(format!("{base}/set"))
                    .send_json(&json!({"key": key, "value": value}))
                    .await
                    .expect("set");
                assert_eq!(r.status(), 200, "{:?}", r.body().await);
                Op::Set(value)
            }
            4..=5 => {
                let r = c
                    .delete(format!("{base}/delete?key={key}"))
                    .send()
                    .await
                    .expect("delete");
                match r.status().as_u16() {
                    200 => Op::Delete(true),
                    404 => Op::Delete(false),
                    s => panic!("delete answered {s}"),
                }
            }
            _ => {
                let mut r = c
                    .get(format!("{base}/get?key={key}"))
                    .send()
                    .await
                    .expect("get");
                let status = r.status().as_u16();
                let v: Value = serde_json::from_slice(&r.body().await.unwrap()).unwrap();
                match status {
                    200 => Op::Get(Some(v["value"].as_str().unwrap().to_owned())),
                    404 => Op::Get(None),
                    s => panic!("get answered {s}: {v}"),
                }
            }
        };
        out.push(Record {
            key,
            op,
            call,
            ret: Instant::now(),
        });
    }
    out
}

/// Checks one key's history against a register model with real-time order:
/// - every value read was written by a set that began before the read returned;
/// - a delete that answered "deleted" followed (in part) some set;
/// - the final value is explained by a write that no other write entirely follows.
fn check_key(key: &str, hist: &[Record], fin: Option<&str>) {
    let sets: Vec<&Record> = hist.iter().filter(|r| matches!(r.op, Op::Set(_))).collect();
    for r in hist {
        match &r.op {
            Op::Get(Some(v)) => {
                let w = sets
                    .iter()
                    .find(|s| matches!(&s.op, Op::Set(x) if x == v))
                    .unwrap_or_else(|| panic!("{key}: read {v:?} that nobody wrote"));
                assert!(w.call <= r.ret, "{key}: read {v:?} before it was written");
            }
            Op::Delete(true) => assert!(
                sets.iter().any(|s| s.call <= r.ret),
                "{key}: deleted a key never set"
            ),
            _ => {}
        }
    }
    let writes: Vec<&Record> = hist
        .iter()
        .filter(|r| matches!(r.op, Op::Set(_) | Op::Delete(_)))
        .collect();
    // A write is "last-possible" if no other write started after it returned.
    let last_possible: Vec<&&Record> = writes
        .iter()
        .filter(|w| !writes.iter().any(|o| o.call > w.ret))
        .collect();
    match fin {
        Some(v) => assert!(
            last_possible
                .iter()
                .any(|w| matches!(&w.op, Op::Set(x) if x == v)),
            "{key}: final value {v:?} is not from a write that could be last"
        ),
        None => assert!(
            writes.is_empty() || last_possible.iter().any(|w| matches!(w.op, Op::Delete(_))),
            "{key}: key is absent but no delete could be last"
        ),
    }
}

#[actix_web::test]
async fn hundreds_of_concurrent_clients_match_the_model() {
    let server = TestServer::start(&[]);
    let base = format!("http://{}", server.addr);
    let (clients, ops, keys, seed) = (200, 40, 16, 0x5eed);
    let runs = (0..clients).map(|id| run_client(base.clone(), id, ops, keys, seed));
    let records: Vec<Record> = join_all(runs).await.into_iter().flatten().collect();
    assert_eq!(records.len(), clients * ops);

    let mut by_key: HashMap<String, Vec<Record>> = HashMap::new();
    for r in records {
        by_key.entry(r.key.clone()).or_default().push(r);
    }
    let c = crate::helpers::client();
    for k in 0..keys {
        let key = format!("key-{k}");
        let mut r = c.get(format!("{base}/get?key={key}")).send().await.unwrap();
        let v: Value = serde_json::from_slice(&r.body().await.unwrap()).unwrap();
        let fin = match r.status().as_u16() {
            200 => Some(v["value"].as_str().unwrap().to_owned()),
            404 => None,
            s => panic!("final get answered {s}"),
        };
        let hist = by_key.get(&key).map(Vec::as_slice).unwrap_or(&[]);
        check_key(&key, hist, fin.as_deref());
    }
}

#[actix_web::test]
async fn stress_for_a_bounded_time_with_mixed_sizes() {
    let server = TestServer::start(&[]);
    let base = format!("http://{}", server.addr);
    let run_for = Duration::from_secs(3);
    let started = Instant::now();
    let workers = (0..64).map(|id| {
        let base = base.clone();
        async move {
            let c = awc::Client::builder()
                .timeout(Duration::from_secs(30))
                .finish();
            let mut rng = rand::rngs::StdRng::seed_from_u64(id);
            let mut done = 0u64;
            while started.elapsed() < run_for {
                let key = format!("s-{}", rng.gen_range(0..256));
                let status = match rng.gen_range(0..3) {
                    0 => {
                        let size = if rng.gen_ratio(1, 50) { 64 * 1024 } else { 100 };
                        let value = "v".repeat(size);
                        c.put(format!("{base}/set"))
                            .send_json(&json!({"key": key, "value": value}))
                            .await
                    }
                    1 => c.get(format!("{base}/get?key={key}")).send().await,
                    _ => c.delete(format!("{base}/delete?key={key}")).send().await,
                }
                .expect("request under stress")
                .status()
                .as_u16();
                assert!(status == 200 || status == 404, "unexpected status {status}");
                done += 1;
            }
            done
        }
    });
    let total: u64 = join_all(workers).await.into_iter().sum();
    assert!(total > 0);
    // Still healthy afterwards.
    let res = crate::helpers::client()
        .get(format!("{base}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    println!("stress: {total} requests in {:?}", started.elapsed());
}
