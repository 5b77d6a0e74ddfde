//! The binary peer codec on real processes: a node announces it on every `/raft/*` answer,
//! answers in the request's format, and a node started with `--peer-codec json` (what a node
//! before the codec does) is never sent binary: a mixed cluster elects, replicates and survives
//! a leader kill.

use std::time::Duration;

use kvstore::codec::peer::{self, Format, Kind, BINARY_CONTENT_TYPE, CODEC_HEADER};
use kvstore::raft::rpc::VoteRequest;
use kvstore::raft::Message;
use serde_json::Value;

use crate::cluster_proc::ProcCluster;
use crate::helpers::{client, get, poll_until, put};

/// A pre-vote (which changes nothing on the receiver) sent to node `i` in `format`: status,
/// codec header, answer content type, answer body.
async fn probe(
    cluster: &ProcCluster,
    i: usize,
    format: Format,
) -> (u16, Option<String>, Option<String>, Vec<u8>) {
    let msg = Message::VoteRequest(VoteRequest {
        term: 1,
        candidate_id: "probe".into(),
        last_log_index: 0,
        last_log_term: 0,
        pre_vote: true,
        transfer: false,
    });
    let body = peer::encode(&msg, format).unwrap();
    let mut res = client()
        .post(format!("{}/raft/vote", cluster.url(i)))
        .insert_header(("content-type", format.content_type()))
        .insert_header(("x-kvstore-cluster", cluster.cluster_id()))
        .send_body(body)
        .await
        .expect("the node answers");
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let (codec, content_type) = (header(CODEC_HEADER), header("content-type"));
    let body = res.body().await.expect("a body").to_vec();
    (res.status().as_u16(), codec, content_type, body)
}

#[actix_web::test]
async fn a_mixed_cluster_of_binary_and_json_only_nodes_replicates_and_fails_over() {
    let mut cluster =
        ProcCluster::start_with_node_env(3, &[], &[(2, "KVSTORE_PEER_CODEC", "json")]);
    let (leader, _) = cluster.wait_for_leader(Duration::from_secs(10)).await;

    // A new node answers each format in kind and announces binary.
    let (st, codec, ct, body) = probe(&cluster, 0, Format::Binary).await;
    assert_eq!((st, codec.as_deref()), (200, Some("1")));
    assert_eq!(ct.as_deref(), Some(BINARY_CONTENT_TYPE));
    let answer = peer::decode(&body, Format::Binary, Kind::VoteResponse).unwrap();
    assert!(matches!(answer, Message::VoteResponse(_)), "{answer:?}");
    let (st, codec, ct, body) = probe(&cluster, 0, Format::Json).await;
    assert_eq!((st, codec.as_deref()), (200, Some("1")));
    assert_eq!(ct.as_deref(), Some("application/json"));
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert!(json["granted"].is_boolean(), "{json}");
    // The JSON-only node behaves like an old one: no announcement, binary is a 400.
    let (st, codec, _, _) = probe(&cluster, 2, Format::Binary).await;
    assert_eq!((st, codec), (400, None));
    let (st, codec, _, _) = probe(&cluster, 2, Format::Json).await;
    assert_eq!((st, codec), (200, None));

    // Writes through every node are seen on every node.
    for i in 0..3 {
        let key = format!("mixed-{i}");
        let (st, body, _) = put(&cluster.url(i), &key, "v\u{1}é").await;
        assert_eq!(st, 200, "{body}");
        for j in 0..3 {
            let (st, body) = get(&cluster.url(j), &key, false).await;
            assert_eq!((st, &body["value"]), (200, &Value::from("v\u{1}é")), "{j}");
        }
    }

    // A new leader (whichever) keeps replicating to both kinds of peers.
    cluster.kill(leader);
    let rest: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    poll_until(Duration::from_secs(15), || async {
        let (st, body, _) = put(&cluster.url(rest[0]), "after", "kill").await;
        if st == 200 {
            Ok(())
        } else {
            Err(body)
        }
    })
    .await
    .unwrap_or_else(|body| panic!("no write after the leader was killed: {body}"));
    cluster.start_node(leader);
    for i in 0..3 {
        poll_until(Duration::from_secs(10), || async {
            let (st, body) = get(&cluster.url(i), "after", true).await;
            if st == 200 {
                Ok(())
            } else {
                Err(body)
            }
        })
        .await
        .unwrap_or_else(|body| panic!("node {i} never got the write: {body}"));
    }
}
