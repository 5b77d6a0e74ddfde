//! TLS on both listeners, with certificates made at run time (rcgen) in a temporary directory:
//! a single HTTPS node; a 3-node cluster with HTTPS client ports and mutual TLS on separate
//! peer ports (election, replication, forwarding to the leader); a node whose peer certificate
//! comes from another CA is kept out; `/raft/*` is 404 on the client port when a peer port is
//! used; `kvstore check` passes against a TLS cluster under kills and partitions. Every process
//! is killed by its handle; every wait is bounded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{free_ports, poll_until, put_via, KvProcess};

/// A CA (certificate and key) that can issue node certificates.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca { cert, key }
    }

    /// Write `dir/ca.pem` (when `as_ca` names it) and `dir/NAME.pem`, `dir/NAME-key.pem`: a
    /// certificate for 127.0.0.1 and localhost signed by this CA.
    fn issue(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().expect("node key");
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("node certificate");
        let (c, k) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}-key.pem")),
        );
        std::fs::write(&c, cert.pem()).expect("write cert");
        std::fs::write(&k, key.serialize_pem()).expect("write key");
        (c, k)
    }

    fn write(&self, path: &Path) {
        std::fs::write(path, self.cert.pem()).expect("write CA");
    }
}

/// An HTTPS client that trusts only `ca`.
fn https_client(ca: &Path) -> awc::Client {
    let tls = kvstore::tls::client_config(ca, None).expect("client TLS");
    kvstore::tls::awc_client(Some(&tls), Duration::from_secs(5), Duration::from_secs(10))
}

/// Start `kvstore` with `args` and `envs`; wait for its "listening on https://" line.
fn start_https(args: &[&str], envs: &[(&str, &str)]) -> KvProcess {
    let mut p = KvProcess::spawn(args, envs);
    if let Err(seen) = p.wait_for_line(Duration::from_secs(20), |l| {
        l.contains("listening on https://")
    }) {
        panic!("kvstore did not start with TLS; it printed:\n{seen}");
    }
    p
}

async fn health(client: &awc::Client, base: &str) -> Option<Value> {
    let mut res = client.get(format!("{base}/health")).send().await.ok()?;
    serde_json::from_slice(&res.body().await.ok()?).ok()
}

async fn get(client: &awc::Client, base: &str, key: &str, stale: bool) -> (u16, Value) {
    let c = if stale { "&consistency=stale" } else { "" };
    let mut res = client
        .get(format!("{base}/get?key={key}{c}"))
        .send()
        .await
        .expect("GET answered");
    let body = res.body().await.expect("body");
    (
        res.status().as_u16(),
        serde_json::from_slice(&body).expect("JSON"),
    )
}

#[actix_web::test]
async fn a_single_node_serves_https_with_the_ca_and_refuses_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    ca.write(&dir.path().join("ca.pem"));
    let (cert, key) = ca.issue(dir.path(), "n1");
    let port = free_ports(1)[0].to_string();
    let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
    let _node = start_https(
        &[
            "--host",
            "127.0.0.1",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
        &[("KVSTORE_PORT", &port)],
    );
    let base = format!("https://127.0.0.1:{port}");
    let client = https_client(&dir.path().join("ca.pem"));
    let h = health(&client, &base).await.expect("health over https");
    assert_eq!(h["url"], base.as_str(), "the advertise URL is https: {h}");
    let (status, body, _) = put_via(&client, &base, "k", "v").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&client, &base, "k", false).await;
    assert_eq!((status, &body["value"]), (200, &Value::from("v")), "{body}");
    // Plain HTTP to the TLS port gets no answer.
    let plain = awc::Client::builder()
        .timeout(Duration::from_secs(5))
        .finish();
    let res = plain
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await;
    assert!(
        res.is_err(),
        "plain http was answered: {:?}",
        res.map(|r| r.status())
    );
    // A client that does not trust this CA cannot connect either.
    let other = Ca::new("other CA");
    other.write(&dir.path().join("other.pem"));
    let res = https_client(&dir.path().join("other.pem"))
        .get(format!("{base}/health"))
        .send()
        .await;
    assert!(res.is_err(), "an untrusted certificate was accepted");
}

#[test]
fn a_missing_or_bad_tls_file_stops_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (cert, _) = ca.issue(dir.path(), "n1");
    let junk = dir.path().join("junk-key.pem");
    std::fs::write(&junk, "not a key").unwrap();
    let missing = dir.path().join("missing.pem");
    for (c, k, named) in [
        (&missing, &junk, "missing.pem"),
        (&cert, &junk, "junk-key.pem"),
    ] {
        let mut p = KvProcess::spawn(
            &[
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--tls-cert",
                &c.to_string_lossy(),
                "--tls-key",
                &k.to_string_lossy(),
            ],
            &[],
        );
        let status = p
            .wait_exit(Duration::from_secs(20))
            .expect("the node exits");
        assert!(!status.success());
        let printed = p.remaining_stderr(Duration::from_secs(10));
        assert!(
            printed.iter().any(|l| l.contains(named)),
            "no line names {named}: {printed:?}"
        );
    }
}

#[actix_web::test]
async fn with_a_peer_port_raft_routes_are_404_on_the_client_port_and_health_names_the_peer_url() {
    let ports = free_ports(2);
    let (port, peer) = (ports[0].to_string(), ports[1].to_string());
    let mut node = KvProcess::start(
        &["--host", "127.0.0.1", "--peer-port", &peer],
        &[("KVSTORE_PORT", &port)],
    );
    let client = crate::helpers::client();
    let base = format!("http://127.0.0.1:{port}");
    let h = health(&client, &base).await.expect("health");
    assert_eq!(
        h["peerUrl"],
        format!("http://127.0.0.1:{peer}").as_str(),
        "{h}"
    );
    for route in ["vote", "append", "snapshot"] {
        let mut res = client
            .post(format!("{base}/raft/{route}"))
            .send_body("{}")
            .await
            .expect("answered");
        assert_eq!(
            res.status().as_u16(),
            404,
            "/raft/{route} on the client port"
        );
        let body: Value = serde_json::from_slice(&res.body().await.unwrap()).unwrap();
        assert_eq!(body["ok"], false, "{body}");
        // On the peer port the route exists (refused here: no cluster id).
        let res = client
            .post(format!("http://127.0.0.1:{peer}/raft/{route}"))
            .send_body("{}")
            .await
            .expect("answered");
        assert_ne!(res.status().as_u16(), 404, "/raft/{route} on the peer port");
    }
    // The peer port serves nothing else.
    let res = client
        .get(format!("http://127.0.0.1:{peer}/get?key=a"))
        .send()
        .await
        .expect("answered");
    assert_eq!(res.status().as_u16(), 404);
    // SIGTERM stops both servers and the process.
    node.signal(libc::SIGTERM);
    let status = node.wait_exit(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "the node did not stop cleanly: {status:?}"
    );
}

/// Three nodes with HTTPS client ports and mutual TLS on peer ports. Node `i`'s certificate
/// comes from `cas[i]`, and it trusts `trust[i]` (a CA file) for peer links and forwarding.
struct TlsCluster {
    /// Held so that the processes live (and die) with the cluster.
    _nodes: Vec<KvProcess>,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl TlsCluster {
    fn start(cas: [&Ca; 3], dir: tempfile::TempDir) -> TlsCluster {
        let ports = free_ports(6);
        let cluster_id = format!("tls-{}", uuid::Uuid::new_v4().simple());
        let mut nodes = Vec::new();
        for i in 0..3 {
            let ca_file = dir.path().join(format!("ca{i}.pem"));
            cas[i].write(&ca_file);
            let (cert, key) = cas[i].issue(dir.path(), &format!("n{}", i + 1));
            let peers: Vec<String> = (0..3)
                .filter(|j| *j != i)
                .map(|j| format!("https://127.0.0.1:{}", ports[3 + j]))
                .collect();
            let (cert, key, ca_file) = (
                cert.to_string_lossy().into_owned(),
                key.to_string_lossy().into_owned(),
                ca_file.to_string_lossy().into_owned(),
            );
            let envs = [
                ("NODE_ID", format!("n{}", i + 1)),
                ("KVSTORE_PORT", ports[i].to_string()),
                ("KVSTORE_PEER_PORT", ports[3 + i].to_string()),
                ("PEERS", peers.join(",")),
                ("KVSTORE_CLUSTER_ID", cluster_id.clone()),
                ("KVSTORE_TLS_CERT", cert.clone()),
                ("KVSTORE_TLS_KEY", key.clone()),
                ("KVSTORE_PEER_TLS_CERT", cert),
                ("KVSTORE_PEER_TLS_KEY", key),
                ("KVSTORE_PEER_CA", ca_file),
            ];
            let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            nodes.push(start_https(&["--host", "127.0.0.1"], &envs));
        }
        TlsCluster {
            _nodes: nodes,
            ports,
            _dir: dir,
        }
    }

    fn url(&self, i: usize) -> String {
        format!("https://127.0.0.1:{}", self.ports[i])
    }

    fn peer_url(&self, i: usize) -> String {
        format!("https://127.0.0.1:{}", self.ports[3 + i])
    }
}

/// Wait until one of `among` leads and the others of `among` follow it in its term: (leader
/// index, term).
async fn stable_leader(
    client: &awc::Client,
    c: &TlsCluster,
    among: &[usize],
) -> Result<(usize, u64), String> {
    poll_until(Duration::from_secs(20), || async {
        let mut hs = Vec::new();
        for &i in among {
            hs.push((i, health(client, &c.url(i)).await.ok_or("no health")?));
        }
        let leaders: Vec<_> = hs.iter().filter(|(_, h)| h["state"] == "leader").collect();
        let [(l, lh)] = leaders[..] else {
            return Err(format!("leaders: {}", leaders.len()));
        };
        let term = lh["term"].as_u64().ok_or("no term")?;
        if hs
            .iter()
            .all(|(_, h)| h["term"] == term && h["leaderId"] == lh["id"])
        {
            Ok((*l, term))
        } else {
            Err("not settled".into())
        }
    })
    .await
}

#[actix_web::test]
async fn a_cluster_with_https_clients_and_peer_mtls_elects_replicates_and_forwards() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster CA");
    let c = TlsCluster::start([&ca, &ca, &ca], dir);
    let client = https_client(&c._dir.path().join("ca0.pem"));
    let (leader, _) = stable_leader(&client, &c, &[0, 1, 2])
        .await
        .expect("a leader over mutual TLS");
    let follower = (leader + 1) % 3;
    // A write through a follower is forwarded to the leader's client (https) URL.
    let (status, body, via) = put_via(&client, &c.url(follower), "tls-key", "tls-value").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        via.as_deref(),
        Some(c.url(leader).as_str()),
        "forwarded to the leader"
    );
    for i in 0..3 {
        let got = poll_until(Duration::from_secs(10), || async {
            let (s, b) = get(&client, &c.url(i), "tls-key", true).await;
            if s == 200 && b["value"] == "tls-value" {
                Ok(())
            } else {
                Err(format!("{s} {b}"))
            }
        })
        .await;
        assert!(got.is_ok(), "node {i} did not replicate: {got:?}");
        let h = health(&client, &c.url(i)).await.expect("health");
        assert_eq!(h["peerUrl"], c.peer_url(i).as_str(), "{h}");
        assert_eq!(h["url"], c.url(i).as_str(), "{h}");
        assert_eq!(
            h["leader"],
            c.url(leader).as_str(),
            "the leader hint is its client URL"
        );
    }
    // Raft routes are not on the client port.
    let res = client
        .post(format!("{}/raft/append", c.url(leader)))
        .send_body("{}")
        .await
        .expect("answered");
    assert_eq!(res.status().as_u16(), 404);
    // A client without a peer certificate cannot even reach the peer port's routes.
    let res = client
        .post(format!("{}/raft/vote", c.peer_url(leader)))
        .send_body("{}")
        .await;
    assert!(
        res.is_err(),
        "the peer port answered a client without a certificate"
    );
}

#[actix_web::test]
async fn a_node_whose_peer_certificate_comes_from_another_ca_cannot_take_part() {
    let dir = tempfile::tempdir().unwrap();
    let (good, bad) = (Ca::new("cluster CA"), Ca::new("intruder CA"));
    let c = TlsCluster::start([&good, &good, &bad], dir);
    let good_client = https_client(&c._dir.path().join("ca0.pem"));
    let bad_client = https_client(&c._dir.path().join("ca2.pem"));
    let (leader, term) = stable_leader(&good_client, &c, &[0, 1])
        .await
        .expect("the two good nodes elect a leader");
    let (status, body, _) = put_via(&good_client, &c.url(leader), "k", "v").await;
    assert_eq!(status, 200, "{body}");
    // For a while (bounded), the intruder never learns a leader nor gets the write, and the
    // good nodes keep their leader and term.
    let changed = poll_until(Duration::from_secs(3), || async {
        let b = health(&bad_client, &c.url(2)).await.ok_or("no health")?;
        if !b["leaderId"].is_null() || b["store"]["keys"] != 0 {
            return Ok(format!("the intruder learned something: {b}"));
        }
        for i in [0, 1] {
            let h = health(&good_client, &c.url(i)).await.ok_or("no health")?;
            if h["term"] != term || h["leaderId"] != format!("n{}", leader + 1).as_str() {
                return Ok(format!("node {i} changed: {h}"));
            }
        }
        Err("unchanged".to_owned())
    })
    .await;
    assert!(changed.is_err(), "{changed:?}");
}

#[test]
fn check_passes_against_a_cluster_with_tls_on_both_listeners_under_kills_and_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("check CA");
    ca.write(&dir.path().join("ca.pem"));
    for i in 1..=3 {
        ca.issue(dir.path(), &format!("n{i}"));
    }
    let tls_dir = dir.path().to_string_lossy().into_owned();
    let (ok, printed) = crate::check::run_check(&[
        "--local",
        "3",
        "--tls-dir",
        &tls_dir,
        "--nemesis",
        "kill,partition",
        "--duration",
        "10s",
        "--clients",
        "8",
        "--keys",
        "5",
        "--seed",
        "7",
    ]);
    assert!(ok, "the check failed:\n{printed}");
    assert!(printed.contains("verdict: LINEARIZABLE"), "{printed}");
    assert!(printed.contains("replicas converged"), "{printed}");
    assert!(
        printed.contains("faults ("),
        "no fault was injected:\n{printed}"
    );
}
