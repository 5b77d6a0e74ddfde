//! `kvstore get|set|delete|status|member|leader|backup`: the real binary as a script would run
//! it, against a 3-node process cluster, a node with client tokens, and in-test servers that
//! serve `GET /admin/snapshot` fixtures (good, corrupted, unavailable). Exit codes are checked
//! exactly (0 ok, 1 not found / refused / bad download, 2 usage, 3 unavailable).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::Value;

use crate::cluster_proc::ProcCluster;
use crate::helpers::{binary, free_port, poll_until, KvProcess};

const WAIT: Duration = Duration::from_secs(20);

/// What one run of the client printed and how it ended.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Run `kvstore ARGS` with `env` (the caller's `KVSTORE_*` removed) and `stdin`; killed if it
/// has not ended within 60 s.
fn kv(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Out {
    let dir = tempfile::tempdir().expect("temp dir");
    let (out_path, err_path, in_path) = (
        dir.path().join("out"),
        dir.path().join("err"),
        dir.path().join("in"),
    );
    std::fs::write(&in_path, stdin.unwrap_or_default()).unwrap();
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .stdin(match stdin {
            Some(_) => Stdio::from(std::fs::File::open(&in_path).unwrap()),
            None => Stdio::null(),
        })
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    for (k, _) in std::env::vars() {
        if k.starts_with("KVSTORE_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    let child = cmd.spawn().expect("spawn the client");
    let (_tx, rx) = mpsc::channel();
    let mut p = KvProcess::wrap(child, rx);
    let status = p
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("kvstore {args:?} did not end within 60 s"));
    Out {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&out_path).unwrap(),
        stderr: std::fs::read_to_string(&err_path).unwrap(),
    }
}

/// `kv` that must exit with `code`.
fn expect(code: i32, args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Out {
    let out = kv(args, env, stdin);
    assert_eq!(out.code, code, "kvstore {args:?}: {out:#?}");
    out
}

/// A URL where nothing listens.
fn dead_url() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

#[actix_web::test]
async fn keys_round_trip_through_the_cli_with_exit_codes_scripts_can_rely_on() {
    let c = ProcCluster::start(3);
    c.wait_for_leader(WAIT).await;
    // The first endpoint is dead: the next one answers.
    let eps = format!("{},{},{}", dead_url(), c.url(1), c.url(2));
    let e = ["--endpoints", eps.as_str()];
    let with = |rest: &[&'static str]| -> Vec<&str> {
        e.iter().copied().chain(rest.iter().copied()).collect()
    };
    let out = expect(0, &with(&["set", "name", "luffy"]), &[], None);
    assert_eq!(out.stdout, "stored\n");
    let out = expect(0, &with(&["get", "name"]), &[], None);
    assert_eq!(out.stdout, "luffy\n");
    // The environment works like the flag; options go after the command too.
    let out = expect(
        0,
        &["get", "name", "--consistency", "stale", "--output", "json"],
        &[("KVSTORE_ENDPOINTS", eps.as_str())],
        None,
    );
    let v: Value = serde_json::from_str(out.stdout.trim()).expect("one line of JSON");
    assert_eq!(
        (v["ok"].as_bool(), v["value"].as_str()),
        (Some(true), Some("luffy"))
    );
    // A value from stdin, byte for byte; `-` says the same; a value that starts with a dash.
    expect(0, &with(&["set", "note"]), &[], Some(b"line 1\nline 2\n"));
    assert_eq!(
        expect(0, &with(&["get", "note"]), &[], None).stdout,
        "line 1\nline 2\n\n"
    );
    expect(0, &with(&["set", "dash", "-"]), &[], Some(b"x"));
    expect(0, &with(&["set", "neg", "-5"]), &[], None);
    assert_eq!(expect(0, &with(&["get", "neg"]), &[], None).stdout, "-5\n");
    // Missing key: 1 (text and JSON); delete: 0, then 1.
    let out = expect(1, &with(&["get", "nope"]), &[], None);
    assert_eq!(out.stderr.trim(), "error: key not found");
    let out = expect(1, &with(&["--output", "json", "get", "nope"]), &[], None);
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["ok"], false);
    expect(0, &with(&["delete", "name"]), &[], None);
    expect(1, &with(&["delete", "name"]), &[], None);
    expect(1, &with(&["get", "name"]), &[], None);
    // Usage: 2 (clap's own errors, a bad endpoint, a refused key, a value over the limit).
    expect(2, &with(&["get"]), &[], None);
    expect(2, &with(&["frobnicate"]), &[], None);
    expect(2, &["--endpoints", "not-a-url", "get", "k"], &[], None);
    expect(2, &with(&["set", "", "v"]), &[], None);
    let big = vec![b'x'; 1024 * 1024 + 1];
    let out = expect(2, &with(&["set", "big"]), &[], Some(&big));
    assert!(out.stderr.contains("value too large"), "{out:#?}");
    // Nothing answers: 3, and the message names the endpoints.
    let (d1, d2) = (dead_url(), dead_url());
    let dead = format!("{d1},{d2}");
    let out = expect(
        3,
        &["--endpoints", &dead, "--timeout", "2", "get", "k"],
        &[],
        None,
    );
    assert!(
        out.stderr.starts_with("error: no endpoint answered"),
        "{out:#?}"
    );
    assert!(out.stderr.contains(&d2), "{out:#?}");
    // A backup of the real cluster, once the server serves GET /admin/snapshot.
    backup_of_a_real_cluster(&eps).await;
}

/// `kvstore backup` against the cluster behind `eps` (which holds `note`): skipped with a
/// message while the route answers 404 (it comes with the backup lane of issue #14).
async fn backup_of_a_real_cluster(eps: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kv.snap");
    let file_s = file.to_str().unwrap();
    let out = kv(&["--endpoints", eps, "backup", "--out", file_s], &[], None);
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(
        out.stdout.starts_with(&format!("backup: {file_s}, index ")),
        "{out:#?}"
    );
    let snap = kvstore::codec::snapshot::decode(&std::fs::read(&file).unwrap()).unwrap();
    assert!(
        snap.pairs
            .iter()
            .any(|(k, v)| k == "note" && v == "line 1\nline 2\n"),
        "the backup lacks an acknowledged key"
    );
    assert!(!Path::new(&format!("{file_s}.part")).exists());
}

#[actix_web::test]
async fn status_member_and_leader_commands_follow_a_changing_cluster() {
    let mut c = ProcCluster::start(3);
    let (leader, _) = c.wait_for_leader(WAIT).await;
    let eps = format!("{},{},{}", c.url(0), c.url(1), c.url(2));
    let e = |rest: &[&str]| -> Vec<String> {
        ["--endpoints", eps.as_str()]
            .iter()
            .chain(rest)
            .map(|s| s.to_string())
            .collect()
    };
    let run = |code: i32, rest: &[&str]| {
        let args = e(rest);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        expect(code, &args, &[], None)
    };
    // Three members, one leader, every one answering.
    let out = run(0, &["status", "--output", "json"]);
    let rows: Vec<Value> = serde_json::from_str(out.stdout.trim()).expect("a JSON array");
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let leaders: Vec<&Value> = rows.iter().filter(|r| r["state"] == "leader").collect();
    assert_eq!(leaders.len(), 1, "{rows:#?}");
    assert_eq!(leaders[0]["id"], format!("n{}", leader + 1));
    assert!(
        rows.iter().all(|r| r["leaderId"] == leaders[0]["id"]),
        "{rows:#?}"
    );
    let out = run(0, &["status"]);
    assert_eq!(out.stdout.lines().count(), 4, "{}", out.stdout);
    assert!(out.stdout.starts_with("ID "), "{}", out.stdout);

    // A learner at an address where nothing runs: added, listed, not promotable (it lags: 1),
    // removed.
    let ghost = dead_url();
    let out = run(0, &["member", "add", "n9", &ghost, "--learner"]);
    assert_eq!(out.stdout.trim(), "member added: n9 (learner)");
    let out = run(0, &["member", "list"]);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("n9 ") && l.contains("learner")),
        "{}",
        out.stdout
    );
    run(1, &["member", "promote", "n9"]);
    run(1, &["member", "remove", "nobody"]);
    run(2, &["member", "add", "n10", "not-a-url"]);
    let out = run(0, &["member", "remove", "n9", "--output", "json"]);
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(
        (v["ok"].as_bool(), v["id"].as_str()),
        (Some(true), Some("n9"))
    );
    let out = run(0, &["member", "list", "--output", "json"]);
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["members"].as_array().map(Vec::len), Some(3), "{v}");

    // Leadership moves to the named follower.
    let target = (leader + 1) % 3;
    let target_id = format!("n{}", target + 1);
    let out = run(0, &["leader", "transfer", &target_id]);
    assert!(
        out.stdout.contains(&format!("{target_id} leads")),
        "{out:#?}"
    );
    let (now, _) = c.wait_for_leader(WAIT).await;
    assert_eq!(now, target);

    // One node killed: shown as down, still exit 0; the others keep a leader.
    let victim = (target + 1) % 3;
    c.kill(victim);
    let victim_id = format!("n{}", victim + 1);
    let rows = poll_until(WAIT, || async {
        let out = kv(
            &e(&["status", "--output", "json"])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            &[],
            None,
        );
        let rows: Vec<Value> =
            serde_json::from_str(out.stdout.trim()).map_err(|_| out.clone_text())?;
        let down = rows
            .iter()
            .any(|r| r["id"] == victim_id.as_str() && r["state"] == "down");
        let led = rows.iter().filter(|r| r["state"] == "leader").count() == 1;
        if out.code == 0 && down && led {
            Ok(rows)
        } else {
            Err(out.clone_text())
        }
    })
    .await
    .unwrap_or_else(|last| panic!("status never showed {victim_id} down: {last}"));
    assert_eq!(rows.len(), 3);
    let out = run(0, &["status"]);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with(&format!("{victim_id} ")) && l.contains(" down ")),
        "{}",
        out.stdout
    );
}

impl Out {
    fn clone_text(&self) -> String {
        format!("exit {}: {}{}", self.code, self.stdout, self.stderr)
    }
}

#[actix_web::test]
async fn a_node_with_client_tokens_refuses_the_cli_without_one_with_exit_1() {
    let tokens = "read rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr\nwrite wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(tokens.as_bytes()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let node = KvProcess::start(
        &["--port", "0", "--host", "127.0.0.1"],
        &[("KVSTORE_CLIENT_TOKENS_FILE", path.to_str().unwrap())],
    );
    let url = node.url("");
    let e = ["--endpoints", url.as_str()];
    let out = expect(1, &[&e[..], &["set", "k", "v"]].concat(), &[], None);
    assert!(out.stderr.contains("--token"), "{out:#?}");
    let w = "wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww";
    expect(
        0,
        &[&e[..], &["--token", w, "set", "k", "v"]].concat(),
        &[],
        None,
    );
    // A read token may read but not write (403: exit 1); KVSTORE_TOKEN works like --token.
    let r = [("KVSTORE_TOKEN", "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr")];
    assert_eq!(
        expect(0, &[&e[..], &["get", "k"]].concat(), &r, None).stdout,
        "v\n"
    );
    expect(1, &[&e[..], &["delete", "k"]].concat(), &r, None);
    let out = kv(&[&e[..], &["get", "k"]].concat(), &[], None);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(!out.stdout.contains('v'), "{out:#?}");
}

/// An in-test server on its own thread that answers `GET /admin/snapshot` with what `answer`
/// makes; stopped when dropped.
struct Fixture {
    url: String,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Fixture {
    fn start(answer: fn() -> HttpResponse) -> Fixture {
        Self::start_at("/admin/snapshot", actix_web::http::Method::GET, answer)
    }

    /// A server that answers `method path` with what `answer` makes.
    fn start_at(
        path: &'static str,
        method: actix_web::http::Method,
        answer: fn() -> HttpResponse,
    ) -> Fixture {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new().route(
                        path,
                        web::route()
                            .method(method.clone())
                            .to(move || async move { answer() }),
                    )
                })
                .workers(1)
                .disable_signals()
                .bind("127.0.0.1:0")
                .expect("bind port 0");
                let port = server.addrs()[0].port();
                let server = server.run();
                tx.send((port, server.handle())).unwrap();
                let _ = server.await;
            })
        });
        let (port, handle) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("fixture server up");
        Fixture {
            url: format!("http://127.0.0.1:{port}"),
            handle,
            thread: Some(thread),
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        actix_web::rt::System::new().block_on(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A real snapshot file's bytes (index 42, term 3, two keys).
fn snapshot_bytes() -> Vec<u8> {
    let meta = kvstore::codec::snapshot::SnapshotMeta { index: 42, term: 3 };
    let pairs = [("a", "1"), ("b", "two")];
    kvstore::codec::snapshot::encode_pairs(meta, None, pairs.iter().map(|(k, v)| (*k, *v)))
}

/// The contract's answer for `body`, with `crc` as the announced checksum.
fn snapshot_answer(body: Vec<u8>, crc: u32) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header(("x-kvstore-snapshot-index", "42"))
        .insert_header(("x-kvstore-snapshot-term", "3"))
        .insert_header(("x-kvstore-snapshot-crc32", format!("{crc:08x}")))
        .body(body)
}

/// How many deletes the second node of the test below was asked.
static SECOND_NODE_DELETES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[test]
fn a_write_that_may_have_been_applied_is_never_sent_to_another_node() {
    use actix_web::http::Method;
    let unsure = Fixture::start_at("/delete", Method::DELETE, || {
        HttpResponse::ServiceUnavailable().json(serde_json::json!({"ok": false, "message":
            "leadership lost before the write was confirmed committed; it may or may not have been applied"}))
    });
    let no_leader = Fixture::start_at("/delete", Method::DELETE, || {
        HttpResponse::ServiceUnavailable().json(
            serde_json::json!({"ok": false, "message": "no leader: an election is under way"}),
        )
    });
    let gateway = Fixture::start_at("/delete", Method::DELETE, || {
        HttpResponse::GatewayTimeout().body("upstream timed out")
    });
    let second = Fixture::start_at("/delete", Method::DELETE, || {
        SECOND_NODE_DELETES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        HttpResponse::Ok().json(serde_json::json!({"ok": true, "message": "deleted", "key": "k"}))
    });
    let deletes = || SECOND_NODE_DELETES.load(std::sync::atomic::Ordering::SeqCst);
    // The first node may have deleted it: asking the second could answer "not found" for a
    // delete that was done (or apply a set twice). Exit 3, saying so; the second never asked.
    for first in [&unsure, &gateway] {
        let eps = format!("{},{}", first.url, second.url);
        let out = expect(3, &["--endpoints", &eps, "delete", "k"], &[], None);
        assert!(out.stderr.contains("not sent again"), "{out:#?}");
        assert_eq!(deletes(), 0, "the second node was asked: {out:#?}");
    }
    // "No leader" means nothing was done: the next node is asked, and answers.
    let eps = format!("{},{},{}", dead_url(), no_leader.url, second.url);
    expect(0, &["--endpoints", &eps, "delete", "k"], &[], None);
    assert_eq!(deletes(), 1);
}

#[test]
fn backup_saves_a_checked_snapshot_and_refuses_a_bad_download() {
    let good = Fixture::start(|| {
        let body = snapshot_bytes();
        let crc = crc32fast::hash(&body[..body.len() - 4]);
        snapshot_answer(body, crc)
    });
    let flipped = Fixture::start(|| {
        let body = snapshot_bytes();
        let crc = crc32fast::hash(&body[..body.len() - 4]);
        let mut bad = body.clone();
        bad[20] ^= 0x10;
        snapshot_answer(bad, crc)
    });
    let not_a_snapshot = Fixture::start(|| {
        let body = b"KVSNAP but not really a snapshot at all, just text".to_vec();
        let crc = crc32fast::hash(&body[..body.len() - 4]);
        snapshot_answer(body, crc)
    });
    let unavailable = Fixture::start(|| {
        HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"ok":false,"message":"no leader"}))
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kv.snap");
    let file_s = file.to_str().unwrap();
    let part = format!("{file_s}.part");

    // A dead endpoint and one without a leader first: the third serves it.
    let eps = format!("{},{},{}", dead_url(), unavailable.url, good.url);
    let out = expect(
        0,
        &["--endpoints", &eps, "backup", "--out", file_s],
        &[],
        None,
    );
    let body = snapshot_bytes();
    assert_eq!(
        out.stdout,
        format!(
            "backup: {file_s}, index 42, term 3, {} bytes, crc32 {:08x}\n",
            body.len(),
            crc32fast::hash(&body[..body.len() - 4])
        )
    );
    assert_eq!(std::fs::read(&file).unwrap(), body);
    assert!(!Path::new(&part).exists());
    // Not a terminal: no progress bar drawn, nothing on stderr.
    assert_eq!(out.stderr, "");
    let out = expect(
        0,
        &[
            "--endpoints",
            &good.url,
            "--output",
            "json",
            "backup",
            "--out",
            file_s,
        ],
        &[],
        None,
    );
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(
        (v["index"].as_u64(), v["term"].as_u64()),
        (Some(42), Some(3))
    );

    // Bad downloads: exit 1, neither FILE nor FILE.part left behind.
    std::fs::remove_file(&file).unwrap();
    for (fixture, why) in [(&flipped, "crc32"), (&not_a_snapshot, "not a snapshot")] {
        let out = expect(
            1,
            &["--endpoints", &fixture.url, "backup", "--out", file_s],
            &[],
            None,
        );
        assert!(out.stderr.starts_with("error: bad download"), "{out:#?}");
        assert!(out.stderr.contains(why), "{out:#?}");
        assert!(!file.exists() && !Path::new(&part).exists());
    }
    // Only unavailable endpoints: 3. No --out: usage, 2.
    let eps = format!("{},{}", dead_url(), unavailable.url);
    expect(
        3,
        &["--endpoints", &eps, "backup", "--out", file_s],
        &[],
        None,
    );
    expect(2, &["--endpoints", &good.url, "backup"], &[], None);
}

#[test]
fn help_lists_the_commands_with_examples_and_the_server_help_still_works() {
    let out = expect(0, &["help"], &[], None);
    for c in [
        "get", "set", "delete", "status", "member", "leader", "backup",
    ] {
        assert!(
            out.stdout.contains(&format!("  {c} ")),
            "{c}: {}",
            out.stdout
        );
    }
    assert!(out.stdout.contains("Examples:"), "{}", out.stdout);
    for c in [
        &["set", "--help"][..],
        &["member", "add", "--help"],
        &["leader", "transfer", "--help"],
    ] {
        let out = expect(0, c, &[], None);
        assert!(out.stdout.contains("Example"), "{c:?}: {}", out.stdout);
    }
    let out = expect(0, &["--help"], &[], None);
    assert!(out.stdout.contains("--peer-port"), "the server's own help");
    assert!(
        out.stdout.contains("kvstore get|set|delete"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("kvstore check"), "{}", out.stdout);
}
