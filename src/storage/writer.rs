//! [`LogWriter`]: the write-ahead log on its own thread (a one-thread `SyncArbiter`, so writes
//! keep their order). Each [`WriteBatch`] is appended and fsynced before it is answered; the
//! `RaftActor` sends one batch at a time and gathers everything that arrives meanwhile into the
//! next one (group commit: one fsync covers many writes).
//!
//! It only writes what it is given; it never decides what to persist.

use actix::{Actor, Handler, Message, SyncContext};

use super::wal::{Record, Wal, WalHandoff};

/// Owns the open log on the writer thread.
pub struct LogWriter {
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
}

/// Append these records and make them durable.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), String>")]
pub struct WriteBatch(pub Vec<Record>);

impl Handler<WriteBatch> for LogWriter {
    type Result = Result<(), String>;

    fn handle(&mut self, msg: WriteBatch, _: &mut SyncContext<Self>) -> Self::Result {
        let wal = self.wal.as_mut().map_err(|e| e.clone())?;
        wal.append(&msg.0).map_err(|e| e.to_string())?;
        wal.sync().map_err(|e| e.to_string())
    }
}
