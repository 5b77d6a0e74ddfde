//! raft-kv-store: an HTTP key-value store that grows from one in-memory node into a Raft
//! cluster.
//!
//! Map of the crate, in three layers whose imports only point down (README's module table is
//! the full map, listed bottom-up; `tests/integration/layers.rs` checks it). Each module's header
//! says what it owns and what it must never do.
//!
//! **Pure** (no actix, tokio, awc, files, sockets or clock):
//! - [`security`]: the cluster secret and the proof every peer RPC carries of it.
//! - [`store`] (`command`, `idempotency`, `state`): commands with their preconditions, the
//!   idempotency table and the map with revisions [`store::KvState`].
//! - [`raft`] (`core`, `log`, `rpc`): [`raft::RaftCore`], the Raft state machine (step/tick →
//!   ordered outputs), its log and its wire types.
//! - [`codec`]: the WAL record and snapshot byte formats, and the peer RPC codec.
//! - `sim` (hidden from the docs): the deterministic simulator of whole nodes the tests run
//!   (a test facility, never used at run time).
//! - [`watch`] (`Change`, `hub`): one committed change of a key, and the watch hub (history of
//!   changes, watchers, fan-out, the 410 and slow-watcher rules).
//! - [`check`] (`history`, `linearizability`, `minimize`): the linearizability checker.
//!
//! **Shells** (actors and I/O carrying out what the pure layer decided):
//! - [`fatal`]: how a fatal error at run time ends the process (one log line, its exit status).
//! - [`metrics`]: the Prometheus metric registry and the handles that record into it.
//! - [`storage`]: WAL and snapshot files, the `LogStore` the RaftActor writes through, the data
//!   directory's identity and lock, durable directories and failpoints.
//! - [`store::actor`]: the `StoreActor` that owns the map and applies the `Committed` values it
//!   defines.
//! - [`tls`]: PEM certificates and keys → rustls configurations (ring provider; files only).
//! - [`transport`]: how Raft RPCs reach peers (HTTP, the fault layer, or an in-memory network
//!   in tests) and the message peers' requests are delivered as.
//! - [`watch::actor`]: the `WatchActor`, which owns the watch hub and the channels to the open
//!   `GET /watch` streams, fed by the `StoreActor` after every applied batch.
//! - [`raft::actor`]: the `RaftActor`, which carries out the core's outputs in order and owns
//!   the timers (its write barrier is the pure `raft::barrier`), its apply pump and snapshot
//!   transfers.
//!
//! **Edges** (how the outside reaches it):
//! - [`config`]: flags and environment → a validated [`config::Config`]; limits and defaults.
//! - [`telemetry`]: tracing subscriber and panic hook; its log sink writes lines in batches.
//! - [`api`]: routes, handlers, middleware, JSON shapes and the one error → HTTP mapping.
//! - [`startup`]: start the actors and the HTTP servers on bound sockets.
//! - [`join`]: `--join`, how an empty node becomes a member of a running cluster.
//! - [`shutdown`]: SIGINT/SIGTERM: hand leadership over, then stop the servers.
//! - [`verify`]: `kvstore verify`, the offline check of a data directory.
//! - [`restore`]: `kvstore restore`, a new data directory (and cluster id) from a backup.
//! - [`progress`]: progress bars of the long offline commands (only on a terminal).
//! - [`check`]: `kvstore check`, a workload under faults with its history checked.
//! - [`cli`]: `kvstore get|set|delete|status|member|leader|backup`, the client of a running
//!   cluster (follows the leader over `--endpoints`).
//!
//! Writes flow `api handler → RaftActor → (log written, majority) → StoreActor`; linearizable
//! reads ask the `RaftActor` for a read index, then read from the `StoreActor`; `/health` and the
//! peer routes `/raft/*` go to the `RaftActor`, which talks to other nodes through a
//! `Transport`. The `RaftActor` and the `StoreActor` run on their own threads. Actors own all
//! state; there are no locks.

pub mod api;
pub mod check;
pub mod cli;
pub mod codec;
pub mod config;
pub mod fatal;
pub mod join;
pub mod metrics;
pub mod progress;
pub mod raft;
pub mod restore;
pub mod security;
pub mod shutdown;
#[doc(hidden)]
pub mod sim;
pub mod startup;
pub mod storage;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod transport;
pub mod verify;
pub mod watch;
