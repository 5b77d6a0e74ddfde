//! Tests of [`super`]: flags, environment, defaults and every refusal.

use super::*;
use std::path::Path;

use clap::Parser;

fn cli(args: &[&str]) -> Cli {
    let mut all = vec!["kvstore"];
    all.extend_from_slice(args);
    Cli::try_parse_from(all).unwrap()
}

#[test]
fn defaults() {
    let c = Config::from_cli(cli(&[]), false, None).unwrap();
    assert_eq!(c.port, 8080);
    assert_eq!(c.host, "0.0.0.0");
    assert_eq!(c.node_id, "n1");
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.shutdown_timeout, Duration::from_secs(5));
    assert_eq!(c.log_format, LogFormat::Human);
    assert!(c.workers >= 1);
    assert_eq!(
        c.storage,
        Storage::Disk {
            dir: PathBuf::from("data/n1"),
            segment_bytes: 64 * 1024 * 1024
        }
    );
    let m = Config::from_cli(cli(&["--in-memory"]), false, None).unwrap();
    assert_eq!(m.storage, Storage::Memory);
    assert_eq!(c.cluster_id, None);
}

#[test]
fn memory_storage_with_peers_is_refused_unless_explicitly_unsafe() {
    let peers = ["--port", "8081", "--peers", "http://localhost:8082"];
    for memory in [&["--in-memory"][..], &["--storage", "memory"][..]] {
        let args: Vec<&str> = peers.iter().chain(memory).copied().collect();
        let e = Config::from_cli(cli(&args), false, None).unwrap_err();
        assert!(e.to_string().contains("cannot be used with PEERS"), "{e}");
    }
    let args: Vec<&str> = peers
        .iter()
        .chain(&["--in-memory", "--unsafe-volatile-cluster"])
        .copied()
        .collect();
    let c = Config::from_cli(cli(&args), false, None).unwrap();
    assert_eq!(c.storage, Storage::Memory);
}

#[test]
fn a_cluster_id_is_visible_ascii() {
    let c = Config::from_cli(cli(&["--cluster-id", " prod-1 "]), false, None).unwrap();
    assert_eq!(c.cluster_id.as_deref(), Some("prod-1"));
    assert!(Config::from_cli(cli(&["--cluster-id", "a b"]), false, None).is_err());
    assert!(Config::from_cli(cli(&["--cluster-id", "é"]), false, None).is_err());
}

#[test]
fn port_precedence_flag_then_port_env() {
    let c = Config::from_cli(cli(&["--port", "9001"]), false, Some("9002".into())).unwrap();
    assert_eq!(c.port, 9001);
    let c = Config::from_cli(cli(&[]), false, Some("9002".into())).unwrap();
    assert_eq!(c.port, 9002);
}

#[test]
fn bad_port_names_its_source() {
    let e = Config::from_cli(cli(&["--port", "abc"]), false, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid port \"abc\" from --port: expected a number from 0 to 65535"
    );
    let e = Config::from_cli(cli(&["--port", "70000"]), true, None).unwrap_err();
    assert!(e.to_string().contains("KVSTORE_PORT"), "{e}");
    let e = Config::from_cli(cli(&[]), false, Some("x".into())).unwrap_err();
    assert!(e.to_string().contains("from PORT"), "{e}");
}

#[test]
fn nonsense_limits_are_refused() {
    let e = Config::from_cli(
        cli(&["--max-value-bytes", "100", "--max-body-bytes", "50"]),
        false,
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("max body bytes"), "{e}");
    assert!(Config::from_cli(cli(&["--max-key-bytes", "0"]), false, None).is_err());
    assert!(Config::from_cli(
        cli(&[
            "--max-value-bytes",
            "100000000",
            "--max-body-bytes",
            "200000000"
        ]),
        false,
        None
    )
    .is_err());
    assert!(Config::from_cli(cli(&["--workers", "0"]), false, None).is_err());
    assert!(Config::from_cli(cli(&["--node-id", "a b"]), false, None).is_err());
}

#[test]
fn peers_are_parsed_and_normalized() {
    let c = Config::from_cli(
        cli(&[
            "--port",
            "8081",
            "--peers",
            "http://localhost:8082/, http://127.0.0.1:8083,,",
        ]),
        false,
        None,
    )
    .unwrap();
    assert_eq!(
        c.peers,
        vec!["http://localhost:8082", "http://127.0.0.1:8083"]
    );
    assert_eq!(c.raft.heartbeat, Duration::from_millis(50));
    assert_eq!(c.raft.election_timeout, Duration::from_millis(150));
    assert_eq!(c.raft.rpc_timeout, Duration::from_millis(100));
    assert!(Config::from_cli(cli(&[]), false, None)
        .unwrap()
        .peers
        .is_empty());
}

#[test]
fn nonsense_cluster_settings_are_refused() {
    let bad = |args: &[&str], part: &str| {
        let e = Config::from_cli(cli(args), false, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains(part), "{args:?}: {e:?} lacks {part:?}");
    };
    bad(
        &["--port", "8081", "--peers", "localhost:8082"],
        "invalid peer URL",
    );
    bad(&["--port", "8081", "--peers", "ftp://a:1"], "not supported");
    bad(
        &["--port", "8081", "--peers", "https://a:1"],
        "must be http://",
    );
    bad(
        &["--port", "8081", "--peers", "http://a:1/x"],
        "without a path",
    );
    bad(
        &["--port", "8081", "--peers", "http://a:1,http://a:1/"],
        "twice",
    );
    bad(
        &["--port", "8081", "--peers", "http://localhost:8081"],
        "itself",
    );
    bad(
        &["--port", "8081", "--peers", "http://127.0.0.1:8081"],
        "itself",
    );
    bad(
        &[
            "--port",
            "8081",
            "--advertise-url",
            "http://me.example:9000",
            "--peers",
            "http://me.example:9000",
        ],
        "itself",
    );
    bad(&["--port", "0", "--peers", "http://a:1"], "port 0");
    bad(
        &[
            "--raft-heartbeat-ms",
            "200",
            "--raft-election-timeout-ms",
            "200",
        ],
        "must be less than",
    );
    bad(&["--raft-heartbeat-ms", "0"], "at least 1");
    bad(&["--raft-rpc-timeout-ms", "150"], "RAFT_RPC_TIMEOUT_MS");
    bad(&["--advertise-url", "nope"], "invalid advertise URL");
    // A different port on localhost is another node, not this one.
    assert!(Config::from_cli(
        cli(&["--port", "8081", "--peers", "http://localhost:8082"]),
        false,
        None
    )
    .is_ok());
}

#[test]
fn tls_settings_go_together_and_fix_the_schemes() {
    let bad = |args: &[&str], part: &str| {
        let e = Config::from_cli(cli(args), false, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains(part), "{args:?}: {e:?} lacks {part:?}");
    };
    bad(&["--tls-cert", "c.pem"], "--tls-key");
    bad(
        &["--peer-tls-cert", "c.pem", "--peer-tls-key", "k.pem"],
        "all three",
    );
    let mtls = [
        "--peer-tls-cert",
        "c.pem",
        "--peer-tls-key",
        "k.pem",
        "--peer-ca",
        "ca.pem",
    ];
    bad(&mtls, "needs --peer-port");
    bad(&["--port", "9000", "--peer-port", "9000"], "must differ");
    bad(&["--peer-advertise-url", "http://a:1"], "needs --peer-port");
    let tls = ["--tls-cert", "c.pem", "--tls-key", "k.pem"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        tls.iter().chain(extra).copied().collect()
    };
    bad(
        &with(&["--advertise-url", "http://a:1"]),
        "must be https://",
    );
    // Without a peer port PEERS are client URLs: https with client TLS, and a CA is needed.
    bad(
        &with(&["--port", "9000", "--peers", "http://a:1"]),
        "must be https://",
    );
    bad(
        &with(&["--port", "9000", "--peers", "https://a:1"]),
        "--tls-ca",
    );
    let c = Config::from_cli(
        cli(&with(&[
            "--port",
            "9000",
            "--peers",
            "https://a:1",
            "--tls-ca",
            "ca.pem",
            // a remote peer without a secret or peer mTLS (see the peer-trust rule)
            "--insecure-peers",
        ])),
        false,
        None,
    )
    .unwrap();
    assert_eq!(c.peers, vec!["https://a:1"]);
    assert_eq!(c.tls_ca.as_deref(), Some(Path::new("ca.pem")));
    // With a peer port and peer mTLS, PEERS are https peer URLs; the peer CA is the default
    // CA for forwarding.
    let mut args = with(&mtls);
    args.extend([
        "--port",
        "9000",
        "--peer-port",
        "9100",
        "--peers",
        "http://a:1",
    ]);
    bad(&args, "must be https://");
    args.pop();
    args.push("https://a:1,https://b");
    let c = Config::from_cli(cli(&args), false, None).unwrap();
    assert_eq!(c.peers, vec!["https://a:1", "https://b:443"]);
    assert_eq!(c.tls_ca.as_deref(), Some(Path::new("ca.pem")));
    assert_eq!(c.peer_port, Some(9100));
    assert!(c.peer_tls.is_some());
    // A peer port with PEERS must be explicit, and PEERS must not list this node's.
    bad(
        &[
            "--port",
            "9000",
            "--peer-port",
            "0",
            "--peers",
            "http://a:1",
        ],
        "peer port 0",
    );
    bad(
        &[
            "--port",
            "9000",
            "--peer-port",
            "9100",
            "--peers",
            "http://localhost:9100",
        ],
        "itself",
    );
    // Without TLS, a peer port keeps plain http peer URLs.
    let c = Config::from_cli(
        cli(&[
            "--port",
            "9000",
            "--peer-port",
            "9100",
            "--peers",
            "http://localhost:9000",
        ]),
        false,
        None,
    )
    .unwrap();
    assert_eq!(c.peers, vec!["http://localhost:9000"]);
}

#[test]
fn base_urls_accept_https() {
    assert_eq!(parse_base_url("https://a/").unwrap(), "https://a:443");
    assert_eq!(parse_base_url("http://a").unwrap(), "http://a:80");
    assert!(parse_base_url("ftp://a").is_err());
    // Configuration entries and snapshots carry members' URLs of at most 512 bytes.
    let host = "h".repeat(crate::raft::rpc::MAX_URL_BYTES);
    assert!(parse_base_url(&format!("http://{host}:1"))
        .unwrap_err()
        .contains("longer than"));
    assert_eq!(default_url(true, "0.0.0.0", 5), "https://localhost:5");
}

#[test]
fn cluster_mode_requires_an_explicit_node_id() {
    let e = Config::parse_from([
        "kvstore",
        "--port",
        "8081",
        "--peers",
        "http://localhost:8082",
    ])
    .unwrap_err();
    assert!(e.to_string().contains("NODE_ID"), "{e}");
    assert!(matches!(
        Config::parse_from([
            "kvstore",
            "--port",
            "8081",
            "--node-id",
            "a",
            "--peers",
            "http://localhost:8082"
        ]),
        Ok(Parsed::Run(_))
    ));
}

#[test]
fn default_advertise_url_names_a_reachable_host() {
    assert_eq!(default_advertise_url("0.0.0.0", 80), "http://localhost:80");
    assert_eq!(
        default_advertise_url("127.0.0.1", 81),
        "http://127.0.0.1:81"
    );
    assert_eq!(default_advertise_url("::1", 82), "http://[::1]:82");
}

#[test]
fn usage_errors_are_one_line() {
    let e = Config::parse_from(["kvstore", "--max-key-bytes", "lots"]).unwrap_err();
    let s = e.to_string();
    assert!(!s.contains('\n'), "{s}");
    assert!(s.contains("--max-key-bytes"), "{s}");
    let e = Config::parse_from(["kvstore", "--no-such-flag"]).unwrap_err();
    assert!(!e.to_string().contains('\n'));
}

#[test]
fn help_documents_every_setting_with_env_and_default() {
    let Parsed::Print(help) = Config::parse_from(["kvstore", "--help"]).unwrap() else {
        panic!("--help must print");
    };
    for needle in [
        "KVSTORE_PORT",
        "PORT",
        "KVSTORE_HOST",
        "NODE_ID",
        "KVSTORE_MAX_KEY_BYTES",
        "KVSTORE_MAX_VALUE_BYTES",
        "KVSTORE_MAX_BODY_BYTES",
        "KVSTORE_WORKERS",
        "KVSTORE_SHUTDOWN_TIMEOUT_SECS",
        "KVSTORE_REQUEST_TIMEOUT_MS",
        "KVSTORE_MAX_PENDING",
        "KVSTORE_DATA_DIR",
        "KVSTORE_STORAGE",
        "KVSTORE_WAL_SEGMENT_BYTES",
        "KVSTORE_LOG_FORMAT",
        "PEERS",
        "KVSTORE_ADVERTISE_URL",
        "KVSTORE_CLUSTER_ID",
        "KVSTORE_CLIENT_TOKENS_FILE",
        "KVSTORE_UNSAFE_VOLATILE_CLUSTER",
        "RAFT_HEARTBEAT_MS",
        "RAFT_ELECTION_TIMEOUT_MS",
        "RAFT_RPC_TIMEOUT_MS",
        "KVSTORE_TLS_CERT",
        "KVSTORE_TLS_KEY",
        "KVSTORE_TLS_CA",
        "KVSTORE_PEER_PORT",
        "KVSTORE_PEER_ADVERTISE_URL",
        "KVSTORE_PEER_TLS_CERT",
        "KVSTORE_PEER_TLS_KEY",
        "KVSTORE_PEER_CA",
        "[default: 4096]",
        "RUST_LOG",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}

#[test]
fn non_loopback_peers_need_a_secret_or_an_explicit_insecure_flag() {
    let remote = [
        "--node-id",
        "a",
        "--port",
        "8081",
        "--peers",
        "http://10.0.0.2:8081",
    ];
    let e = Config::from_cli(cli(&remote), false, None).unwrap_err();
    assert!(e.to_string().contains("non-loopback"), "{e}");
    let mut with_secret = cli(&remote);
    with_secret.cluster_secret = Some("0123456789abcdef0123".into());
    let c = Config::from_cli(with_secret, false, None).unwrap();
    assert!(matches!(c.cluster_secret, Some(SecretSource::Env(_))));
    assert!(
        !format!("{c:?}").contains("0123456789abcdef0123"),
        "Debug shows no secret"
    );
    let args: Vec<&str> = remote
        .iter()
        .chain(&["--cluster-secret-file", "/s"])
        .copied()
        .collect();
    let c = Config::from_cli(cli(&args), false, None).unwrap();
    assert_eq!(c.cluster_secret, Some(SecretSource::File("/s".into())));
    let args: Vec<&str> = remote
        .iter()
        .chain(&["--insecure-peers"])
        .copied()
        .collect();
    let c = Config::from_cli(cli(&args), false, None).unwrap();
    assert!(c.insecure_peers && c.cluster_secret.is_none());
    // A name that only looks like a loopback address is not one.
    for remote in [
        "http://127.0.0.1.nip.io:8082",
        "http://127.attacker.example:8082",
    ] {
        let args = ["--node-id", "a", "--port", "8081", "--peers", remote];
        assert!(
            Config::from_cli(cli(&args), false, None).is_err(),
            "{remote}"
        );
    }
    // Loopback peers, by name or address, need nothing (the original three-terminal demo).
    for peer in [
        "http://localhost:8082",
        "http://127.0.0.1:8082",
        "http://[::1]:8082",
    ] {
        let c = Config::from_cli(
            cli(&["--node-id", "a", "--port", "8081", "--peers", peer]),
            false,
            None,
        );
        assert!(c.is_ok(), "{peer}: {c:?}");
    }
}

#[test]
fn a_weak_or_doubly_given_secret_is_refused() {
    let mut weak = cli(&[]);
    weak.cluster_secret = Some("short".into());
    let e = Config::from_cli(weak, false, None).unwrap_err();
    assert!(e.to_string().contains("at least 16"), "{e}");
    assert!(
        !e.to_string().contains("short\""),
        "the error never repeats the secret: {e}"
    );
    let mut both = cli(&["--cluster-secret-file", "/s"]);
    both.cluster_secret = Some("0123456789abcdef0123".into());
    assert!(Config::from_cli(both, false, None).is_err());
}

#[test]
fn peers_may_name_their_ids() {
    let c = Config::from_cli(
        cli(&[
            "--port",
            "8081",
            "--node-id",
            "n1",
            "--peers",
            "n2=http://localhost:8082/, http://localhost:8083",
        ]),
        false,
        None,
    )
    .unwrap();
    assert_eq!(c.peers, ["http://localhost:8082", "http://localhost:8083"]);
    assert_eq!(
        c.peer_ids,
        [("http://localhost:8082".to_owned(), "n2".to_owned())],
        "a plain URL keeps no id (its URL is its provisional id)"
    );
    let refused = |peers: &str, want: &str| {
        let e = Config::from_cli(
            cli(&["--port", "8081", "--node-id", "n1", "--peers", peers]),
            false,
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains(want), "{peers}: {e}");
    };
    refused("n1=http://localhost:8082", "this node's own NODE_ID");
    refused(
        "n2=http://localhost:8082,n2=http://localhost:8083",
        "names two nodes \"n2\"",
    );
    refused("=http://localhost:8082", "invalid node id");
    refused("a b=http://localhost:8082", "invalid node id");
    refused("n2=localhost:8082", "invalid peer URL");
}

#[test]
fn join_and_learner() {
    let c = Config::from_cli(
        cli(&["--node-id", "n4", "--join", "http://localhost:8081/"]),
        false,
        None,
    )
    .unwrap();
    assert_eq!(c.join.as_deref(), Some("http://localhost:8081"));
    assert!(!c.learner);
    let c = Config::from_cli(
        cli(&["--join", "http://localhost:8081", "--learner"]),
        false,
        None,
    )
    .unwrap();
    assert!(c.learner);
    let e = Config::from_cli(cli(&["--learner"]), false, None).unwrap_err();
    assert!(
        e.to_string().contains("only means something with --join"),
        "{e}"
    );
    let e = Config::from_cli(cli(&["--join", "localhost:8081"]), false, None).unwrap_err();
    assert!(e.to_string().contains("invalid KVSTORE_JOIN"), "{e}");
    // A voter in memory would forget its vote; a learner never votes.
    let e = Config::from_cli(
        cli(&["--join", "http://localhost:8081", "--in-memory"]),
        false,
        None,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("cannot join a cluster as a voter"),
        "{e}"
    );
    let c = Config::from_cli(
        cli(&[
            "--join",
            "http://localhost:8081",
            "--in-memory",
            "--learner",
        ]),
        false,
        None,
    )
    .unwrap();
    assert_eq!(c.storage, Storage::Memory);
    let e = Config::from_cli(cli(&["--join", "https://localhost:8081"]), false, None).unwrap_err();
    assert!(e.to_string().contains("--tls-ca"), "{e}");
}

#[test]
fn a_node_id_the_membership_routes_refuse_cannot_join() {
    // NODE_ID may hold `/` or non-ASCII, but POST /cluster/members refuses such an id (400):
    // a joining node would start, record the cluster's id, and only then be refused.
    for id in ["n/4", "nœud4"] {
        let e = Config::from_cli(
            cli(&["--node-id", id, "--join", "http://localhost:8081"]),
            false,
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("cannot join a cluster"), "{id}: {e}");
        assert!(
            Config::from_cli(cli(&["--node-id", id]), false, None).is_ok(),
            "{id}: still fine without --join"
        );
    }
}

#[test]
fn join_from_the_environment_needs_a_node_id() {
    // Through parse_from, which checks that NODE_ID was given (as with PEERS).
    let e = Config::parse_from(["kvstore", "--join", "http://localhost:8081"]).unwrap_err();
    assert!(e.to_string().contains("NODE_ID"), "{e}");
}

#[test]
fn watch_settings_have_defaults_and_refuse_what_cannot_work() {
    let c = Config::from_cli(cli(&[]), false, None).unwrap();
    assert_eq!(c.watch, crate::watch::actor::WatchSettings::default());
    assert_eq!(c.watch.heartbeat, Duration::from_millis(5000));
    assert_eq!(c.watch.limits.max_watchers, 10_000);
    assert_eq!(c.watch.limits.history_changes, 100_000);
    let args = [
        "--watch-heartbeat-ms",
        "250",
        "--watch-max-watchers",
        "7",
        "--watch-history-changes",
        "3",
        "--watch-queue-events",
        "2",
    ];
    let c = Config::from_cli(cli(&args), false, None).unwrap();
    assert_eq!(c.watch.heartbeat, Duration::from_millis(250));
    assert_eq!(
        (c.watch.limits.max_watchers, c.watch.limits.history_changes),
        (7, 3)
    );
    assert_eq!(c.watch.limits.queue_events, 2);
    for (flag, value, name) in [
        ("--watch-heartbeat-ms", "0", "KVSTORE_WATCH_HEARTBEAT_MS"),
        (
            "--watch-history-changes",
            "0",
            "KVSTORE_WATCH_HISTORY_CHANGES",
        ),
        ("--watch-queue-events", "1", "KVSTORE_WATCH_QUEUE_EVENTS"),
    ] {
        let e = Config::from_cli(cli(&[flag, value]), false, None).unwrap_err();
        assert!(e.to_string().contains(name), "{e}");
    }
}
