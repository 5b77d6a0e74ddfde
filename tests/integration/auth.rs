//! Client tokens (`--client-tokens-file`): the role each route needs, 401/403 in the JSON shape
//! before the body is read, `/health` and `/raft/*` not covered, refusals at start, forwarding
//! from a follower with the client's token, and `kvstore check --token` against such a cluster.
//! Tokens are made at run time, never committed.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::test as at;
use kvstore::api::auth::parse_tokens;
use kvstore::api::{self, Limits};
use serde_json::{json, Value};

use crate::cluster_proc::ProcCluster;
use crate::helpers::{binary, poll_until, state_with, KvProcess};

/// A fresh random token of 32 hex characters.
fn token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

struct Tokens {
    read: String,
    write: String,
    admin: String,
}

impl Tokens {
    fn new() -> Tokens {
        Tokens {
            read: token(),
            write: token(),
            admin: token(),
        }
    }

    fn file_text(&self) -> String {
        format!(
            "# test tokens\nread {}\nwrite {}\nadmin {}\n",
            self.read, self.write, self.admin
        )
    }
}

/// The tokens file, mode 600, in a temporary directory kept alive by the returned guard.
fn tokens_file(text: &str, mode: u32) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    (dir, path)
}

fn bearer(t: &str) -> (header::HeaderName, String) {
    (header::AUTHORIZATION, format!("Bearer {t}"))
}

async fn call<S, B>(app: &S, req: at::TestRequest) -> (u16, header::HeaderMap, Value)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let (status, headers, body) = crate::helpers::call_app(app, req).await;
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, headers, v)
}

fn assert_refused(got: &(u16, header::HeaderMap, Value), status: u16, part: &str) {
    assert_eq!(got.0, status, "{:?}", got.2);
    assert_eq!(got.2["ok"], false, "{:?}", got.2);
    assert_eq!(got.2.as_object().map(|o| o.len()), Some(2), "{:?}", got.2);
    let msg = got.2["message"].as_str().unwrap();
    assert!(msg.contains(part), "{msg:?} lacks {part:?}");
    if status == 401 {
        let www = got
            .1
            .get(header::WWW_AUTHENTICATE)
            .expect("WWW-Authenticate");
        assert!(www.to_str().unwrap().starts_with("Bearer"), "{www:?}");
    }
}

fn set(key: &str) -> at::TestRequest {
    at::TestRequest::put()
        .uri("/set")
        .set_json(json!({"key": key, "value": "v"}))
}

#[actix_web::test]
async fn each_route_needs_its_role_and_refusals_have_the_json_shape() {
    let t = Tokens::new();
    let mut state = state_with(Limits::default());
    state.client_tokens = Some(Arc::new(parse_tokens(&t.file_text()).unwrap()));
    let app = at::init_service(api::app(state)).await;

    // No token, a wrong one, another scheme: 401 with WWW-Authenticate.
    assert_refused(&call(&app, set("k")).await, 401, "authentication required");
    let got = call(&app, set("k").insert_header(bearer(&token()))).await;
    assert_refused(&got, 401, "invalid token");
    let basic = (header::AUTHORIZATION, format!("Basic {}", t.write));
    assert_refused(
        &call(&app, set("k").insert_header(basic)).await,
        401,
        "invalid",
    );
    let get = || at::TestRequest::get().uri("/get?key=k");
    let del = || at::TestRequest::delete().uri("/delete?key=k");
    assert_refused(&call(&app, get()).await, 401, "authentication required");
    assert_refused(&call(&app, del()).await, 401, "authentication required");

    // A role too low: 403, and nothing written.
    let got = call(&app, set("k").insert_header(bearer(&t.read))).await;
    assert_refused(&got, 403, "needs write");
    let got = call(&app, del().insert_header(bearer(&t.read))).await;
    assert_refused(&got, 403, "needs write");
    let got = call(&app, get().insert_header(bearer(&t.read))).await;
    assert_eq!(got.0, 404, "nothing was stored: {:?}", got.2);

    // Write and admin tokens write; every role reads.
    let got = call(&app, set("k").insert_header(bearer(&t.write))).await;
    assert_eq!(got.0, 200, "{:?}", got.2);
    for tok in [&t.read, &t.write, &t.admin] {
        let got = call(&app, get().insert_header(bearer(tok))).await;
        assert_eq!((got.0, &got.2["value"]), (200, &json!("v")));
    }
    // The scheme is case-insensitive.
    let lower = (header::AUTHORIZATION, format!("bearer {}", t.read));
    assert_eq!(call(&app, get().insert_header(lower)).await.0, 200);
    let got = call(&app, del().insert_header(bearer(&t.admin))).await;
    assert_eq!(got.0, 200, "{:?}", got.2);

    // /health stays open.
    let got = call(&app, at::TestRequest::get().uri("/health")).await;
    assert_eq!(got.0, 200);

    // /admin/*: admin only; with admin, the KVSTORE_FAULTS rule still applies.
    let faults = || at::TestRequest::get().uri("/admin/faults");
    assert_refused(&call(&app, faults()).await, 401, "authentication");
    let got = call(&app, faults().insert_header(bearer(&t.write))).await;
    assert_refused(&got, 403, "needs admin");
    let got = call(&app, faults().insert_header(bearer(&t.admin))).await;
    assert_refused(&got, 403, "KVSTORE_FAULTS=1");

    // /raft/* is not covered by client tokens: no 401 (here 409, no cluster id).
    let got = call(
        &app,
        at::TestRequest::post()
            .uri("/raft/vote")
            .peer_addr("127.0.0.1:40000".parse().unwrap())
            .set_json(json!({"term": 1})),
    )
    .await;
    assert_eq!(got.0, 409, "{:?}", got.2);
}

#[actix_web::test]
async fn the_token_is_checked_before_the_body_is_read() {
    let t = Tokens::new();
    let limits = Limits {
        max_key_bytes: 16,
        max_value_bytes: 16,
        max_body_bytes: 64,
    };
    let mut state = state_with(limits);
    state.client_tokens = Some(Arc::new(parse_tokens(&t.file_text()).unwrap()));
    let app = at::init_service(api::app(state)).await;
    let big = || {
        at::TestRequest::put()
            .uri("/set")
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload("x".repeat(10_000))
    };
    // Without a token: 401, not the 413 (or 400) that reading the body would give.
    assert_refused(&call(&app, big()).await, 401, "authentication required");
    let got = call(&app, big().insert_header(bearer(&t.read))).await;
    assert_refused(&got, 403, "needs write");
    let got = call(&app, big().insert_header(bearer(&t.write))).await;
    assert_refused(&got, 413, "too large");
}

#[actix_web::test]
async fn admin_faults_needs_both_kvstore_faults_and_an_admin_token() {
    let t = Tokens::new();
    let config = crate::helpers::config(&[
        "--node-id",
        "f1",
        "--in-memory",
        "--unsafe-volatile-cluster",
        "--faults",
        "--peers",
        "http://127.0.0.1:9",
    ]);
    let mut state = kvstore::startup::start_actors(&config, "http://127.0.0.1:1".into()).unwrap();
    state.client_tokens = Some(Arc::new(parse_tokens(&t.file_text()).unwrap()));
    let app = at::init_service(api::app(state)).await;
    let post = || {
        at::TestRequest::post()
            .uri("/admin/faults")
            .set_json(json!({"rules": [{"peer": "*", "cut": true}]}))
    };
    assert_refused(&call(&app, post()).await, 401, "authentication");
    assert_refused(
        &call(&app, post().insert_header(bearer(&t.write))).await,
        403,
        "needs admin",
    );
    let got = call(&app, post().insert_header(bearer(&t.admin))).await;
    assert_eq!(got.0, 200, "{:?}", got.2);
    assert_eq!(got.2["rules"][0]["cut"], true);
}

/// A node started with this tokens file (text, mode) exits; what it printed.
fn refused_start(text: &str, mode: u32) -> String {
    let (_dir, path) = tokens_file(text, mode);
    let mut p = KvProcess::spawn(
        &["--port", "0", "--host", "127.0.0.1", "--in-memory"],
        &[("KVSTORE_CLIENT_TOKENS_FILE", path.to_str().unwrap())],
    );
    let seen = p
        .wait_for_line(Duration::from_secs(20), |l| l.contains("listening on"))
        .expect_err("the node must not start");
    let status = p
        .wait_exit(Duration::from_secs(10))
        .expect("the node exits");
    assert_eq!(status.code(), Some(1), "{seen}");
    seen
}

#[test]
fn a_node_refuses_to_start_with_an_unusable_tokens_file() {
    let t = Tokens::new();
    let seen = refused_start(&t.file_text(), 0o644);
    assert!(
        seen.contains("too open") && seen.contains("chmod 600"),
        "{seen}"
    );
    let seen = refused_start(&format!("superuser {}\n", t.read), 0o600);
    assert!(seen.contains("line 1: unknown role"), "{seen}");
    let seen = refused_start(&format!("read {}\nwrite {}\n", t.read, t.read), 0o600);
    assert!(
        seen.contains("line 2") && seen.contains("already given"),
        "{seen}"
    );
    let seen = refused_start("read short\n", 0o600);
    assert!(seen.contains("too short"), "{seen}");
    assert!(!seen.contains(&t.read), "a token was printed: {seen}");
    // A missing file.
    let mut p = KvProcess::spawn(
        &["--port", "0", "--in-memory"],
        &[("KVSTORE_CLIENT_TOKENS_FILE", "/nonexistent/kvstore-tokens")],
    );
    let status = p.wait_exit(Duration::from_secs(20)).expect("exits");
    assert_eq!(status.code(), Some(1));
    let seen = p.remaining_stderr(Duration::from_secs(10));
    assert!(seen.iter().any(|l| l.contains("cannot open")), "{seen:?}");
}

async fn send(method: &str, url: String, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let c = crate::helpers::client();
    let mut req = match method {
        "PUT" => c.put(url),
        "DELETE" => c.delete(url),
        _ => c.get(url),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let mut res = match body {
        Some(b) => req.send_json(&b).await,
        None => req.send().await,
    }
    .expect("answered");
    let bytes = res.body().await.unwrap();
    (
        res.status().as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[actix_web::test]
async fn a_follower_forwards_the_clients_token_and_the_leader_checks_it() {
    let t = Tokens::new();
    let (_dir, path) = tokens_file(&t.file_text(), 0o600);
    let path: &'static str = Box::leak(path.to_str().unwrap().to_owned().into_boxed_str());
    let cluster = ProcCluster::start_with(3, &[("KVSTORE_CLIENT_TOKENS_FILE", path)]);
    let (leader, _) = cluster.wait_for_leader(Duration::from_secs(20)).await;
    let follower = (leader + 1) % 3;
    let f = cluster.url(follower);
    let body = || Some(json!({"key": "a", "value": "1"}));
    let got = send("PUT", format!("{f}/set"), None, body()).await;
    assert_eq!(got.0, 401, "{:?}", got.1);
    let got = send("PUT", format!("{f}/set"), Some(&t.read), body()).await;
    assert_eq!(got.0, 403, "{:?}", got.1);
    let got = poll_until(Duration::from_secs(20), || async {
        let got = send("PUT", format!("{f}/set"), Some(&t.write), body()).await;
        if got.0 == 200 {
            Ok(got)
        } else {
            Err(got)
        }
    })
    .await
    .expect("a write through a follower with a write token succeeds");
    assert_eq!(got.1["message"], "stored");
    for i in 0..3 {
        let url = format!("{}/get?key=a", cluster.url(i));
        let got = send("GET", url.clone(), Some(&t.read), None).await;
        assert_eq!((got.0, &got.1["value"]), (200, &json!("1")), "node {i}");
        assert_eq!(send("GET", url, None, None).await.0, 401, "node {i}");
    }
    // /health stays open on every node.
    assert!(cluster.health(follower).await.is_some());
}

#[test]
fn check_with_a_token_passes_against_a_cluster_with_tokens() {
    let t = Tokens::new();
    let (_dir, path) = tokens_file(&t.file_text(), 0o600);
    let out = tempfile::NamedTempFile::new().unwrap();
    let run = |token: Option<&str>| {
        let mut cmd = std::process::Command::new(binary());
        cmd.args([
            "check",
            "--local",
            "3",
            "--nemesis",
            "partition",
            "--duration",
            "4s",
            "--clients",
            "4",
            "--keys",
            "3",
            "--seed",
            "5",
        ])
        .env_remove("RUST_LOG")
        .env_remove("KVSTORE_TOKEN")
        .env("KVSTORE_CLIENT_TOKENS_FILE", &path)
        .stdin(std::process::Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(out.reopen().unwrap());
        if let Some(tok) = token {
            cmd.env("KVSTORE_TOKEN", tok);
        }
        let child = cmd.spawn().expect("spawn kvstore check");
        let (_tx, rx) = std::sync::mpsc::channel();
        let mut p = KvProcess::wrap(child, rx);
        let status = p.wait_exit(Duration::from_secs(120)).expect("check ends");
        (
            status.success(),
            std::fs::read_to_string(out.path()).unwrap(),
        )
    };
    let (ok, printed) = run(Some(&t.admin));
    assert!(ok, "{printed}");
    assert!(printed.contains("verdict: LINEARIZABLE"), "{printed}");
    assert!(
        printed.contains("faults ("),
        "no fault was injected:\n{printed}"
    );
    assert!(!printed.contains(&t.admin), "the token was printed");
}
