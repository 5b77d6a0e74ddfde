//! [`LogWriter`]: the write-ahead log on its own thread (a one-thread `SyncArbiter`, so writes
//! keep their order). Each [`WriteBatch`] is appended and fsynced before it is answered; the
//! `RaftActor` sends one batch at a time and gathers everything that arrives meanwhile into the
//! next one (group commit: one fsync covers many writes).
//!
//! [`LogStore`] is what the `RaftActor` writes through: [`DiskLog`] (this writer thread) or
//! [`MemoryLog`] (nothing to write: durable at once).
//!
//! It only writes what it is given; it never decides what to persist.

use actix::{Actor, Addr, Handler, Message, SyncContext};
use futures_util::future::{ready, LocalBoxFuture};
use futures_util::FutureExt;

use super::wal::{Record, Wal, WalHandoff};
use crate::raft::{HardState, LogIndex};

/// Owns the open log on the writer thread.
pub struct LogWriter {
    /// The log, or why it can no longer be written (it failed to open, or an fsync failed:
    /// every later write fails, not retryable).
    wal: Result<Wal, String>,
    /// Where each batch's fsync time, bytes and entry count are recorded (none in tests).
    metrics: Option<crate::metrics::WalMetrics>,
}

impl LogWriter {
    /// Reopen the log recovered elsewhere; a failure is reported by every write.
    pub fn new(handoff: &WalHandoff) -> Self {
        LogWriter {
            wal: Wal::reopen(handoff).map_err(|e| e.to_string()),
            metrics: None,
        }
    }

    /// Record each batch's fsync time, bytes written and entry count in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::WalMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

impl Actor for LogWriter {
    type Context = SyncContext<Self>;

    fn started(&mut self, _: &mut SyncContext<Self>) {
        crate::fatal::mark_critical_thread();
    }
}

/// Append these records and make them durable.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), WriteFailed>")]
pub struct WriteBatch(pub Vec<Record>);

/// A batch could not be made durable.
#[derive(Debug)]
pub struct WriteFailed {
    pub message: String,
    /// The log is as it was before the failed record: the batch (returned here) can be
    /// written again later, e.g. once disk space returns. Otherwise the node must stop.
    pub retryable: bool,
    pub records: Vec<Record>,
}

impl Handler<WriteBatch> for LogWriter {
    type Result = Result<(), WriteFailed>;

    fn handle(&mut self, msg: WriteBatch, _: &mut SyncContext<Self>) -> Self::Result {
        let records = msg.0;
        let wal = match self.wal.as_mut() {
            Ok(w) => w,
            Err(e) => {
                return Err(WriteFailed {
                    message: e.clone(),
                    retryable: false,
                    records,
                })
            }
        };
        let before = wal.bytes_written();
        let done = wal.append(&records).and_then(|()| {
            let started = std::time::Instant::now();
            wal.sync()?;
            if let Some(m) = &self.metrics {
                let entries = records
                    .iter()
                    .filter(|r| matches!(r, Record::Entry(_)))
                    .count();
                m.batch(entries, wal.bytes_written() - before, started.elapsed());
            }
            Ok(())
        });
        done.map_err(|e| {
            let message = e.to_string();
            if e.is_fatal() {
                self.wal = Err(message.clone());
            }
            WriteFailed {
                message,
                retryable: e.is_retryable(),
                records,
            }
        })
    }
}

/// Remove the log segments a snapshot made obsolete: every segment whose entries are all at or
/// below `index`. `hard_state` is the current one (written again first, see [`Wal::compact`]).
/// Answers how many segments were removed.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, String>")]
pub struct CompactLog {
    pub index: LogIndex,
    pub hard_state: HardState,
}

impl Handler<CompactLog> for LogWriter {
    type Result = Result<usize, String>;

    fn handle(&mut self, msg: CompactLog, _: &mut SyncContext<Self>) -> Self::Result {
        let wal = self.wal.as_mut().map_err(|e| e.clone())?;
        wal.compact(msg.index, &msg.hard_state).map_err(|e| {
            let message = e.to_string();
            if e.is_fatal() {
                // The next batch reports it, and the node stops.
                self.wal = Err(message.clone());
            }
            message
        })
    }
}

/// Where the Raft log's records are made durable, as the `RaftActor` sees it.
///
/// Fits an actor without blocking its mailbox: each call returns at once with a future that the
/// actor runs with `ctx.spawn` (its result comes back as an ordinary input). A store that is
/// durable at once ([`MemoryLog`]) returns an already-completed future, which the actor may
/// take with `now_or_never` and carry on in the same step. The actor writes one batch at a
/// time and gathers what arrives meanwhile into the next (group commit).
pub trait LogStore {
    /// Append `records` and make them durable; resolves once they are (or why not).
    fn write(&mut self, records: Vec<Record>) -> LocalBoxFuture<'static, Result<(), WriteFailed>>;

    /// Remove what a snapshot made obsolete: every record whose entries are all at or below
    /// `index` (`hard_state` is the current one). Resolves to how many segments went.
    fn compact(
        &mut self,
        index: LogIndex,
        hard_state: HardState,
    ) -> LocalBoxFuture<'static, Result<usize, String>>;
}

/// The write-ahead log on disk, through its [`LogWriter`] thread.
pub struct DiskLog {
    writer: Addr<LogWriter>,
}

impl DiskLog {
    pub fn new(writer: Addr<LogWriter>) -> Self {
        DiskLog { writer }
    }
}

impl LogStore for DiskLog {
    fn write(&mut self, records: Vec<Record>) -> LocalBoxFuture<'static, Result<(), WriteFailed>> {
        let sent = self.writer.send(WriteBatch(records));
        async move {
            sent.await.unwrap_or_else(|e| {
                Err(WriteFailed {
                    message: format!("log writer is gone: {e}"),
                    retryable: false,
                    records: Vec::new(),
                })
            })
        }
        .boxed_local()
    }

    fn compact(
        &mut self,
        index: LogIndex,
        hard_state: HardState,
    ) -> LocalBoxFuture<'static, Result<usize, String>> {
        let sent = self.writer.send(CompactLog { index, hard_state });
        async move {
            sent.await
                .unwrap_or_else(|e| Err(format!("log writer is gone: {e}")))
        }
        .boxed_local()
    }
}

/// No durable log (`--in-memory`): every write is "durable" at once, nothing survives a
/// restart.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryLog;

impl LogStore for MemoryLog {
    fn write(&mut self, _: Vec<Record>) -> LocalBoxFuture<'static, Result<(), WriteFailed>> {
        ready(Ok(())).boxed_local()
    }

    fn compact(
        &mut self,
        _: LogIndex,
        _: HardState,
    ) -> LocalBoxFuture<'static, Result<usize, String>> {
        ready(Ok(0)).boxed_local()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `RaftActor` relies on it: a memory log's write is complete when it returns, so the
    /// messages held behind it go out in the same step.
    #[test]
    fn a_memory_log_is_durable_at_once() {
        let mut log = MemoryLog;
        let write = log.write(vec![Record::HardState(HardState::default())]);
        assert!(matches!(write.now_or_never(), Some(Ok(()))));
        assert!(matches!(
            log.compact(5, HardState::default()).now_or_never(),
            Some(Ok(0))
        ));
    }
}
