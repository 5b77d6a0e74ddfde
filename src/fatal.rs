//! Fatal errors at run time: the node decided it cannot continue (its log cannot be made
//! durable, its state machine refused a committed entry, a snapshot to restore does not match,
//! a thread that owns node state panicked).
//! [`stop`] writes one `fatal:` log line and ends the process with the cause's exit status,
//! so no half-working process keeps answering HTTP or holding the cluster's leadership.
//!
//! The `kvstore` binary calls [`exit_on_fatal`] once at start and hands over its log guard;
//! then [`stop`] flushes the queued log lines and calls `std::process::exit`. Without that call
//! (a node started inside a test process) [`stop`] only logs the line and asks the actix system
//! to stop with the status, so a test process is never ended by a node it hosts.
//!
//! This module owns how a fatal error ends the process; it never decides what is fatal (the
//! Raft actor does) and knows nothing of Raft. No locks: the guard is handed over through an
//! atomic pointer.

use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use crate::telemetry::sink::LogGuard;

/// Why the node stopped; each cause has its own exit status (documented in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fatal {
    /// The write-ahead log could not be written or fsynced (or its writer thread is gone):
    /// what reached the disk is unknown, so nothing more may be acknowledged. Status 70.
    Storage,
    /// The state machine refused a committed entry (or its actor is gone): the map and the
    /// log disagree. Status 71.
    StateMachine,
    /// Raft asked to restore a snapshot that is not the one received. Status 72.
    SnapshotRestore,
    /// A thread that owns node state (the Raft actor's, the store's, the log writer's)
    /// panicked: that state is gone while HTTP would go on answering. Status 73.
    Panic,
    /// A join (`--join`) the cluster refused after this node started (e.g. its id is taken,
    /// or it was never added). Status 74.
    Join,
}

impl Fatal {
    /// The process exit status of this cause.
    pub fn exit_status(self) -> i32 {
        match self {
            Fatal::Storage => 70,
            Fatal::StateMachine => 71,
            Fatal::SnapshotRestore => 72,
            Fatal::Panic => 73,
            Fatal::Join => 74,
        }
    }

    /// A short name for the log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Fatal::Storage => "storage",
            Fatal::StateMachine => "state machine",
            Fatal::SnapshotRestore => "snapshot restore",
            Fatal::Panic => "panic",
            Fatal::Join => "join",
        }
    }
}

static EXIT: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Set on the threads whose actor owns node state (see [`mark_critical_thread`]).
    static CRITICAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// This thread runs an actor that owns node state (the Raft actor, the store, the log writer):
/// a panic on it is fatal ([`Fatal::Panic`]), while a panic in an HTTP handler is answered with
/// a 500 and the node goes on. Called from those actors' `started`.
pub fn mark_critical_thread() {
    CRITICAL.with(|c| c.set(true));
}

/// Whether this thread was marked with [`mark_critical_thread`] (the panic hook asks).
pub fn on_critical_thread() -> bool {
    CRITICAL.with(|c| c.get())
}
static GUARD: AtomicPtr<LogGuard> = AtomicPtr::new(std::ptr::null_mut());

/// Make [`stop`] end the process. `guard` (the log writer's) is dropped before exiting so the
/// fatal line and everything before it reach stderr. Call once, from `main`.
pub fn exit_on_fatal(guard: LogGuard) {
    let old = GUARD.swap(Box::into_raw(Box::new(guard)), Ordering::AcqRel);
    drop(take(old));
    EXIT.store(true, Ordering::Release);
}

/// Flush and drop the log guard handed to [`exit_on_fatal`] (at a normal exit).
pub fn flush_logs() {
    drop(take(GUARD.swap(std::ptr::null_mut(), Ordering::AcqRel)));
}

fn take(ptr: *mut LogGuard) -> Option<Box<LogGuard>> {
    // SAFETY: every non-null pointer stored in GUARD comes from `Box::into_raw` and is swapped
    // out exactly once before being turned back into a box here.
    (!ptr.is_null()).then(|| unsafe { Box::from_raw(ptr) })
}

/// The node cannot continue: log one line naming the cause, the reason and the exit status,
/// then end the process (see the module header).
pub fn stop(cause: Fatal, why: &str) {
    let status = cause.exit_status();
    tracing::error!(
        cause = cause.as_str(),
        exit_status = status,
        "fatal: {why}; this node stops now (exit status {status})"
    );
    if EXIT.load(Ordering::Acquire) {
        flush_logs();
        std::process::exit(status);
    }
    if let Some(system) = actix::System::try_current() {
        system.stop_with_code(status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_has_its_own_status() {
        let all = [
            Fatal::Storage,
            Fatal::StateMachine,
            Fatal::SnapshotRestore,
            Fatal::Panic,
            Fatal::Join,
        ];
        let mut codes: Vec<i32> = all.iter().map(|f| f.exit_status()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes, vec![70, 71, 72, 73, 74]);
    }

    #[test]
    fn without_exit_on_fatal_stop_only_logs() {
        // Outside an actix system and without `exit_on_fatal`: returns, the test goes on.
        stop(Fatal::Storage, "a test");
    }
}
