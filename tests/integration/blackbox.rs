//! The real `kvstore` binary, started as a user would, talked to over TCP.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{client, free_port, KvProcess};

const LOCAL: [&str; 4] = ["--host", "127.0.0.1", "--port", "0"];

async fn get_json(url: &str) -> (u16, Value) {
    let mut res = client().get(url).send().await.expect("request");
    let status = res.status().as_u16();
    let body = res.body().await.expect("body");
    (status, serde_json::from_slice(&body).expect("JSON body"))
}

#[actix_web::test]
async fn serves_the_api_over_tcp() {
    let node = KvProcess::start(&LOCAL, &[("NODE_ID", "box-1")]);
    let c = client();
    let mut res = c
        .put(node.url("/set"))
        .send_json(&json!({"key":"name","value":"luffy"}))
        .await
        .expect("set");
    assert_eq!(res.status(), 200);
    let body = res.body().await.unwrap();
    assert!(
        body.starts_with(br#"{"ok":true,"message":"stored","key":"name","index":"#),
        "{body:?}"
    );
    assert!(res.headers().contains_key("x-request-id"));

    let (st, v) = get_json(&node.url("/get?key=name")).await;
    let (m, ci) = (v["modIndex"].clone(), v["createIndex"].clone());
    assert_eq!(
        (st, v),
        (
            200,
            json!({"ok":true,"key":"name","value":"luffy","modIndex":m,"createIndex":ci})
        )
    );

    let mut res = c.delete(node.url("/delete?key=name")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body = res.body().await.unwrap();
    assert!(
        body.starts_with(br#"{"ok":true,"message":"deleted","key":"name","index":"#),
        "{body:?}"
    );
    let (st, v) = get_json(&node.url("/get?key=name")).await;
    assert_eq!(
        (st, v),
        (404, json!({"ok":false,"message":"key not found"}))
    );

    let (st, v) = get_json(&node.url("/health")).await;
    assert_eq!(st, 200);
    assert_eq!(v["id"], "box-1");
    assert_eq!(v["state"], "leader");
    assert_eq!(v["leaderId"], "box-1");
}

#[actix_web::test]
async fn port_comes_from_kvstore_port_then_port() {
    // KVSTORE_PORT beats PORT.
    let want = free_port();
    let node = KvProcess::start(
        &["--host", "127.0.0.1"],
        &[("KVSTORE_PORT", &want.to_string()), ("PORT", "not-a-port")],
    );
    assert_eq!(node.addr.unwrap().port(), want);
    drop(node);
    // PORT alone is used.
    let want = free_port();
    let node = KvProcess::start(&["--host", "127.0.0.1"], &[("PORT", &want.to_string())]);
    assert_eq!(node.addr.unwrap().port(), want);
    let (st, _) = get_json(&node.url("/health")).await;
    assert_eq!(st, 200);
    drop(node);
    // The flag beats both.
    let node = KvProcess::start(
        &["--host", "127.0.0.1", "--port", "0"],
        &[("KVSTORE_PORT", "1"), ("PORT", "2")],
    );
    assert_ne!(node.addr.unwrap().port(), 1);
}

fn expect_refusal(args: &[&str], envs: &[(&str, &str)], message_part: &str) {
    let mut p = KvProcess::spawn(args, envs);
    let status = p
        .wait_exit(Duration::from_secs(20))
        .expect("a bad setting must make kvstore exit");
    assert!(!status.success(), "{args:?} {envs:?} must fail");
    let lines: Vec<String> = p.stderr.iter().collect();
    assert_eq!(lines.len(), 1, "one clear line, got: {lines:#?}");
    assert!(lines[0].starts_with("error: "), "{}", lines[0]);
    assert!(
        lines[0].contains(message_part),
        "{} lacks {message_part}",
        lines[0]
    );
    assert!(!lines[0].contains("panicked"), "{}", lines[0]);
}

#[test]
fn bad_settings_exit_nonzero_with_one_line() {
    expect_refusal(&["--port", "abc"], &[], "invalid port \"abc\" from --port");
    expect_refusal(&[], &[("KVSTORE_PORT", "99999")], "KVSTORE_PORT");
    expect_refusal(&[], &[("PORT", "eighty")], "from PORT");
    expect_refusal(&["--max-key-bytes", "many"], &[], "--max-key-bytes");
    expect_refusal(&["--bogus"], &[], "--bogus");
    expect_refusal(&["--log-format", "xml"], &[], "xml");
}

#[test]
fn port_in_use_exits_nonzero_with_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let mut p = KvProcess::spawn(&["--host", "127.0.0.1", "--port", &port], &[]);
    let status = p.wait_exit(Duration::from_secs(20)).expect("must exit");
    assert!(!status.success());
    let lines: Vec<String> = p.stderr.iter().collect();
    let errors: Vec<_> = lines.iter().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{lines:#?}");
    assert!(errors[0].contains("in use"), "{}", errors[0]);
    assert!(errors[0].contains(&port), "{}", errors[0]);
}

#[test]
fn help_lists_every_setting() {
    let out = std::process::Command::new(crate::helpers::binary())
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for env in [
        "KVSTORE_PORT",
        "PORT",
        "NODE_ID",
        "KVSTORE_LOG_FORMAT",
        "RUST_LOG",
    ] {
        assert!(text.contains(env), "--help lacks {env}");
    }
}

#[actix_web::test]
async fn sigterm_and_sigint_stop_the_node_cleanly() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut node = KvProcess::start(&LOCAL, &[]);
        let (st, _) = get_json(&node.url("/health")).await;
        assert_eq!(st, 200);
        node.signal(sig);
        let status = node
            .wait_exit(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("signal {sig} did not stop the node within 10 s"));
        assert!(
            status.success(),
            "clean exit after signal {sig}: {status:?}"
        );
    }
}

#[actix_web::test]
async fn json_logs_carry_the_request_id() {
    let mut node = KvProcess::start(&LOCAL, &[("KVSTORE_LOG_FORMAT", "json")]);
    let res = client()
        .get(node.url("/get?key=zz"))
        .insert_header(("x-request-id", "bb-json-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let line = node
        .wait_for_line(Duration::from_secs(10), |l| l.contains("bb-json-1"))
        .expect("a log line with the request id");
    let v: Value = serde_json::from_str(&line).expect("JSON log line");
    assert_eq!(v["span"]["request_id"], "bb-json-1");
    assert_eq!(v["status"], 404);
}
