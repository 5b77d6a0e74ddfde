//! `kvstore check` end to end: the binary starts its own 3-node cluster, runs a recorded
//! workload while killing, pausing and partitioning nodes (and changing the membership, and
//! running a node under libfaketime with a skewed monotonic clock), and
//! must find the history
//! linearizable and the replicas converged, for a few fixed seeds. Bounded in time; the check
//! process is killed by its handle if it overruns (its nodes die with it).

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::{binary, KvProcess};

pub(crate) fn run_check(args: &[&str]) -> (bool, String) {
    run_check_within(args, Duration::from_secs(120))
}

/// `kvstore check ARGS`, killed (and the test failed) if it runs longer than `limit`.
pub(crate) fn run_check_within(args: &[&str], limit: Duration) -> (bool, String) {
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
    let status = p.wait_exit(limit);
    let printed = std::fs::read_to_string(out.path()).unwrap_or_default();
    match status {
        Some(s) => (s.success(), printed),
        None => panic!("kvstore check did not finish in {limit:?}; it printed:\n{printed}"),
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

/// The number after `label` in `line` (e.g. "final value 57" -> 57).
fn number_after(line: &str, label: &str) -> Option<u64> {
    let rest = &line[line.find(label)? + label.len()..];
    rest.split_whitespace()
        .next()?
        .trim_matches(['(', ')', ',', ':'])
        .parse()
        .ok()
}

#[test]
fn check_cas_counters_end_equal_to_acknowledged_increments_under_kills_pauses_and_partitions() {
    let (ok, printed) = run_check_within(
        &[
            "--local",
            "3",
            "--workload",
            "cas",
            "--nemesis",
            "kill,pause,partition",
            "--duration",
            "15s",
            "--clients",
            "8",
            "--keys",
            "2",
            "--seed",
            "11",
        ],
        Duration::from_secs(60),
    );
    if printed.contains("--workload cas needs compare-and-set") {
        // Until the server side of issue #15 (revisions, CAS, Idempotency-Key) is merged.
        println!(
            "SKIPPED: check_cas_counters_end_equal_to_acknowledged_increments: the server has no \
             compare-and-set (its writes answer no index):\n{printed}"
        );
        return;
    }
    assert!(ok, "the check failed:\n{printed}");
    assert!(printed.contains("verdict: LINEARIZABLE"), "{printed}");
    assert!(
        printed.contains("faults ("),
        "no fault was injected:\n{printed}"
    );
    assert!(
        printed.contains("idempotency keys honoured"),
        "the cluster does not replay Idempotency-Key retries:\n{printed}"
    );
    let line = printed
        .lines()
        .find(|l| l.starts_with("counters: "))
        .unwrap_or_else(|| panic!("no counters line:\n{printed}"));
    let value = number_after(line, "final value");
    let acked = number_after(line, " for");
    let unknown = number_after(line, "increments");
    assert_eq!(
        unknown,
        Some(0),
        "writes stayed unknown despite retries:\n{printed}"
    );
    assert_eq!(
        value, acked,
        "counter != acknowledged increments:\n{printed}"
    );
    assert!(acked.unwrap_or(0) > 20, "too few increments:\n{printed}");
    assert!(line.ends_with(": equal"), "{line}");
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

#[test]
fn check_finds_a_cluster_linearizable_with_a_node_under_a_skewed_clock_pauses_and_partitions() {
    if kvstore::check::nemesis::faketime_lib().is_none() {
        // CI installs it (.ci/run); a developer's machine may not have it.
        println!(
            "SKIPPED: check_finds_a_cluster_linearizable_with_a_node_under_a_skewed_clock: \
             libfaketime is not installed (apt-get install libfaketime)"
        );
        return;
    }
    // Seed 1 starts with a clock fault.
    let (ok, printed) = run_check_within(
        &[
            "--local",
            "3",
            "--nemesis",
            "clock,pause,partition",
            "--duration",
            "15s",
            "--clients",
            "8",
            "--keys",
            "5",
            "--seed",
            "1",
        ],
        Duration::from_secs(60),
    );
    assert!(ok, "the check failed:\n{printed}");
    assert!(printed.contains("verdict: LINEARIZABLE"), "{printed}");
    assert!(printed.contains("replicas converged"), "{printed}");
    let skews: Vec<&str> = printed
        .lines()
        .filter(|l| l.contains(" clock ") && l.contains("ran its clock at x"))
        .collect();
    // The measured rate printed on each line is not asserted: timing on a loaded machine.
    assert!(!skews.is_empty(), "no clock fault was injected:\n{printed}");
}
