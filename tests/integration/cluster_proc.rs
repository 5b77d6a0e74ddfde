//! Three real `kvstore` processes on loopback: one leader, stable, replaced when SIGKILLed, and
//! the old leader rejoins as a follower. Bounded waits, processes always reaped.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{client, free_port, KvProcess};

/// A local cluster of real processes; every process is killed when this is dropped.
struct ProcCluster {
    ports: Vec<u16>,
    nodes: Vec<Option<KvProcess>>,
}

impl ProcCluster {
    fn start(n: usize) -> ProcCluster {
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut c = ProcCluster {
            ports,
            nodes: (0..n).map(|_| None).collect(),
        };
        for i in 0..n {
            c.start_node(i);
        }
        c
    }

    fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    fn start_node(&mut self, i: usize) {
        let peers: Vec<String> = (0..self.ports.len())
            .filter(|j| *j != i)
            .map(|j| self.url(j))
            .collect();
        let port = self.ports[i].to_string();
        let id = format!("n{}", i + 1);
        let peers = peers.join(",");
        self.nodes[i] = Some(KvProcess::start(
            &["--host", "127.0.0.1"],
            &[("NODE_ID", &id), ("PORT", &port), ("PEERS", &peers)],
        ));
    }

    fn kill(&mut self, i: usize) {
        let mut p = self.nodes[i].take().expect("node running");
        p.signal(libc::SIGKILL);
        p.wait_exit(Duration::from_secs(10))
            .expect("SIGKILL ends it");
    }

    async fn health(&self, i: usize) -> Option<Value> {
        self.nodes[i].as_ref()?;
        let mut res = client()
            .get(format!("{}/health", self.url(i)))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        serde_json::from_slice(&res.body().await.ok()?).ok()
    }

    async fn healths(&self) -> Vec<Option<Value>> {
        let mut out = Vec::new();
        for i in 0..self.ports.len() {
            out.push(self.health(i).await);
        }
        out
    }

    /// Poll (every 20 ms, up to `within`) until exactly one running node is leader and every
    /// running node names it in the same term; returns (leader index, term).
    async fn wait_for_leader(&self, within: Duration) -> (usize, u64) {
        let deadline = Instant::now() + within;
        let mut last = Vec::new();
        while Instant::now() < deadline {
            let hs = self.healths().await;
            let up: Vec<(usize, &Value)> = hs
                .iter()
                .enumerate()
                .filter_map(|(i, h)| h.as_ref().map(|h| (i, h)))
                .collect();
            let leaders: Vec<&(usize, &Value)> =
                up.iter().filter(|(_, h)| h["state"] == "leader").collect();
            if let [(l, lh)] = leaders[..] {
                let term = lh["term"].as_u64().unwrap();
                let agreed = up
                    .iter()
                    .all(|(_, h)| h["term"] == term && h["leaderId"] == lh["id"]);
                if agreed && up.len() == self.nodes.iter().filter(|n| n.is_some()).count() {
                    return (*l, term);
                }
            }
            last = hs;
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no agreed leader within {within:?}; last health: {last:#?}");
    }
}

#[actix_web::test]
async fn three_processes_elect_one_stable_leader() {
    let cluster = ProcCluster::start(3);
    let (leader, term) = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let leader_id = format!("n{}", leader + 1);
    // Stable for 10 s: same leader, same term, followers hearing heartbeats.
    let until = Instant::now() + Duration::from_secs(10);
    let mut max_follower_age = 0;
    while Instant::now() < until {
        for (i, h) in cluster.healths().await.into_iter().enumerate() {
            let h = h.unwrap_or_else(|| panic!("node {i} stopped answering /health"));
            assert_eq!(h["term"], term, "term changed: {h}");
            assert_eq!(h["leaderId"], leader_id.as_str(), "leader changed: {h}");
            assert_eq!(h["leader"], cluster.url(leader).as_str());
            if i != leader {
                assert_eq!(h["state"], "follower");
                max_follower_age = max_follower_age.max(h["lastHeartbeatAgoMs"].as_u64().unwrap());
            } else {
                assert_eq!(h["state"], "leader");
            }
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    // Heartbeats every 50 ms; a follower hears one well within the election timeout.
    assert!(
        max_follower_age < 150,
        "a follower went {max_follower_age} ms without a heartbeat"
    );
}

#[actix_web::test]
async fn killing_the_leader_elects_another_and_the_old_one_rejoins_as_follower() {
    let mut cluster = ProcCluster::start(3);
    let (old, term) = cluster.wait_for_leader(Duration::from_secs(10)).await;
    cluster.kill(old);
    let (new, new_term) = cluster.wait_for_leader(Duration::from_secs(5)).await;
    assert_ne!(new, old);
    assert!(new_term > term);
    cluster.start_node(old);
    let (l, t) = cluster.wait_for_leader(Duration::from_secs(5)).await;
    assert_eq!(
        (l, t),
        (new, new_term),
        "the restarted node disturbed the new leader"
    );
    let h = cluster.health(old).await.expect("restarted node answers");
    assert_eq!(h["state"], "follower");
    assert_eq!(h["leaderId"], format!("n{}", new + 1).as_str());
}
