//! `kvstore verify --data-dir DIR`: an offline check of a stopped node's data directory.
//!
//! Lists the identity (cluster and node id), the snapshots (each checked, with the cluster
//! configuration it records), the write-ahead log's segments (records, index and term ranges),
//! the hard state, the latest configuration entry in the log, a torn tail if any, and the first damage found with its file and
//! offset, using the same checks as start-up. Exit status 0 only when everything is intact (a
//! torn tail, which start-up cuts off, counts as intact), 1 when something is damaged, 2 for a
//! usage error or a directory that cannot be read.
//!
//! Read-only: it never changes, removes or creates a file (it only tests whether a running
//! process holds the directory's lock, and says so).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use crate::raft::log::EntryPayload;
use crate::raft::Configuration;
use crate::startup::log_after;
use crate::storage::identity::{Identity, IDENTITY_FILE, LOCK_FILE};
use crate::storage::snapshot::{self, SnapshotMeta};
use crate::storage::wal;

/// Offline check of a stopped node's data directory.
#[derive(Debug, Parser)]
#[command(
    name = "kvstore verify",
    about = "Check a stopped node's data directory: snapshots, write-ahead log, hard state",
    after_help = "Exit status: 0 intact, 1 damaged, 2 usage error or unreadable directory.\n\
                  Example: kvstore verify --data-dir data/n1"
)]
struct Args {
    /// The node's data directory (holds `wal/` and `snapshots/`).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
}

/// Run `kvstore verify` with the arguments after `verify`.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args: Args = match crate::config::parse_command("kvstore verify", args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let started = std::time::Instant::now();
    let spinner = crate::progress::spinner("checking snapshots and the write-ahead log");
    let (text, outcome) = report(&args.data_dir);
    spinner.finish_and_clear();
    print!("{text}");
    println!("{}", summary(&args.data_dir, outcome, started.elapsed()));
    match outcome {
        Outcome::Intact => ExitCode::SUCCESS,
        Outcome::Damaged => ExitCode::from(1),
        Outcome::Unreadable => ExitCode::from(2),
    }
}

/// The last line: `verify: intact|DAMAGED|UNREADABLE: N snapshots, M log segments, B bytes
/// checked in T ms (DIR)`.
pub fn summary(dir: &Path, outcome: Outcome, took: std::time::Duration) -> String {
    let count = |sub: &str, ext: &str| {
        list_files(&dir.join(sub))
            .into_iter()
            .filter(|(name, _)| name.ends_with(ext))
            .fold((0usize, 0u64), |(n, b), (_, bytes)| (n + 1, b + bytes))
    };
    let (snaps, snap_bytes) = count("snapshots", ".snap");
    let (segs, seg_bytes) = count("wal", ".wal");
    let word = match outcome {
        Outcome::Intact => "intact",
        Outcome::Damaged => "DAMAGED",
        Outcome::Unreadable => "UNREADABLE",
    };
    format!(
        "verify: {word}: {snaps} snapshot{}, {segs} log segment{}, {} bytes checked in {} ms ({})",
        if snaps == 1 { "" } else { "s" },
        if segs == 1 { "" } else { "s" },
        snap_bytes + seg_bytes,
        took.as_millis(),
        dir.display()
    )
}

/// What the check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Intact,
    Damaged,
    Unreadable,
}

/// The report on `dir` as text, and the conclusion.
pub fn report(dir: &Path) -> (String, Outcome) {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
    line(format!("data directory: {}", shown.display()));
    if !dir.is_dir() {
        line("result: UNREADABLE: no such directory".into());
        return (out, Outcome::Unreadable);
    }
    let mut damage: Option<String> = None;
    if let Some(pid) = held_by(dir) {
        line(format!(
            "warning: a running process (pid {pid}) holds this directory; stop it for a \
             consistent report"
        ));
    }
    let id_path = dir.join(IDENTITY_FILE);
    match std::fs::read(&id_path) {
        Ok(bytes) => match serde_json::from_slice::<Identity>(&bytes) {
            Ok(id) => line(format!(
                "identity: cluster {:?}, node {:?}",
                id.cluster_id, id.node_id
            )),
            Err(e) => {
                line(format!("identity: DAMAGED: {e}"));
                damage.get_or_insert_with(|| format!("{}: {e}", id_path.display()));
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            line("identity: none (recorded at the next start)".into())
        }
        Err(e) => {
            line(format!("result: UNREADABLE: {}: {e}", id_path.display()));
            return (out, Outcome::Unreadable);
        }
    }

    let snap_dir = dir.join("snapshots");
    line(format!("snapshots ({}):", snap_dir.display()));
    let (files, temps) = match snapshot::inspect(&snap_dir) {
        Ok(x) => x,
        Err(e) => {
            line(format!("result: UNREADABLE: cannot list snapshots: {e}"));
            return (out, Outcome::Unreadable);
        }
    };
    if files.is_empty() {
        line("  none".into());
    }
    let mut newest: Option<SnapshotMeta> = None;
    for f in &files {
        let name = file_name(&f.path);
        match &f.result {
            Ok((meta, keys)) => {
                line(format!(
                    "  {name}  index {} term {}  {keys} keys  {} bytes  ok",
                    meta.index, meta.term, f.bytes
                ));
                line(match &f.configuration {
                    Some(c) => format!("    configuration: {}", describe(c)),
                    None => "    configuration: none recorded (a file of format v1)".into(),
                });
                newest = Some(*meta);
            }
            Err(why) => {
                line(format!("  {name}  {} bytes  DAMAGED: {why}", f.bytes));
                damage.get_or_insert_with(|| format!("{}: {why}", f.path.display()));
            }
        }
    }
    for t in &temps {
        line(format!(
            "  {}  leftover of an interrupted write (removed at the next start)",
            file_name(t)
        ));
    }
    let meta = newest.unwrap_or_default();
    if newest.is_some() {
        line(format!(
            "  start-up uses the snapshot at index {} (term {})",
            meta.index, meta.term
        ));
    }

    let wal_dir = dir.join("wal");
    line(format!("write-ahead log ({}):", wal_dir.display()));
    match wal::scan(&wal_dir, meta.index) {
        Ok(scan) => {
            if scan.segments.is_empty() {
                line("  no segments".into());
            }
            for s in &scan.segments {
                let range = |r: Option<(u64, u64)>| {
                    r.map_or("none".to_owned(), |(a, b)| format!("{a}..={b}"))
                };
                line(format!(
                    "  {}  {} bytes ({} used)  {} records  entries {}  terms {}",
                    file_name(&s.path),
                    s.bytes,
                    s.end(),
                    s.records,
                    range(s.indexes),
                    range(s.terms)
                ));
                if let Some(next) = s.continues {
                    line(format!("    continues in segment {next}"));
                }
                if let Some(at) = s.torn_at {
                    line(format!(
                        "    torn tail at byte {at}: a write a crash cut short (start-up cuts it \
                         off; it was never acknowledged)"
                    ));
                }
            }
            for t in &scan.leftovers {
                line(format!(
                    "  {}  leftover of an interrupted segment creation (removed at the next start)",
                    file_name(t)
                ));
            }
            if let Some(h) = &scan.headerless {
                line(format!(
                    "  {}  empty segment without a header (removed at the next start)",
                    file_name(h)
                ));
            }
            let hs = &scan.recovered.hard_state;
            line(format!(
                "hard state: term {}, voted for {}",
                hs.term,
                hs.voted_for.as_deref().unwrap_or("nobody")
            ));
            let rec = scan.recovered;
            let entries = rec.entries.len();
            match log_after(meta, rec.entries, rec.term_at_snapshot) {
                Ok(log) => {
                    line(format!(
                        "log: {entries} entries after the snapshot, last index {} (term {})",
                        log.last_index(),
                        log.last_term()
                    ));
                    let latest = (log.base_index() + 1..=log.last_index())
                        .rev()
                        .find_map(|i| match log.entry(i).map(|e| &e.payload) {
                            Some(EntryPayload::Config { configuration }) => {
                                Some((i, configuration))
                            }
                            _ => None,
                        });
                    if let Some((index, c)) = latest {
                        line(format!(
                            "log: latest configuration entry at index {index}: {}",
                            describe(c)
                        ));
                    }
                }
                Err(why) => {
                    line(format!("log: DAMAGED: {why}"));
                    damage.get_or_insert_with(|| format!("{}: {why}", wal_dir.display()));
                }
            }
        }
        Err(e) => {
            for (name, bytes) in list_files(&wal_dir) {
                line(format!("  {name}  {bytes} bytes"));
            }
            line(format!("  DAMAGED: {e}"));
            damage.get_or_insert_with(|| e.to_string());
        }
    }
    match damage {
        None => {
            line("result: intact".into());
            (out, Outcome::Intact)
        }
        Some(first) => {
            line(format!("result: DAMAGED: first damage: {first}"));
            (out, Outcome::Damaged)
        }
    }
}

/// A configuration in one line: `voters n1 (http://…), n2 (…); learners n4 (…)`.
fn describe(c: &Configuration) -> String {
    let list = |ms: &[crate::raft::Member]| {
        ms.iter()
            .map(|m| {
                if m.id == m.url {
                    format!("{} (id not learned yet)", m.url)
                } else {
                    format!("{} ({})", m.id, m.url)
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut s = format!("voters {}", list(c.voters()));
    if !c.learners().is_empty() {
        s.push_str(&format!("; learners {}", list(c.learners())));
    }
    s
}

/// The pid of a live process holding the directory's lock, if one does. The lock is only
/// tested (taken and released at once); the file is not changed.
fn held_by(dir: &Path) -> Option<String> {
    use std::os::fd::AsRawFd;
    let path = dir.join(LOCK_FILE);
    let file = std::fs::File::open(&path).ok()?;
    // SAFETY: flock on a descriptor we own for the duration of the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    if rc == 0 {
        // SAFETY: as above; releases the shared lock just taken.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        return None;
    }
    let pid = std::fs::read_to_string(&path).unwrap_or_default();
    Some(pid.trim().to_owned())
}

/// The files in `dir` with their sizes, sorted by name (for a log that cannot be read whole).
fn list_files(dir: &Path) -> Vec<(String, u64)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let bytes = e.metadata().map_or(0, |m| m.len());
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    out.sort();
    out
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
