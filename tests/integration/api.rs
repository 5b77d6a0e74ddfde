//! Every route, status and error shape of the HTTP API, through `actix_web::test` against the
//! same `api::app` the server runs.

use std::io::Write;
use std::sync::{Arc, Mutex};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::{test, web};
use kvstore::api::{self, Limits};
use kvstore::config::LogFormat;
use kvstore::transport::http::CLUSTER_HEADER;
use serde_json::{json, Value};

use crate::helpers::state_with;

type Resp = (StatusCode, header::HeaderMap, Vec<u8>);

async fn send<S, B>(app: &S, req: test::TestRequest) -> Resp
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let res = test::call_service(app, req.to_request()).await;
    let status = res.status();
    let headers = res.headers().clone();
    let body = test::read_body(res).await.to_vec();
    (status, headers, body)
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// Asserts the error shape exactly: `{"ok":false,"message":<non-empty>}` and nothing else.
fn assert_error(resp: &Resp, status: u16, message_part: &str) {
    let (st, headers, body) = resp;
    assert_eq!(
        st.as_u16(),
        status,
        "body: {}",
        String::from_utf8_lossy(body)
    );
    assert_eq!(
        headers.get(header::CONTENT_TYPE).unwrap(),
        "application/json"
    );
    let v = json_of(body);
    let obj = v.as_object().expect("object");
    assert_eq!(obj.len(), 2, "only ok and message: {v}");
    assert_eq!(v["ok"], false);
    let msg = v["message"].as_str().expect("message is a string");
    assert!(
        msg.contains(message_part),
        "message {msg:?} lacks {message_part:?}"
    );
}

fn put_json(body: Value) -> test::TestRequest {
    test::TestRequest::put()
        .uri("/set")
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(body.to_string())
}

fn put_raw(body: &str) -> test::TestRequest {
    test::TestRequest::put()
        .uri("/set")
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(body.to_owned())
}

fn get(key_query: &str) -> test::TestRequest {
    test::TestRequest::get().uri(&format!("/get{key_query}"))
}

fn delete(key_query: &str) -> test::TestRequest {
    test::TestRequest::delete().uri(&format!("/delete{key_query}"))
}

macro_rules! app {
    () => {
        app!(Limits::default())
    };
    ($limits:expr) => {
        test::init_service(api::app(state_with($limits))).await
    };
}

#[actix_web::test]
async fn set_get_delete_answer_the_original_bodies_byte_for_byte() {
    let app = app!();
    let r = send(&app, put_json(json!({"key":"name","value":"luffy"}))).await;
    assert_eq!(r.0, StatusCode::OK);
    assert_eq!(r.1.get(header::CONTENT_TYPE).unwrap(), "application/json");
    // The original fields, in the original order, then the ones issue #15 added.
    let i = json_of(&r.2)["index"].as_u64().unwrap();
    assert_eq!(
        r.2,
        format!(r#"{{"ok":true,"message":"stored","key":"name","index":{i}}}"#).as_bytes()
    );

    let r = send(&app, get("?key=name")).await;
    assert_eq!(r.0, StatusCode::OK);
    assert_eq!(
        r.2,
        format!(r#"{{"ok":true,"key":"name","value":"luffy","modIndex":{i},"createIndex":{i}}}"#)
            .as_bytes()
    );

    let r = send(&app, delete("?key=name")).await;
    assert_eq!(r.0, StatusCode::OK);
    assert_eq!(
        r.2,
        format!(
            r#"{{"ok":true,"message":"deleted","key":"name","index":{}}}"#,
            i + 1
        )
        .as_bytes()
    );

    assert_error(&send(&app, get("?key=name")).await, 404, "key not found");
}

#[actix_web::test]
async fn set_overwrites_and_empty_values_are_allowed() {
    let app = app!();
    send(&app, put_json(json!({"key":"k","value":"one"}))).await;
    send(&app, put_json(json!({"key":"k","value":"two"}))).await;
    let r = send(&app, get("?key=k")).await;
    assert_eq!(json_of(&r.2)["value"], "two");
    let r = send(&app, put_json(json!({"key":"k","value":""}))).await;
    assert_eq!(r.0, StatusCode::OK);
    let r = send(&app, get("?key=k")).await;
    assert!(r
        .2
        .starts_with(br#"{"ok":true,"key":"k","value":"","modIndex":"#));
}

#[actix_web::test]
async fn missing_keys_are_404_for_get_and_delete() {
    let app = app!();
    assert_error(&send(&app, get("?key=ghost")).await, 404, "key not found");
    assert_error(
        &send(&app, delete("?key=ghost")).await,
        404,
        "key not found",
    );
    send(&app, put_json(json!({"key":"k","value":"v"}))).await;
    assert_eq!(send(&app, delete("?key=k")).await.0, StatusCode::OK);
    assert_error(&send(&app, delete("?key=k")).await, 404, "key not found");
}

#[actix_web::test]
async fn bad_json_bodies_are_400_in_the_json_shape() {
    let app = app!();
    let cases: &[(&str, &str)] = &[
        ("{not json", "invalid JSON"),
        ("", "invalid JSON"),
        (r#"{"key":"a"}"#, "missing field `value`"),
        (r#"{"value":"a"}"#, "missing field `key`"),
        (r#"{"key":"a","value":1}"#, "invalid type: integer"),
        (r#"{"key":7,"value":"x"}"#, "invalid type: integer"),
        (r#"{"key":"a","value":null}"#, "invalid type: null"),
        (r#"["key","value"]"#, "invalid JSON"),
        (r#"{"key":"a","value":"b"} trailing"#, "invalid JSON"),
        (
            r#"{"key":"a","key":"b","value":"c"}"#,
            "duplicate field `key`",
        ),
        ("42", "invalid JSON"),
    ];
    for (body, part) in cases {
        let r = send(&app, put_raw(body)).await;
        assert_error(&r, 400, part);
    }
}

#[actix_web::test]
async fn content_type_is_not_required_for_set() {
    // `curl -d` sends application/x-www-form-urlencoded; the original accepted it.
    let app = app!();
    for ct in [
        None,
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
    ] {
        let mut req = test::TestRequest::put()
            .uri("/set")
            .set_payload(r#"{"key":"k","value":"v"}"#);
        if let Some(ct) = ct {
            req = req.insert_header((header::CONTENT_TYPE, ct));
        }
        assert_eq!(
            send(&app, req).await.0,
            StatusCode::OK,
            "content type {ct:?}"
        );
    }
}

#[actix_web::test]
async fn empty_key_is_400_everywhere() {
    let app = app!();
    assert_error(
        &send(&app, put_json(json!({"key":"","value":"v"}))).await,
        400,
        "key must not be empty",
    );
    assert_error(
        &send(&app, get("?key=")).await,
        400,
        "key must not be empty",
    );
    assert_error(
        &send(&app, delete("?key=")).await,
        400,
        "key must not be empty",
    );
}

#[actix_web::test]
async fn missing_or_malformed_key_parameter_is_400() {
    let app = app!();
    for q in ["", "?", "?other=1"] {
        assert_error(
            &send(&app, get(q)).await,
            400,
            "missing query parameter `key`",
        );
        assert_error(
            &send(&app, delete(q)).await,
            400,
            "missing query parameter `key`",
        );
    }
    assert_error(&send(&app, get("?key=a&key=b")).await, 400, "invalid query");
}

#[actix_web::test]
async fn wrong_method_on_a_known_route_is_405_with_allow() {
    let app = app!();
    let cases = [
        (Method::POST, "/set", "PUT"),
        (Method::GET, "/set", "PUT"),
        (Method::POST, "/get?key=a", "GET"),
        (Method::PUT, "/get?key=a", "GET"),
        (Method::GET, "/delete?key=a", "DELETE"),
        (Method::POST, "/delete?key=a", "DELETE"),
        (Method::POST, "/health", "GET"),
    ];
    for (method, uri, allowed) in cases {
        let r = send(
            &app,
            test::TestRequest::default().method(method.clone()).uri(uri),
        )
        .await;
        assert_error(&r, 405, "method not allowed");
        assert_eq!(r.1.get(header::ALLOW).unwrap(), allowed, "{method} {uri}");
    }
}

#[actix_web::test]
async fn unknown_route_is_404_json() {
    let app = app!();
    for uri in ["/", "/nope", "/set/extra", "/GET"] {
        let r = send(&app, test::TestRequest::get().uri(uri)).await;
        assert_error(&r, 404, "no such route");
    }
}

#[actix_web::test]
async fn oversized_key_value_and_body_are_413() {
    let limits = Limits {
        max_key_bytes: 8,
        max_value_bytes: 16,
        max_body_bytes: 64,
    };
    let app = app!(limits);
    let long_key = "k".repeat(9);
    assert_error(
        &send(&app, put_json(json!({"key": long_key, "value":"v"}))).await,
        413,
        "key too large: 9 bytes (limit 8 bytes)",
    );
    assert_error(
        &send(&app, get(&format!("?key={long_key}"))).await,
        413,
        "key too large",
    );
    assert_error(
        &send(&app, delete(&format!("?key={long_key}"))).await,
        413,
        "key too large",
    );
    assert_error(
        &send(&app, put_json(json!({"key":"k","value":"v".repeat(17)}))).await,
        413,
        "value too large: 17 bytes (limit 16 bytes)",
    );
    // Exactly at the limits is fine, counting UTF-8 bytes (é is two).
    let r = send(&app, put_json(json!({"key":"éééé","value":"v".repeat(16)}))).await;
    assert_eq!(r.0, StatusCode::OK);
    assert_error(
        &send(&app, put_json(json!({"key":"ééééé","value":"v"}))).await,
        413,
        "key too large: 10 bytes",
    );
    // A body over the request limit never reaches the handler.
    let big = format!(r#"{{"key":"k","value":"{}"}}"#, "x".repeat(100));
    assert_error(
        &send(&app, put_raw(&big)).await,
        413,
        "request body too large",
    );
}

#[actix_web::test]
async fn default_limits_are_4kib_keys_and_1mib_values() {
    let app = app!();
    let ok = send(
        &app,
        put_json(json!({"key":"k".repeat(4096),"value":"v".repeat(1024 * 1024)})),
    )
    .await;
    assert_eq!(ok.0, StatusCode::OK);
    assert_error(
        &send(&app, put_json(json!({"key":"k".repeat(4097),"value":"v"}))).await,
        413,
        "key too large",
    );
    assert_error(
        &send(
            &app,
            put_json(json!({"key":"k","value":"v".repeat(1024 * 1024 + 1)})),
        )
        .await,
        413,
        "value too large",
    );
}

#[actix_web::test]
async fn keys_and_values_are_arbitrary_utf8() {
    let app = app!();
    let pairs = [
        ("a b", "with space"),
        ("a&b=c", "x=y&z"),
        ("path/like/key", "/"),
        ("emoji 🚀✨", "värde ✓ 日本"),
        ("plus+sign", "%41 literal"),
        ("quote\"back\\slash", "line\nbreak\ttab"),
    ];
    for (k, v) in pairs {
        let r = send(&app, put_json(json!({"key": k, "value": v}))).await;
        assert_eq!(r.0, StatusCode::OK, "set {k:?}");
        assert_eq!(json_of(&r.2)["key"], k);
    }
    for (k, v) in pairs {
        let q: String = url_encode(k);
        let r = send(&app, get(&format!("?key={q}"))).await;
        assert_eq!(r.0, StatusCode::OK, "get {k:?}");
        let mut got = json_of(&r.2);
        let o = got.as_object_mut().unwrap();
        assert!(o.remove("modIndex").is_some() && o.remove("createIndex").is_some());
        assert_eq!(got, json!({"ok":true,"key":k,"value":v}));
    }
    let r = send(&app, delete(&format!("?key={}", url_encode("a&b=c")))).await;
    assert_eq!(json_of(&r.2)["key"], "a&b=c");
}

/// Percent-encode everything but unreserved characters.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[actix_web::test]
async fn health_reports_a_single_node_leader() {
    let app = app!();
    let r = send(&app, test::TestRequest::get().uri("/health")).await;
    assert_eq!(r.0, StatusCode::OK);
    let v = json_of(&r.2);
    assert_eq!(v["id"], "t1");
    assert_eq!(v["state"], "leader");
    assert_eq!(v["leaderId"], "t1");
    assert!(v["term"].as_u64().unwrap() >= 1);
    assert!(v["lastHeartbeatAgoMs"].is_u64());
}

#[actix_web::test]
async fn request_id_is_generated_or_kept() {
    let app = app!();
    let r = send(&app, get("?key=x")).await;
    let id =
        r.1.get("x-request-id")
            .expect("x-request-id")
            .to_str()
            .unwrap();
    assert!(
        uuid::Uuid::parse_str(id).is_ok(),
        "generated id is a uuid: {id}"
    );

    let r = send(
        &app,
        get("?key=x").insert_header(("x-request-id", "client-chosen-42")),
    )
    .await;
    assert_eq!(r.1.get("x-request-id").unwrap(), "client-chosen-42");

    // An absurdly long incoming id is replaced, not echoed.
    let long = "a".repeat(500);
    let r = send(
        &app,
        get("?key=x").insert_header(("x-request-id", long.as_str())),
    )
    .await;
    let id = r.1.get("x-request-id").unwrap().to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok());
}

async fn boom() -> &'static str {
    panic!("deliberate test panic")
}

/// Like `send`, but renders a service error the way actix-web's server does, which is how a
/// caught panic reaches the client.
async fn send_rendered<S, B>(app: &S, req: test::TestRequest) -> Resp
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    match test::try_call_service(app, req.to_request()).await {
        Ok(res) => {
            let status = res.status();
            let headers = res.headers().clone();
            (status, headers, test::read_body(res).await.to_vec())
        }
        Err(err) => {
            let res = err.error_response();
            let status = res.status();
            let headers = res.headers().clone();
            let body = actix_web::body::to_bytes(res.into_body()).await.unwrap();
            (status, headers, body.to_vec())
        }
    }
}

#[actix_web::test]
async fn a_panicking_handler_answers_json_500_and_the_app_keeps_serving() {
    let app = test::init_service(
        api::app(state_with(Limits::default())).route("/test-panic", web::get().to(boom)),
    )
    .await;
    let r = send_rendered(
        &app,
        test::TestRequest::get()
            .uri("/test-panic")
            .insert_header(("x-request-id", "panic-req-1")),
    )
    .await;
    assert_eq!(r.0, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.2, br#"{"ok":false,"message":"internal server error"}"#);
    assert_eq!(r.1.get("x-request-id").unwrap(), "panic-req-1");
    // The same service still answers.
    let r = send(&app, put_json(json!({"key":"after","value":"panic"}))).await;
    assert_eq!(r.0, StatusCode::OK);
    assert_eq!(send(&app, get("?key=after")).await.0, StatusCode::OK);
}

#[actix_web::test]
async fn a_panicking_handler_on_a_real_server_keeps_the_server_and_connection_usable() {
    let state = state_with(Limits::default());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = actix_web::HttpServer::new(move || {
        api::app(state.clone()).route("/test-panic", web::get().to(boom))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let c = crate::helpers::client();
    for round in 0..3 {
        let mut res = c
            .get(format!("http://{addr}/test-panic"))
            .insert_header(("x-request-id", format!("real-panic-{round}")))
            .send()
            .await
            .expect("the panicking route still answers");
        assert_eq!(res.status(), 500);
        assert_eq!(
            res.headers().get("x-request-id").unwrap(),
            format!("real-panic-{round}").as_str()
        );
        let body = res.body().await.unwrap();
        assert_eq!(
            body,
            br#"{"ok":false,"message":"internal server error"}"#.as_slice()
        );
        let res = c
            .put(format!("http://{addr}/set"))
            .send_json(&json!({"key":"k","value":"v"}))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    handle.stop(false).await;
}

/// Collects log output in memory (tests only).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[actix_web::test]
async fn each_request_is_logged_with_its_id_method_path_status_and_latency() {
    let out = Captured::default();
    let writer = out.clone();
    let sub =
        kvstore::telemetry::subscriber(LogFormat::Human, "info", false, move || writer.clone());
    let _guard = tracing::subscriber::set_default(sub);
    let app = test::init_service(
        api::app(state_with(Limits::default()))
            .route("/test-panic", web::get().to(boom))
            .route("/raft/test-ok", web::get().to(actix_web::HttpResponse::Ok)),
    )
    .await;
    send(
        &app,
        get("?key=nope").insert_header(("x-request-id", "log-req-7")),
    )
    .await;
    send_rendered(
        &app,
        test::TestRequest::get()
            .uri("/raft/test-ok")
            .insert_header(("x-request-id", "log-req-9")),
    )
    .await;
    send_rendered(
        &app,
        test::TestRequest::get()
            .uri("/test-panic")
            .insert_header(("x-request-id", "log-req-8")),
    )
    .await;
    let text = out.text();
    let line = text
        .lines()
        .find(|l| l.contains("request_id=log-req-7") && l.contains("request completed"))
        .unwrap_or_else(|| panic!("no completion line for log-req-7 in:\n{text}"));
    for part in ["method=GET", "path=/get", "status=404", "latency_ms="] {
        assert!(line.contains(part), "{part} missing from {line}");
    }
    let panic_line = text
        .lines()
        .find(|l| l.contains("request_id=log-req-8") && l.contains("handler panicked"))
        .unwrap_or_else(|| panic!("no panic line for log-req-8 in:\n{text}"));
    assert!(panic_line.contains("deliberate test panic"), "{panic_line}");
    assert!(
        text.lines()
            .any(|l| l.contains("request_id=log-req-8") && l.contains("status=500")),
        "the panicked request's status is logged:\n{text}"
    );
    assert!(
        !text.contains("log-req-9"),
        "a peer RPC that succeeds is logged at debug level only:\n{text}"
    );
}

#[actix_web::test]
async fn json_log_format_has_the_request_id_as_a_field() {
    let out = Captured::default();
    let writer = out.clone();
    let sub =
        kvstore::telemetry::subscriber(LogFormat::Json, "info", false, move || writer.clone());
    let _guard = tracing::subscriber::set_default(sub);
    let app = app!();
    send(
        &app,
        get("?key=x").insert_header(("x-request-id", "json-req-1")),
    )
    .await;
    let text = out.text();
    let found = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["span"]["request_id"] == "json-req-1")
        .unwrap_or_else(|| panic!("no JSON line with the request id in:\n{text}"));
    assert_eq!(found["status"], 404);
    assert_eq!(found["span"]["method"], "GET");
    assert!(found["latency_ms"].is_number());
}

#[actix_web::test]
async fn reads_are_linearizable_by_default_and_stale_on_request() {
    let app = app!();
    send(&app, put_json(json!({"key":"c","value":"1"}))).await;
    for q in [
        "?key=c",
        "?key=c&consistency=linearizable",
        "?key=c&consistency=stale",
    ] {
        let r = send(&app, get(q)).await;
        assert!(
            r.2.starts_with(br#"{"ok":true,"key":"c","value":"1","modIndex":"#),
            "{q}"
        );
    }
    assert_error(
        &send(&app, get("?key=c&consistency=eventual")).await,
        400,
        "consistency must be `linearizable` or `stale`",
    );
    assert_error(
        &send(&app, get("?key=nope&consistency=stale")).await,
        404,
        "key not found",
    );
}

/// A loopback source address: without a cluster secret, peer routes answer only these.
const LOOPBACK: &str = "127.0.0.1:40000";

#[actix_web::test]
async fn peer_routes_answer_raft_messages_and_refuse_garbage_in_the_json_shape() {
    let app = app!();
    let vote = r#"{"term":99,"candidateId":"x","lastLogIndex":0,"lastLogTerm":0,"preVote":true}"#;
    let r = send(
        &app,
        test::TestRequest::post()
            .uri("/raft/vote")
            .peer_addr(LOOPBACK.parse().unwrap())
            .insert_header((CLUSTER_HEADER, "standalone"))
            .set_payload(vote),
    )
    .await;
    assert_eq!(r.0, StatusCode::OK);
    let v = json_of(&r.2);
    assert_eq!(
        v["granted"], false,
        "a single-node leader in its lease refuses: {v}"
    );
    assert_error(
        &send(
            &app,
            test::TestRequest::post()
                .uri("/raft/append")
                .peer_addr(LOOPBACK.parse().unwrap())
                .insert_header((CLUSTER_HEADER, "standalone"))
                .set_payload("{"),
        )
        .await,
        400,
        "invalid JSON",
    );
    assert_error(
        &send(
            &app,
            test::TestRequest::get()
                .uri("/raft/vote")
                .peer_addr(LOOPBACK.parse().unwrap())
                .insert_header((CLUSTER_HEADER, "standalone")),
        )
        .await,
        405,
        "method not allowed",
    );
}

#[actix_web::test]
async fn peer_routes_refuse_another_cluster_or_none_before_reading_the_body() {
    let app = app!();
    for (path, cluster) in [
        ("/raft/vote", Some("c0123456789abcdef")),
        ("/raft/append", None),
        ("/raft/snapshot?nonsense=1", Some("other")),
    ] {
        let mut req = test::TestRequest::post()
            .uri(path)
            .peer_addr(LOOPBACK.parse().unwrap())
            .set_payload("not json");
        if let Some(c) = cluster {
            req = req.insert_header((CLUSTER_HEADER, c));
        }
        let want = if cluster.is_some() {
            "belongs to cluster \"standalone\""
        } else {
            "must carry the cluster id"
        };
        assert_error(&send(&app, req).await, 409, want);
    }
}

#[actix_web::test]
async fn admin_faults_is_refused_unless_the_node_was_started_with_kvstore_faults() {
    let app = test::init_service(api::app(state_with(Limits::default()))).await;
    for req in [
        test::TestRequest::get().uri("/admin/faults"),
        test::TestRequest::post()
            .uri("/admin/faults")
            .set_json(json!({"rules": [{"peer": "*", "cut": true}]})),
        test::TestRequest::delete().uri("/admin/faults"),
    ] {
        assert_error(&send(&app, req).await, 403, "KVSTORE_FAULTS=1");
    }
}

#[actix_web::test]
async fn admin_faults_sets_shows_validates_and_clears_rules_when_enabled() {
    let config = crate::helpers::config(&[
        "--node-id",
        "f1",
        "--in-memory",
        "--unsafe-volatile-cluster",
        "--faults",
        "--peers",
        "http://127.0.0.1:9",
    ]);
    let state = kvstore::startup::start_actors(&config, "http://127.0.0.1:1".into()).unwrap();
    let app = test::init_service(api::app(state)).await;
    let rules = json!({"rules": [{"peer": "http://127.0.0.1:9", "cut": true},
                                 {"peer": "*", "drop": 0.25, "delayMs": [1, 5]}]});
    let (st, _, body) = send(
        &app,
        test::TestRequest::post()
            .uri("/admin/faults")
            .set_json(&rules),
    )
    .await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let (_, _, body) = send(&app, test::TestRequest::get().uri("/admin/faults")).await;
    let v = json_of(&body);
    assert_eq!(v["rules"][0]["cut"], true);
    assert_eq!(v["rules"][1]["drop"], 0.25);
    // A peer that is not a URL (members come and go, so any base URL is allowed), or a
    // probability above 1, is refused as bad input.
    for bad in [
        json!({"rules": [{"peer": "elsewhere:1", "cut": true}]}),
        json!({"rules": [{"peer": "*", "drop": 1.5}]}),
        json!({"rules": [{"peer": "*", "cutt": true}]}),
    ] {
        let resp = send(
            &app,
            test::TestRequest::post()
                .uri("/admin/faults")
                .set_json(&bad),
        )
        .await;
        assert_eq!(resp.0, 400, "{bad}: {}", String::from_utf8_lossy(&resp.2));
    }
    let (st, _, _) = send(&app, test::TestRequest::delete().uri("/admin/faults")).await;
    assert_eq!(st, 200);
    let (_, _, body) = send(&app, test::TestRequest::get().uri("/admin/faults")).await;
    assert_eq!(json_of(&body)["rules"], json!([]));
}

fn post_members(body: &str) -> test::TestRequest {
    test::TestRequest::post()
        .uri("/cluster/members")
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(body.to_owned())
}

#[actix_web::test]
async fn cluster_shows_a_single_node_leader_with_its_progress() {
    let app = app!();
    let r = send(&app, test::TestRequest::get().uri("/cluster")).await;
    assert_eq!(r.0, StatusCode::OK, "{}", String::from_utf8_lossy(&r.2));
    let v = json_of(&r.2);
    assert_eq!(v["ok"], true);
    assert!(v["clusterId"].as_str().is_some_and(|c| !c.is_empty()));
    assert_eq!(v["leaderId"], "t1");
    assert_eq!(v["leaderUrl"], "http://127.0.0.1:1");
    assert_eq!(v["changeInProgress"], false);
    let members = v["members"].as_array().unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["id"], "t1");
    assert_eq!(members[0]["role"], "voter");
    assert_eq!(members[0]["lag"], 0);
    assert_eq!(members[0]["lastContactMs"], 0);
    let h = json_of(&send(&app, test::TestRequest::get().uri("/health")).await.2);
    assert_eq!(h["membership"], "voter");
    assert!(h["configIndex"].is_u64());
}

#[actix_web::test]
async fn cluster_routes_refuse_bad_ids_urls_and_bodies_with_400() {
    let app = app!();
    for (body, part) in [
        (r#"{"id":"","url":"http://h:9"}"#, "1 to 128 bytes"),
        (
            r#"{"id":"a/b","url":"http://h:9"}"#,
            "without spaces or `/`",
        ),
        (
            r#"{"id":"a b","url":"http://h:9"}"#,
            "without spaces or `/`",
        ),
        (r#"{"id":"n4","url":"ftp://h:9"}"#, "invalid member URL"),
        (
            r#"{"id":"n4","url":"http://h:9/path"}"#,
            "invalid member URL",
        ),
        (
            r#"{"id":"n4","url":"http://h:9","lerner":true}"#,
            "unknown field",
        ),
        (r#"{"id":"n4"}"#, "missing field `url`"),
        ("[1]", "invalid JSON"),
    ] {
        assert_error(&send(&app, post_members(body)).await, 400, part);
    }
    let long_id = format!(r#"{{"id":"{}","url":"http://h:9"}}"#, "x".repeat(129));
    assert_error(&send(&app, post_members(&long_id)).await, 400, "1 to 128");
    let huge = format!(
        r#"{{"id":"n4","url":"http://h:9","x":"{}"}}"#,
        "x".repeat(8192)
    );
    assert_error(&send(&app, post_members(&huge)).await, 413, "too large");
    let r = send(
        &app,
        test::TestRequest::post().uri("/cluster/members/a%20b/promote"),
    )
    .await;
    assert_error(&r, 400, "member id");
    let r = send(
        &app,
        test::TestRequest::post()
            .uri("/cluster/leader")
            .set_payload(r#"{"to":"n2"}"#),
    )
    .await;
    assert_error(&r, 400, "unknown field");
    let r = send(&app, test::TestRequest::put().uri("/cluster/members")).await;
    assert_error(&r, 405, "POST");
    let r = send(&app, test::TestRequest::delete().uri("/cluster")).await;
    assert_error(&r, 405, "GET");
}

#[actix_web::test]
async fn membership_refusals_answer_404_and_409_in_the_json_shape() {
    let app = app!();
    let r = send(
        &app,
        test::TestRequest::delete().uri("/cluster/members/nobody"),
    )
    .await;
    assert_error(&r, 404, "no member has the id \"nobody\"");
    let r = send(&app, test::TestRequest::delete().uri("/cluster/members/t1")).await;
    assert_error(&r, 409, "last voter");
    let r = send(
        &app,
        post_members(r#"{"id":"t1","url":"http://127.0.0.1:2","learner":true}"#),
    )
    .await;
    assert_error(&r, 409, "already a member");
    let r = send(
        &app,
        post_members(r#"{"id":"n9","url":"http://127.0.0.1:1","learner":true}"#),
    )
    .await;
    assert_error(&r, 409, "already used by member \"t1\"");
    let r = send(
        &app,
        test::TestRequest::post().uri("/cluster/members/t1/promote"),
    )
    .await;
    assert_error(&r, 409, "already a voter");
    // Handing leadership to itself: done at once.
    let r = send(
        &app,
        test::TestRequest::post()
            .uri("/cluster/leader")
            .set_payload(r#"{"id":"t1"}"#),
    )
    .await;
    assert_eq!(r.0, StatusCode::OK, "{}", String::from_utf8_lossy(&r.2));
    assert_eq!(
        json_of(&r.2),
        json!({"ok":true,"message":"leadership transferred","leaderId":"t1"})
    );
}

#[actix_web::test]
async fn cluster_routes_need_the_admin_role_when_tokens_are_configured() {
    let mut state = state_with(Limits::default());
    let tokens = kvstore::api::auth::parse_tokens(
        "read rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr\nadmin aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
    )
    .unwrap();
    state.client_tokens = Some(Arc::new(tokens));
    let app = test::init_service(api::app(state)).await;
    let read = (
        header::AUTHORIZATION,
        "Bearer rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr",
    );
    let admin = (
        header::AUTHORIZATION,
        "Bearer aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    );
    let r = send(&app, test::TestRequest::get().uri("/cluster")).await;
    assert_error(&r, 401, "authentication required");
    let r = send(
        &app,
        test::TestRequest::get()
            .uri("/cluster")
            .insert_header(read.clone()),
    )
    .await;
    assert_eq!(r.0, StatusCode::OK);
    for req in [
        post_members(r#"{"id":"n4","url":"http://h:9"}"#),
        test::TestRequest::post().uri("/cluster/members/n4/promote"),
        test::TestRequest::delete().uri("/cluster/members/n4"),
        test::TestRequest::post().uri("/cluster/leader"),
    ] {
        let r = send(&app, req.insert_header(read.clone())).await;
        assert_error(&r, 403, "admin");
    }
    let r = send(
        &app,
        test::TestRequest::delete()
            .uri("/cluster/members/nobody")
            .insert_header(admin),
    )
    .await;
    assert_error(&r, 404, "no member");
}
