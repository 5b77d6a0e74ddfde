//! raft-kv-store: an HTTP key-value store that grows from one in-memory node into a Raft
//! cluster.
//!
//! Map of the crate (each module's header says what it owns and what it must never do):
//!
//! - [`config`]: flags and environment → a validated [`config::Config`].
//! - [`telemetry`]: tracing subscriber and panic hook.
//! - [`fatal`]: how a fatal error at run time ends the process (one log line, its exit status).
//! - [`startup`]: start the actors and the HTTP servers (client listener, optional peer
//!   listener) on bound sockets.
//! - [`tls`]: PEM certificates and keys → rustls configurations (ring provider; files only).
//! - [`api`]: routes, handlers, middleware and the one error → HTTP mapping.
//! - [`store`]: the pure [`store::KvState`] and the [`store::StoreActor`] that owns it.
//! - [`raft`]: the pure [`raft::RaftCore`] and the [`raft::RaftActor`] that drives it.
//! - [`security`]: the cluster secret and the proof every peer RPC carries of it (pure).
//! - [`transport`]: how Raft RPCs reach peers (HTTP, or an in-memory network in tests).
//! - [`check`]: linearizability checking of recorded client histories (pure).
//! - [`storage`]: the write-ahead log, snapshot files, the data directory's identity and lock,
//!   durable directories and failpoints (files only).
//! - [`verify`]: `kvstore verify`, the offline check of a data directory.
//! - `sim` (hidden from the docs): a test facility, the deterministic simulator of whole nodes
//!   (pure: no clock, no I/O).
//!
//! Writes flow `api handler → RaftActor → (log written, majority) → StoreActor`; linearizable
//! reads ask the `RaftActor` for a read index, then read from the `StoreActor`; `/health` and the
//! peer routes `/raft/*` go to the `RaftActor`, which talks to other nodes through a
//! `Transport`. The `RaftActor` and the `StoreActor` run on their own threads. Actors own all
//! state; there are no locks.

pub mod api;
pub mod check;
pub mod config;
pub mod fatal;
pub mod raft;
pub mod security;
#[doc(hidden)]
pub mod sim;
pub mod startup;
pub mod storage;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod transport;
pub mod verify;
