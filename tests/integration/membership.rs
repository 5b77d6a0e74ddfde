//! Membership changes on real processes: a cluster grown from three to five voters while it
//! takes writes, a killed node replaced by a new one at a new address, the leader removed,
//! leadership handed over under load, five nodes committing with two down, and a removed node
//! that keeps running without disturbing anyone. Every wait polls with a deadline; every
//! process is killed by its handle when the cluster is dropped.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::cluster_proc::ProcCluster;
use crate::helpers::{client, get, poll_until};

const WAIT: Duration = Duration::from_secs(30);

/// `method url` with an optional JSON body: (status, JSON body; `Null` when it is not JSON).
async fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let c = client();
    let req = match method {
        "GET" => c.get(url),
        "POST" => c.post(url),
        "DELETE" => c.delete(url),
        other => panic!("no such method in these tests: {other}"),
    }
    .timeout(Duration::from_secs(20));
    let sent = match body {
        Some(b) => req.send_json(&b).await,
        None => req.send().await,
    };
    let Ok(mut res) = sent else {
        return (0, Value::Null);
    };
    let status = res.status().as_u16();
    let body = res.body().limit(1 << 20).await.unwrap_or_default();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// `GET /cluster` through node `i`.
async fn cluster_view(c: &ProcCluster, i: usize) -> Value {
    call("GET", &format!("{}/cluster", c.url(i)), None).await.1
}

/// Poll `/cluster` through the leader `leader` until the cluster can take a membership change
/// at once: every member known by its real id (not yet the provisional URL id of a new
/// cluster), no change in progress (the leader then writes the configuration down under the
/// real ids) and every member heard from lately (a change that would leave
/// no reachable quorum is refused, and right after an election the leader has not heard from
/// everyone yet).
async fn wait_settled(c: &ProcCluster, leader: usize) {
    poll_until(WAIT, || async {
        let view = cluster_view(c, leader).await;
        let heard = view["members"].as_array().is_some_and(|ms| {
            ms.iter().all(|m| {
                m["lastContactMs"].as_u64().is_some_and(|t| t < 1000)
                    && m["id"].as_str().is_some_and(|id| !id.contains("://"))
            })
        });
        if view["changeInProgress"] == false && heard {
            Ok(())
        } else {
            Err(view)
        }
    })
    .await
    .unwrap_or_else(|last| panic!("the cluster did not settle: {last:#}"));
}

/// The members of a `/cluster` answer: id → role.
fn roles(view: &Value) -> BTreeMap<String, String> {
    view["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    (
                        m["id"].as_str().unwrap_or("?").to_owned(),
                        m["role"].as_str().unwrap_or("?").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Poll `/cluster` through node `via` until its members and roles are exactly `want`, as seen
/// by the leader (the answer names one).
async fn wait_for_members(c: &ProcCluster, via: usize, want: &[(&str, &str)]) -> Value {
    let want: BTreeMap<String, String> = want
        .iter()
        .map(|(id, role)| (id.to_string(), role.to_string()))
        .collect();
    poll_until(WAIT, || async {
        let view = cluster_view(c, via).await;
        if roles(&view) == want && view["leaderId"].is_string() {
            Ok(view)
        } else {
            Err(view)
        }
    })
    .await
    .unwrap_or_else(|last| panic!("members never became {want:?}; last /cluster: {last:#}"))
}

/// Writes keys `{prefix}{n}` one after another through the running nodes, in turn, until
/// stopped; remembers every acknowledged one.
struct Writer {
    stop: Rc<Cell<bool>>,
    acked: Rc<RefCell<Vec<String>>>,
    task: actix_web::rt::task::JoinHandle<()>,
}

impl Writer {
    fn start(urls: Vec<String>, prefix: &'static str) -> Writer {
        let stop = Rc::new(Cell::new(false));
        let acked = Rc::new(RefCell::new(Vec::new()));
        let (s, a) = (stop.clone(), acked.clone());
        let task = actix_web::rt::spawn(async move {
            let c = client();
            let mut n = 0u64;
            while !s.get() {
                n += 1;
                let key = format!("{prefix}{n}");
                let url = &urls[n as usize % urls.len()];
                let res = c
                    .put(format!("{url}/set"))
                    .timeout(Duration::from_secs(5))
                    .send_json(&json!({"key": key, "value": format!("v{n}")}))
                    .await;
                match res {
                    Ok(r) if r.status().as_u16() == 200 => a.borrow_mut().push(key),
                    // Refused, unknown, or the node is down: not acknowledged. A short pause
                    // keeps a dead node from spinning this loop (a pace, not a wait for state).
                    _ => actix_web::rt::time::sleep(Duration::from_millis(10)).await,
                }
            }
        });
        Writer { stop, acked, task }
    }

    /// Poll until at least `n` writes were acknowledged; `what` names the expectation.
    async fn wait_acked(&self, n: usize, what: &str) {
        poll_until(WAIT, || async {
            if self.acked.borrow().len() >= n {
                Ok(())
            } else {
                Err(())
            }
        })
        .await
        .unwrap_or_else(|()| panic!("{what}: fewer than {n} writes acknowledged"));
    }

    /// Stop writing; the acknowledged keys.
    async fn finish(self) -> Vec<String> {
        self.stop.set(true);
        let _ = self.task.await;
        self.acked.take()
    }
}

/// Every key in `keys` reads back (linearizably, through node `via`) with the value it was
/// written with.
async fn assert_all_present(c: &ProcCluster, via: usize, keys: &[String]) {
    for key in keys {
        let (status, body) = get(&c.url(via), key, false).await;
        let n = key.trim_start_matches(|ch: char| !ch.is_ascii_digit());
        assert_eq!(
            (status, body["value"].as_str()),
            (200, Some(format!("v{n}").as_str())),
            "acknowledged key {key} lost: {body}"
        );
    }
}

/// Poll until node `i` has applied at least `index` (read from its `/health`).
async fn wait_applied(c: &ProcCluster, i: usize, index: u64) {
    poll_until(WAIT, || async {
        match c.health(i).await {
            Some(h) if h["appliedIndex"].as_u64() >= Some(index) => Ok(()),
            other => Err(other),
        }
    })
    .await
    .unwrap_or_else(|last| panic!("node {i} never applied {index}; last health {last:?}"));
}

#[actix_web::test]
async fn a_cluster_grows_from_three_to_five_voters_while_it_takes_writes() {
    let mut c = ProcCluster::start(3);
    let (leader, _) = c.wait_for_leader(WAIT).await;
    wait_settled(&c, leader).await;
    wait_for_members(
        &c,
        leader,
        &[("n1", "voter"), ("n2", "voter"), ("n3", "voter")],
    )
    .await;
    let writer = Writer::start((0..3).map(|i| c.url(i)).collect(), "grow");
    // Two new nodes join through different members; each becomes a voter by itself.
    let n4 = c.add_node(0, &[]);
    let n5 = c.add_node(1, &[]);
    let view = wait_for_members(
        &c,
        leader,
        &[
            ("n1", "voter"),
            ("n2", "voter"),
            ("n3", "voter"),
            ("n4", "voter"),
            ("n5", "voter"),
        ],
    )
    .await;
    let acked = writer.finish().await;
    assert!(!acked.is_empty(), "writes went on during the change");
    assert_all_present(&c, leader, &acked).await;
    // The new voters hold everything: read it from them without asking the leader.
    let commit = c.health(leader).await.expect("leader up")["commitIndex"]
        .as_u64()
        .expect("commit index");
    for i in [n4, n5] {
        wait_applied(&c, i, commit).await;
        let last = acked.last().expect("one write");
        let (status, _) = get(&c.url(i), last, true).await;
        assert_eq!(status, 200, "node {i} holds the newest write: {view}");
    }
}

#[actix_web::test]
async fn five_voters_keep_committing_with_two_of_them_down() {
    let mut c = ProcCluster::start(5);
    let (leader, _) = c.wait_for_leader(WAIT).await;
    let followers: Vec<usize> = (0..5).filter(|i| *i != leader).collect();
    c.kill(followers[0]);
    c.kill(followers[1]);
    let writer = Writer::start(vec![c.url(leader)], "five");
    writer
        .wait_acked(20, "three of five voters commit writes")
        .await;
    let acked = writer.finish().await;
    assert_all_present(&c, leader, &acked).await;
}

#[actix_web::test]
async fn a_killed_node_is_replaced_by_a_new_one_at_a_new_address() {
    let mut c = ProcCluster::start(3);
    let (leader, _) = c.wait_for_leader(WAIT).await;
    wait_settled(&c, leader).await;
    let dead = (0..3).find(|i| *i != leader).expect("a follower");
    let dead_id = format!("n{}", dead + 1);
    c.kill(dead);
    let (status, body) = call(
        "DELETE",
        &format!("{}/cluster/members/{dead_id}", c.url(leader)),
        None,
    )
    .await;
    assert_eq!(status, 200, "removing the dead node: {body}");
    assert_eq!(body["ok"], true);
    // A new machine, a new address, the same role: it takes the free id n4.
    let new = c.add_node(leader, &[]);
    let want: Vec<(String, &str)> = (0..3)
        .filter(|i| *i != dead)
        .map(|i| (format!("n{}", i + 1), "voter"))
        .chain([(format!("n{}", new + 1), "voter")])
        .collect();
    let want: Vec<(&str, &str)> = want.iter().map(|(id, r)| (id.as_str(), *r)).collect();
    wait_for_members(&c, leader, &want).await;
    // The new node now counts: with the other old follower down, the leader and the new node
    // are a majority of three.
    let other = (0..3)
        .find(|i| *i != leader && *i != dead)
        .expect("follower");
    c.kill(other);
    let writer = Writer::start(vec![c.url(leader)], "replace");
    writer
        .wait_acked(10, "the leader and the new node commit together")
        .await;
    let acked = writer.finish().await;
    assert_all_present(&c, leader, &acked).await;
}

#[actix_web::test]
async fn removing_the_leader_hands_over_and_the_old_leader_says_it_was_removed() {
    let c = ProcCluster::start(3);
    let (leader, term) = c.wait_for_leader(WAIT).await;
    wait_settled(&c, leader).await;
    let writer = Writer::start((0..3).map(|i| c.url(i)).collect(), "rmleader");
    let leader_id = format!("n{}", leader + 1);
    let (status, body) = call(
        "DELETE",
        &format!("{}/cluster/members/{leader_id}", c.url(leader)),
        None,
    )
    .await;
    assert_eq!(status, 200, "removing the leader: {body}");
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    // A new leader among the others, in a later term; the old one reports itself removed.
    let new_leader = poll_until(WAIT, || async {
        let h = c.health(others[0]).await;
        let old = c.health(leader).await;
        match (&h, &old) {
            (Some(h), Some(old))
                if h["leaderId"].as_str().is_some_and(|l| l != leader_id)
                    && h["term"].as_u64() > Some(term)
                    && old["state"] == "removed" =>
            {
                Ok(h["leaderId"].as_str().unwrap_or_default().to_owned())
            }
            _ => Err((h, old)),
        }
    })
    .await
    .unwrap_or_else(|last| panic!("no new leader, or the old one not removed: {last:#?}"));
    let acked = writer.finish().await;
    let via = others
        .iter()
        .copied()
        .find(|i| format!("n{}", i + 1) == new_leader)
        .expect("the new leader is one of the others");
    wait_for_members(
        &c,
        via,
        &others
            .iter()
            .map(|i| match i {
                0 => ("n1", "voter"),
                1 => ("n2", "voter"),
                _ => ("n3", "voter"),
            })
            .collect::<Vec<_>>(),
    )
    .await;
    assert_all_present(&c, via, &acked).await;
    // The removed node keeps running and refuses client requests with a clear reason.
    let (status, body) = call("GET", &format!("{}/get?key=rmleader1", c.url(leader)), None).await;
    assert_eq!(status, 503, "a removed node refuses reads: {body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("removed"),
        "{body}"
    );
}

#[actix_web::test]
async fn leadership_moves_to_the_named_follower_under_load_without_losing_a_write() {
    let c = ProcCluster::start(3);
    let (leader, term) = c.wait_for_leader(WAIT).await;
    wait_settled(&c, leader).await;
    let target = (0..3).find(|i| *i != leader).expect("follower");
    let target_id = format!("n{}", target + 1);
    let writer = Writer::start((0..3).map(|i| c.url(i)).collect(), "transfer");
    writer
        .wait_acked(20, "writes flow before the transfer")
        .await;
    // Asked through a follower: routed to the leader like every change.
    let other = (0..3)
        .find(|i| *i != leader && *i != target)
        .expect("the third");
    let (status, body) = call(
        "POST",
        &format!("{}/cluster/leader", c.url(other)),
        Some(json!({"id": target_id})),
    )
    .await;
    assert_eq!(status, 200, "transfer: {body}");
    assert_eq!(body["leaderId"], target_id.as_str(), "{body}");
    let (new_leader, new_term) = c.wait_for_leader(WAIT).await;
    assert_eq!(new_leader, target, "the named follower leads");
    assert!(new_term > term);
    let acked = writer.finish().await;
    assert_all_present(&c, target, &acked).await;
    // Unknown or non-voting targets are refused in the API's shape.
    let (status, body) = call(
        "POST",
        &format!("{}/cluster/leader", c.url(target)),
        Some(json!({"id": "nobody"})),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["ok"], false);
}

#[actix_web::test]
async fn a_removed_node_that_never_heard_of_its_removal_does_not_disturb_the_cluster() {
    // A longer election timeout than the default (1 s, not 150 ms): on a loaded machine a
    // scheduling hiccup would otherwise make the leader step down by check-quorum now and then,
    // which is not what this test is about. The woken node's timer expired long ago, so it
    // still campaigns at once and then every 1-2 s while it is watched.
    let mut c = ProcCluster::start_with(
        3,
        &[
            ("RAFT_HEARTBEAT_MS", "100"),
            ("RAFT_ELECTION_TIMEOUT_MS", "1000"),
        ],
    );
    let (leader, _) = c.wait_for_leader(WAIT).await;
    wait_settled(&c, leader).await;
    let victim = (0..3).find(|i| *i != leader).expect("follower");
    let victim_id = format!("n{}", victim + 1);
    // Frozen while it is removed, so it never receives the entry that removes it; it wakes up
    // still believing it is a voter, its election timer long expired (logcabin#56,
    // hashicorp/raft#524).
    c.process(victim).signal(libc::SIGSTOP);
    let (status, body) = call(
        "DELETE",
        &format!("{}/cluster/members/{victim_id}", c.url(leader)),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let term = poll_until(WAIT, || async {
        match c.health(leader).await {
            Some(h) if h["state"] == "leader" && h["commitIndex"] == h["lastLogIndex"] => {
                h["term"].as_u64().ok_or(Some(h))
            }
            other => Err(other),
        }
    })
    .await
    .expect("the leader committed the removal");
    c.process(victim).signal(libc::SIGCONT);
    // It campaigns in vain for a while: pre-vote and check-quorum keep the others' term, and
    // the leader keeps its place. Watched for 5 s: several of its election timeouts.
    let writer = Writer::start(vec![c.url(leader)], "stray");
    let watch = poll_until(Duration::from_secs(5), || async {
        let h = c.health(leader).await;
        match &h {
            Some(h) if h["state"] == "leader" && h["term"].as_u64() == Some(term) => Err(()),
            _ => Ok(h),
        }
    })
    .await;
    assert!(
        watch.is_err(),
        "the leader was disturbed by the removed node: {watch:?}"
    );
    let acked = writer.finish().await;
    assert!(!acked.is_empty());
    assert_all_present(&c, leader, &acked).await;
}

#[actix_web::test]
async fn membership_routes_answer_errors_in_the_api_shape() {
    let c = ProcCluster::start(3);
    let (leader, _) = c.wait_for_leader(WAIT).await;
    wait_settled(&c, leader).await;
    let base = c.url(leader);
    let cases = [
        // An id already used, with another URL.
        (
            "POST",
            "/cluster/members",
            Some(json!({"id": "n2", "url": "http://127.0.0.1:1", "learner": true})),
            409,
        ),
        // A URL already used by another member.
        (
            "POST",
            "/cluster/members",
            Some(json!({"id": "n9", "url": c.url((leader + 1) % 3), "learner": true})),
            409,
        ),
        ("POST", "/cluster/members", Some(json!({"id": ""})), 400),
        ("POST", "/cluster/members/nobody/promote", None, 404),
        ("POST", "/cluster/members/n1/promote", None, 409),
        ("DELETE", "/cluster/members/nobody", None, 404),
    ];
    for (method, path, body, want) in cases {
        let (status, answer) = call(method, &format!("{base}{path}"), body.clone()).await;
        assert_eq!(status, want, "{method} {path} {body:?}: {answer}");
        assert_eq!(answer["ok"], false, "{answer}");
        assert!(answer["message"].is_string(), "{answer}");
    }
    // GET /cluster from every node names the same leader and the cluster id.
    for i in 0..3 {
        let view = cluster_view(&c, i).await;
        assert_eq!(view["ok"], true, "{view}");
        assert_eq!(view["leaderId"], format!("n{}", leader + 1).as_str());
        assert_eq!(view["clusterId"], c.cluster_id());
    }
}
