//! Follower reads (`--follower-reads`, `raft::actor::reads`): a follower serves a linearizable
//! read from its own state machine at a read index asked of the leader. A follower that lags
//! (the leader's messages to it delayed at random) never answers a value older than a write
//! acknowledged before the read began, while its stale reads do; with the setting off, the
//! follower forwards instead; reads are counted by path on the node that proved them.

use std::time::Duration;

use crate::cluster_proc::ProcCluster;
use crate::helpers::{client, poll_until, put};

async fn read(base: &str, key: &str, consistency: &str) -> (u16, Option<String>) {
    let mut res = client()
        .get(format!("{base}/get?key={key}{consistency}"))
        .timeout(Duration::from_secs(8))
        .send()
        .await
        .expect("answered");
    let body = res.body().await.expect("body");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    (
        res.status().as_u16(),
        v["value"].as_str().map(str::to_owned),
    )
}

/// The value of `kvstore_linearizable_reads_total{path="<path>"}` on `base` (0 if absent).
async fn reads_by(base: &str, path: &str) -> u64 {
    let mut res = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics answered");
    let text = String::from_utf8_lossy(&res.body().await.expect("body")).into_owned();
    let prefix = format!("kvstore_linearizable_reads_total{{path=\"{path}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().expect("a count"))
}

#[actix_web::test]
async fn a_lagging_follower_serves_linearizable_reads_that_see_every_acknowledged_write() {
    let cluster = ProcCluster::start_with(3, &[("KVSTORE_FAULTS", "1")]);
    let (l, _) = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let f = (l + 1) % 3;
    let (leader, follower) = (cluster.url(l), cluster.url(f));
    // The leader's messages to the follower (and its answers to it) wait 0–80 ms each, drawn
    // at random: the follower applies each write some time after the leader acknowledged it,
    // and a read index may reach it before the entries it covers. (Under the RPC timeout,
    // 100 ms: a read index that takes longer is given up and the read forwarded.)
    let rules = serde_json::json!({"rules": [{"peer": follower, "delayMs": [0, 80]}]});
    let res = client()
        .post(format!("{leader}/admin/faults"))
        .send_json(&rules)
        .await
        .expect("admin route answers");
    assert_eq!(res.status(), 200);
    let before = reads_by(&follower, "follower").await;
    let mut stale_missed = 0;
    for i in 0..25 {
        let value = format!("v{i}");
        assert_eq!(put(&leader, "k", &value).await.0, 200, "write {i}");
        // Acknowledged: every linearizable read that starts now must see it.
        let stale = read(&follower, "k", "&consistency=stale").await;
        if stale.1.as_deref() != Some(value.as_str()) {
            stale_missed += 1;
        }
        let got = read(&follower, "k", "").await;
        assert_eq!(got, (200, Some(value.clone())), "linearizable read {i}");
        let got = read(&follower, "k", "&consistency=lease").await;
        assert_eq!(got, (200, Some(value)), "lease read {i} on a follower");
    }
    // The follower really lagged (else this test would prove nothing) ...
    assert!(
        stale_missed > 0,
        "the follower never lagged: no stale read missed a write"
    );
    // ... and served the linearizable reads itself.
    let served = reads_by(&follower, "follower").await - before;
    assert!(served >= 50, "follower reads counted: {served} of 50");
}

#[actix_web::test]
async fn with_follower_reads_off_a_follower_forwards_its_reads_to_the_leader() {
    let cluster = ProcCluster::start_with(3, &[("KVSTORE_FOLLOWER_READS", "off")]);
    let (l, _) = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let f = (l + 1) % 3;
    let (leader, follower) = (cluster.url(l), cluster.url(f));
    assert_eq!(put(&leader, "k", "v").await.0, 200);
    let before = reads_by(&leader, "lease").await + reads_by(&leader, "read_index").await;
    for _ in 0..5 {
        assert_eq!(read(&follower, "k", "").await, (200, Some("v".into())));
    }
    assert_eq!(reads_by(&follower, "follower").await, 0);
    // The leader proved them (lease or ReadIndex); the counter is bumped after the answer
    // leaves, so poll for it.
    let counted = poll_until(Duration::from_secs(5), || async {
        let n = reads_by(&leader, "lease").await + reads_by(&leader, "read_index").await;
        if n >= before + 5 {
            Ok(())
        } else {
            Err(n)
        }
    })
    .await;
    assert!(
        counted.is_ok(),
        "the leader served the forwarded reads: {counted:?}"
    );
}
