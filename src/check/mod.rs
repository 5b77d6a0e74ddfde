//! Checking recorded client histories for linearizability.
//!
//! - [`history`]: operations on keys as clients saw them (call and return times, outcome), and
//!   their JSON-lines form in porcupine's shape (`clientId, input, call, output, return`).
//! - [`linearizability`]: a Wing–Gong/Lowe checker with memoization, run per key (keys are
//!   independent registers), as porcupine does.
//! - [`minimize`]: shrinks a failing key's history to a few operations a person can read.
//!
//! Those three are pure: no I/O, no clock. `kvstore check` adds the parts that talk to a
//! cluster: [`workload`] (recorded clients), [`local`] (a throwaway local cluster),
//! [`nemesis`] (kills, pauses, partitions), [`report`] (the SVG timeline, pure) and [`command`]
//! (arguments, orchestration, report). [`http_client`] is how all of them make their awc
//! clients, so `--ca` (TLS against `https://` nodes) applies everywhere.

pub mod command;
pub mod history;
pub mod linearizability;
pub mod local;
pub mod minimize;
pub mod nemesis;
pub mod report;
pub mod workload;

pub use history::{Op, OpInput, OpOutput};

use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The TLS client configuration of this `kvstore check` run (`--ca`), set once at its start.
static TLS: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();

/// Trust the CA bundle at `path` for `https://` nodes from now on (once per process).
pub fn trust_ca(path: &std::path::Path) -> Result<(), String> {
    let config = crate::tls::client_config(path, None).map_err(|e| e.to_string())?;
    // A second call in the same process keeps the first configuration.
    let _ = TLS.set(config);
    Ok(())
}

/// An awc client for the checker's requests, bounded by `timeout`; speaks TLS to `https://`
/// nodes when [`trust_ca`] was called; with `token`, every request carries it as
/// `Authorization: Bearer` (nodes started with client tokens). Make it on the thread that uses
/// it.
pub fn http_client(timeout: Duration, token: Option<&str>) -> awc::Client {
    let connect = timeout.min(Duration::from_secs(5));
    crate::tls::awc_client_with_token(TLS.get(), connect, timeout, token)
}
pub use linearizability::{check_history, check_history_within, CheckResult};
