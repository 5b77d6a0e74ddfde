//! The write-ahead log's two threads: the **writer** (`kvstore-wal`), which appends each batch,
//! and the **syncer** (`wal-sync`), which fsyncs, so that the next batch is appended while the
//! current one is fsynced (a pipelined group commit). [`DiskLog`] is the `RaftActor`'s handle:
//! a batch goes straight from the actor's thread to the writer's queue, and the answer comes
//! straight back from the syncer (one oneshot per batch): no thread in between, and no answer
//! for the append alone (each hop is a thread wake-up, which costs more here than the write).
//!
//! The `RaftActor` keeps at most `raft::barrier::MAX_IN_FLIGHT` batches in flight and gathers
//! everything that arrives meanwhile into the next one (group commit: one fsync covers many
//! writes). The durability order:
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
//! - every queue is bounded: the writer's holds `MAX_IN_FLIGHT` batches and a compaction (the
//!   barrier never has more in flight; a full queue is refused, never waited for), the
//!   syncer's as many batches.
//!
//! Both threads are critical (`crate::fatal`: a panic on them ends the process). They end when
//! the `DiskLog` is dropped (with the `RaftActor`): the writer then drops what it was given to
//! own (the data directory and its lock).
//!
//! fdatasync, not fsync: records go into a segment's preallocated space (or, where the file
//! system cannot preallocate, grow it), and fdatasync writes the metadata needed to read the
//! data back (the extent written, the file size) along with it; a new segment's directory entry
//! is fsynced separately.
//!
//! [`LogStore`] is what the `RaftActor` writes through: [`DiskLog`] (these threads) or
//! [`MemoryLog`] (nothing to write: durable at once).
//!
//! It only writes what it is given; it never decides what to persist.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use futures_util::future::{ready, LocalBoxFuture};
use futures_util::FutureExt;
use tokio::sync::oneshot;

use super::wal::{Record, SyncJob, Wal, WalHandoff};
use crate::raft::barrier::MAX_IN_FLIGHT;
use crate::raft::{HardState, LogIndex};

/// A batch could not be made durable.
#[derive(Debug)]
pub struct WriteFailed {
    pub message: String,
    /// The log is as it was before the failed record: the batch (returned here) can be
    /// written again later, e.g. once disk space returns. Otherwise the node must stop.
    pub retryable: bool,
    pub records: Vec<Record>,
    /// Not a disk error: the log's threads are gone because the process is stopping. What was
    /// written may or may not be durable, so nothing waiting for it may be acknowledged, but
    /// the node is not broken: the caller stops quietly. (A log thread that panics ends the
    /// process by itself: they are critical threads, see `crate::fatal`.)
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

type Done = oneshot::Sender<Result<(), WriteFailed>>;

/// What the writer thread is asked to do, in order.
enum Job {
    /// Append these records (batch `id`: ids grow by one per batch) and make them durable.
    Write {
        id: u64,
        records: Vec<Record>,
        done: Done,
    },
    /// Remove the segments a snapshot made obsolete (see [`LogStore::compact`]).
    Compact {
        index: LogIndex,
        hard_state: HardState,
        done: oneshot::Sender<Result<usize, String>>,
    },
}

/// The writer thread's state: the open log.
struct LogWriter {
    /// The log, or why it can no longer be written (it failed to open, or an fsync failed:
    /// every later write fails, not retryable).
    wal: Result<Wal, String>,
    /// The syncer thread's queue.
    syncer: mpsc::SyncSender<Synced>,
    /// Id of the last batch appended (0: none yet): only the next one in order is written
    /// (after a refused batch, later ones are refused until it is written again).
    last_id: u64,
}

/// An appended batch on its way to the syncer.
struct Synced {
    job: SyncJob,
    entries: usize,
    bytes: u64,
    done: Done,
}

impl LogWriter {
    /// Append batch `id` and hand it to the syncer, which answers `done`; a batch that cannot
    /// be appended is answered here.
    fn write(&mut self, id: u64, records: Vec<Record>, done: Done) {
        let wal = match self.wal.as_mut() {
            Ok(w) => w,
            Err(e) => {
                let _ = done.send(Err(WriteFailed {
                    records,
                    ..WriteFailed::fatal(e.clone())
                }));
                return;
            }
        };
        if id != self.last_id + 1 {
            // An earlier batch was refused and is to be written again first.
            let _ = done.send(Err(WriteFailed {
                message: format!("an earlier batch than {id} waits to be written again"),
                retryable: true,
                records,
                stopped: false,
            }));
            return;
        }
        let before = wal.bytes_written();
        if let Err(e) = wal.append(&records) {
            let message = e.to_string();
            if e.is_fatal() {
                self.wal = Err(message.clone());
            }
            let _ = done.send(Err(WriteFailed {
                message,
                retryable: e.is_retryable(),
                records,
                stopped: false,
            }));
            return;
        }
        self.last_id = id;
        let synced = Synced {
            job: wal.sync_job(),
            entries: records
                .iter()
                .filter(|r| matches!(r, Record::Entry(_)))
                .count(),
            bytes: wal.bytes_written() - before,
            done,
        };
        // The syncer's queue holds as many batches as can be in flight: never full.
        if let Err(e) = self.syncer.try_send(synced) {
            let (message, synced) = match e {
                mpsc::TrySendError::Full(s) => ("the log's sync queue is full".to_owned(), s),
                mpsc::TrySendError::Disconnected(s) => {
                    ("the log's sync thread is gone".to_owned(), s)
                }
            };
            self.wal = Err(message.clone());
            let _ = synced.done.send(Err(WriteFailed::fatal(message)));
        }
    }

    /// Remove the segments at or below `index` (see [`Wal::compact`]).
    fn compact(&mut self, index: LogIndex, hard_state: &HardState) -> Result<usize, String> {
        let wal = self.wal.as_mut().map_err(|e| e.clone())?;
        wal.compact(index, hard_state).map_err(|e| {
            let message = e.to_string();
            if e.is_fatal() {
                // The next batch reports it, and the node stops.
                self.wal = Err(message.clone());
            }
            message
        })
    }
}

/// The writer thread: reopen the log, then carry out jobs in order until the [`DiskLog`] is
/// dropped; `owner` (the data directory and its lock) lives as long as the thread.
fn run_writer<O: Send + 'static>(
    handoff: WalHandoff,
    owner: O,
    jobs: mpsc::Receiver<Job>,
    metrics: Option<crate::metrics::WalMetrics>,
) -> std::io::Result<()> {
    let (tx, rx) = mpsc::sync_channel(MAX_IN_FLIGHT);
    std::thread::Builder::new()
        .name("wal-sync".into())
        .spawn(move || run_syncer(rx, metrics))?;
    std::thread::Builder::new()
        .name("kvstore-wal".into())
        .spawn(move || {
            crate::fatal::mark_critical_thread();
            let _owner = owner;
            let mut writer = LogWriter {
                wal: Wal::reopen(&handoff).map_err(|e| e.to_string()),
                syncer: tx,
                last_id: 0,
            };
            for job in jobs {
                match job {
                    Job::Write { id, records, done } => writer.write(id, records, done),
                    Job::Compact {
                        index,
                        hard_state,
                        done,
                    } => {
                        let _ = done.send(writer.compact(index, &hard_state));
                    }
                }
            }
        })?;
    Ok(())
}

/// The syncer thread: fsync what the writer appended, in order; answer each batch once an
/// fsync that started after its append has returned. After an error every later batch fails.
/// Ends when the writer does.
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
                // A later batch was appended during this fsync: two or more batches in
                // flight, the first durable but not yet answered (a crash test stops here).
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

/// The write-ahead log on disk, through its writer and syncer threads.
pub struct DiskLog {
    jobs: mpsc::SyncSender<Job>,
    /// A compaction is queued or running: another waits for the next snapshot (so the queue
    /// holds at most one besides the batches in flight).
    compacting: Arc<AtomicBool>,
}

impl DiskLog {
    /// Start the log's threads on the log recovered as `handoff`; `owner` (the data directory
    /// and its lock) is kept by the writer thread for as long as the log can be written. Each
    /// batch's fsync time, bytes and entry count are recorded in `metrics`. A log that fails to
    /// reopen is reported by every write.
    pub fn start<O: Send + 'static>(
        handoff: WalHandoff,
        owner: O,
        metrics: Option<crate::metrics::WalMetrics>,
    ) -> std::io::Result<DiskLog> {
        // Room for every batch the barrier lets be in flight, and a compaction.
        let (jobs, rx) = mpsc::sync_channel(MAX_IN_FLIGHT + 1);
        run_writer(handoff, owner, rx, metrics)?;
        Ok(DiskLog {
            jobs,
            compacting: Arc::default(),
        })
    }
}

impl LogStore for DiskLog {
    fn write(
        &mut self,
        id: u64,
        records: Vec<Record>,
    ) -> LocalBoxFuture<'static, Result<(), WriteFailed>> {
        let (done, durable) = oneshot::channel();
        let job = Job::Write { id, records, done };
        if let Err(e) = self.jobs.try_send(job) {
            let failed = match e {
                // The barrier never has more batches in flight than the queue holds: a bug.
                mpsc::TrySendError::Full(_) => {
                    WriteFailed::fatal("the log writer's queue is full".into())
                }
                mpsc::TrySendError::Disconnected(_) => {
                    WriteFailed::stopped("the log writer is gone".into())
                }
            };
            return ready(Err(failed)).boxed_local();
        }
        async move {
            durable
                .await
                .unwrap_or_else(|_| Err(WriteFailed::stopped("the log's threads are gone".into())))
        }
        .boxed_local()
    }

    fn compact(
        &mut self,
        index: LogIndex,
        hard_state: HardState,
    ) -> LocalBoxFuture<'static, Result<usize, String>> {
        if self.compacting.swap(true, Ordering::AcqRel) {
            return ready(Err("a compaction is still running; compacting later".into()))
                .boxed_local();
        }
        let (done, rx) = oneshot::channel();
        let job = Job::Compact {
            index,
            hard_state,
            done,
        };
        let compacting = Arc::clone(&self.compacting);
        let sent = self.jobs.try_send(job);
        async move {
            let res = match sent {
                Ok(()) => rx
                    .await
                    .unwrap_or_else(|_| Err("the log writer is gone".into())),
                Err(_) => Err("the log writer is busy or gone; compacting later".into()),
            };
            compacting.store(false, Ordering::Release);
            res
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

    /// Something a test can see being dropped.
    struct Owner(std::sync::mpsc::Sender<()>);

    impl Drop for Owner {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }

    fn set(index: LogIndex) -> Record {
        Record::Entry(crate::raft::log::Entry {
            index,
            term: 1,
            payload: crate::raft::log::EntryPayload::Command {
                command: crate::store::Command::set(format!("k{index}"), "v"),
            },
        })
    }

    /// Batches written through the two threads are durable (they read back after reopening);
    /// out of order ids are refused as retryable; dropping the `DiskLog` ends the threads, and
    /// the writer drops what it owned (the data directory's lock, at run time).
    #[test]
    fn a_disk_log_writes_in_order_and_releases_its_owner_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), 1 << 20, 0).unwrap();
        let handoff = wal.handoff();
        drop(wal);
        let (tx, dropped) = std::sync::mpsc::channel();
        let mut log = DiskLog::start(handoff, Owner(tx), None).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            log.write(1, vec![set(1)]).await.unwrap();
            // Two in flight at once, as the barrier allows.
            let (a, b) = (log.write(2, vec![set(2)]), log.write(3, vec![set(3)]));
            let (a, b) = futures_util::future::join(a, b).await;
            a.unwrap();
            b.unwrap();
            let skipped = log.write(5, vec![set(5)]).await.unwrap_err();
            assert!(skipped.retryable && !skipped.stopped, "{skipped:?}");
            assert_eq!(skipped.records.len(), 1, "the refused batch comes back");
            assert_eq!(log.compact(0, HardState::default()).await, Ok(0));
        });
        assert!(dropped.try_recv().is_err(), "owned while the log is open");
        drop(log);
        dropped
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the writer thread ends and drops its owner");
        let (_, recovered) = Wal::open(dir.path(), 1 << 20, 0).unwrap();
        let indexes: Vec<_> = recovered.entries.iter().map(|e| e.index).collect();
        assert_eq!(indexes, [1, 2, 3]);
    }

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
