//! The trust boundary of the Raft routes: who may speak Raft to a node.
//!
//! In process (`actix_web::test` against the real app): without a secret only loopback sources
//! are answered; with a secret, unsigned, mis-signed, stale and altered requests get 401 before
//! the body is parsed, a correctly signed one is answered with a signed answer, and terms near
//! `u64::MAX` are refused. With real processes: the attack from issue #11 (a forged vote, an
//! append with a forged entry and `leaderCommit` covering it, a snapshot chunk) against every
//! node of a 3-node cluster with a secret: every forged request gets 401, no key appears, the
//! leader and the term stay the same.

use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test;
use kvstore::api::{self, Limits};
use kvstore::security::peer_auth::{PeerKeys, RequestParts, AUTH_HEADER};
use kvstore::transport::http::{unix_ms, CLUSTER_HEADER, FROM_HEADER};
use serde_json::{json, Value};

use crate::cluster_proc::ProcCluster;
use crate::helpers::{client, get, poll_until, put, state_with};

/// A fresh random secret (tests never commit one).
fn secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

const VOTE: &str =
    r#"{"term":7,"candidateId":"x","lastLogIndex":0,"lastLogTerm":0,"preVote":true}"#;

async fn call<S, B>(app: &S, req: test::TestRequest) -> (StatusCode, Option<String>, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let (status, auth, v, _) = call_raw(app, req).await;
    (status, auth, v)
}

async fn call_raw<S, B>(
    app: &S,
    req: test::TestRequest,
) -> (StatusCode, Option<String>, Value, actix_web::web::Bytes)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let (status, headers, body) = crate::helpers::call_app(app, req).await;
    let auth = headers
        .get(AUTH_HEADER)
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (StatusCode::from_u16(status).unwrap(), auth, v, body)
}

/// A request to `path` with `body` from `addr`, signed with `keys` at `t` when given.
fn request(
    path: &str,
    body: &'static str,
    addr: &str,
    sign: Option<(&PeerKeys, u64)>,
) -> test::TestRequest {
    let mut req = test::TestRequest::post()
        .uri(path)
        .peer_addr(addr.parse().unwrap())
        .insert_header((CLUSTER_HEADER, "standalone"))
        .insert_header((FROM_HEADER, "http://10.0.0.9:1"))
        .set_payload(body);
    if let Some((keys, t)) = sign {
        let parts = RequestParts {
            cluster: "standalone",
            // A test request names no host.
            host: "",
            method: "POST",
            path_and_query: path,
            from: "http://10.0.0.9:1",
        };
        let (header, _) = keys.sign_request(parts, t, body.as_bytes());
        req = req.insert_header((AUTH_HEADER, header));
    }
    req
}

#[actix_web::test]
async fn without_a_secret_only_loopback_sources_may_speak_raft() {
    let app = test::init_service(api::app(state_with(Limits::default()))).await;
    let (status, _, v) = call(&app, request("/raft/vote", VOTE, "10.1.2.3:5555", None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["ok"], false);
    assert!(v["message"].as_str().unwrap().contains("loopback"), "{v}");
    for addr in ["127.0.0.1:5555", "[::1]:5555"] {
        let (status, _, v) = call(&app, request("/raft/vote", VOTE, addr, None)).await;
        assert_eq!(status, StatusCode::OK, "{addr}: {v}");
    }
    // The client API is not affected.
    let (status, _, _) = call(
        &app,
        test::TestRequest::get()
            .uri("/health")
            .peer_addr("10.1.2.3:5555".parse().unwrap()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // An IPv4 peer on a dual-stack socket is loopback too.
    let (status, _, v) = call(
        &app,
        request("/raft/vote", VOTE, "[::ffff:127.0.0.1]:5555", None),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // A loopback source naming a non-loopback host (a web page reaching this node through DNS
    // rebinding) is refused.
    let rebound = request("/raft/vote", VOTE, "127.0.0.1:5555", None)
        .insert_header(("host", "attacker.example:8081"));
    let (status, _, v) = call(&app, rebound).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let local = request("/raft/vote", VOTE, "127.0.0.1:5555", None)
        .insert_header(("host", "localhost:8081"));
    assert_eq!(call(&app, local).await.0, StatusCode::OK);
    // --insecure-peers opens the Raft routes to any source.
    let mut open = state_with(Limits::default());
    open.peers_open = true;
    let app = test::init_service(api::app(open)).await;
    let (status, _, _) = call(&app, request("/raft/vote", VOTE, "10.1.2.3:5555", None)).await;
    assert_eq!(status, StatusCode::OK);
}

#[actix_web::test]
async fn with_a_secret_only_signed_requests_are_answered_and_answers_are_signed() {
    let keys = PeerKeys::from_text(&secret()).unwrap();
    let mut state = state_with(Limits::default());
    state.peer_keys = Some(Arc::new(keys.clone()));
    let app = test::init_service(api::app(state)).await;
    let now = unix_ms();
    // Unsigned, from loopback or anywhere: 401.
    for addr in ["127.0.0.1:5555", "10.1.2.3:5555"] {
        let (status, auth, v) = call(&app, request("/raft/vote", VOTE, addr, None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
        assert!(auth.is_none());
        assert!(
            v["message"].as_str().unwrap().contains("must be signed"),
            "{v}"
        );
        assert_eq!(v.as_object().unwrap().len(), 2, "no leader hint: {v}");
    }
    // Signed with another secret, or long ago: 401.
    let other = PeerKeys::from_text(&secret()).unwrap();
    let (status, _, v) = call(
        &app,
        request("/raft/vote", VOTE, "10.1.2.3:1", Some((&other, now))),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        v["message"].as_str().unwrap().contains("does not match"),
        "{v}"
    );
    let stale = now - 10 * 60 * 1000;
    let (status, _, v) = call(
        &app,
        request("/raft/vote", VOTE, "10.1.2.3:1", Some((&keys, stale))),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(v["message"].as_str().unwrap().contains("clock"), "{v}");
    // Signed for another body than the one sent: 401.
    let mut altered = request("/raft/vote", VOTE, "10.1.2.3:1", Some((&keys, now)));
    altered = altered.set_payload(VOTE.replace("\"term\":7", "\"term\":8"));
    let (status, _, v) = call(&app, altered).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("body does not match"),
        "{v}"
    );
    // A made-up proof is refused before the body is read: a body far over the route's bound
    // gets 401 (the proof), not 413 (which reading it would give).
    let zeros = "0".repeat(64);
    let huge: &'static str = Box::leak("x".repeat(8 << 20).into_boxed_str());
    let made_up = request("/raft/append", huge, "10.1.2.3:1", None)
        .insert_header((AUTH_HEADER, format!("t={now},sha={zeros},mac={zeros}")));
    let (status, _, v) = call(&app, made_up).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("does not match"),
        "{v}"
    );
    // Garbage signed correctly reaches the decoder (400), before any actor.
    let (status, _, v) = call(
        &app,
        request("/raft/append", "{", "10.1.2.3:1", Some((&keys, now))),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    // A correct signature, from any address: answered, and the answer is signed for this request.
    let (status, auth, v, body) = call_raw(
        &app,
        request("/raft/vote", VOTE, "10.1.2.3:1", Some((&keys, now))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let parts = RequestParts {
        cluster: "standalone",
        host: "",
        method: "POST",
        path_and_query: "/raft/vote",
        from: "http://10.0.0.9:1",
    };
    let (_, mac) = keys.sign_request(parts, now, VOTE.as_bytes());
    keys.verify_answer(auth.as_deref().map(str::as_bytes), &mac, 200, &body)
        .expect("the answer carries a valid signature");
    // `/raft/read-index` (follower reads) is behind the same guard: unsigned 401, signed
    // answered (this node leads alone: its read index).
    const READ_INDEX: &str = r#"{"term":1}"#;
    let (status, _, v) = call(
        &app,
        request("/raft/read-index", READ_INDEX, "127.0.0.1:5555", None),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    let signed = request(
        "/raft/read-index",
        READ_INDEX,
        "10.1.2.3:1",
        Some((&keys, now)),
    );
    let (status, auth, v) = call(&app, signed).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(auth.is_some(), "the answer is signed");
    assert!(v["index"].as_u64().is_some(), "{v}");
}

#[actix_web::test]
async fn terms_and_indices_near_the_top_of_u64_are_refused() {
    let app = test::init_service(api::app(state_with(Limits::default()))).await;
    let huge = format!("{}", u64::MAX);
    let over = format!("{}", (1u64 << 53));
    for (path, body) in [
        (
            "/raft/vote",
            format!(r#"{{"term":{huge},"candidateId":"x","lastLogIndex":0,"lastLogTerm":0}}"#),
        ),
        (
            "/raft/vote",
            format!(r#"{{"term":{over},"candidateId":"x","lastLogIndex":0,"lastLogTerm":0}}"#),
        ),
        (
            "/raft/append",
            format!(
                r#"{{"term":1,"leaderId":"x","leaderUrl":"http://x","prevLogIndex":{huge},"prevLogTerm":0,"leaderCommit":0}}"#
            ),
        ),
        (
            "/raft/append",
            format!(
                r#"{{"term":{huge},"leaderId":"x","leaderUrl":"http://x","prevLogIndex":0,"prevLogTerm":0,"leaderCommit":{huge}}}"#
            ),
        ),
    ] {
        let body: &'static str = Box::leak(body.into_boxed_str());
        let (status, _, v) = call(&app, request(path, body, "127.0.0.1:1", None)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains("out of range"),
            "{v}"
        );
    }
    // Names longer than any legitimate node id or leader URL.
    let long_id = "i".repeat(129);
    let long_url = format!("http://{}:1", "h".repeat(600));
    for (path, body) in [
        (
            "/raft/vote",
            format!(r#"{{"term":1,"candidateId":"{long_id}","lastLogIndex":0,"lastLogTerm":0}}"#),
        ),
        (
            "/raft/append",
            format!(
                r#"{{"term":1,"leaderId":"x","leaderUrl":"{long_url}","prevLogIndex":0,"prevLogTerm":0,"leaderCommit":0}}"#
            ),
        ),
    ] {
        let body: &'static str = Box::leak(body.into_boxed_str());
        let (status, _, v) = call(&app, request(path, body, "127.0.0.1:1", None)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {v}");
        assert!(v["message"].as_str().unwrap().contains("at most"), "{v}");
    }
    let snapshot = format!("/raft/snapshot?term={huge}&leaderId=x&leaderUrl=http://x&index=1&lastTerm=1&offset=0&done=false&seq=1");
    let snapshot: &'static str = Box::leak(snapshot.into_boxed_str());
    let (status, _, v) = call(&app, request(snapshot, "", "127.0.0.1:1", None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    // The node's term did not move.
    let (_, _, h) = call(&app, test::TestRequest::get().uri("/health")).await;
    assert!(h["term"].as_u64().unwrap() < 10, "{h}");
}

/// POST `body` to `url` with the headers a peer sends, plus `auth` when given.
async fn forge(url: &str, cluster: &str, body: Vec<u8>, auth: Option<&str>) -> (u16, Value) {
    let mut req = client()
        .post(url)
        .timeout(Duration::from_secs(5))
        .insert_header((CLUSTER_HEADER, cluster))
        .insert_header(("content-type", "application/json"));
    if let Some(a) = auth {
        req = req.insert_header((AUTH_HEADER, a));
    }
    let mut res = req.send_body(body).await.expect("the node answers");
    let body = res.body().await.unwrap_or_default();
    (
        res.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

#[actix_web::test]
async fn forged_votes_appends_and_snapshot_chunks_are_refused_by_a_cluster_with_a_secret() {
    let secret: &'static str = Box::leak(secret().into_boxed_str());
    let cluster = ProcCluster::start_with(3, &[("KVSTORE_CLUSTER_SECRET", secret)]);
    let (leader, term) = cluster.wait_for_leader(Duration::from_secs(15)).await;
    let (status, _, _) = put(&cluster.url(leader), "real", "1").await;
    assert_eq!(status, 200, "the cluster replicates with its secret");
    let health = cluster.health(leader).await.expect("leader answers");
    let last = health["lastLogIndex"].as_u64().unwrap();
    let cluster_id = cluster.cluster_id().to_owned();
    let forged_mac = format!(
        "t={},sha={},mac={}",
        unix_ms(),
        "cd".repeat(32),
        "ab".repeat(32)
    );
    for i in 0..3 {
        let base = cluster.url(i);
        for forged_term in [term + 1000, u64::MAX] {
            let vote = json!({"term": forged_term, "candidateId": "mallory",
                "lastLogIndex": last + 1000, "lastLogTerm": forged_term, "preVote": false});
            let append = json!({"term": forged_term, "leaderId": "mallory",
                "leaderUrl": "http://127.0.0.1:9", "prevLogIndex": last, "prevLogTerm": term,
                "entries": [{"index": last + 1, "term": forged_term,
                    "payload": {"kind": "command", "command": {"op": "set", "key": "forged", "value": "pwned"}}}],
                "leaderCommit": last + 1, "seq": 1});
            for auth in [None, Some(forged_mac.as_str())] {
                for (path, body) in [("/raft/vote", &vote), ("/raft/append", &append)] {
                    let (status, v) = forge(
                        &format!("{base}{path}"),
                        &cluster_id,
                        serde_json::to_vec(body).unwrap(),
                        auth,
                    )
                    .await;
                    assert_eq!(status, 401, "node {i} {path} auth={auth:?}: {v}");
                    assert_eq!(v["ok"], false);
                }
                let chunk = format!(
                    "{base}/raft/snapshot?term={forged_term}&leaderId=mallory&leaderUrl=http://127.0.0.1:9\
                     &index={}&lastTerm={term}&offset=0&done=true&seq=1",
                    last + 1000
                );
                let (status, v) =
                    forge(&chunk, &cluster_id, b"KVSNAP garbage".to_vec(), auth).await;
                assert_eq!(status, 401, "node {i} snapshot auth={auth:?}: {v}");
            }
        }
    }
    // Nothing changed: the same leader in the same term everywhere, no forged key anywhere.
    let (leader_after, term_after) = cluster.wait_for_leader(Duration::from_secs(5)).await;
    assert_eq!((leader_after, term_after), (leader, term));
    for i in 0..3 {
        let (status, v) = get(&cluster.url(i), "forged", true).await;
        assert_eq!(status, 404, "node {i}: {v}");
        let (status, _) = get(&cluster.url(i), "real", false).await;
        assert_eq!(status, 200);
    }
    // And the cluster still works.
    let written = poll_until(Duration::from_secs(10), || async {
        let (s, _, _) = put(&cluster.url(leader), "after", "2").await;
        if s == 200 {
            Ok(())
        } else {
            Err(s)
        }
    })
    .await;
    assert!(written.is_ok(), "{written:?}");
}

#[::core::prelude::v1::test]
fn a_node_with_remote_peers_and_no_secret_refuses_to_start_unless_told_it_is_insecure() {
    use crate::helpers::{free_ports, KvProcess};
    let port = free_ports(1)[0].to_string();
    let env = [
        ("NODE_ID", "a"),
        ("PORT", port.as_str()),
        ("PEERS", "http://10.255.255.1:7001"),
    ];
    let (code, printed) = run_to_exit(&["--host", "127.0.0.1"], &env);
    assert_eq!(code, Some(2));
    assert!(
        printed
            .iter()
            .any(|l| l.contains("non-loopback") && l.contains("KVSTORE_CLUSTER_SECRET")),
        "{printed:?}"
    );
    // --insecure-peers: it starts, and says loudly what that means.
    let mut p = KvProcess::spawn(&["--host", "127.0.0.1", "--insecure-peers"], &env);
    p.wait_for_line(Duration::from_secs(20), |l| l.contains("INSECURE"))
        .expect("a warning at start");
}

/// Start `kvstore` with `args` and wait for it to exit by itself: its status and every line it
/// printed.
fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, Vec<String>) {
    let mut p = crate::helpers::KvProcess::spawn(args, env);
    let code = p.wait_exit(Duration::from_secs(20)).and_then(|s| s.code());
    (code, p.stderr.iter().collect())
}

#[::core::prelude::v1::test]
fn the_secret_file_is_read_at_start_and_a_bad_one_stops_the_node_with_a_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let with_file = |file: &str| run_to_exit(&["--port", "0", "--cluster-secret-file", file], &[]);
    let (code, printed) = with_file(&path("missing"));
    assert_eq!(code, Some(1));
    assert!(
        printed
            .iter()
            .any(|l| l.contains("cluster secret") && l.contains("missing")),
        "{printed:?}"
    );
    std::fs::write(path("weak"), "short\n").unwrap();
    let (code, printed) = with_file(&path("weak"));
    assert_eq!(code, Some(1));
    assert!(
        printed.iter().any(|l| l.contains("at least 16")),
        "{printed:?}"
    );
    assert!(
        !printed.iter().any(|l| l.contains("short")),
        "the secret is never printed"
    );
    std::fs::write(path("good"), format!("{}\n", secret())).unwrap();
    crate::helpers::KvProcess::start(
        &["--port", "0", "--cluster-secret-file", &path("good")],
        &[],
    );
}

/// The original project's three-terminal demo, unchanged: `NODE_ID`, `PORT` and `PEERS` of
/// `http://localhost:...` URLs, no secret, listening on every interface. Loopback peers need no
/// secret, so it elects a leader and replicates as it always did.
#[actix_web::test]
async fn the_original_three_terminal_demo_works_unchanged_on_loopback() {
    use crate::helpers::{free_ports, KvProcess};
    let ports = free_ports(3);
    let url = |p: u16| format!("http://localhost:{p}");
    let mut nodes = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let peers: Vec<String> = ports
            .iter()
            .filter(|p| *p != port)
            .map(|p| url(*p))
            .collect();
        let (id, port, peers) = (format!("n{}", i + 1), port.to_string(), peers.join(","));
        nodes.push(KvProcess::start(
            &[],
            &[("NODE_ID", &id), ("PORT", &port), ("PEERS", &peers)],
        ));
    }
    let leader = poll_until(Duration::from_secs(20), || async {
        let mut leaders = Vec::new();
        for p in &ports {
            let mut res = client()
                .get(format!("{}/health", url(*p)))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let h: Value = serde_json::from_slice(&res.body().await.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            if h["state"] == "leader" {
                leaders.push(*p);
            }
        }
        match leaders[..] {
            [one] => Ok(one),
            _ => Err(format!("leaders: {leaders:?}")),
        }
    })
    .await
    .expect("one leader");
    let follower = *ports.iter().find(|p| **p != leader).unwrap();
    let (status, _, _) = put(&url(follower), "name", "luffy").await;
    assert_eq!(status, 200, "a follower forwards the write to the leader");
    for p in &ports {
        let (status, v) = get(&url(*p), "name", false).await;
        assert_eq!((status, v["value"].as_str()), (200, Some("luffy")), "{v}");
    }
    drop(nodes);
}
