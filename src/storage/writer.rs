//! [`LogWriter`]: the write-ahead log on its own thread (a one-thread `SyncArbiter`, so writes
//! keep their order), and its fsync on a second thread (the syncer), so that the next batch is
//! written while the current one is fsynced (a pipelined group commit).
//!
//! Each [`WriteBatch`] is appended on the writer thread, then handed to the syncer, which
//! fdatasyncs and answers. The `RaftActor` keeps at most `raft::barrier::MAX_IN_FLIGHT`
//! batches in flight and gathers everything that arrives meanwhile into the next one (group
//! commit: one fsync covers many writes). The durability order:
//! - a batch is answered durable only once an fsync that *started after its append returned*
//!   has returned: the writer hands the syncer a batch only after appending it, and the syncer
//!   starts each fsync only after taking the batches it answers (several batches taken at
//!   once share one fsync, all appended before it started);
//! - answers go out in batch order (one syncer thread, a FIFO queue), and the barrier counts a
//!   batch durable only once every earlier one is;
//! - an fsync error is fatal: the syncer answers it for that batch and **every later one**
//!   (after a failed fsync Linux may report a later fsync as successful while the data is
//!   lost), and the actor ends the process with its fatal line;
//! - a refused write (a full disk) leaves the log as it was before the refused record; the
//!   writer then refuses every batch but the next in order (by id), so nothing lands before
//!   the refused batch is written again;
//! - every queue is bounded: at most `MAX_IN_FLIGHT` batches are in flight, and the syncer's
//!   queue holds as many.
//!
//! fdatasync, not fsync: a segment grows by appends only, and fdatasync writes the metadata
//! needed to read the data back (the file size) along with it; a new segment's directory entry
//! is fsynced separately. (The segment is not preallocated: nothing relies on a fixed size.)
//!
//! [`LogStore`] is what the `RaftActor` writes through: [`DiskLog`] (this writer thread) or
//! [`MemoryLog`] (nothing to write: durable at once).
//!
//! It only writes what it is given; it never decides what to persist.

use std::sync::mpsc;

use actix::{Actor, Addr, Handler, Message, SyncContext};
use futures_util::future::{ready, LocalBoxFuture};
use futures_util::FutureExt;
use tokio::sync::oneshot;

use super::wal::{Record, SyncJob, Wal, WalHandoff};
use crate::raft::barrier::MAX_IN_FLIGHT;
use crate::raft::{HardState, LogIndex};

/// Owns the open log on the writer thread.
pub struct LogWriter {
    /// The log, or why it can no longer be written (it failed to open, or an fsync failed:
    /// every later write fails, not retryable).
    wal: Result<Wal, String>,
    /// Where each batch's fsync time, bytes and entry count are recorded (none in tests).
    metrics: Option<crate::metrics::WalMetrics>,
    /// The syncer thread's queue (started with the first batch).
    syncer: Option<mpsc::SyncSender<Synced>>,
    /// Id of the last batch appended (0: none yet): only the next one in order is written
    /// (after a refused batch, later ones are refused until it is written again).
    last_id: u64,
}

impl LogWriter {
    /// Reopen the log recovered elsewhere; a failure is reported by every write.
    pub fn new(handoff: &WalHandoff) -> Self {
        LogWriter {
            wal: Wal::reopen(handoff).map_err(|e| e.to_string()),
            metrics: None,
            syncer: None,
            last_id: 0,
        }
    }

    /// Record each batch's fsync time, bytes written and entry count in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::WalMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The syncer's queue, starting the thread on first use.
    fn syncer(&mut self) -> Result<&mpsc::SyncSender<Synced>, String> {
        if self.syncer.is_none() {
            let (tx, rx) = mpsc::sync_channel(MAX_IN_FLIGHT);
            let metrics = self.metrics.clone();
            std::thread::Builder::new()
                .name("wal-sync".into())
                .spawn(move || run_syncer(rx, metrics))
                .map_err(|e| format!("cannot start the log's sync thread: {e}"))?;
            self.syncer = Some(tx);
        }
        Ok(self.syncer.as_ref().expect("started above"))
    }
}

impl Actor for LogWriter {
    type Context = SyncContext<Self>;

    fn started(&mut self, _: &mut SyncContext<Self>) {
        crate::fatal::mark_critical_thread();
    }
}

/// Append these records (batch `id`: ids grow by one per batch) and make them durable.
#[derive(Debug, Message)]
#[rtype(result = "Result<Durable, WriteFailed>")]
pub struct WriteBatch {
    pub id: u64,
    pub records: Vec<Record>,
}

/// A batch is appended; resolves once it is durable (or why it cannot be).
pub type Durable = oneshot::Receiver<Result<(), WriteFailed>>;

/// A batch could not be made durable.
#[derive(Debug)]
pub struct WriteFailed {
    pub message: String,
    /// The log is as it was before the failed record: the batch (returned here) can be
    /// written again later, e.g. once disk space returns. Otherwise the node must stop.
    pub retryable: bool,
    pub records: Vec<Record>,
    /// Not a disk error: the log's threads are gone because the process is stopping (the
    /// writer's arbiter or the syncer ended with the actor system). What was written may or
    /// may not be durable, so nothing waiting for it may be acknowledged, but the node is not
    /// broken: the caller stops quietly. (A log thread that panics ends the process by
    /// itself: they are critical threads, see `crate::fatal`.)
    pub stopped: bool,
}

impl WriteFailed {
    fn fatal(message: String) -> Self {
        WriteFailed {
            message,
            retryable: false,
            records: Vec::new(),
            stopped: false,
        }
    }

    fn stopped(message: String) -> Self {
        WriteFailed {
            stopped: true,
            ..WriteFailed::fatal(message)
        }
    }
}

/// An appended batch on its way to the syncer.
struct Synced {
    job: SyncJob,
    entries: usize,
    bytes: u64,
    done: oneshot::Sender<Result<(), WriteFailed>>,
}

impl Handler<WriteBatch> for LogWriter {
    type Result = Result<Durable, WriteFailed>;

    fn handle(&mut self, msg: WriteBatch, _: &mut SyncContext<Self>) -> Self::Result {
        let WriteBatch { id, records } = msg;
        let wal = match self.wal.as_mut() {
            Ok(w) => w,
            Err(e) => {
                return Err(WriteFailed {
                    message: e.clone(),
                    retryable: false,
                    records,
                    stopped: false,
                })
            }
        };
        if id != self.last_id + 1 {
            // An earlier batch was refused and is to be written again first.
            return Err(WriteFailed {
                message: format!("an earlier batch than {id} waits to be written again"),
                retryable: true,
                records,
                stopped: false,
            });
        }
        let before = wal.bytes_written();
        if let Err(e) = wal.append(&records) {
            let message = e.to_string();
            if e.is_fatal() {
                self.wal = Err(message.clone());
            }
            return Err(WriteFailed {
                message,
                retryable: e.is_retryable(),
                records,
                stopped: false,
            });
        }
        self.last_id = id;
        let (tx, rx) = oneshot::channel();
        let synced = Synced {
            job: wal.sync_job(),
            entries: records
                .iter()
                .filter(|r| matches!(r, Record::Entry(_)))
                .count(),
            bytes: wal.bytes_written() - before,
            done: tx,
        };
        let sent = self.syncer().and_then(|s| {
            s.send(synced)
                .map_err(|_| "the log's sync thread is gone".into())
        });
        if let Err(message) = sent {
            self.wal = Err(message.clone());
            return Err(WriteFailed::fatal(message));
        }
        Ok(rx)
    }
}

/// The syncer thread: fsync what the writer appended, in order; answer each batch once an
/// fsync that started after its append has returned. After an error every later batch fails.
fn run_syncer(rx: mpsc::Receiver<Synced>, metrics: Option<crate::metrics::WalMetrics>) {
    crate::fatal::mark_critical_thread();
    let mut failed: Option<String> = None;
    let mut next: Option<Synced> = None;
    while let Some(first) = next.take().or_else(|| rx.recv().ok()) {
        // Everything queued now was appended before this fsync starts: one fsync for all.
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        if let Some(message) = &failed {
            for s in batch {
                let _ = s.done.send(Err(WriteFailed::fatal(message.clone())));
            }
            continue;
        }
        let started = std::time::Instant::now();
        let mut answers = Vec::with_capacity(batch.len());
        let mut jobs: Vec<SyncJob> = Vec::new();
        for s in batch {
            match jobs.last_mut() {
                Some(last) if last.same_file(&s.job) => last.absorb(s.job),
                _ => jobs.push(s.job),
            }
            answers.push((s.entries, s.bytes, s.done));
        }
        let mut result = jobs
            .into_iter()
            .try_for_each(SyncJob::run)
            .map_err(|e| e.to_string());
        let elapsed = started.elapsed();
        if result.is_ok() {
            if let Ok(s) = rx.try_recv() {
                // The next batch was appended during this fsync: two batches in flight, the
                // first durable but not yet answered (a crash test stops here).
                next = Some(s);
                result = crate::storage::failpoint::hit("wal.sync.pipelined")
                    .map_err(|e| format!("write-ahead log: cannot sync: {e}"));
            }
        }
        if let Err(e) = result {
            failed = Some(e);
        }
        for (entries, bytes, done) in answers {
            let answer = match &failed {
                None => {
                    if let Some(m) = &metrics {
                        m.batch(entries, bytes, elapsed);
                    }
                    Ok(())
                }
                Some(message) => Err(WriteFailed::fatal(message.clone())),
            };
            let _ = done.send(answer);
        }
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
    /// `id` is the barrier's batch id (they grow by one per batch; a batch written again after
    /// a refusal keeps its id).
    fn write(
        &mut self,
        id: u64,
        records: Vec<Record>,
    ) -> LocalBoxFuture<'static, Result<(), WriteFailed>>;

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
    fn write(
        &mut self,
        id: u64,
        records: Vec<Record>,
    ) -> LocalBoxFuture<'static, Result<(), WriteFailed>> {
        let sent = self.writer.send(WriteBatch { id, records });
        async move {
            match sent.await {
                Ok(Ok(durable)) => durable.await.unwrap_or_else(|_| {
                    Err(WriteFailed::stopped("the log's sync thread is gone".into()))
                }),
                Ok(Err(failed)) => Err(failed),
                Err(e) => Err(WriteFailed::stopped(format!("log writer is gone: {e}"))),
            }
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
    fn write(
        &mut self,
        _: u64,
        _: Vec<Record>,
    ) -> LocalBoxFuture<'static, Result<(), WriteFailed>> {
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
        let write = log.write(1, vec![Record::HardState(HardState::default())]);
        assert!(matches!(write.now_or_never(), Some(Ok(()))));
        assert!(matches!(
            log.compact(5, HardState::default()).now_or_never(),
            Some(Ok(0))
        ));
    }
}
