//! Issue #15's client API (core lane): revisions and `x-kvstore-index`, `minIndex`, compare-
//! and-set, `GET /keys`, `Idempotency-Key`; in process (`actix_web::test` against `api::app`)
//! and on a 3-node process cluster.

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header;
use actix_web::test;
use kvstore::api::{self, Limits};
use serde_json::{json, Value};

use crate::cluster_proc::ProcCluster;
use crate::helpers::{client, poll_until, state_with};

type Resp = (u16, header::HeaderMap, Value);

async fn send<S, B>(app: &S, req: test::TestRequest) -> Resp
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let res = test::call_service(app, req.to_request()).await;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = test::read_body(res).await;
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, headers, v)
}

fn index_of(h: &header::HeaderMap) -> u64 {
    h.get("x-kvstore-index")
        .expect("x-kvstore-index")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn put(body: Value) -> test::TestRequest {
    test::TestRequest::put().uri("/set").set_json(body)
}

macro_rules! app {
    () => {
        test::init_service(api::app(state_with(Limits::default()))).await
    };
}

#[actix_web::test]
async fn revisions_and_the_index_header() {
    let app = app!();
    let r = send(&app, put(json!({"key":"k","value":"a"}))).await;
    assert_eq!(r.0, 200);
    let i1 = r.2["index"].as_u64().unwrap();
    assert_eq!(index_of(&r.1), i1);
    let r = send(&app, put(json!({"key":"k","value":"b"}))).await;
    let i2 = r.2["index"].as_u64().unwrap();
    assert!(i2 > i1);
    let r = send(&app, test::TestRequest::get().uri("/get?key=k")).await;
    assert_eq!(
        r.2,
        json!({"ok":true,"key":"k","value":"b","modIndex":i2,"createIndex":i1})
    );
    assert!(index_of(&r.1) >= i2);
    let r = send(&app, test::TestRequest::delete().uri("/delete?key=k")).await;
    assert_eq!(
        r.2,
        json!({"ok":true,"message":"deleted","key":"k","index":i2 + 1})
    );
    let r = send(&app, test::TestRequest::get().uri("/get?key=k")).await;
    assert_eq!(r.0, 404);
    assert!(index_of(&r.1) > i2, "a 404 carries the index too");
    let r = send(&app, put(json!({"key":"k","value":"c"}))).await;
    let i4 = r.2["index"].as_u64().unwrap();
    let r = send(
        &app,
        test::TestRequest::get().uri("/get?key=k&consistency=stale"),
    )
    .await;
    assert_eq!(
        (r.2["modIndex"].as_u64(), r.2["createIndex"].as_u64()),
        (Some(i4), Some(i4))
    );
}

#[actix_web::test]
async fn min_index_waits_a_bounded_time_and_bad_ones_are_400() {
    let app = app!();
    let r = send(&app, put(json!({"key":"k","value":"a"}))).await;
    let i = r.2["index"].as_u64().unwrap();
    let r = send(
        &app,
        test::TestRequest::get().uri(&format!("/get?key=k&consistency=stale&minIndex={i}")),
    )
    .await;
    assert_eq!(r.0, 200);
    let far = i + 1000;
    let started = std::time::Instant::now();
    let r = send(
        &app,
        test::TestRequest::get().uri(&format!("/get?key=k&consistency=stale&minIndex={far}")),
    )
    .await;
    assert_eq!(r.0, 503);
    let msg = r.2["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!("index {far} not applied here yet (applied ")),
        "{msg}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    for bad in ["-1", "x", "1.5"] {
        let r = send(
            &app,
            test::TestRequest::get().uri(&format!("/get?key=k&minIndex={bad}")),
        )
        .await;
        assert_eq!(r.0, 400, "{bad}");
        let r = send(
            &app,
            test::TestRequest::get().uri(&format!("/keys?minIndex={bad}")),
        )
        .await;
        assert_eq!(r.0, 400, "{bad}");
    }
    // Linearizable with a reachable minIndex.
    let r = send(
        &app,
        test::TestRequest::get().uri(&format!("/get?key=k&minIndex={i}")),
    )
    .await;
    assert_eq!(r.0, 200);
}

#[actix_web::test]
async fn a_linearizable_read_waits_for_a_far_min_index_a_bounded_time_too() {
    // Not the whole request timeout (5 s): a follower forwarding this read would time out
    // first and tell the client the leader could not be reached.
    let app = app!();
    let r = send(&app, put(json!({"key":"k","value":"a"}))).await;
    let far = r.2["index"].as_u64().unwrap() + 1000;
    for uri in [
        format!("/get?key=k&minIndex={far}"),
        format!("/keys?minIndex={far}"),
        format!("/get?key=k&minIndex={}", u64::MAX),
    ] {
        let started = std::time::Instant::now();
        let r = send(&app, test::TestRequest::get().uri(&uri)).await;
        assert_eq!(r.0, 503, "{uri}: {}", r.2);
        let msg = r.2["message"].as_str().unwrap();
        assert!(msg.contains("not applied here yet"), "{uri}: {msg}");
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "{uri}: {:?}",
            started.elapsed()
        );
    }
}

#[actix_web::test]
async fn compare_and_set_and_delete_with_preconditions() {
    let app = app!();
    let r = send(&app, put(json!({"key":"c","value":"1","ifModIndex":0}))).await;
    assert_eq!(r.0, 200, "{}", r.2);
    let m = r.2["index"].as_u64().unwrap();
    let r = send(&app, put(json!({"key":"c","value":"2","ifModIndex":0}))).await;
    assert_eq!(
        (r.0, r.2.clone()),
        (
            409,
            json!({"ok":false,"message":"precondition failed","key":"c","modIndex":m})
        )
    );
    let r = send(&app, test::TestRequest::get().uri("/get?key=c")).await;
    assert_eq!(r.2["value"], "1", "a 409 leaves the value");
    let r = send(&app, put(json!({"key":"c","value":"2","ifValue":"nope"}))).await;
    assert_eq!(r.0, 409);
    let r = send(
        &app,
        put(json!({"key":"c","value":"2","ifValue":"1","ifModIndex":m})),
    )
    .await;
    assert_eq!(r.0, 200);
    let m2 = r.2["index"].as_u64().unwrap();
    let r = send(&app, put(json!({"key":"nope","value":"x","ifValue":""}))).await;
    assert_eq!((r.0, &r.2["modIndex"]), (409, &json!(0)));
    for bad in [
        json!({"key":"c","value":"2","ifModIndex":-1}),
        json!({"key":"c","value":"2","ifModIndex":"3"}),
        json!({"key":"c","value":"2","ifValue":3}),
    ] {
        assert_eq!(send(&app, put(bad.clone())).await.0, 400, "{bad}");
    }
    let r = send(
        &app,
        test::TestRequest::delete().uri(&format!("/delete?key=c&ifModIndex={m}")),
    )
    .await;
    assert_eq!((r.0, &r.2["modIndex"]), (409, &json!(m2)));
    let r = send(
        &app,
        test::TestRequest::delete().uri(&format!("/delete?key=c&ifModIndex={m2}")),
    )
    .await;
    assert_eq!(r.0, 200);
    let r = send(
        &app,
        test::TestRequest::delete().uri("/delete?key=c&ifModIndex=x"),
    )
    .await;
    assert_eq!(r.0, 400);
}

#[actix_web::test]
async fn keys_pages_through_next_with_prefixes_and_limits() {
    let app = app!();
    let keys = ["a", "a/1", "a/2", "a/3", "ab", "b", "é", "é/ü", "\u{10348}"];
    for k in keys {
        assert_eq!(send(&app, put(json!({"key":k,"value":"v"}))).await.0, 200);
    }
    let r = send(&app, test::TestRequest::get().uri("/keys")).await;
    let all: Vec<_> = r.2["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(all, keys);
    assert_eq!((r.2["more"].clone(), r.2.get("next")), (json!(false), None));
    assert!(index_of(&r.1) >= 9);
    // Through `next`, two at a time, prefix "a/".
    let mut got = Vec::new();
    let mut after = String::new();
    loop {
        let q = if after.is_empty() {
            String::new()
        } else {
            format!("&after={}", kvstore::cli::client::encode(&after))
        };
        let r = send(
            &app,
            test::TestRequest::get().uri(&format!("/keys?prefix=a%2F&limit=2{q}")),
        )
        .await;
        assert_eq!(r.0, 200);
        for k in r.2["keys"].as_array().unwrap() {
            got.push(k["key"].as_str().unwrap().to_owned());
            assert_eq!(k["value"], "v");
            assert!(k["modIndex"].as_u64().unwrap() > 0);
        }
        if r.2["more"] == json!(false) {
            break;
        }
        after = r.2["next"].as_str().unwrap().to_owned();
    }
    assert_eq!(got, ["a/1", "a/2", "a/3"]);
    let r = send(&app, test::TestRequest::get().uri("/keys?prefix=%C3%A9")).await;
    assert_eq!(
        r.2["keys"].as_array().unwrap().len(),
        2,
        "multi-byte prefix: {}",
        r.2
    );
    let r = send(&app, test::TestRequest::get().uri("/keys?prefix=zz")).await;
    assert_eq!(r.2, json!({"ok":true,"keys":[],"more":false}));
    for bad in ["limit=0", "limit=1001", "limit=x", "consistency=maybe"] {
        assert_eq!(
            send(&app, test::TestRequest::get().uri(&format!("/keys?{bad}")))
                .await
                .0,
            400,
            "{bad}"
        );
    }
    let r = send(
        &app,
        test::TestRequest::get().uri("/keys?consistency=stale&limit=1000"),
    )
    .await;
    assert_eq!(r.2["keys"].as_array().unwrap().len(), 9);
    let r = send(&app, test::TestRequest::post().uri("/keys")).await;
    assert_eq!(r.0, 405);
}

#[actix_web::test]
async fn keys_stop_after_about_four_mib() {
    let limits = Limits {
        max_value_bytes: 1024 * 1024,
        ..Limits::default()
    };
    let app = test::init_service(api::app(state_with(limits))).await;
    let big = "x".repeat(1000 * 1024);
    for i in 0..6 {
        let r = send(&app, put(json!({"key":format!("big{i}"),"value":big}))).await;
        assert_eq!(r.0, 200);
    }
    let r = send(&app, test::TestRequest::get().uri("/keys?prefix=big")).await;
    let n = r.2["keys"].as_array().unwrap().len();
    assert_eq!(n, 4, "about 4 MiB of values");
    assert_eq!(
        (r.2["more"].clone(), r.2["next"].clone()),
        (json!(true), json!("big3"))
    );
    let r = send(
        &app,
        test::TestRequest::get().uri("/keys?prefix=big&after=big3"),
    )
    .await;
    assert_eq!(r.2["keys"].as_array().unwrap().len(), 2);
}

fn url_of(c: &ProcCluster, i: usize, path: &str) -> String {
    format!("{}{path}", c.url(i))
}

fn keyed(req: test::TestRequest, id: &str) -> test::TestRequest {
    req.insert_header(("Idempotency-Key", id))
}

#[actix_web::test]
async fn idempotency_keys_replay_the_first_outcome_and_refuse_reuse() {
    let app = app!();
    let r = send(&app, keyed(put(json!({"key":"k","value":"v"})), "s-1")).await;
    assert_eq!(r.0, 200);
    assert!(r.1.get("x-kvstore-idempotent-replay").is_none());
    let first = r.2.clone();
    let r = send(&app, keyed(put(json!({"key":"k","value":"v"})), "s-1")).await;
    assert_eq!((r.0, r.2.clone()), (200, first));
    assert_eq!(r.1.get("x-kvstore-idempotent-replay").unwrap(), "true");
    let r = send(&app, keyed(put(json!({"key":"k","value":"w"})), "s-1")).await;
    assert_eq!(
        (r.0, r.2),
        (
            422,
            json!({"ok":false,"message":"Idempotency-Key reused with a different request"})
        )
    );
    // A delete's first outcome, then its retry: 200 again, never 404.
    let del = || test::TestRequest::delete().uri("/delete?key=k");
    let r = send(&app, keyed(del(), "d-1")).await;
    assert_eq!(r.0, 200);
    let first = r.2.clone();
    let r = send(&app, keyed(del(), "d-1")).await;
    assert_eq!((r.0, r.2.clone()), (200, first));
    assert_eq!(r.1.get("x-kvstore-idempotent-replay").unwrap(), "true");
    // A 404 and a 409 are first outcomes too.
    let r = send(&app, keyed(del(), "d-2")).await;
    assert_eq!(r.0, 404);
    send(&app, put(json!({"key":"k","value":"back"}))).await;
    let r = send(&app, keyed(del(), "d-2")).await;
    assert_eq!(r.0, 404, "replayed, although the key exists now");
    let r = send(
        &app,
        keyed(put(json!({"key":"k","value":"x","ifModIndex":1})), "c-1"),
    )
    .await;
    assert_eq!(r.0, 409);
    let r2 = send(
        &app,
        keyed(put(json!({"key":"k","value":"x","ifModIndex":1})), "c-1"),
    )
    .await;
    assert_eq!((r2.0, r2.2), (409, r.2));
    // Bad keys.
    let long = "k".repeat(129);
    for bad in ["", "has space", long.as_str(), "é"] {
        let r = send(&app, keyed(put(json!({"key":"k","value":"v"})), bad)).await;
        assert_eq!(r.0, 400, "{bad:?}");
        assert_eq!(
            r.2["message"],
            "Idempotency-Key must be 1 to 128 printable ASCII characters"
        );
    }
    assert_eq!(
        send(
            &app,
            keyed(put(json!({"key":"k","value":"v"})), &"k".repeat(128))
        )
        .await
        .0,
        200
    );
    // Two headers: which one would be the write's key is ambiguous, so neither is taken.
    let twice = put(json!({"key":"k","value":"v2"}))
        .append_header(("Idempotency-Key", "a-1"))
        .append_header(("Idempotency-Key", "a-2"));
    let r = send(&app, twice).await;
    assert_eq!(r.0, 400);
    assert_eq!(
        r.2["message"],
        "Idempotency-Key must be given once, not in two headers"
    );
}

async fn http(
    method: &str,
    url: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> (u16, awc::http::header::HeaderMap, Value) {
    let c = client();
    let mut req = match method {
        "PUT" => c.put(url),
        "DELETE" => c.delete(url),
        _ => c.get(url),
    }
    .timeout(Duration::from_secs(20));
    if let Some(k) = key {
        req = req.insert_header(("Idempotency-Key", k));
    }
    let mut res = match body {
        Some(b) => req.send_json(&b).await,
        None => req.send().await,
    }
    .expect("answered");
    let b = res.body().limit(64 << 20).await.unwrap();
    (
        res.status().as_u16(),
        res.headers().clone(),
        serde_json::from_slice(&b).unwrap_or(Value::Null),
    )
}

#[actix_web::test]
async fn on_three_nodes_stale_reads_with_min_index_cas_races_and_retried_deletes() {
    let mut cluster = ProcCluster::start(3);
    let (leader, _) = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    // A write on the leader, then a stale read with its index on a follower: the write.
    for round in 0..20 {
        let (st, h, body) = http(
            "PUT",
            &url_of(&cluster, leader, "/set"),
            Some(json!({"key":"mi","value":round.to_string()})),
            None,
        )
        .await;
        assert_eq!(st, 200, "{body}");
        let i = body["index"].as_u64().unwrap();
        assert!(h.get("x-kvstore-index").is_some());
        let (st, _, got) = http(
            "GET",
            &url_of(
                &cluster,
                follower,
                &format!("/get?key=mi&consistency=stale&minIndex={i}"),
            ),
            None,
            None,
        )
        .await;
        assert_eq!(
            (st, got["value"].clone()),
            (200, json!(round.to_string())),
            "round {round}"
        );
    }
    // /keys through a follower (forwarded, linearizable) and stale.
    let (st, h, body) = http(
        "GET",
        &url_of(&cluster, follower, "/keys?prefix=m"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (st, body["keys"][0]["key"].clone()),
        (200, json!("mi")),
        "{body}"
    );
    assert!(h.get("x-kvstore-index").is_some(), "relayed");
    // A CAS race from many tasks: exactly one wins per round.
    let base = (0..3)
        .map(|i| url_of(&cluster, i, "/set"))
        .collect::<Vec<_>>();
    let (_, _, body) = http(
        "PUT",
        &base[leader],
        Some(json!({"key":"ctr","value":"0"})),
        None,
    )
    .await;
    let mut m = body["index"].as_u64().unwrap();
    for round in 1..=5 {
        let tries = (0..6).map(|t| {
            let url = base[t % 3].clone();
            async move {
                http(
                    "PUT",
                    &url,
                    Some(json!({"key":"ctr","value":format!("{round}"),"ifModIndex":m})),
                    None,
                )
                .await
            }
        });
        let answers = futures_util::future::join_all(tries).await;
        let wins: Vec<_> = answers.iter().filter(|a| a.0 == 200).collect();
        assert_eq!(wins.len(), 1, "round {round}: {answers:?}");
        assert!(
            answers.iter().all(|a| a.0 == 200 || a.0 == 409),
            "{answers:?}"
        );
        m = wins[0].2["index"].as_u64().unwrap();
    }
    // The test: a delete with a key, then the same again to another node: the first
    // outcome (200 deleted, replayed), not 404.
    let (st, _, first) = http(
        "DELETE",
        &url_of(&cluster, follower, "/delete?key=mi"),
        None,
        Some("del-mi"),
    )
    .await;
    assert_eq!(st, 200, "{first}");
    let (st, h, again) = http(
        "DELETE",
        &url_of(&cluster, other, "/delete?key=mi"),
        None,
        Some("del-mi"),
    )
    .await;
    assert_eq!((st, &again), (200, &first));
    assert_eq!(h.get("x-kvstore-idempotent-replay").unwrap(), "true");
    // A retry across a leader kill: the first outcome, from the new leader.
    let (st, _, first) = http(
        "PUT",
        &url_of(&cluster, follower, "/set"),
        Some(json!({"key":"k2","value":"v"})),
        Some("set-k2"),
    )
    .await;
    assert_eq!(st, 200);
    let (st, _, _) = http(
        "DELETE",
        &url_of(&cluster, leader, "/delete?key=k2"),
        None,
        Some("del-k2"),
    )
    .await;
    assert_eq!(st, 200);
    cluster.kill(leader);
    let alive = [follower, other];
    let answer = poll_until(Duration::from_secs(15), || async {
        let (st, h, body) = http(
            "DELETE",
            &url_of(&cluster, alive[0], "/delete?key=k2"),
            None,
            Some("del-k2"),
        )
        .await;
        if st == 200 {
            Ok((h, body))
        } else {
            Err((st, body))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("no new leader answered the retry: {e:?}"));
    assert_eq!(answer.0.get("x-kvstore-idempotent-replay").unwrap(), "true");
    assert_eq!(answer.1["message"], "deleted");
    let (st, h, again) = http(
        "PUT",
        &url_of(&cluster, alive[1], "/set"),
        Some(json!({"key":"k2","value":"v"})),
        Some("set-k2"),
    )
    .await;
    assert_eq!((st, again), (200, first));
    assert_eq!(h.get("x-kvstore-idempotent-replay").unwrap(), "true");
}
