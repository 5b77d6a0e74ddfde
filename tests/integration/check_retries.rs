//! `kvstore check`'s idempotent retries and its compare-and-set workload, against an in-process
//! mock node that follows the issue-15 contract (revisions, `ifModIndex`/`ifValue`, 409 with the
//! key's modIndex, `Idempotency-Key` replays) but loses answers on purpose: every 5th write is
//! applied and then answered `503 ... may or may not have been applied`, every 7th is applied
//! and answered only after the client's timeout. So these tests do not wait for the real server
//! side of the contract; `check.rs` runs the same workload against real clusters.
//!
//! A second mock replays the recorded status but applies the write again (a broken
//! exactly-once): the checker must refuse that history.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures_util::future::join_all;
use kvstore::check::history::{Op, OpInput};
use kvstore::check::minimize::shrink;
use kvstore::check::workload::{
    counter_summary, perform, probe_features, Counters, Features, Workload, WorkloadKind,
};
use kvstore::check::{check_history, CheckResult};
use serde_json::{json, Value};

/// The mock node's state (one worker thread: plain cells).
#[derive(Default)]
struct Mock {
    map: HashMap<String, (String, u64)>,
    index: u64,
    replies: HashMap<String, (u16, Value)>,
    writes: u64,
    /// Apply a retried write again instead of replaying it (a broken exactly-once).
    apply_twice: bool,
}

type State = web::Data<RefCell<Mock>>;

fn reply(status: u16, body: &Value, replay: bool) -> HttpResponse {
    let mut r = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
    if replay {
        r.insert_header(("x-kvstore-idempotent-replay", "true"));
    }
    r.json(body)
}

/// Run `apply` once per idempotency key (or again, for the broken mock) and lose some answers.
async fn write(
    state: State,
    req: HttpRequest,
    apply: impl FnOnce(&mut Mock) -> (u16, Value),
) -> HttpResponse {
    let key = req
        .headers()
        .get("Idempotency-Key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (status, body, replay, n) = {
        let mut m = state.borrow_mut();
        let recorded = key.as_ref().and_then(|k| m.replies.get(k).cloned());
        match recorded {
            Some((s, b)) if !m.apply_twice => (s, b, true, 0),
            recorded => {
                let again = recorded.is_some();
                let (s, b) = apply(&mut m);
                if let (Some(k), false) = (&key, again) {
                    m.replies.insert(k.clone(), (s, b.clone()));
                }
                m.writes += 1;
                (s, b, again, m.writes)
            }
        }
    };
    if n % 5 == 0 && n > 0 {
        return reply(
            503,
            &json!({"ok": false, "message": "the write may or may not have been applied"}),
            false,
        );
    }
    if n % 7 == 0 && n > 0 {
        // Longer than the client's request timeout: it sees a timeout.
        actix_web::rt::time::sleep(Duration::from_millis(700)).await;
    }
    reply(status, &body, replay)
}

async fn set(state: State, req: HttpRequest, body: web::Json<Value>) -> HttpResponse {
    write(state, req, move |m| {
        let key = body["key"].as_str().unwrap_or_default().to_owned();
        let (cur_value, cur_index) = m
            .map
            .get(&key)
            .map_or((None, 0), |(v, i)| (Some(v.clone()), *i));
        let fails_index = body["ifModIndex"].as_u64().is_some_and(|n| n != cur_index);
        let fails_value = body["ifValue"]
            .as_str()
            .is_some_and(|v| cur_value.as_deref() != Some(v));
        if fails_index || fails_value {
            return (
                409,
                json!({"ok": false, "message": "precondition failed", "key": key, "modIndex": cur_index}),
            );
        }
        m.index += 1;
        let value = body["value"].as_str().unwrap_or_default().to_owned();
        m.map.insert(key.clone(), (value, m.index));
        (
            200,
            json!({"ok": true, "message": "stored", "key": key, "index": m.index}),
        )
    })
    .await
}

async fn delete(
    state: State,
    req: HttpRequest,
    q: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let key = q.get("key").cloned().unwrap_or_default();
    write(state, req, move |m| {
        if m.map.remove(&key).is_none() {
            return (404, json!({"ok": false, "message": "key not found"}));
        }
        m.index += 1;
        (
            200,
            json!({"ok": true, "message": "deleted", "key": key, "index": m.index}),
        )
    })
    .await
}

async fn get(state: State, q: web::Query<HashMap<String, String>>) -> HttpResponse {
    let key = q.get("key").cloned().unwrap_or_default();
    match state.borrow().map.get(&key) {
        Some((v, i)) => reply(
            200,
            &json!({"ok": true, "key": key, "value": v, "modIndex": i}),
            false,
        ),
        None => reply(
            404,
            &json!({"ok": false, "message": "key not found"}),
            false,
        ),
    }
}

/// Start a mock node on a free port; its base URL and server handle.
fn mock(apply_twice: bool) -> (String, actix_web::dev::ServerHandle) {
    let server = HttpServer::new(move || {
        let state = web::Data::new(RefCell::new(Mock {
            apply_twice,
            ..Mock::default()
        }));
        App::new()
            .app_data(state)
            .route("/set", web::put().to(set))
            .route("/get", web::get().to(get))
            .route("/delete", web::delete().to(delete))
    })
    // One worker: one state.
    .workers(1)
    .bind(("127.0.0.1", 0))
    .expect("bind");
    let url = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (url, handle)
}

/// Run `clients` recorded clients of `kind` for 1.5 s against `url` (keys and idempotency keys
/// prefixed with the workload's name: fresh per run), then read every key.
async fn run(url: &str, kind: WorkloadKind, clients: u64, keys: usize) -> (Vec<Op>, Workload) {
    let workload = Rc::new(Workload {
        nodes: vec![url.to_owned()],
        clients: clients as usize,
        keys,
        key_prefix: format!("{}-", kind.as_str()),
        rate: 0,
        request_timeout: Duration::from_millis(300),
        seed: 5,
        token: None,
        kind,
        idempotent: true,
        lease_reads: false,
        retry_for: Duration::from_secs(5),
    });
    let counters = Rc::new(Counters::default());
    let start = Instant::now();
    let until = start + Duration::from_millis(1500);
    let histories = join_all((0..clients).map(|id| {
        let (w, c) = (workload.clone(), counters.clone());
        async move { w.run_client(id, start, until, c).await }
    }))
    .await;
    let mut ops: Vec<Op> = histories.into_iter().flatten().collect();
    let reader = kvstore::check::http_client(Duration::from_secs(2), None);
    for k in 0..keys {
        let key = workload.key(k);
        ops.push(perform(&reader, url, clients, OpInput::Get { key }, start).await);
    }
    (ops, (*workload).clone())
}

/// Linearizable, or a panic with the shrunk failing sub-history (not thousands of ops).
fn assert_linearizable(ops: &[Op]) {
    match check_history(ops) {
        CheckResult::Linearizable => {}
        CheckResult::Violation { key, ops } => {
            panic!("not linearizable on {key}: {:#?}", shrink(&ops))
        }
        other => panic!("{other:?}"),
    }
}

#[actix_web::test]
async fn check_retries_unknown_writes_with_their_idempotency_key_and_counts_cas_increments_exactly()
{
    let (url, server) = mock(false);
    let probe = kvstore::check::http_client(Duration::from_secs(2), None);
    let features = probe_features(
        &probe,
        std::slice::from_ref(&url),
        "probe",
        Duration::from_secs(5),
    )
    .await
    .expect("probe");
    assert_eq!(
        features,
        Features {
            revisions: true,
            idempotency: true,
            lease: true
        }
    );

    let (ops, workload) = run(&url, WorkloadKind::Cas, 4, 2).await;
    let retried = ops.iter().filter(|o| o.output.retries > 0).count();
    let unknown = ops.iter().filter(|o| o.output.unknown).count();
    assert!(retried > 5, "lost answers must be retried: {retried}");
    assert_eq!(unknown, 0, "every retried write got its first outcome back");
    let keys: Vec<String> = (0..2).map(|k| workload.key(k)).collect();
    let s = counter_summary(&ops, &keys, 4);
    assert!(s.acked > 10, "{s:?}");
    assert_eq!((s.value, s.unknown), (s.acked, 0), "{s:?}");
    assert!(s.wrong.is_empty() && s.unread.is_empty(), "{s:?}");
    assert_linearizable(&ops);

    // The mixed workload with retries: linearizable too, with nothing left unknown.
    let (ops, _) = run(&url, WorkloadKind::Mixed, 4, 2).await;
    assert!(ops.iter().any(|o| o.output.retries > 0));
    assert!(ops.iter().all(|o| !o.output.unknown));
    assert_linearizable(&ops);
    server.stop(false).await;
}

#[actix_web::test]
async fn check_refuses_a_server_that_applies_a_retried_write_twice() {
    let (url, server) = mock(true);
    let (ops, workload) = run(&url, WorkloadKind::Cas, 4, 1).await;
    assert!(ops.iter().any(|o| o.output.retries > 0));
    let s = counter_summary(&ops, &[workload.key(0)], 4);
    let verdict = check_history(&ops);
    assert!(
        matches!(verdict, CheckResult::Violation { .. }),
        "a retried increment applied twice must not pass: {s:?}"
    );
    server.stop(false).await;
}
