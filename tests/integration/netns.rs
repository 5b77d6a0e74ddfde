//! Three nodes on three addresses, each in its own network namespace, and a client in a fourth
//! (root only: prints SKIPPED otherwise; CI runs as root). Proves, across real addresses rather
//! than loopback:
//! - the cluster replicates with a cluster secret, and the client API works from the client
//!   namespace, forwarded from followers to the leader;
//! - forged Raft RPCs from the client namespace are refused (401), changing nothing;
//! - cutting the leader's link (its interface down, inside its namespace) makes it lose
//!   leadership (check-quorum) while the others elect a new leader and keep serving; once the
//!   link is back it rejoins as a follower and catches up.
//!
//! Topology: a hub namespace holds a bridge; each node and the client has one veth into it,
//! 10.200.0.1-3 for the nodes and 10.200.0.9 for the client. Every namespace is deleted when
//! the test ends (pass or fail), after its processes are killed.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{free_ports, poll_until, KvProcess};

/// Namespaces made by this test, deleted (with their interfaces) on drop.
struct Namespaces {
    names: Vec<String>,
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Why this machine cannot run the test, if it cannot.
fn unsupported() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    for tool in ["ip", "curl"] {
        if Command::new(tool).arg("-V").output().is_err() {
            return Some(format!("{tool} not found"));
        }
    }
    None
}

/// Build the namespaces: `prefix-hub` with a bridge, and one namespace per address in `hosts`
/// (name suffix, address), each with `eth0` on the bridge and `lo` up.
fn build(prefix: &str, hosts: &[(&str, &str)]) -> Result<Namespaces, String> {
    let hub = format!("{prefix}-hub");
    let mut ns = Namespaces {
        names: vec![hub.clone()],
    };
    run(&["ip", "netns", "add", &hub])?;
    run(&["ip", "-n", &hub, "link", "add", "br0", "type", "bridge"])?;
    run(&["ip", "-n", &hub, "link", "set", "br0", "up"])?;
    for (i, (suffix, addr)) in hosts.iter().enumerate() {
        let name = format!("{prefix}-{suffix}");
        run(&["ip", "netns", "add", &name])?;
        ns.names.push(name.clone());
        let (a, b) = (format!("{prefix}a{i}"), format!("{prefix}b{i}"));
        run(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b])?;
        run(&["ip", "link", "set", &a, "netns", &name])?;
        run(&["ip", "link", "set", &b, "netns", &hub])?;
        run(&["ip", "-n", &name, "link", "set", &a, "name", "eth0"])?;
        run(&[
            "ip",
            "-n",
            &name,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ])?;
        run(&["ip", "-n", &name, "link", "set", "eth0", "up"])?;
        run(&["ip", "-n", &name, "link", "set", "lo", "up"])?;
        run(&["ip", "-n", &hub, "link", "set", &b, "master", "br0"])?;
        run(&["ip", "-n", &hub, "link", "set", &b, "up"])?;
    }
    Ok(ns)
}

/// `curl` inside namespace `ns`: (status, JSON body). Status 0 when nothing answered.
fn curl(ns: &str, method: &str, url: &str, body: Option<&str>, headers: &[&str]) -> (u16, Value) {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "curl", "-s", "-m", "3", "-X", method]);
    cmd.args(["-w", "\n%{http_code}"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(b) = body {
        cmd.args(["--data-binary", b]);
    }
    cmd.arg(url);
    let Ok(out) = cmd.output() else {
        return (0, Value::Null);
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

struct Cluster {
    prefix: String,
    addrs: Vec<String>,
    port: u16,
}

impl Cluster {
    fn ns(&self, i: usize) -> String {
        format!("{}-n{}", self.prefix, i + 1)
    }
    fn client(&self) -> String {
        format!("{}-c", self.prefix)
    }
    fn url(&self, i: usize) -> String {
        format!("http://{}:{}", self.addrs[i], self.port)
    }
    /// `/health` of node `i` as seen from the client namespace.
    fn health(&self, i: usize) -> Option<Value> {
        let (status, v) = curl(
            &self.client(),
            "GET",
            &format!("{}/health", self.url(i)),
            None,
            &[],
        );
        (status == 200).then_some(v)
    }
    /// `/health` of node `i` from inside its own namespace (works while its link is cut).
    fn own_health(&self, i: usize) -> Option<Value> {
        let url = format!("http://127.0.0.1:{}/health", self.port);
        let (status, v) = curl(&self.ns(i), "GET", &url, None, &[]);
        (status == 200).then_some(v)
    }
    /// The one leader among `among`, agreed by all of them: (index, term).
    fn leader(&self, among: &[usize]) -> Result<(usize, u64), String> {
        let hs: Vec<Value> = among
            .iter()
            .map(|&i| self.health(i).ok_or(format!("node {i} does not answer")))
            .collect::<Result<_, _>>()?;
        let leaders: Vec<usize> = among
            .iter()
            .zip(&hs)
            .filter(|(_, h)| h["state"] == "leader")
            .map(|(i, _)| *i)
            .collect();
        let [l] = leaders[..] else {
            return Err(format!("leaders: {leaders:?}"));
        };
        let term = hs[among.iter().position(|&i| i == l).unwrap_or(0)]["term"]
            .as_u64()
            .unwrap_or(0);
        if hs
            .iter()
            .all(|h| h["term"] == term && h["leader"] == self.url(l))
        {
            Ok((l, term))
        } else {
            Err(format!("not agreed yet: {hs:?}"))
        }
    }
}

async fn eventually<T>(
    what: &str,
    within: Duration,
    mut f: impl FnMut() -> Result<T, String>,
) -> T {
    match poll_until(within, || std::future::ready(f())).await {
        Ok(v) => v,
        Err(last) => panic!("{what}: not within {within:?}; last: {last}"),
    }
}

#[actix_web::test]
async fn three_nodes_in_namespaces_replicate_refuse_forged_rpcs_and_survive_a_cut_link() {
    if let Some(why) = unsupported() {
        println!("SKIPPED: network namespaces need root, ip and curl ({why})");
        return;
    }
    let prefix = format!("kv{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let addrs: Vec<String> = (1..=3).map(|i| format!("10.200.0.{i}")).collect();
    let hosts = [
        ("n1", addrs[0].as_str()),
        ("n2", addrs[1].as_str()),
        ("n3", addrs[2].as_str()),
        ("c", "10.200.0.9"),
    ];
    let namespaces = match build(&prefix, &hosts) {
        Ok(ns) => ns,
        Err(e) if e.contains("Operation not permitted") => {
            println!("SKIPPED: cannot create network namespaces here ({e})");
            return;
        }
        Err(e) => panic!("building the namespaces: {e}"),
    };
    let c = Cluster {
        prefix: prefix.clone(),
        addrs: addrs.clone(),
        // Each node has its namespace to itself; any port is free there.
        port: free_ports(1)[0],
    };
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let cluster_id = format!("netns-{prefix}");
    let port = c.port.to_string();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes: Vec<KvProcess> = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let ns = c.ns(i);
        let peers: Vec<String> = (0..3).filter(|j| *j != i).map(|j| c.url(j)).collect();
        let (id, me, peers) = (format!("n{}", i + 1), c.url(i), peers.join(","));
        let dir = dir.path().to_string_lossy().into_owned();
        let mut p = KvProcess::spawn_prefixed(
            &["ip", "netns", "exec", &ns],
            &["--host", "0.0.0.0", "--advertise-url", &me],
            &[
                ("NODE_ID", &id),
                ("PORT", &port),
                ("PEERS", &peers),
                ("KVSTORE_DATA_DIR", &dir),
                ("KVSTORE_CLUSTER_ID", &cluster_id),
                ("KVSTORE_CLUSTER_SECRET", &secret),
            ],
        );
        if let Err(seen) = p.wait_for_line(Duration::from_secs(20), |l| l.contains("listening on"))
        {
            panic!("node {i} did not start in {ns}:\n{seen}");
        }
        nodes.push(p);
    }
    let all = [0, 1, 2];
    let (leader, term) = eventually(
        "a leader across the addresses",
        Duration::from_secs(20),
        || c.leader(&all),
    )
    .await;

    // The client API from the client namespace, through a follower (forwarded to the leader).
    let follower = (leader + 1) % 3;
    let (status, v) = curl(
        &c.client(),
        "PUT",
        &format!("{}/set", c.url(follower)),
        Some(r#"{"key":"name","value":"luffy"}"#),
        &[],
    );
    assert_eq!(status, 200, "{v}");
    for i in all {
        eventually("the write on every node", Duration::from_secs(10), || {
            let (s, v) = curl(
                &c.client(),
                "GET",
                &format!("{}/get?key=name&consistency=stale", c.url(i)),
                None,
                &[],
            );
            if s == 200 && v["value"] == "luffy" {
                Ok(())
            } else {
                Err(format!("node {i}: {s} {v}"))
            }
        })
        .await;
    }

    // Forged Raft RPCs from the client namespace: refused, nothing changes.
    let cluster_header = format!("x-kvstore-cluster: {cluster_id}");
    let forged_append = format!(
        r#"{{"term":{},"leaderId":"mallory","leaderUrl":"http://10.200.0.9:1","prevLogIndex":0,"prevLogTerm":0,"entries":[],"leaderCommit":0,"seq":1}}"#,
        term + 1000
    );
    let forged_vote = format!(
        r#"{{"term":{},"candidateId":"mallory","lastLogIndex":999999,"lastLogTerm":{},"preVote":false}}"#,
        term + 1000,
        term + 1000
    );
    for i in all {
        for (path, body) in [
            ("/raft/append", &forged_append),
            ("/raft/vote", &forged_vote),
        ] {
            let (s, v) = curl(
                &c.client(),
                "POST",
                &format!("{}{path}", c.url(i)),
                Some(body),
                &["content-type: application/json", &cluster_header],
            );
            assert_eq!(s, 401, "node {i} {path}: {v}");
        }
    }
    assert_eq!(
        c.leader(&all),
        Ok((leader, term)),
        "forged RPCs changed nothing"
    );

    // Cut the leader's link: the other two elect a new leader and keep serving; the old leader
    // steps down (it cannot hear a majority).
    run(&["ip", "-n", &c.ns(leader), "link", "set", "eth0", "down"]).expect("cut the link");
    let others: Vec<usize> = all.iter().copied().filter(|i| *i != leader).collect();
    let (new_leader, new_term) = eventually(
        "a new leader among the others",
        Duration::from_secs(15),
        || {
            c.leader(&others).and_then(|(l, t)| {
                if t > term {
                    Ok((l, t))
                } else {
                    Err(format!("term {t}"))
                }
            })
        },
    )
    .await;
    eventually(
        "the cut-off leader steps down",
        Duration::from_secs(15),
        || {
            let h = c.own_health(leader).ok_or("no answer")?;
            if h["state"] != "leader" {
                Ok(())
            } else {
                Err(format!("{h}"))
            }
        },
    )
    .await;
    let (status, v) = curl(
        &c.client(),
        "PUT",
        &format!("{}/set", c.url(new_leader)),
        Some(r#"{"key":"during","value":"cut"}"#),
        &[],
    );
    assert_eq!(status, 200, "the majority side serves writes: {v}");

    // Heal: the old leader rejoins as a follower of the new one and catches up.
    run(&["ip", "-n", &c.ns(leader), "link", "set", "eth0", "up"]).expect("restore the link");
    eventually("the old leader rejoins", Duration::from_secs(20), || {
        let (l, t) = c.leader(&all)?;
        let (s, v) = curl(
            &c.client(),
            "GET",
            &format!("{}/get?key=during&consistency=stale", c.url(leader)),
            None,
            &[],
        );
        if l != leader && t >= new_term && s == 200 && v["value"] == "cut" {
            Ok(())
        } else {
            Err(format!(
                "leader {l} term {t}; get on the old leader: {s} {v}"
            ))
        }
    })
    .await;
    drop(nodes);
    drop(namespaces);
}
