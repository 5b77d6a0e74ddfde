//! Size bounds of the peer decoders, through the same `api::app` the server runs: a body (or
//! query) one byte over its bound is refused in the API's error shape and never reaches the
//! Raft actor (the node's term is unchanged), while one exactly at the bound is read and acted
//! on. The bounds themselves, and why each is what a legitimate peer can send, are documented
//! next to the constants in `api::peer`.

use actix_web::http::header;
use actix_web::test as at;
use kvstore::api::peer::{
    max_append_body_bytes, MAX_CHUNK_BYTES, MAX_SNAPSHOT_QUERY_BYTES, MAX_VOTE_BODY_BYTES,
};
use kvstore::api::{self, Limits};
use kvstore::raft::core::MAX_BATCH_ENTRIES;
use kvstore::transport::http::CLUSTER_HEADER;
use serde_json::{json, Value};

use crate::helpers::state_with;

async fn call<S, B>(app: &S, req: at::TestRequest) -> (u16, Value)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let (status, _, body) = crate::helpers::call_app(app, req).await;
    (
        status,
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&body))),
    )
}

fn assert_error(got: &(u16, Value), status: u16, part: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["ok"], false);
    assert_eq!(got.1.as_object().unwrap().len(), 2, "{}", got.1);
    let msg = got.1["message"].as_str().unwrap();
    assert!(msg.contains(part), "{msg:?} lacks {part:?}");
}

async fn term<S, B>(app: &S) -> u64
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let (_, v) = call(app, at::TestRequest::get().uri("/health")).await;
    v["term"].as_u64().expect("term in /health")
}

/// Without a cluster secret the Raft routes answer loopback sources only.
const LOOPBACK: &str = "127.0.0.1:40000";

fn post(path: &str, body: Vec<u8>) -> at::TestRequest {
    at::TestRequest::post()
        .uri(path)
        .peer_addr(LOOPBACK.parse().unwrap())
        .insert_header((CLUSTER_HEADER, "standalone"))
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(body)
}

/// `json` followed by spaces up to exactly `len` bytes: still valid JSON of the same value.
fn padded(json: &Value, len: usize) -> Vec<u8> {
    let mut b = json.to_string().into_bytes();
    assert!(b.len() <= len);
    b.resize(len, b' ');
    b
}

#[actix_web::test]
async fn an_append_one_byte_over_its_bound_is_413_and_one_at_it_reaches_raft() {
    let limits = Limits::default();
    let app = at::init_service(api::app(state_with(limits))).await;
    let before = term(&app).await;
    let bound = max_append_body_bytes(&limits);
    let req = json!({"term": before + 1000, "leaderId": "x", "leaderUrl": "http://127.0.0.1:9",
                     "prevLogIndex": 0, "prevLogTerm": 0, "entries": [], "leaderCommit": 0});
    let got = call(&app, post("/raft/append", padded(&req, bound + 1))).await;
    assert_error(&got, 413, "too large");
    assert_eq!(
        term(&app).await,
        before,
        "the over-long request reached Raft"
    );
    let got = call(&app, post("/raft/append", padded(&req, bound))).await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert_eq!(term(&app).await, before + 1000);
}

#[actix_web::test]
async fn an_append_with_more_entries_than_a_batch_is_refused_before_raft() {
    let app = at::init_service(api::app(state_with(Limits::default()))).await;
    let before = term(&app).await;
    let entries = |n: usize| -> Vec<Value> {
        (1..=n)
            .map(|i| json!({"index": i, "term": before + 7, "payload": {"kind": "noop"}}))
            .collect()
    };
    let req = |n: usize| {
        json!({"term": before + 7, "leaderId": "x", "leaderUrl": "http://127.0.0.1:9",
               "prevLogIndex": 0, "prevLogTerm": 0, "entries": entries(n), "leaderCommit": 0})
    };
    let body = req(MAX_BATCH_ENTRIES + 1).to_string().into_bytes();
    let got = call(&app, post("/raft/append", body)).await;
    assert_error(&got, 400, "at most 1024");
    assert_eq!(term(&app).await, before);
    let body = req(MAX_BATCH_ENTRIES).to_string().into_bytes();
    let got = call(&app, post("/raft/append", body)).await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert_eq!(term(&app).await, before + 7);
}

#[actix_web::test]
async fn a_vote_one_byte_over_its_bound_is_413_and_one_at_it_is_answered_by_raft() {
    let app = at::init_service(api::app(state_with(Limits::default()))).await;
    let before = term(&app).await;
    let req = json!({"term": before + 50, "candidateId": "x", "lastLogIndex": 0,
                     "lastLogTerm": 0, "preVote": false});
    let got = call(
        &app,
        post("/raft/vote", padded(&req, MAX_VOTE_BODY_BYTES + 1)),
    )
    .await;
    assert_error(&got, 413, "too large");
    assert_eq!(term(&app).await, before);
    // At the bound it is read and answered by Raft (a single-node leader in its lease refuses
    // the vote without changing its term).
    let got = call(&app, post("/raft/vote", padded(&req, MAX_VOTE_BODY_BYTES))).await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert_eq!(got.1["granted"], false, "{}", got.1);
}

fn chunk(term: u64, query_pad: usize, data: Vec<u8>) -> at::TestRequest {
    let mut uri = format!(
        "/raft/snapshot?term={term}&leaderId=x&leaderUrl=http%3A%2F%2F127.0.0.1%3A9&index=5\
         &lastTerm=1&offset=0&done=false&seq=1"
    );
    if query_pad > 0 {
        uri.push_str("&pad=");
        let want = "/raft/snapshot?".len() + query_pad;
        while uri.len() < want {
            uri.push('x');
        }
    }
    at::TestRequest::post()
        .uri(&uri)
        .peer_addr(LOOPBACK.parse().unwrap())
        .insert_header((CLUSTER_HEADER, "standalone"))
        .insert_header((header::CONTENT_TYPE, "application/octet-stream"))
        .set_payload(data)
}

#[actix_web::test]
async fn a_snapshot_chunk_or_query_over_its_bound_is_refused_before_raft() {
    let app = at::init_service(api::app(state_with(Limits::default()))).await;
    let before = term(&app).await;
    let got = call(&app, chunk(before + 9, 0, vec![0; MAX_CHUNK_BYTES + 1])).await;
    assert_error(&got, 413, "too large");
    let got = call(
        &app,
        chunk(before + 9, MAX_SNAPSHOT_QUERY_BYTES + 1, vec![1]),
    )
    .await;
    assert_error(&got, 414, "query string too long");
    assert_eq!(term(&app).await, before);
    // At the bounds, the chunk reaches Raft (which adopts the leader's term).
    let got = call(
        &app,
        chunk(
            before + 9,
            MAX_SNAPSHOT_QUERY_BYTES,
            vec![0; MAX_CHUNK_BYTES],
        ),
    )
    .await;
    assert!(got.0 < 500, "{}", got.1);
    assert_eq!(term(&app).await, before + 9);
}
