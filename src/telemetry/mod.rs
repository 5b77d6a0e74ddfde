//! Logging: a `tracing` subscriber (human lines or JSON lines, level from `RUST_LOG`) and a panic
//! hook that reports panics through it, inside the span of the request that panicked.
//!
//! This module only configures where log events go; it never decides what is logged. The
//! lines leave through [`sink`], a queue and one writer thread that writes them in batches.

pub mod sink;

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Filter used when `RUST_LOG` is unset or unparsable.
pub const DEFAULT_FILTER: &str = "info";

/// A subscriber writing to `writer` in `format`, filtered by `filter` (a `RUST_LOG` directive);
/// `ansi` colours human lines (only for a terminal).
pub fn subscriber<W>(
    format: LogFormat,
    filter: &str,
    ansi: bool,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(true);
    match format {
        LogFormat::Human => Box::new(builder.finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
    }
}

/// Install the process-wide subscriber and the panic hook. Call once, from `main`, and keep the
/// returned guard until exit: dropping it flushes the log lines still queued.
///
/// Lines are formatted on the calling thread but written to stderr by a dedicated thread, in
/// batches (see [`sink`]): a request never waits on a write syscall nor wakes another thread,
/// and a line reaches stderr at most [`sink::LINGER`] after it was logged. If stderr cannot
/// keep up for 128,000 lines, further lines are dropped (and the count of them logged) rather
/// than stalling requests.
///
/// Fails only if the writer thread cannot be started.
pub fn init(format: LogFormat) -> std::io::Result<sink::LogGuard> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| DEFAULT_FILTER.to_owned());
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = sink::spawn(std::io::stderr(), "kvstore-log", sink::LINGER)?;
    let sub = subscriber(format, &filter, ansi, writer);
    // Only fails if a subscriber is already set, which is then the one to keep.
    let _ = tracing::subscriber::set_global_default(sub);
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = panic_message(info.payload());
        tracing::error!(%location, panic = %message, "panic");
        if crate::fatal::on_critical_thread() {
            // The actor that owned this thread's state is gone; HTTP must not go on without it.
            crate::fatal::stop(
                crate::fatal::Fatal::Panic,
                &format!("a thread that owns node state panicked at {location}: {message}"),
            );
        }
    }));
    Ok(guard)
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}
