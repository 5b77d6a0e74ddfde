//! The web dashboard: `/dashboard` and `/dashboard/state` in process (shape, tokens), and the
//! page in a real headless Chromium against a real 3-node cluster: three nodes, one leader;
//! the leader killed, the page shows it down and another node leading.
//!
//! Chromium runs with its own temporary profile, in its own process group, and is killed (the
//! whole group) by its handle when it is done, when its deadline passes or when the test fails.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::test::TestRequest;
use kvstore::api::auth::parse_tokens;
use kvstore::api::{app, Limits};
use serde_json::Value;

use crate::cluster_proc::ProcCluster;
use crate::helpers::{call_app, poll_until, put, state_with};

const READ: &str = "read-0123456789abcdef";

#[actix_web::test]
async fn the_page_is_served_without_a_token_and_the_state_needs_the_read_role() {
    let mut state = state_with(Limits::default());
    state.client_tokens = Some(Arc::new(
        parse_tokens(&format!("read {READ}\n")).expect("tokens parse"),
    ));
    let svc = actix_web::test::init_service(app(state)).await;

    let (status, headers, body) = call_app(&svc, TestRequest::get().uri("/dashboard")).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("content-type").unwrap(),
        "text/html; charset=utf-8"
    );
    assert!(headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("connect-src 'self'"));
    assert!(std::str::from_utf8(&body)
        .unwrap()
        .contains("/dashboard/state"));

    let (status, headers, _) = call_app(&svc, TestRequest::get().uri("/dashboard/state")).await;
    assert_eq!(status, 401);
    assert!(headers
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("Bearer"));

    let req = TestRequest::get()
        .uri("/dashboard/state")
        .insert_header(("authorization", format!("Bearer {READ}")));
    let (status, _, body) = call_app(&svc, req).await;
    assert_eq!(status, 200);
    let st: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(st["ok"], true);
    assert_eq!(st["servedBy"], "t1");
    assert!(st["at"].as_u64().unwrap() > 0);
    let members = st["members"].as_array().unwrap();
    assert_eq!(members.len(), 1);
    let me = &members[0];
    assert_eq!(me["id"], "t1");
    assert_eq!(me["self"], true);
    assert_eq!(me["reachable"], true);
    assert_eq!(me["state"], "up");
    assert_eq!(me["role"], "voter");
    assert_eq!(me["health"]["id"], "t1");
    assert!(me["health"]["store"]["keys"].is_u64());
    // Its URL (127.0.0.1:1) serves nothing: no metrics, and that is not an error.
    assert_eq!(me["metrics"], Value::Null);

    let (status, _, _) = call_app(&svc, TestRequest::post().uri("/dashboard")).await;
    assert_eq!(status, 405);
    let (status, _, _) = call_app(
        &svc,
        TestRequest::delete()
            .uri("/dashboard/state")
            .insert_header(("authorization", format!("Bearer {READ}"))),
    )
    .await;
    assert_eq!(status, 405);
}

/// `chromium` (or `chromium-browser`) on PATH.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|n| dir.join(n)))
        .find(|p| p.is_file())
}

/// A Chromium process group, killed whole when dropped.
struct Browser {
    child: Child,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        // SAFETY: signalling the process group this test created (its leader is our child).
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The DOM of `url` after the page ran for a few (virtual) seconds, by `chromium --headless
/// --dump-dom`; at most `within` of real time.
fn dump_dom(chromium: &PathBuf, url: &str, within: Duration) -> Result<String, String> {
    let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
    let child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--virtual-time-budget=2500",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("chromium did not start: {e}"))?;
    let mut browser = Browser { child };
    let mut stdout = browser.child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + within;
    loop {
        match browser.child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                drop(browser);
                return Err(format!("chromium did not finish within {within:?}"));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    // Kills what is left of the group (helpers), which closes the pipe.
    drop(browser);
    reader.join().map_err(|_| "reader panicked".to_string())
}

/// One node card of the dumped DOM.
#[derive(Debug, Clone, PartialEq)]
struct NodeCard {
    id: String,
    role: String,
    state: String,
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    Some(tag[start..start + len].to_owned())
}

/// The `<article data-node-id=.. data-role=.. data-state=..>` cards of `dom`.
fn cards(dom: &str) -> Vec<NodeCard> {
    dom.match_indices("<article")
        .filter_map(|(i, _)| {
            let tag = &dom[i..i + dom[i..].find('>')?];
            Some(NodeCard {
                id: attr(tag, "data-node-id")?,
                role: attr(tag, "data-role").unwrap_or_default(),
                state: attr(tag, "data-state").unwrap_or_default(),
            })
        })
        .collect()
}

/// Dump `url` again and again until `ok` accepts its cards, for at most `within`.
fn wait_for_cards(
    chromium: &PathBuf,
    url: &str,
    within: Duration,
    what: &str,
    ok: impl Fn(&[NodeCard]) -> bool,
) -> Vec<NodeCard> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let last = match dump_dom(chromium, url, left.max(Duration::from_secs(1))) {
            Ok(dom) => {
                let found = cards(&dom);
                if ok(&found) {
                    return found;
                }
                format!("cards {found:?}")
            }
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            panic!("the dashboard never showed {what} within {within:?}; last: {last}");
        }
    }
}

#[actix_web::test]
async fn the_dashboard_in_a_headless_browser_shows_the_leader_and_its_failover() {
    let Some(chromium) = chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!("chromium is not installed (apt-get install chromium); CI must have it");
        }
        eprintln!(
            "\n==================================================================\n\
             SKIPPED: chromium not installed (apt-get install chromium)\n\
             ==================================================================\n"
        );
        return;
    };
    let mut cluster = ProcCluster::start(3);
    let (leader, _) = cluster.wait_for_leader(Duration::from_secs(20)).await;
    for i in 0..5 {
        let (status, _, _) = put(&cluster.url(leader), &format!("k{i}"), "v").await;
        assert_eq!(status, 200);
    }
    // Served by a follower, which outlives the leader.
    let served = (leader + 1) % 3;
    let url = format!("{}/dashboard", cluster.url(served));
    let leader_id = format!("n{}", leader + 1);

    let c = leader_id.clone();
    let found = actix_web::rt::task::spawn_blocking({
        let (chromium, url) = (chromium.clone(), url.clone());
        move || {
            wait_for_cards(
                &chromium,
                &url,
                Duration::from_secs(90),
                "three nodes up, one leader",
                |cards| {
                    cards.len() == 3
                        && cards.iter().all(|n| n.state == "up")
                        && cards.iter().filter(|n| n.role == "leader").count() == 1
                        && cards.iter().any(|n| n.role == "leader" && n.id == c)
                },
            )
        }
    })
    .await
    .expect("browser thread");
    let mut ids: Vec<_> = found.iter().map(|n| n.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["n1", "n2", "n3"]);

    cluster.kill(leader);
    // The survivors elect a new leader (checked through /health, independently of the page).
    poll_until(Duration::from_secs(20), || async {
        let h = cluster.health(served).await.ok_or("no health")?;
        match h["leaderId"].as_str() {
            Some(l) if l != leader_id => Ok(()),
            other => Err(format!("leader {other:?}")),
        }
    })
    .await
    .expect("a new leader");

    let old = leader_id.clone();
    let after = actix_web::rt::task::spawn_blocking(move || {
        wait_for_cards(
            &chromium,
            &url,
            Duration::from_secs(90),
            "the old leader down and a new one",
            |cards| {
                cards.len() == 3
                    && cards
                        .iter()
                        .any(|n| n.id == old && n.state == "down" && n.role != "leader")
                    && cards
                        .iter()
                        .filter(|n| n.role == "leader" && n.state == "up")
                        .count()
                        == 1
                    && cards.iter().all(|n| n.role != "leader" || n.id != old)
            },
        )
    })
    .await
    .expect("browser thread");
    let new_leader = after.iter().find(|n| n.role == "leader").unwrap();
    assert_ne!(new_leader.id, leader_id);
}

#[test]
fn cards_are_read_from_the_dom() {
    let dom = r#"<div id="nodes"><article class="node" data-node-id="n1" data-role="leader" data-state="up"><span>x</span></article><article class="node self" data-node-id="n2" data-role="unknown" data-state="down"></article></div>"#;
    assert_eq!(
        cards(dom),
        vec![
            NodeCard {
                id: "n1".into(),
                role: "leader".into(),
                state: "up".into()
            },
            NodeCard {
                id: "n2".into(),
                role: "unknown".into(),
                state: "down".into()
            },
        ]
    );
}
