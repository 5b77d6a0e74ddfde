//! Failpoints: named steps of the storage write path where a test can make the process crash or
//! an operation fail, to prove that every crash point leaves a data directory that starts and
//! keeps every acknowledged write.
//!
//! Off unless the environment variable `KVSTORE_FAILPOINTS` is set (production never sets it);
//! read once. Its value is a comma-separated list of `name=action`, where action is
//!
//! - `crash` or `crash@N`: end the process at once (`_exit`, status [`CRASH_STATUS`], no
//!   destructors, no buffered log lines) the first (or N-th) time the step is reached; what
//!   the kernel already had stays, as after a `SIGKILL`;
//! - `error` or `error@N`: the step fails with an I/O error from then on (from the N-th time);
//! - `panic` or `panic@N`: the thread panics the first (or N-th) time the step is reached.
//!
//! Named steps: `wal.write`, `wal.sync`, `wal.sync.pipelined` (a batch fsynced, not yet answered, the next appended), `wal.segment.{create,header,sync,rename,renamed}`,
//! `wal.roll.{created,marked}`, `wal.compact.remove`, `dir.create`, `dir.sync`, `identity.{write,rename}`,
//! `snapshot.write.{create,data,sync,rename,renamed,prune}`,
//! `snapshot.install.{create,append,fsync,rename,dirsync}`, and `store.apply` (the store
//! refuses a committed entry).
//!
//! This module only decides whether a named step fails; it never does any other I/O.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Exit status of a process ended by a `crash` failpoint.
pub const CRASH_STATUS: i32 = 86;

/// The environment variable that enables failpoints.
pub const ENV: &str = "KVSTORE_FAILPOINTS";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Crash,
    Error,
    Panic,
}

#[derive(Debug)]
struct Point {
    name: String,
    action: Action,
    /// Reached this often before it acts (1: the first time).
    at: u64,
    hits: AtomicU64,
}

fn parse(spec: &str) -> Vec<Point> {
    spec.split(',')
        .filter_map(|item| {
            let (name, action) = item.trim().split_once('=')?;
            let (action, at) = match action.split_once('@') {
                Some((a, n)) => (a, n.parse().ok()?),
                None => (action, 1),
            };
            let action = match action {
                "crash" => Action::Crash,
                "error" => Action::Error,
                "panic" => Action::Panic,
                _ => return None,
            };
            Some(Point {
                name: name.to_owned(),
                action,
                at,
                hits: AtomicU64::new(0),
            })
        })
        .collect()
}

fn points() -> &'static [Point] {
    static POINTS: OnceLock<Vec<Point>> = OnceLock::new();
    POINTS.get_or_init(|| std::env::var(ENV).map(|s| parse(&s)).unwrap_or_default())
}

/// Reached the step `name`: crash or fail here if a failpoint says so, else `Ok(())`.
pub fn hit(name: &str) -> io::Result<()> {
    let points = points();
    if points.is_empty() {
        return Ok(());
    }
    for p in points.iter().filter(|p| p.name == name) {
        let n = p.hits.fetch_add(1, Ordering::Relaxed) + 1;
        match p.action {
            Action::Crash if n == p.at => {
                eprintln!("failpoint {name}: crashing (KVSTORE_FAILPOINTS)");
                // SAFETY: `_exit` ends the process without running anything else, which is the
                // point: it is the closest a process gets to losing power at this step.
                unsafe { libc::_exit(CRASH_STATUS) }
            }
            Action::Panic if n == p.at => panic!("failpoint {name}: injected panic"),
            Action::Error if n >= p.at => {
                return Err(io::Error::other(format!(
                    "injected failure at failpoint {name}"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_actions_and_counts() {
        let p = parse("wal.sync=error@3, snap.rename=crash,bad,x=nope");
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].name.as_str(), p[0].action, p[0].at),
            ("wal.sync", Action::Error, 3)
        );
        assert_eq!(
            (p[1].name.as_str(), p[1].action, p[1].at),
            ("snap.rename", Action::Crash, 1)
        );
    }

    #[test]
    fn without_the_variable_nothing_fails() {
        // Tests never set the variable in-process (it is read once per process).
        assert!(hit("wal.sync").is_ok());
    }
}
