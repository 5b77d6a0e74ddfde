//! `GET /metrics`, `/livez`, `/readyz`: in process (content type, bounded route labels, tokens)
//! and on a 3-node process cluster (every contract metric with its type, requests counted per
//! node, one leader, indexes that agree with `/health`, readiness lost when the peers die).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::test as at;
use kvstore::api::{self, auth::parse_tokens, Limits};
use serde_json::Value;

use crate::cluster_proc::ProcCluster;
use crate::helpers::{call_app, client, poll_until, put, state_with};

/// Every metric name of the contract (issue #14) and its `# TYPE`.
const CONTRACT: [(&str, &str); 23] = [
    ("kvstore_http_requests_total", "counter"),
    ("kvstore_http_request_duration_seconds", "histogram"),
    ("kvstore_raft_term", "gauge"),
    ("kvstore_raft_is_leader", "gauge"),
    ("kvstore_raft_role", "gauge"),
    ("kvstore_raft_commit_index", "gauge"),
    ("kvstore_raft_applied_index", "gauge"),
    ("kvstore_raft_last_log_index", "gauge"),
    ("kvstore_raft_leader_changes_total", "counter"),
    ("kvstore_raft_elections_started_total", "counter"),
    ("kvstore_raft_proposals_pending", "gauge"),
    ("kvstore_raft_reads_pending", "gauge"),
    ("kvstore_apply_lag", "gauge"),
    ("kvstore_keys", "gauge"),
    ("kvstore_raft_peer_lag", "gauge"),
    ("kvstore_raft_peer_rpc_duration_seconds", "histogram"),
    ("kvstore_raft_peer_rpc_errors_total", "counter"),
    ("kvstore_wal_fsync_duration_seconds", "histogram"),
    ("kvstore_wal_bytes_written_total", "counter"),
    ("kvstore_wal_batch_entries", "histogram"),
    ("kvstore_snapshots_total", "counter"),
    ("kvstore_snapshot_duration_seconds", "histogram"),
    ("kvstore_snapshot_bytes", "gauge"),
];

/// Prometheus text, parsed: `# TYPE` by family, and every sample as (name, labels, value).
#[derive(Debug, Default)]
struct Scrape {
    types: HashMap<String, String>,
    samples: Vec<(String, HashMap<String, String>, f64)>,
}

impl Scrape {
    /// Parses the text format strictly enough to catch a malformed line.
    fn parse(text: &str) -> Scrape {
        let mut s = Scrape::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                s.types.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample: series value");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series, HashMap::new()),
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("labels end with }");
                    let labels = body
                        .split("\",")
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            let (k, v) = p.split_once("=\"").expect("label k=\"v\"");
                            (k.to_owned(), v.trim_end_matches('"').to_owned())
                        })
                        .collect();
                    (name, labels)
                }
            };
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad metric name in {line:?}"
            );
            s.samples.push((name.to_owned(), labels, value));
        }
        s
    }

    /// The value of the sample `name` whose labels include `labels`, if any.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| *v)
    }

    /// Sum of every sample `name` whose labels include `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| *v)
            .sum()
    }
}

async fn scrape(base: &str) -> Result<Scrape, String> {
    let mut res = client()
        .get(format!("{base}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if res.status() != 200 {
        return Err(format!("/metrics answered {}", res.status()));
    }
    let ct = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let body = res.body().limit(1 << 22).await.map_err(|e| e.to_string())?;
    Ok(Scrape::parse(std::str::from_utf8(&body).expect("UTF-8")))
}

async fn get_json(url: &str) -> Result<(u16, Value), String> {
    let mut res = client()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body = res.body().await.map_err(|e| e.to_string())?;
    let v = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    Ok((res.status().as_u16(), v))
}

#[actix_web::test]
async fn metrics_count_by_route_pattern_and_unknown_paths_share_one_series() {
    let app = at::init_service(api::app(state_with(Limits::default()))).await;
    for i in 0..50 {
        let req = at::TestRequest::get().uri(&format!("/no/such/path/{i}"));
        assert_eq!(call_app(&app, req).await.0, 404);
    }
    let req = at::TestRequest::delete().uri("/cluster/members/nobody");
    call_app(&app, req).await;
    let (status, headers, body) = call_app(&app, at::TestRequest::get().uri("/metrics")).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers.get(header::CONTENT_TYPE).unwrap(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let m = Scrape::parse(std::str::from_utf8(&body).unwrap());
    let unmatched: Vec<_> = m
        .samples
        .iter()
        .filter(|(n, l, _)| {
            n == "kvstore_http_requests_total" && l["route"] == "unmatched" && l["method"] == "GET"
        })
        .collect();
    assert_eq!(unmatched.len(), 1, "{unmatched:?}");
    assert_eq!(unmatched[0].2, 50.0);
    assert!(
        !m.samples.iter().any(|(_, l, _)| l
            .get("route")
            .is_some_and(|r| r.contains("nobody") || r.contains("/no/"))),
        "a raw path became a label"
    );
    assert_eq!(
        m.value(
            "kvstore_http_requests_total",
            &[("route", "/cluster/members/{id}"), ("method", "DELETE")]
        )
        .map(|v| v >= 1.0),
        Some(true)
    );
    for (name, kind) in CONTRACT {
        assert_eq!(m.types.get(name).map(String::as_str), Some(kind), "{name}");
    }
}

#[actix_web::test]
async fn probes_need_no_token_and_metrics_needs_the_read_role() {
    let read = uuid::Uuid::new_v4().simple().to_string();
    let text = format!("read {read}\n");
    let mut state = state_with(Limits::default());
    state.client_tokens = Some(Arc::new(parse_tokens(&text).unwrap()));
    let app = at::init_service(api::app(state)).await;
    let (status, _, body) = call_app(&app, at::TestRequest::get().uri("/livez")).await;
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"ok":true,"status":"live"}"#);
    let (status, _, _) = call_app(&app, at::TestRequest::get().uri("/metrics")).await;
    assert_eq!(status, 401);
    let req = at::TestRequest::get()
        .uri("/metrics")
        .insert_header((header::AUTHORIZATION, format!("Bearer {read}")));
    assert_eq!(call_app(&app, req).await.0, 200);
    // A single node elects itself: ready once it leads and has applied its first entry.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, body) = call_app(&app, at::TestRequest::get().uri("/readyz")).await;
        let v: Value = serde_json::from_slice(&body).unwrap();
        if status == 200 {
            assert_eq!(v["ok"], true);
            assert_eq!(v["status"], "ready");
            assert_eq!(v["leaderId"], "t1");
            assert!(v["appliedIndex"].as_u64().unwrap() >= 1, "{v}");
            break;
        }
        assert_eq!(status, 503, "{v}");
        assert!(
            v["message"].as_str().unwrap().starts_with("not ready: "),
            "{v}"
        );
        assert!(std::time::Instant::now() < deadline, "never ready: {v}");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    // It won one election (in the step that started it) and has seen one leader, itself.
    let req = at::TestRequest::get()
        .uri("/metrics")
        .insert_header((header::AUTHORIZATION, format!("Bearer {read}")));
    let (_, _, body) = call_app(&app, req).await;
    let m = Scrape::parse(std::str::from_utf8(&body).unwrap());
    assert_eq!(
        m.value("kvstore_raft_elections_started_total", &[]),
        Some(1.0)
    );
    assert_eq!(m.value("kvstore_raft_leader_changes_total", &[]), Some(1.0));
    assert_eq!(
        m.value("kvstore_raft_role", &[("role", "leader")]),
        Some(1.0)
    );
}

#[actix_web::test]
async fn a_cluster_reports_its_metrics_per_node_and_readiness_follows_the_leader() {
    let mut cluster = ProcCluster::start(3);
    let (leader, _) = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let sent = [3usize, 4, 5];
    for (i, n) in sent.iter().enumerate() {
        for k in 0..*n {
            let (status, body, _) = put(&cluster.url(i), &format!("k{i}-{k}"), "v").await;
            assert_eq!(status, 200, "{body}");
        }
    }
    let total: usize = sent.iter().sum();

    // Once idle, each node's gauges agree with its /health (read before and after the scrape).
    for (i, sent_here) in sent.iter().enumerate() {
        let url = cluster.url(i);
        let got = poll_until(Duration::from_secs(10), || async {
            let before = get_json(&format!("{url}/health")).await?.1;
            let m = scrape(&url).await?;
            let after = get_json(&format!("{url}/health")).await?.1;
            // A follower applies a commit index it learned before the leader has its
            // acknowledgement of the same append: the leader's peer lag reaches 0 a round trip
            // later, so that is part of "idle" too.
            let acked = m.value("kvstore_raft_is_leader", &[]) != Some(1.0)
                || m.sum("kvstore_raft_peer_lag", &[]) == 0.0;
            let idle = before["commitIndex"] == after["commitIndex"]
                && before["appliedIndex"] == after["appliedIndex"]
                && after["commitIndex"] == after["appliedIndex"]
                && acked;
            match idle && after["store"]["keys"].as_u64() == Some(total as u64) {
                true => Ok((m, after)),
                false => Err(format!("not idle yet: {after}")),
            }
        })
        .await;
        let (m, h) = got.unwrap_or_else(|e| panic!("node {i}: {e}"));
        for (name, kind) in CONTRACT {
            let ty = m.types.get(name).map(String::as_str);
            assert_eq!(ty, Some(kind), "node {i}: {name}");
        }
        let commit = h["commitIndex"].as_u64().unwrap() as f64;
        assert_eq!(m.value("kvstore_raft_commit_index", &[]), Some(commit));
        assert_eq!(m.value("kvstore_raft_applied_index", &[]), Some(commit));
        assert_eq!(m.value("kvstore_apply_lag", &[]), Some(0.0));
        assert_eq!(m.value("kvstore_keys", &[]), Some(total as f64));
        assert_eq!(
            m.value("kvstore_raft_term", &[]),
            h["term"].as_u64().map(|t| t as f64)
        );
        let sets = m.sum(
            "kvstore_http_requests_total",
            &[("route", "/set"), ("method", "PUT"), ("status", "200")],
        );
        // Followers relay their writes to the leader, which counts those too.
        let expected = if i == leader { total } else { *sent_here };
        assert_eq!(sets, expected as f64, "node {i} (leader {leader})");
        let leading = i == leader;
        assert_eq!(
            m.value("kvstore_raft_is_leader", &[]),
            Some(f64::from(u8::from(leading))),
            "node {i}"
        );
        let role = if leading { "leader" } else { "follower" };
        assert_eq!(m.value("kvstore_raft_role", &[("role", role)]), Some(1.0));
        assert_eq!(m.sum("kvstore_raft_role", &[]), 1.0, "one role at a time");
        assert!(m.value("kvstore_raft_leader_changes_total", &[]).unwrap() >= 1.0);
        if leading {
            assert!(m.sum("kvstore_wal_batch_entries_count", &[]) >= 1.0);
            assert!(m.value("kvstore_wal_bytes_written_total", &[]).unwrap() > 0.0);
            for peer in ["n1", "n2", "n3"]
                .iter()
                .filter(|p| **p != format!("n{}", i + 1))
            {
                assert_eq!(
                    m.value("kvstore_raft_peer_lag", &[("peer", peer)]),
                    Some(0.0)
                );
                let rpcs = m.sum(
                    "kvstore_raft_peer_rpc_duration_seconds_count",
                    &[("peer", peer), ("rpc", "append")],
                );
                assert!(rpcs >= 1.0, "no append RPC to {peer} observed");
            }
        } else {
            assert_eq!(m.sum("kvstore_raft_peer_lag", &[]), 0.0);
        }
    }

    // Ready everywhere, live everywhere.
    for i in 0..3 {
        let (status, v) = get_json(&format!("{}/readyz", cluster.url(i)))
            .await
            .unwrap();
        assert_eq!(status, 200, "node {i}: {v}");
        assert_eq!(v["leaderId"], format!("n{}", leader + 1));
        let (status, v) = get_json(&format!("{}/livez", cluster.url(i)))
            .await
            .unwrap();
        assert_eq!((status, v["status"].as_str()), (200, Some("live")));
    }

    // Kill the two others: the node left (the leader) steps down and knows of no leader.
    for i in (0..3).filter(|i| *i != leader) {
        cluster.kill(i);
    }
    let url = format!("{}/readyz", cluster.url(leader));
    let last = poll_until(Duration::from_secs(10), || async {
        match get_json(&url).await {
            Ok((503, v)) if v["message"] == "not ready: no leader known" => Ok(v),
            other => Err(format!("{other:?}")),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("/readyz never said no leader: {e}"));
    assert_eq!(last["ok"], false);
    let (status, _) = get_json(&format!("{}/livez", cluster.url(leader)))
        .await
        .unwrap();
    assert_eq!(status, 200, "a node without a leader is still live");
    let m = scrape(&cluster.url(leader)).await.unwrap();
    assert_eq!(m.value("kvstore_raft_is_leader", &[]), Some(0.0));
    assert!(m.sum("kvstore_raft_peer_rpc_errors_total", &[]) >= 1.0);
}
