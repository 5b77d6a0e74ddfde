//! [`LogWriter`]: the write-ahead log on its own thread (a one-thread `SyncArbiter`, so writes
//! keep their order). Each [`WriteBatch`] is appended and fsynced before it is answered; the
//! `RaftActor` sends one batch at a time and gathers everything that arrives meanwhile into the
//! next one (group commit: one fsync covers many writes).
//!
//! It only writes what it is given; it never decides what to persist.

use actix::{Actor, Handler, Message, SyncContext};

use super::wal::{Record, Wal, WalHandoff};
use crate::raft::{HardState, LogIndex};

/// Owns the open log on the writer thread.
pub struct LogWriter {
    /// The log, or why it can no longer be written (it failed to open, or an fsync failed:
    /// every later write fails, not retryable).
    wal: Result<Wal, String>,
}

impl LogWriter {
    /// Reopen the log recovered elsewhere; a failure is reported by every write.
    pub fn new(handoff: &WalHandoff) -> Self {
        LogWriter {
            wal: Wal::reopen(handoff).map_err(|e| e.to_string()),
        }
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
        let done = wal.append(&records).and_then(|()| wal.sync());
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
