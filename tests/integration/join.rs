//! `--join` and stopping with a signal, with real processes: a join whose id is another
//! member's fails at once with a clear line and a non-zero status; a node with data ignores
//! JOIN and resumes; a fourth node with an empty directory joins a 3-node cluster and becomes
//! a voter; a leader stopped with SIGTERM hands its leadership over and exits 0.

use std::time::Duration;

use serde_json::{json, Value};

use crate::cluster_proc::ProcCluster;
use crate::helpers::{client, get, poll_until, put, KvProcess};

/// A stand-in member that answers `GET /cluster` with `body` (on its own thread and actix
/// system, so a test may block on a child process meanwhile). Returns its base URL; it stops
/// with the test process.
fn fake_member(body: Value) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let body = body.clone();
            actix_web::HttpServer::new(move || {
                let body = body.clone();
                actix_web::App::new().route(
                    "/cluster",
                    actix_web::web::get().to(move || {
                        std::future::ready(actix_web::HttpResponse::Ok().json(body.clone()))
                    }),
                )
            })
            .workers(1)
            .disable_signals()
            .listen(listener)
            .expect("listen")
            .run()
            .await
            .expect("serve")
        })
    });
    url
}

#[test]
fn a_join_with_an_id_already_used_fails_at_once_with_a_clear_line() {
    let n2 = "http://127.0.0.1:1";
    let member = fake_member(json!({
        "ok": true, "clusterId": "c-test", "leaderId": "n1", "leaderUrl": "http://127.0.0.1:2",
        "term": 3, "configIndex": 1, "commitIndex": 5, "changeInProgress": false,
        "members": [
            {"id": "n1", "url": "http://127.0.0.1:2", "role": "voter"},
            {"id": "n2", "url": n2, "role": "voter"}
        ]
    }));
    let mut p = KvProcess::spawn(
        &["--host", "127.0.0.1", "--port", "0"],
        &[("NODE_ID", "n2"), ("KVSTORE_JOIN", member.as_str())],
    );
    let status = p
        .wait_exit(Duration::from_secs(20))
        .expect("the join is refused at once");
    assert!(!status.success(), "{status:?}");
    let lines = p.remaining_stderr(Duration::from_secs(5));
    let want = format!("error: cannot join: the id \"n2\" is already used by member at {n2}");
    assert!(
        lines.iter().any(|l| l.contains(&want)),
        "no {want:?} in:\n{}",
        lines.join("\n")
    );
}

#[actix_web::test]
async fn a_node_with_data_ignores_join_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_string_lossy().into_owned();
    let args = ["--host", "127.0.0.1", "--port", "0"];
    let node = KvProcess::start(
        &args,
        &[("NODE_ID", "n1"), ("KVSTORE_DATA_DIR", d.as_str())],
    );
    let base = node.url("");
    let (status, _, _) = put(&base, "kept", "yes").await;
    assert_eq!(status, 200);
    drop(node); // SIGKILL: the write is durable
                // Nothing answers at port 1: a node that tried to join would fail.
    let mut node = KvProcess::spawn(
        &args,
        &[
            ("NODE_ID", "n1"),
            ("KVSTORE_DATA_DIR", d.as_str()),
            ("KVSTORE_JOIN", "http://127.0.0.1:1"),
        ],
    );
    node.wait_for_line(Duration::from_secs(20), |l| {
        l.contains("has data; ignoring JOIN and resuming")
    })
    .expect("the ignoring line");
    let line = node
        .wait_for_line(Duration::from_secs(20), |l| {
            l.contains("listening on http://")
        })
        .expect("it serves");
    node.addr = crate::helpers::parse_listen_addr(&line);
    let (status, body) = get(&node.url(""), "kept", false).await;
    assert_eq!((status, &body["value"]), (200, &json!("yes")), "{body}");
}

/// `GET /cluster` of `base`, if it answers 200.
async fn cluster(base: &str) -> Option<Value> {
    let mut res = client()
        .get(format!("{base}/cluster"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    if res.status() != 200 {
        return None;
    }
    serde_json::from_slice(&res.body().await.ok()?).ok()
}

#[actix_web::test]
async fn a_fourth_node_with_an_empty_directory_joins_and_becomes_a_voter() {
    let c = ProcCluster::start(3);
    let (leader, _) = c.wait_for_leader(Duration::from_secs(10)).await;
    let (status, _, _) = put(&c.url(leader), "before", "join").await;
    assert_eq!(status, 200);
    let join = c.url(0);
    let mut n4 = KvProcess::start(
        &["--host", "127.0.0.1", "--port", "0"],
        &[("NODE_ID", "n4"), ("KVSTORE_JOIN", join.as_str())],
    );
    n4.wait_for_line(Duration::from_secs(30), |l| {
        l.contains(&format!("joined cluster {} as a learner", c.cluster_id()))
    })
    .expect("joined as a learner");
    n4.wait_for_line(Duration::from_secs(30), |l| l.contains("promoted to voter"))
        .expect("promoted");
    let me = n4.url("");
    let roles = poll_until(Duration::from_secs(10), || async {
        let v = cluster(&c.url(leader)).await.ok_or(Value::Null)?;
        let n4 = v["members"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["id"] == "n4").cloned());
        match n4 {
            Some(m) if m["role"] == "voter" && m["url"] == me.as_str() => Ok(v),
            _ => Err(v),
        }
    })
    .await;
    assert!(roles.is_ok(), "n4 is not a voter: {roles:?}");
    let (status, body) = get(&me, "before", true).await;
    assert_eq!((status, &body["value"]), (200, &json!("join")), "{body}");
}

#[actix_web::test]
async fn a_leader_stopped_with_sigterm_hands_over_and_exits_0() {
    let mut c = ProcCluster::start(3);
    let (leader, term) = c.wait_for_leader(Duration::from_secs(10)).await;
    let (status, _, _) = put(&c.url(leader), "k", "v").await;
    assert_eq!(status, 200);
    let p = c.process(leader);
    p.signal(libc::SIGTERM);
    let exit = p
        .wait_exit(Duration::from_secs(15))
        .expect("a stopped leader exits");
    let lines = p.remaining_stderr(Duration::from_secs(5));
    c.forget(leader);
    assert!(exit.success(), "{exit:?}\n{}", lines.join("\n"));
    assert!(
        lines.iter().any(|l| l.contains("kvstore stopped")),
        "{}",
        lines.join("\n")
    );
    let (new_leader, new_term) = c.wait_for_leader(Duration::from_secs(10)).await;
    assert_ne!(new_leader, leader);
    // A handover is a campaign by the target without pre-vote: exactly one term more (an
    // election after a timeout would also pass a pre-vote round first, and could take more).
    assert!(
        lines.iter().any(|l| l.contains("leadership handed to")),
        "{}",
        lines.join("\n")
    );
    assert_eq!(new_term, term + 1, "{}", lines.join("\n"));
    let (status, body) = get(&c.url(new_leader), "k", false).await;
    assert_eq!((status, &body["value"]), (200, &json!("v")), "{body}");
}
