//! [`LogSink`]: where formatted log lines go. A bounded queue in front of one thread that
//! writes them out in batches.
//!
//! It owns the queue, the writer thread and the count of lines dropped because the queue was
//! full. It never blocks the thread that logs (a full queue drops the line and counts it; the
//! next batch says how many were dropped), never formats a line and never decides what is
//! logged.
//!
//! **Why batches.** Waking a writer thread for every line costs a futex wake on the logging
//! thread, a context switch and a `write` on the writer's, once per request: 3–4 µs of the
//! ~60 µs of CPU a single node spends on a durable `SET` (BENCHMARKS.md, "The log writer and
//! AppendEntries flow control"). So after each write the thread sleeps for its linger (10 ms
//! by default) instead of waiting on the queue: lines logged meanwhile are queued without
//! waking anyone and leave in one `write`. When a whole linger passes with no
//! line, it waits on the queue again, so a line logged on an idle node is written at once.
//! A line waits at most the linger plus one write; [`LogGuard`] (dropped at exit, and by
//! `fatal::stop` before it ends the process) writes out everything queued before it returns.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Lines queued at most; more are dropped (and counted) rather than stall the logging thread.
pub const QUEUE_LINES: usize = 128_000;
/// How long the writer thread lets lines gather after a write.
pub const LINGER: Duration = Duration::from_millis(10);
/// Bytes gathered before a write even within one drain of the queue.
const WRITE_CHUNK: usize = 64 * 1024;
/// How long [`LogGuard`]'s drop waits for the writer to write out what is queued.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

/// The `MakeWriter` handed to the subscriber (cheap to clone; every clone feeds one queue).
#[derive(Clone)]
pub struct LogSink {
    tx: SyncSender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

/// Ends the writer thread when dropped, after it wrote out every line queued before.
pub struct LogGuard {
    tx: SyncSender<Vec<u8>>,
    stop: SyncSender<SyncSender<()>>,
}

/// A sink writing to `out` on a new thread named `thread_name`, gathering lines for `linger`
/// after each write. The guard must live as long as lines should reach `out`.
pub fn spawn<W>(out: W, thread_name: &str, linger: Duration) -> std::io::Result<(LogSink, LogGuard)>
where
    W: Write + Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel(QUEUE_LINES);
    let (stop, stop_rx) = mpsc::sync_channel(1);
    let dropped = Arc::new(AtomicU64::new(0));
    let writer = Writer {
        lines: rx,
        stop: stop_rx,
        dropped: dropped.clone(),
        buf: Vec::with_capacity(WRITE_CHUNK),
        out,
    };
    std::thread::Builder::new()
        .name(thread_name.to_owned())
        .spawn(move || writer.run(linger))?;
    Ok((
        LogSink {
            tx: tx.clone(),
            dropped,
        },
        LogGuard { tx, stop },
    ))
}

impl LogSink {
    fn send(&self, line: &[u8]) {
        match self.tx.try_send(line.to_vec()) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // The writer is gone (the process is ending): nowhere to write.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// One event's writer: the formatter writes each whole line in one call.
pub struct LineWriter<'a>(&'a LogSink);

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.send(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(self)
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let (done, done_rx) = mpsc::sync_channel(1);
        if self.stop.try_send(done).is_err() {
            return;
        }
        // Wake the writer if it waits for a line (an empty one writes nothing; a full queue
        // means it is not waiting).
        let _ = self.tx.try_send(Vec::new());
        let _ = done_rx.recv_timeout(SHUTDOWN_WAIT);
    }
}

/// The writer thread's state: the queue, the stop signal, the pending bytes and the output.
struct Writer<W> {
    lines: Receiver<Vec<u8>>,
    stop: Receiver<SyncSender<()>>,
    dropped: Arc<AtomicU64>,
    buf: Vec<u8>,
    out: W,
}

impl<W: Write> Writer<W> {
    /// Wait for a line, take every queued one, write them, linger (or stop); again.
    fn run(mut self, linger: Duration) {
        while let Ok(line) = self.lines.recv() {
            self.take(line);
            self.drain();
            let lost = self.dropped.swap(0, Ordering::Relaxed);
            if lost > 0 {
                // Formatted like any other line; queued, so it leaves with the next batch.
                tracing::warn!(
                    dropped = lost,
                    "{lost} log lines were dropped: the log output did not keep up"
                );
            }
            self.write_out();
            match self.stop.recv_timeout(linger) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(ack) => {
                    self.drain();
                    self.write_out();
                    let _ = ack.send(());
                    return;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.drain();
        self.write_out();
    }

    /// Take every line queued now.
    fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.take(line);
        }
    }

    fn take(&mut self, line: Vec<u8>) {
        self.buf.extend_from_slice(&line);
        if self.buf.len() >= WRITE_CHUNK {
            self.write_out();
        }
    }

    /// Write and clear the pending bytes. A failed write loses these lines: there is nowhere
    /// else to say so.
    fn write_out(&mut self) {
        if !self.buf.is_empty() {
            let _ = self.out.write_all(&self.buf);
            let _ = self.out.flush();
            self.buf.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` that hands each write to a channel, so the test sees what reached "stderr"
    /// and in how many writes.
    struct Probe(mpsc::Sender<Vec<u8>>);

    impl Write for Probe {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.send(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn log(sink: &LogSink, line: &str) {
        sink.make_writer().write_all(line.as_bytes()).unwrap();
    }

    #[test]
    fn a_line_on_an_idle_sink_is_written_without_waiting_for_more() {
        let (tx, rx) = mpsc::channel();
        // A linger far longer than the test's patience: the first line must not wait for it.
        let (sink, _guard) = spawn(Probe(tx), "test-log", Duration::from_secs(3600)).unwrap();
        log(&sink, "one\n");
        let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(got, b"one\n");
    }

    #[test]
    fn lines_logged_during_the_linger_leave_together_in_order() {
        let (tx, rx) = mpsc::channel();
        let (sink, guard) = spawn(Probe(tx), "test-log", Duration::from_secs(3600)).unwrap();
        log(&sink, "first\n");
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)).unwrap(),
            b"first\n"
        );
        for i in 0..100 {
            log(&sink, &format!("line {i}\n"));
        }
        // Still lingering: nothing more is written until the guard asks for the rest.
        assert!(rx.try_recv().is_err());
        drop(guard);
        let rest: Vec<u8> = rx.try_iter().flatten().collect();
        let want: String = (0..100).map(|i| format!("line {i}\n")).collect();
        assert_eq!(String::from_utf8(rest).unwrap(), want);
    }

    #[test]
    fn a_full_queue_drops_lines_instead_of_blocking_and_counts_them() {
        let (tx, rx) = mpsc::channel();
        let (sink, guard) = spawn(Probe(tx), "test-log", Duration::from_secs(3600)).unwrap();
        log(&sink, "wake\n");
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), b"wake\n");
        for _ in 0..QUEUE_LINES + 10 {
            log(&sink, "x\n");
        }
        assert_eq!(sink.dropped.load(Ordering::Relaxed), 10);
        // The guard cuts the linger short and every queued line is written.
        drop(guard);
        let written: usize = rx.try_iter().map(|w| w.len()).sum();
        assert_eq!(written, 2 * QUEUE_LINES);
    }
}
