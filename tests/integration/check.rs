//! `kvstore check` end to end: the binary starts its own 3-node cluster, runs a recorded
//! workload while killing, pausing and partitioning nodes (and changing the membership), and
//! must find the history
//! linearizable and the replicas converged, for a few fixed seeds. Bounded in time; the check
//! process is killed by its handle if it overruns (its nodes die with it).

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::{binary, KvProcess};

pub(crate) fn run_check(args: &[&str]) -> (bool, String) {
    let out = tempfile::NamedTempFile::new().expect("temp file");
    let child = Command::new(binary())
        .arg("check")
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(out.reopen().expect("reopen"))
        .stderr(out.reopen().expect("reopen"))
        .spawn()
        .expect("spawn kvstore check");
    let (_tx, rx) = std::sync::mpsc::channel();
    let mut p = KvProcess::wrap(child, rx);
    let status = p.wait_exit(Duration::from_secs(120));
    let printed = std::fs::read_to_string(out.path()).unwrap_or_default();
    match status {
        Some(s) => (s.success(), printed),
        None => panic!("kvstore check did not finish in 120 s; it printed:\n{printed}"),
    }
}

#[test]
fn check_finds_a_local_cluster_linearizable_under_kills_pauses_and_partitions() {
    for seed in ["1", "2", "3"] {
        let (ok, printed) = run_check(&[
            "--local",
            "3",
            "--nemesis",
            "kill,pause,partition",
            "--duration",
            "15s",
            "--clients",
            "8",
            "--keys",
            "5",
            "--seed",
            seed,
        ]);
        assert!(ok, "seed {seed}: the check failed:\n{printed}");
        assert!(printed.contains("verdict: LINEARIZABLE"), "{printed}");
        assert!(printed.contains("replicas converged"), "{printed}");
        assert!(
            printed.contains("faults ("),
            "seed {seed}: no fault was injected:\n{printed}"
        );
        let ops: usize = printed
            .lines()
            .find_map(|l| l.strip_prefix("availability: "))
            .and_then(|l| l.split('(').nth(1))
            .and_then(|l| l.split('/').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(
            ops > 300,
            "seed {seed}: too few successful ops ({ops}):\n{printed}"
        );
    }
}

#[test]
fn check_finds_membership_changes_linearizable_together_with_kills_and_partitions() {
    for seed in ["1", "2"] {
        let (ok, printed) = run_check(&[
            "--local",
            "3",
            "--nemesis",
            "membership,kill,partition",
            "--duration",
            "20s",
            "--clients",
            "8",
            "--keys",
            "5",
            "--seed",
            seed,
        ]);
        assert!(ok, "seed {seed}: the check failed:\n{printed}");
        assert!(printed.contains("verdict: LINEARIZABLE"), "{printed}");
        assert!(printed.contains("replicas converged"), "{printed}");
        let changes = printed
            .lines()
            .filter(|l| {
                l.contains("membership") && (l.contains("removed n") || l.contains("transfer"))
            })
            .count();
        assert!(
            changes > 0,
            "seed {seed}: no membership change was made:\n{printed}"
        );
    }
}

#[test]
fn check_refuses_bad_arguments_with_a_usage_error() {
    let (ok, printed) = run_check(&["--nemesis", "kill", "--nodes", "http://127.0.0.1:1"]);
    assert!(!ok);
    assert!(printed.contains("--nemesis needs --local"), "{printed}");
    let (ok, printed) = run_check(&["--duration", "soon", "--local", "3"]);
    assert!(!ok);
    assert!(printed.contains("not a duration"), "{printed}");
}
